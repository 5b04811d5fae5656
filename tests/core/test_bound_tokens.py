"""The pure parts of the binding chain, table-driven: which answers get a binding, how an
introspection answer is given its `cnf`, what the metadata says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sidecar.core.access_binding import AccessBinding, binding_for_answer, decode_binding
from sidecar.core.introspection import add_binding, is_active_json
from sidecar.core.metadata import Enforced, augment, is_metadata_path

DPOP = AccessBinding(jkt="k1", client_id="app", scope="read", exp=100)
CERT = AccessBinding(x5t_s256="c1", client_id="app")
BOTH = AccessBinding(jkt="k1", x5t_s256="c1", client_id="app")


@pytest.mark.parametrize(("answer", "jkt", "x5t", "expected_ttl"), [
    ({"access_token": "at", "expires_in": 600}, "k1", None, 600),
    ({"access_token": "at", "expires_in": "600"}, "k1", None, 600),  # a string, as some send
    ({"access_token": "at"}, None, "c1", 3600),  # no expires_in: the default
    ({"access_token": "at", "expires_in": -5}, "k1", None, 3600),
    ({"access_token": "at", "expires_in": True}, "k1", None, 3600),
])
def test_an_answer_with_an_access_token_is_bound(answer: dict[str, Any], jkt: str | None,
                                                 x5t: str | None, expected_ttl: int) -> None:
    found = binding_for_answer(answer, jkt=jkt, x5t_s256=x5t, client_id="app",
                               requested_scope="read", now=1000.0, default_ttl_seconds=3600)
    assert found is not None
    token, binding, ttl = found
    assert (token, ttl, binding.exp) == ("at", expected_ttl, 1000 + expected_ttl)
    assert decode_binding(binding.encode()) == binding


@pytest.mark.parametrize("answer", [
    {"token_type": "Bearer"}, {"access_token": ""}, {"access_token": 7}])
def test_an_answer_without_an_access_token_is_not_bound(answer: dict[str, Any]) -> None:
    assert binding_for_answer(answer, jkt="k1", x5t_s256=None, client_id="", requested_scope="",
                              now=0.0, default_ttl_seconds=1) is None


def test_nothing_proven_means_no_binding() -> None:
    assert binding_for_answer({"access_token": "at"}, jkt=None, x5t_s256=None, client_id="",
                              requested_scope="", now=0.0, default_ttl_seconds=1) is None


def test_the_granted_scope_wins_over_the_requested_one() -> None:
    found = binding_for_answer({"access_token": "at", "scope": "read"}, jkt="k", x5t_s256=None,
                               client_id="", requested_scope="read write", now=0.0,
                               default_ttl_seconds=1)
    assert found is not None and found[1].scope == "read"


@pytest.mark.parametrize("stored", [None, "", "not json", "[1]", '{"client_id": "a"}',
                                    '{"jkt": 5}'])
def test_a_value_that_is_not_a_binding_reads_as_none(stored: str | None) -> None:
    assert decode_binding(stored) is None


@pytest.mark.parametrize(("status", "content_type", "body", "active"), [
    (200, "application/json", b'{"active": true}', True),
    (200, "application/json", b'{"active": false}', False),
    (200, "application/json", b'{"active": "true"}', False),  # RFC 7662 §2.2: a boolean
    (200, "application/token-introspection+jwt", b"eyJ...", False),  # RFC 9701: signed
    (401, "application/json", b'{"active": true}', False),
    (200, "application/json", b"[true]", False),
    (200, "application/json", b"{", False),
])
def test_only_an_active_json_answer_is_edited(status: int, content_type: str, body: bytes,
                                              active: bool) -> None:
    assert (is_active_json(status, content_type, body) is not None) is active


@pytest.mark.parametrize(("upstream", "binding", "added", "notes"), [
    ({}, DPOP, {"cnf": {"jkt": "k1"}, "token_type": "DPoP"}, {"cnf.added", "token_type.added"}),
    ({}, CERT, {"cnf": {"x5t#S256": "c1"}}, {"cnf.added"}),
    ({}, BOTH, {"cnf": {"jkt": "k1", "x5t#S256": "c1"}, "token_type": "DPoP"},
     {"cnf.added", "token_type.added"}),
    # The upstream knows the certificate, the sidecar adds the key.
    ({"cnf": {"x5t#S256": "c1"}}, BOTH, {"cnf": {"x5t#S256": "c1", "jkt": "k1"},
                                         "token_type": "DPoP"},
     {"cnf.added", "token_type.added"}),
    # Agreement: nothing to add.
    ({"cnf": {"jkt": "k1"}, "token_type": "DPoP"}, DPOP, {}, {"cnf.unchanged"}),
    # Disagreement: the upstream's answer stays, and it is reported.
    ({"cnf": {"jkt": "other"}, "token_type": "DPoP"}, DPOP, {}, {"cnf.conflict"}),
    ({"cnf": "junk"}, DPOP, {}, {"cnf.conflict"}),
    ({"token_type": "Bearer"}, DPOP, {"cnf": {"jkt": "k1"}}, {"cnf.added", "token_type.conflict"}),
])
def test_the_binding_is_added_never_overwritten(upstream: dict[str, Any], binding: AccessBinding,
                                                added: dict[str, Any], notes: set[str]) -> None:
    answer = {"active": True, "client_id": "app", **upstream}
    edit = add_binding(dict(answer), binding)
    assert set(edit.notes) == notes
    if not added:
        assert edit.body is None
        return
    assert edit.body is not None
    assert json.loads(edit.body) == {**answer, **added}


@pytest.mark.parametrize(("path", "is_metadata"), [
    ("/.well-known/oauth-authorization-server", True),
    ("/.well-known/oauth-authorization-server/tenant-a", True),  # RFC 8414 §3.1
    ("/.well-known/openid-configuration", True),
    ("/realms/a/.well-known/openid-configuration", True),  # OpenID Discovery §4.1
    ("/.well-known/oauth-authorization-serverx", False),
    ("/.well-known/jwks.json", False),
])
def test_metadata_paths(path: str, is_metadata: bool) -> None:
    assert is_metadata_path(path) is is_metadata


def test_metadata_keeps_the_upstream_s_fields_and_corrects_the_enforced_ones() -> None:
    upstream = {"issuer": "https://as", "dpop_signing_alg_values_supported": ["HS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"]}
    enforced = Enforced(dpop_signing_algs=("ES256",), auth_methods=None,
                        attestation_algs=("ES256",),
                        attestation_challenge_endpoint="https://as/challenge")
    out, changed = augment(upstream, enforced)
    assert out["issuer"] == "https://as"
    assert out["dpop_signing_alg_values_supported"] == ["ES256"]
    # No registry: the upstream authenticates clients, its list stays.
    assert out["token_endpoint_auth_methods_supported"] == ["client_secret_basic"]
    assert out["client_attestation_pop_signing_alg_values_supported"] == ["ES256"]
    assert set(changed) == {"dpop_signing_alg_values_supported",
                            "client_attestation_signing_alg_values_supported",
                            "client_attestation_pop_signing_alg_values_supported",
                            "attestation_challenge_endpoint"}
    assert augment(out, enforced)[1] == []
