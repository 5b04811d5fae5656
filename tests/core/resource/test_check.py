"""sidecar.core.resource.check: the two pure halves of the check, without any I/O (the HTTP
doors and the real store are in tests/http/test_resource*.py and the conformance tests)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.core.resource.check import (
    RESOURCE_DPOP_JTI,
    Allowed,
    Denied,
    Presented,
    decide,
    present,
    replayed,
    unavailable,
)
from sidecar.core.resource.policy import ResourcePolicy
from sidecar.core.resource.request import ResourceRequest
from sidecar.core.resource.token_facts import TokenFacts
from sidecar.settings import settings_from_mapping
from tests.support.dpop import DpopKey
from tests.support.resource import API_PATH, api_proof, resource_settings

TOKEN = "at-123"


def policy(**resource: object) -> ResourcePolicy:
    raw: dict[str, dict[str, object]] = {
        "server": {"public_token_endpoint": "https://as.example.com/token"},
        "upstream": {"url": "http://127.0.0.1:9000"},
        "resource": resource_settings("http://127.0.0.1:9100", **resource)}
    return ResourcePolicy.from_settings(settings_from_mapping(raw, {}), LOCAL_FILES)


def request(key: DpopKey, *, scheme: str = "DPoP", **claims: object) -> ResourceRequest:
    return ResourceRequest("GET", API_PATH, (f"{scheme} {TOKEN}",),
                           (api_proof(key, TOKEN, **claims),))


def test_a_valid_proof_is_presented_with_its_key() -> None:
    key = DpopKey()
    presented = present(request(key), policy(), time.time())
    assert isinstance(presented, Presented)
    assert presented.proof is not None and presented.proof.jkt == key.jkt
    assert presented.token == TOKEN


def test_a_bad_proof_is_401_with_a_dpop_challenge() -> None:
    denied = present(request(DpopKey(), htm="POST"), policy(), time.time())
    assert isinstance(denied, Denied)
    assert (denied.status, denied.error.code, denied.result_code) == (
        401, "invalid_dpop_proof", "dpop.htm_mismatch")
    [challenge] = [v for n, v in denied.error.headers if n == "WWW-Authenticate"]
    assert challenge.startswith('DPoP error="invalid_dpop_proof"')


def test_decide_allows_the_bound_key_with_context_and_a_jti_to_burn() -> None:
    key = DpopKey()
    presented = present(request(key), policy(), time.time())
    assert isinstance(presented, Presented)
    facts = TokenFacts("recorded", jkt=key.jkt, client_id="app", subject="alice",
                       scope="read")
    allowed = decide(presented, facts, policy(), time.time())
    assert isinstance(allowed, Allowed)
    assert allowed.result_code == "resource.allowed"
    assert allowed.context() == (("Client-Id", "app"), ("DPoP-JKT", key.jkt),
                                 ("Subject", "alice"), ("Scope", "read"))
    assert allowed.replay is not None and allowed.replay.kind == RESOURCE_DPOP_JTI
    assert allowed.replay.value == f"{key.jkt}:{presented.proof.jti}"  # type: ignore[union-attr]
    assert TOKEN not in repr(allowed)
    denied = replayed(allowed, policy())
    assert (denied.status, denied.error.code) == (401, "invalid_dpop_proof")


@pytest.mark.parametrize(("subject", "sent"), [
    ("evil\r\nX-Admin: 1", False),  # a header injected
    ("jos\u00e9", False),  # non-ASCII: left out, never rewritten
    ("a" * 1025, False),
    ("a" * 1024, True),
    ("user 42 (admin)", True),
])
def test_context_values_that_are_not_header_safe_are_left_out(subject: str, sent: bool) -> None:
    key = DpopKey()
    presented = present(request(key), policy(), time.time())
    assert isinstance(presented, Presented)
    facts = TokenFacts("jwt", jkt=key.jkt, client_id="app", subject=subject)
    allowed = decide(presented, facts, policy(), time.time())
    assert isinstance(allowed, Allowed)
    assert dict(allowed.context()).get("Subject") == (subject if sent else None)
    assert dict(allowed.context())["Client-Id"] == "app"


def test_an_unknown_bearer_token_passes_without_context_when_bearer_is_allowed() -> None:
    presented = present(ResourceRequest("GET", API_PATH, (f"Bearer {TOKEN}",)), policy(),
                        time.time())
    assert isinstance(presented, Presented) and presented.proof is None
    allowed = decide(presented, None, policy(), time.time())
    assert isinstance(allowed, Allowed)
    assert (allowed.result_code, allowed.context(), allowed.replay) == (
        "resource.allowed_unbound", (), None)
    denied = decide(presented, None, policy(bearer="deny"), time.time())
    assert isinstance(denied, Denied) and denied.error.code == "invalid_token"


def test_insufficient_scope_names_the_required_scope() -> None:
    key = DpopKey()
    strict = policy(required_scopes=["admin", "read"])
    presented = present(request(key), strict, time.time())
    assert isinstance(presented, Presented)
    denied = decide(presented, TokenFacts("recorded", jkt=key.jkt, scope="read"), strict,
                    time.time())
    assert isinstance(denied, Denied) and denied.status == 403
    [challenge] = [v for n, v in denied.error.headers if n == "WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="admin read"' in challenge


def test_a_missing_nonce_is_use_dpop_nonce_with_a_nonce(tmp_path: Path) -> None:
    secret = tmp_path / "nonce"
    secret.write_text("n" * 40)
    strict = policy(nonce_required=True, nonce_secret_file=str(secret))
    denied = present(request(DpopKey()), strict, time.time())
    assert isinstance(denied, Denied)
    assert (denied.status, denied.error.code) == (401, "use_dpop_nonce")
    assert denied.error.description == "Resource server requires nonce in DPoP proof."
    assert dict(denied.error.headers)["DPoP-Nonce"] == strict.nonces.issue(  # type: ignore[union-attr]
        time.time())


@pytest.mark.parametrize("path", ["/api/%zz", "/api/\u00e9"])
def test_a_path_that_cannot_be_an_htu_is_invalid_request(path: str) -> None:
    key = DpopKey()
    denied = present(ResourceRequest("GET", path, (f"DPoP {TOKEN}",),
                                     (api_proof(key, TOKEN),)), policy(), time.time())
    assert isinstance(denied, Denied) and denied.error.code == "invalid_request"


def test_a_bad_certificate_header_is_invalid_request() -> None:
    denied = present(ResourceRequest("GET", API_PATH, (f"Bearer {TOKEN}",),
                                     client_cert_header="%%not-a-cert"), policy(), time.time())
    assert isinstance(denied, Denied) and denied.status == 400


def test_unavailable_is_503_without_a_challenge() -> None:
    denied = unavailable(policy(), "store.unavailable", "StoreError")
    assert denied.status == 503
    assert dict(denied.error.headers) == {"Retry-After": "1"}
