"""Loading the client registry and naming every problem (sidecar.core.clients.loading)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import argon2
import pytest

from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.core.clients.loading import load_registry, registry_from_mapping
from sidecar.core.clients.model import DEFAULT_GRANT_TYPES
from sidecar.settings import ConfigError
from tests.core.clients.support import FAST_ARGON2, SECRET, ec_jwk, load, problems, self_signed_jwk


def test_loads_every_method(files: Path) -> None:
    hashed = FAST_ARGON2.hash(SECRET)
    registry = load(files, f"""
        [[clients]]
        client_id = "billing"
        token_endpoint_auth_method = "client_secret_basic"
        client_secret_file = "billing.secret"
        grant_types = ["client_credentials"]
        dpop_bound_access_tokens = true
        access_token_duration = 600
        refresh_token_duration = 86400
        properties = {{ tier = "gold", "ünï" = 1, nested = {{ a = [1, 2] }} }}
        jwt_at_claims = {{ roles = ["reader"] }}

        [[clients]]
        client_id = "hashed"
        token_endpoint_auth_method = "client_secret_post"
        client_secret_hash = "{hashed}"

        [[clients]]
        client_id = "hmac"
        token_endpoint_auth_method = "client_secret_jwt"
        client_secret_file = "jwt.secret"
        token_endpoint_auth_signing_alg = "HS256"

        [[clients]]
        client_id = "signer"
        token_endpoint_auth_method = "private_key_jwt"
        jwks_file = "keys.json"

        [[clients]]
        client_id = "remote"
        token_endpoint_auth_method = "private_key_jwt"
        jwks_uri = "https://keys.example.com/jwks"
        token_endpoint_auth_signing_alg = "ES256"

        [[clients]]
        client_id = "pki"
        token_endpoint_auth_method = "tls_client_auth"
        tls_client_auth_subject_dn = "CN=pki, O=Example"
        tls_client_auth_ca_file = "ca.pem"
        tls_client_certificate_bound_access_tokens = true

        [[clients]]
        client_id = "device"
        token_endpoint_auth_method = "self_signed_tls_client_auth"
        jwks = {json.dumps({"keys": [self_signed_jwk()]})!r}

        [[clients]]
        client_id = "mobile-app"
        token_endpoint_auth_method = "none"
        grant_types = ["authorization_code", "refresh_token"]
        dpop_nonce_required = false
        attestation_additional_signal = true
    """)
    assert len(registry) == 8 and "billing" in registry and "nobody" not in registry
    billing = registry.get("billing")
    assert billing is not None
    assert billing.client_secret == SECRET  # one trailing newline dropped
    assert billing.client_secret_file == str(files / "billing.secret")
    assert billing.grant_types == ("client_credentials",)
    assert billing.dpop_bound_access_tokens and billing.dpop_nonce_required is None
    assert (billing.access_token_duration, billing.refresh_token_duration) == (600, 86400)
    # Compact, ASCII-only JSON: ready to be a header value.
    assert billing.properties == '{"tier":"gold","\\u00fcn\\u00ef":1,"nested":{"a":[1,2]}}'

    assert billing.jwt_at_claims == '{"roles":["reader"]}'
    assert SECRET not in repr(billing)  # the secret never reaches a log line
    hashed_client = registry.get("hashed")
    assert hashed_client is not None and hashed_client.client_secret_hash == hashed
    assert hashed_client.grant_types == DEFAULT_GRANT_TYPES
    assert hashed not in repr(hashed_client)
    signer, remote = registry.get("signer"), registry.get("remote")
    assert signer is not None and [k.kid for k in signer.jwks] == ["f"]
    assert remote is not None and remote.jwks_uri and remote.token_endpoint_auth_signing_alg
    assert registry.jwks_uris == frozenset({"https://keys.example.com/jwks"})
    pki = registry.get("pki")
    assert pki is not None and pki.tls_trust_store is not None and len(pki.tls_client_auth_ca) == 1
    assert pki.tls_client_auth_subject is not None
    assert pki.tls_client_auth_subject.kind == "subject_dn"
    device = registry.get("device")
    assert device is not None and device.jwks[0].x5c
    mobile = registry.get("mobile-app")
    assert mobile is not None and mobile.is_public and mobile.dpop_nonce_required is False
    assert mobile.attestation_additional_signal and mobile.allows_grant("refresh_token")
    assert not mobile.allows_grant("client_credentials")
    assert [c.client_id for c in registry][:2] == ["billing", "hashed"]
    assert "8" in repr(registry)


def test_an_empty_registry_loads(files: Path) -> None:
    assert len(load(files, "")) == 0


def test_reload_reads_the_secret_file_again(files: Path) -> None:
    text = """
        [[clients]]
        client_id = "billing"
        token_endpoint_auth_method = "client_secret_post"
        client_secret_file = "billing.secret"
    """
    first = load(files, text).get("billing")
    (files / "billing.secret").write_text("rotated\r\n", encoding="utf-8")
    second = load(files, text).get("billing")
    assert first is not None and second is not None
    assert (first.client_secret, second.client_secret) == (SECRET, "rotated")


def test_absolute_paths_are_used_as_they_are(files: Path, tmp_path_factory: pytest.TempPathFactory
                                             ) -> None:
    elsewhere = tmp_path_factory.mktemp("secrets") / "s"
    elsewhere.write_text("abc")
    client = load(files, f"""
        [[clients]]
        client_id = "a"
        token_endpoint_auth_method = "client_secret_post"
        client_secret_file = "{elsewhere}"
    """).get("a")
    assert client is not None and client.client_secret == "abc"


# ---------------------------------------------------------------------------------------
# Every problem, named.


def test_every_problem_is_named_by_client_and_key(files: Path) -> None:
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("x")
    argon2i = argon2.PasswordHasher(type=argon2.Type.I, time_cost=5, memory_cost=7168).hash("x")
    found = problems(files, f"""
        unexpected = 1

        [[clients]]
        client_id = "a"
        token_endpoint_auth_method = "client_secret_basic"
        client_secret_file = "billing.secret"
        client_secret_hash = "{FAST_ARGON2.hash("x")}"
        colour = "blue"

        [[clients]]
        client_id = "a"
        token_endpoint_auth_method = "client_secret_post"
        client_secret_file = "billing.secret"

        [[clients]]
        client_id = "b"
        token_endpoint_auth_method = "magic"

        [[clients]]
        client_id = "c"
        token_endpoint_auth_method = "client_secret_basic"
        client_secret_file = "missing.secret"

        [[clients]]
        client_id = "d"
        token_endpoint_auth_method = "client_secret_basic"
        client_secret_hash = "$sha256$abc"

        [[clients]]
        client_id = "e"
        token_endpoint_auth_method = "client_secret_basic"
        client_secret_hash = "{weak}"

        [[clients]]
        client_id = "f"
        token_endpoint_auth_method = "client_secret_basic"
        client_secret_hash = "{argon2i}"

        [[clients]]
        client_id = "g"
        token_endpoint_auth_method = "client_secret_jwt"
        client_secret_hash = "{FAST_ARGON2.hash("x")}"

        [[clients]]
        client_id = "h"
        token_endpoint_auth_method = "tls_client_auth"
        tls_client_auth_san_dns = "h.example.com"
        tls_client_auth_san_uri = "spiffe://h"
        tls_client_auth_ca_file = "missing-ca.pem"

        [[clients]]
        client_id = "i"
        token_endpoint_auth_method = "private_key_jwt"
        jwks_file = "missing.json"

        [[clients]]
        client_id = "j"
        token_endpoint_auth_method = "none"
        grant_types = ["client_credentials", "magic_grant"]
        client_secret_file = "billing.secret"

        [[clients]]
        client_id = 42
        token_endpoint_auth_method = "none"
        dpop_bound_access_tokens = "yes"
        access_token_duration = -5
        properties = "not a table"

        [[clients]]
        token_endpoint_auth_method = "none"

        [[clients]]
        client_id = "k"
        token_endpoint_auth_method = "tls_client_auth"
        tls_client_auth_subject_dn = "CN=k,frobnicate=1"

        [[clients]]
        client_id = "l"
        token_endpoint_auth_method = "private_key_jwt"
        jwks_uri = "ftp://keys.example.com"
        token_endpoint_auth_signing_alg = "HS256"
    """)
    expected = [
        "unexpected: unknown key",
        "clients[0].colour: unknown key",
        "clients[0].client_secret_hash: token_endpoint_auth_method 'client_secret_basic' needs "
        "exactly one of client_secret_file, client_secret_hash",
        "clients[1].client_id: duplicate of clients[0] ('a')",
        "clients[2].token_endpoint_auth_method: unknown method 'magic'",
        "clients[3].client_secret_file: cannot read",
        "clients[4].client_secret_hash: not an argon2id PHC string",
        "clients[5].client_secret_hash: argon2id parameters m=1024,t=1 are weaker",
        "clients[6].client_secret_hash: only argon2id",
        "clients[7].client_secret_hash: not used by token_endpoint_auth_method "
        "'client_secret_jwt' (client_secret_jwt signs with the secret itself",
        "clients[7].client_secret_file: token_endpoint_auth_method 'client_secret_jwt' is "
        "required",
        "clients[8].tls_client_auth_san_uri: token_endpoint_auth_method 'tls_client_auth' needs "
        "exactly one of tls_client_auth_subject_dn",
        "clients[8].tls_client_auth_ca_file: cannot read",
        "clients[9].jwks_file: cannot read",
        "clients[10].client_secret_file: not used by token_endpoint_auth_method 'none'",
        "clients[10].grant_types: unknown grant types ['magic_grant']",
        "clients[10].grant_types: client_credentials needs a confidential client",
        "clients[11].client_id: expected a non-empty string, got an integer",
        "clients[11].dpop_bound_access_tokens: expected true or false, got a string",
        "clients[11].access_token_duration: expected a positive integer",
        "clients[11].properties: expected a table, got a string",
        "clients[12].client_id: required",
        "clients[13].tls_client_auth_subject_dn: 'CN=k,frobnicate=1': unknown attribute type",
        "clients[13].tls_client_auth_ca_file: token_endpoint_auth_method 'tls_client_auth' is "
        "required",
        "clients[14].jwks_uri: expected an absolute http(s) URL",
        "clients[14].token_endpoint_auth_signing_alg: private_key_jwt needs one of",
    ]
    for message in expected:
        assert any(p.startswith(message) for p in found), (message, found)
    assert len(found) == len(expected), found


@pytest.mark.parametrize(("table", "message"), [
    ({"client_secret_file": "jwt.secret", "token_endpoint_auth_signing_alg": "RS256"},
     "client_secret_jwt needs one of HS256"),
    ({"client_secret_file": "jwt.secret", "token_endpoint_auth_signing_alg": "HS512"},
     "shorter than HS512 needs"),
    ({"client_secret_file": "billing.secret"}, "at least 32 bytes"),
    ({"client_secret_file": "jwt.secret", "token_endpoint_auth_signing_alg": "none"},
     "client_secret_jwt needs one of"),
])
def test_client_secret_jwt_rules(files: Path, table: dict[str, str], message: str) -> None:
    raw = {"clients": [{"client_id": "x", "token_endpoint_auth_method": "client_secret_jwt",
                        **table}]}
    with pytest.raises(ConfigError) as info:
        registry_from_mapping(raw, files, LOCAL_FILES)
    assert any(message in p for p in info.value.problems), info.value.problems


@pytest.mark.parametrize(("table", "message"), [
    ({"jwks": {"keys": [ec_jwk()]}}, "needs keys with an x5c"),
    ({"jwks": 5}, "expected a table or JSON text"),
    ({"jwks": "{"}, "not valid JSON"),
    ({"jwks": {"keys": [{"kty": "oct", "k": "AAAA"}]}}, "symmetric"),
    ({"jwks": {"keys": [ec_jwk()]}, "jwks_uri": "https://k"}, "needs exactly one of jwks"),
    ({}, "needs exactly one of jwks, jwks_file, jwks_uri"),
])
def test_self_signed_needs_registered_certificates(files: Path, table: dict[str, Any],
                                                    message: str) -> None:
    raw = {"clients": [{"client_id": "x",
                        "token_endpoint_auth_method": "self_signed_tls_client_auth", **table}]}
    with pytest.raises(ConfigError) as info:
        registry_from_mapping(raw, files, LOCAL_FILES)
    assert any(message in p for p in info.value.problems), info.value.problems


@pytest.mark.parametrize(("table", "message"), [
    ({"client_secret_file": "empty.secret"}, "empty or has control characters"),
    ({"client_secret_file": "control.secret"}, "empty or has control characters"),
    ({"client_secret_file": "latin1.secret"}, "not UTF-8"),
    ({"client_secret_file": "big.secret"}, "larger than 4096 bytes"),
    ({"client_secret_file": ""}, "expected a non-empty string"),
    ({"client_secret_file": "billing.secret", "grant_types": []}, "must not be empty"),
    ({"client_secret_file": "billing.secret", "grant_types": "client_credentials"},
     "expected a list of strings"),
    ({"client_secret_file": "billing.secret", "client_id": "bad\nid"}, "VSCHAR"),
    ({"client_secret_file": "billing.secret", "jwt_at_claims": {"at": datetime.date.today()}},
     "JSON cannot express"),
    ({"client_secret_file": "billing.secret", "dpop_nonce_required": 1}, "true or false"),
    ({"client_secret_file": "billing.secret", "refresh_token_duration": True},
     "positive integer"),
])
def test_secret_file_and_value_problems(files: Path, table: dict[str, Any], message: str) -> None:
    (files / "empty.secret").write_text("\n")
    (files / "control.secret").write_text("abc\x00def")
    (files / "latin1.secret").write_bytes("caf\xe9".encode("latin-1"))
    (files / "big.secret").write_text("x" * 5000)
    raw = {"clients": [{"client_id": "x", "token_endpoint_auth_method": "client_secret_basic",
                        **table}]}
    with pytest.raises(ConfigError) as info:
        registry_from_mapping(raw, files, LOCAL_FILES)
    assert any(message in p for p in info.value.problems), info.value.problems


def test_too_costly_argon2_parameters_are_refused(files: Path) -> None:
    # A hash string is trusted config, but its cost is paid on every failed attempt.
    costly = "$argon2id$v=19$m=1048576,t=2,p=1$c2FsdHNhbHRzYWx0$" + "A" * 43
    raw = {"clients": [{"client_id": "x", "token_endpoint_auth_method": "client_secret_basic",
                        "client_secret_hash": costly}]}
    with pytest.raises(ConfigError, match="exceed the sidecar's limits"):
        registry_from_mapping(raw, files, LOCAL_FILES)


def test_ca_file_without_certificates(files: Path) -> None:
    (files / "empty.pem").write_text("nothing here")
    raw = {"clients": [{"client_id": "x", "token_endpoint_auth_method": "tls_client_auth",
                        "tls_client_auth_san_dns": "x.example", "tls_client_auth_ca_file":
                        "empty.pem"}]}
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        registry_from_mapping(raw, files, LOCAL_FILES)


def test_file_level_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_registry(tmp_path / "absent.toml", LOCAL_FILES)
    (tmp_path / "bad.toml").write_text("[[clients]\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_registry(tmp_path / "bad.toml", LOCAL_FILES)
    with pytest.raises(ConfigError, match=r"clients: expected an array of tables"):
        registry_from_mapping({"clients": {"client_id": "x"}}, tmp_path, LOCAL_FILES)
    with pytest.raises(ConfigError, match=r"clients\[0\]: expected a table"):
        registry_from_mapping({"clients": ["x"]}, tmp_path, LOCAL_FILES)
