"""Configuration: [attestation] and [[attestation.attesters]]
(sidecar.core.attestation.config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.core.attestation.config import (
    CHALLENGE_PURPOSE,
    load_attesters,
)
from sidecar.settings import AttestationSettings, ConfigError
from tests.core.attestation.support import (
    AS_ISSUER,
    ATTESTER,
    ED_ATTESTER,
    REMOTE_ATTESTER,
    REMOTE_URI,
    World,
)


def test_policy_from_settings(world: World) -> None:
    policy = world.policy
    assert policy.issuer == AS_ISSUER and policy.challenges is not None
    assert [a.issuer for a in policy.attesters] == [ATTESTER, ED_ATTESTER, REMOTE_ATTESTER]
    assert [a.issuer for a in policy.attesters_for("wallet-app")] == [ATTESTER, ED_ATTESTER]
    assert policy.jwks_uris == {REMOTE_URI}
    assert policy.challenges.purpose == CHALLENGE_PURPOSE
    assert policy.pop_replay_ttl_seconds == 71.0
    defaults = AttestationSettings()
    assert (defaults.enabled, defaults.challenge_required, defaults.challenge_path,
            defaults.accept_legacy_client_assertion, defaults.dpop_combined) == \
        (False, False, "/attestation-challenge", False, True)


def problems(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    return "\n".join(excinfo.value.problems)


@pytest.mark.parametrize(("config", "expected"), [
    ({"challenge_required": True, "challenge_secret_file": ""},
     "attestation.challenge_required: needs attestation.challenge_secret_file"),
    ({"challenge_secret_file": "missing"}, "attestation.challenge_secret_file: cannot read"),
    ({"algorithms": ["HS256"]}, "attestation.algorithms: unsupported ['HS256']"),
    ({"algorithms": []}, "attestation.algorithms"),
    ({"attesters": ()}, "attestation.attesters: at least one"),
    ({"challenge_path": "challenge"}, "attestation.challenge_path"),
    ({"challenge_step_seconds": 0}, "attestation.challenge_step_seconds"),
    ({"pop_iat_max_age_seconds": -1}, "attestation.pop_iat_max_age_seconds"),
])
def test_policy_config_errors(world: World, config: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        world.build(**config)
    assert expected in problems(excinfo)


def test_short_challenge_secret(world: World, tmp_path: Path) -> None:
    (tmp_path / "short").write_text("too-short\n")
    with pytest.raises(ConfigError) as excinfo:
        world.build(challenge_secret_file="short")
    assert problems(excinfo).startswith("attestation.challenge_secret_file: ")


@pytest.mark.parametrize(("table", "expected"), [
    ({"clients": ["a"], "jwks_uri": REMOTE_URI}, "attestation.attesters[0].issuer: required"),
    ({"issuer": "x\n", "clients": ["a"], "jwks_uri": REMOTE_URI},
     "attestation.attesters[0].issuer: must be printable ASCII"),
    ({"issuer": ATTESTER, "clients": ["a"]}, "attestation.attesters[0].jwks_file: needs exactly"),
    ({"issuer": ATTESTER, "clients": ["a"], "jwks_uri": REMOTE_URI, "jwks_file": "f.json"},
     "needs exactly one of jwks, jwks_file, jwks_uri"),
    ({"issuer": ATTESTER, "jwks_uri": REMOTE_URI}, "attestation.attesters[0].clients: required"),
    ({"issuer": ATTESTER, "clients": [], "jwks_uri": REMOTE_URI},
     "attestation.attesters[0].clients: expected a non-empty list"),
    ({"issuer": ATTESTER, "clients": "wallet-app", "jwks_uri": REMOTE_URI},
     "attestation.attesters[0].clients: expected a list of strings"),
    ({"issuer": ATTESTER, "clients": ["a"], "jwks_uri": "ftp://x"},
     "attestation.attesters[0].jwks_uri"),
    ({"issuer": ATTESTER, "clients": ["a"], "jwks_file": "missing.json"},
     "attestation.attesters[0].jwks_file: cannot read"),
    ({"issuer": ATTESTER, "clients": ["a"], "jwks": {"keys": []}},
     "attestation.attesters[0].jwks: the JWKS has no usable signing key"),
    ({"issuer": ATTESTER, "clients": ["a"], "jwks_uri": REMOTE_URI, "algorithms": ["HS256"]},
     "attestation.attesters[0].algorithms: unsupported"),
    ({"issuer": ATTESTER, "clients": ["a"], "jwks_uri": REMOTE_URI, "extra": 1},
     "attestation.attesters[0].extra: unknown key"),
])
def test_attester_config_errors(tmp_path: Path, table: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_attesters([table], tmp_path, LOCAL_FILES)
    assert expected in problems(excinfo)


def test_attester_list_errors(tmp_path: Path) -> None:
    good = {"issuer": ATTESTER, "clients": ["a"], "jwks_uri": REMOTE_URI}
    with pytest.raises(ConfigError) as excinfo:
        load_attesters([good, good, "x"], tmp_path, LOCAL_FILES)
    assert problems(excinfo) == (
        f"attestation.attesters[1].issuer: {ATTESTER!r} is listed twice\n"
        "attestation.attesters[2]: expected a table")
    with pytest.raises(ConfigError):
        load_attesters({"issuer": ATTESTER}, tmp_path, LOCAL_FILES)
    assert load_attesters(None, tmp_path, LOCAL_FILES) == ()


def test_private_attester_keys_are_refused(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    private = ECAlgorithm.to_jwk(key, as_dict=True)
    with pytest.raises(ConfigError) as excinfo:
        load_attesters([{"issuer": ATTESTER, "clients": ["a"], "jwks": {"keys": [private]}}],
                       tmp_path, LOCAL_FILES)
    assert "private" in problems(excinfo)
