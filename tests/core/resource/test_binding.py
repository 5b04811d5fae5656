"""sidecar.core.resource.binding: the token presented the way it is bound (RFC 9449 §7.1,
RFC 8705 §3) and its scope (RFC 6750 §3.1)."""

from __future__ import annotations

import trustme

from sidecar.core.dpop.results import DpopProof
from sidecar.core.mtls.certificate import ClientCertificate
from sidecar.core.mtls.parse import parse_client_certificate
from sidecar.core.resource import binding
from sidecar.core.resource.binding import check_binding, check_scope
from sidecar.core.resource.request import Scheme
from sidecar.core.resource.token_facts import TokenFacts
from sidecar.errors import OAuthError

NOW = 1_700_000_000.0
PROOF = DpopProof(jkt="key-1", jti="j", iat=int(NOW), nonce=None, replay_key="key-1:j",
                  replay_ttl_seconds=71.0)
PEM = trustme.CA().issue_cert("c.example").cert_chain_pems[0].bytes().decode()


def _cert() -> ClientCertificate:
    cert = parse_client_certificate(PEM, "pem")
    assert isinstance(cert, ClientCertificate)
    return cert


def _check(facts: TokenFacts | None, scheme: Scheme = "DPoP", *,
           proof: DpopProof | None = PROOF, cert: ClientCertificate | None = None,
           bearer_allowed: bool = True) -> OAuthError | None:
    return check_binding(facts, scheme=scheme, proof=proof if scheme == "DPoP" else None,
                         certificate=cert, bearer_allowed=bearer_allowed, now=NOW)


def test_the_bound_key_passes() -> None:
    assert _check(TokenFacts("recorded", jkt="key-1")) is None


def test_refusals() -> None:
    cases: list[tuple[OAuthError | None, OAuthError]] = [
        (_check(TokenFacts("recorded", jkt="key-2")), binding.KEY_MISMATCH),
        (_check(TokenFacts("recorded", jkt="key-1"), "Bearer"), binding.BOUND_AS_BEARER),
        (_check(None), binding.UNKNOWN),
        (_check(None, "Bearer", bearer_allowed=False), binding.UNKNOWN),
        (_check(TokenFacts("jwt", x5t_s256="t")), binding.NOT_DPOP_BOUND),
        (_check(TokenFacts("jwt", x5t_s256="t"), "Bearer"), binding.NO_CERTIFICATE),
        (_check(TokenFacts("jwt", x5t_s256="t"), "Bearer", cert=_cert()),
         binding.CERT_MISMATCH),
        (_check(TokenFacts("introspection"), "Bearer", bearer_allowed=False),
         binding.BEARER_REFUSED),
        (_check(TokenFacts("jwt", jkt="key-1", expires_at=int(NOW))), binding.EXPIRED),
    ]
    for got, expected in cases:
        assert got is not None
        assert (got.code, got.status, got.result_code) == (
            expected.code, expected.status, expected.result_code)
        assert got.status == 401


def test_bearer_passes_unbound_or_certificate_bound() -> None:
    assert _check(None, "Bearer") is None
    assert _check(TokenFacts("introspection"), "Bearer") is None
    cert = _cert()
    assert _check(TokenFacts("jwt", x5t_s256=cert.x5t_s256), "Bearer", cert=cert) is None
    # Both bindings: the DPoP scheme and the certificate.
    both = TokenFacts("recorded", jkt="key-1", x5t_s256=cert.x5t_s256)
    assert _check(both, cert=cert) is None
    assert _check(both) is binding.NO_CERTIFICATE


def test_scope() -> None:
    facts = TokenFacts("recorded", jkt="k", scope="read write")
    assert check_scope(facts, ()) is None
    assert check_scope(facts, ("read",)) is None
    assert check_scope(None, ()) is None
    refused = check_scope(facts, ("read", "admin"))
    assert refused is not None and (refused.code, refused.status) == ("insufficient_scope", 403)
    assert refused.detail == "missing=admin"
    assert check_scope(None, ("read",)) is not None  # a scope nobody vouches for is not granted
