"""Client authentication against the registry (RFC 6749 §2.3, RFC 7523 §3, RFC 8705 §2).

`credentials.py` extracted *what* the client presented (`ClientCredentials`); this module
decides whether it is right for the registered client, with the method the client registered
and no other. Every refusal is `invalid_client` (401; RFC 6749 §5.2), with
`WWW-Authenticate: Basic realm=..., error="invalid_client"` when the client used the
Authorization header, a stable `client.<reason>` result code, and nothing secret in the
description or the detail.

The methods:
- `client_secret_basic` / `client_secret_post`: the `SecretVerifier` port (constant time, or
  argon2id with a cache of verified secrets);
- `client_secret_jwt` / `private_key_jwt`: OpenID Connect Core §9 and RFC 7523 §3 - `iss` =
  `sub` = client id, `aud` the issuer as its sole value (draft-ietf-oauth-rfc7523bis) or, for
  older clients, the issuer or the token endpoint (`assertion_audiences`), `exp` required, a
  bounded lifetime, `nbf`/`iat` not in the future (with leeway), `jti` required and single-use
  until `exp` (returned as a `ReplayCheck`: the pipeline burns it last, after every other
  check of the request, in one atomic store call);
- `tls_client_auth`: the chain validated against the client's own CA bundle (RFC 8705 §7.4:
  one CA per client, not one shared pool), then the one registered subject matched on the
  leaf only (`registry.SubjectMatch`);
- `self_signed_tls_client_auth`: no chain validation; the leaf must be one of the registered
  certificates (JWKS `x5c`, RFC 8705 §2.2);
- `none`: a public client, identified by `client_id`, not authenticated.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from sidecar import errors
from sidecar.core.clients.model import Client, Registry
from sidecar.core.clients.secret_policy import valid_secret_text
from sidecar.core.credentials import ClientCredentials, basic_challenge
from sidecar.core.jose.algorithms import HMAC_ALGORITHMS, hmac_key_long_enough
from sidecar.core.jose.claims import (
    TimeRules,
    audience_matches,
    check_times,
    jti_ttl,
    time_failure_messages,
    valid_jti,
)
from sidecar.core.jose.compact import CompactJws, parse_compact_jws
from sidecar.core.jose.key_sets import (
    ASYMMETRIC_ALGORITHMS,
    JwkEntry,
    JwksError,
    select_keys,
    verify_hmac,
    verify_signature,
)
from sidecar.core.mtls import ClientCertificate
from sidecar.errors import OAuthError
from sidecar.model import ReplayCheck
from sidecar.ports import JwksSource, SecretVerifier
from sidecar.settings import Settings

CLIENT_ASSERTION_JTI: Final = "client_assertion"  # store kind
SECRET_METHODS: Final = frozenset({"client_secret_basic", "client_secret_post"})
JWT_METHODS: Final = frozenset({"client_secret_jwt", "private_key_jwt"})
TLS_METHODS: Final = frozenset({"tls_client_auth", "self_signed_tls_client_auth"})
DEFAULT_ASSERTION_ALGORITHMS: Final = frozenset(ASYMMETRIC_ALGORITHMS) | frozenset(HMAC_ALGORITHMS)
# draft-ietf-oauth-rfc7523bis: clients SHOULD put `client-authentication+jwt` in `typ`, and
# rejecting untyped assertions is "NOT RECOMMENDED". Any
# other explicit type is another kind of JWT (a DPoP proof, an access token): refused.
ASSERTION_TYPES: Final = frozenset({"jwt", "client-authentication+jwt"})
_DETAIL_MAX: Final = 200


@dataclass(frozen=True, slots=True)
class ClientAuthPolicy:
    """What `authenticate` checks against, built once from the settings."""

    issuer: str
    token_endpoint: str
    assertion_audiences: str = "issuer"  # issuer | issuer_or_endpoint
    unknown: str = "reject"  # reject | forward
    # Allowed `alg` values when a client registered no token_endpoint_auth_signing_alg; HS*
    # count only for client_secret_jwt and the others only for private_key_jwt.
    assertion_algorithms: frozenset[str] = DEFAULT_ASSERTION_ALGORITHMS
    max_assertion_lifetime_seconds: float = 3600.0
    leeway_seconds: float = 60.0
    max_jti_length: int = 256

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> ClientAuthPolicy:
        """From the settings that exist today; keys still to be added come as `overrides`
        (assertion_algorithms, max_assertion_lifetime_seconds, leeway_seconds, ...)."""
        values: dict[str, object] = {
            "issuer": settings.issuer,
            "token_endpoint": settings.server.public_token_endpoint,
            "assertion_audiences": settings.clients.assertion_audiences,
            "unknown": settings.clients.unknown,
            **overrides,
        }
        return cls(**values)  # type: ignore[arg-type]

    @property
    def audiences(self) -> frozenset[str]:
        if self.assertion_audiences == "issuer_or_endpoint":
            return frozenset({self.issuer, self.token_endpoint})
        return frozenset({self.issuer})

    @property
    def time_rules(self) -> TimeRules:
        return TimeRules(self.leeway_seconds, self.max_assertion_lifetime_seconds)


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    """Who the client is. `client` is None for an unregistered client forwarded as such
    (`clients.unknown = "forward"`); `authenticated` is what X-Token-Client-Authenticated
    says; `method` the registered method (or, for an unknown client, the presented one).
    `replay` is the assertion's `jti`, still to be burned by the caller's last step."""

    client: Client | None
    authenticated: bool
    method: str
    replay: ReplayCheck | None = None


class _Refusal:
    """Builds the `invalid_client` errors of one request."""

    def __init__(self, policy: ClientAuthPolicy, used_basic: bool) -> None:
        # RFC 6749 §5.2: the client used the Authorization header, so 401 with a
        # WWW-Authenticate of the scheme it used.
        self._challenge = basic_challenge(policy.issuer) if used_basic else None

    def __call__(self, reason: str, description: str, detail: str = "") -> OAuthError:
        error = errors.invalid_client(f"client.{reason}", description, detail[:_DETAIL_MAX])
        return error.with_headers(self._challenge) if self._challenge else error


_FAILED = "Client authentication failed."


def unidentified_client(credentials: ClientCredentials, realm: str) -> OAuthError:
    """A token request that names no client (RFC 6749 §3.2.1: confidential clients
    authenticate, public ones send client_id). Another Authorization scheme is not client
    authentication here; the client is told so, and which challenge would be."""
    scheme = credentials.other_scheme
    if scheme is None:
        return errors.invalid_client("client.unidentified",
                                     "The request does not identify the client.")
    return errors.invalid_client(
        "client.unidentified",
        f"The request does not identify the client: the Authorization header's {scheme} "
        "scheme is not client authentication at the token endpoint (use Basic, or send "
        "client_id).").with_headers(basic_challenge(realm))


async def authenticate(
    credentials: ClientCredentials, certificate: ClientCertificate | None, registry: Registry,
    *, policy: ClientAuthPolicy, now: float, jwks: JwksSource, secrets: SecretVerifier,
) -> AuthenticatedClient | OAuthError:
    """Authenticate the client of one token request; an `OAuthError` for every refusal.

    The assertion's `jti` is not burned here: it comes back as `AuthenticatedClient.replay`
    for the pipeline's last step (`burn_replays`), with the DPoP `jti`, so that a request
    refused later (e.g. `use_dpop_nonce`, then retried with the same body) has not used its
    assertion up.
    """
    refuse = _Refusal(policy, credentials.used_basic)
    client_id = credentials.client_id
    client = registry.get(client_id) if client_id is not None else None
    if client is None:
        if policy.unknown == "forward":
            return AuthenticatedClient(None, False, credentials.method)
        if client_id is None:
            return unidentified_client(credentials, policy.issuer)
        return refuse("unknown", _FAILED, f"client_id {client_id!r} is not registered")
    registered, presented = client.token_endpoint_auth_method, credentials.method
    if registered in TLS_METHODS and presented == "none":
        return refuse("certificate_required", "A client certificate is required.")
    if not _method_fits(registered, presented):
        return refuse("wrong_method", "The client used an authentication method that is not "
                      "registered for it.", f"registered {registered}, presented {presented}")
    if registered in JWT_METHODS:
        checked = await _check_assertion(credentials, client, refuse, policy=policy, now=now,
                                         jwks=jwks)
        if isinstance(checked, OAuthError):
            return checked
        return AuthenticatedClient(client, True, registered, replay=checked)
    if registered in SECRET_METHODS:
        error = await _check_secret(credentials, client, secrets, refuse)
    elif registered == "tls_client_auth":
        error = _check_pki_certificate(certificate, client, now, refuse)
    elif registered == "self_signed_tls_client_auth":
        error = await _check_self_signed(certificate, client, jwks, refuse)
    else:  # "none": identified, not authenticated
        return AuthenticatedClient(client, False, registered)
    return error or AuthenticatedClient(client, True, registered)


def _method_fits(registered: str, presented: str) -> bool:
    if registered == presented:
        return True
    # With a certificate and only client_id, extraction says tls_client_auth: it cannot know
    # PKI from self-signed. A public client may present a certificate only to bind its tokens
    # (RFC 8705 §4), so for "none" the certificate is not a credential.
    return presented == "tls_client_auth" and (registered in TLS_METHODS or registered == "none")


# ---------------------------------------------------------------------------------------
# Secrets.


async def _check_secret(credentials: ClientCredentials, client: Client, secrets: SecretVerifier,
                        refuse: _Refusal) -> OAuthError | None:
    candidates = [c for c in credentials.secret_candidates if c and valid_secret_text(c)]
    if not candidates:
        return refuse("secret_mismatch", _FAILED, "empty secret or control characters")
    for candidate in candidates:
        if await secrets.verify(client, candidate):
            return None
    return refuse("secret_mismatch", _FAILED)


# ---------------------------------------------------------------------------------------
# Assertions (client_secret_jwt, private_key_jwt).


async def _check_assertion(credentials: ClientCredentials, client: Client, refuse: _Refusal, *,
                           policy: ClientAuthPolicy, now: float,
                           jwks: JwksSource) -> ReplayCheck | OAuthError:
    """Every check but the replay; the `jti` to burn when they all pass."""
    jws = parse_compact_jws(credentials.assertion or "")
    if jws is None:
        return refuse("malformed_assertion", "The client_assertion is not a well-formed JWT.")
    error = _check_assertion_header(jws, client, policy, refuse) \
        or await _check_assertion_signature(jws, client, jwks, refuse)
    if error is not None:
        return error
    claims = jws.claims
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        # RFC 7523 §3 items 1-2, OpenID Connect Core §9: both are the client id.
        return refuse("assertion_subject", "The client_assertion must have iss = sub = client id.")
    if not audience_matches(claims.get("aud"), policy.audiences,
                            sole=policy.assertion_audiences == "issuer"):
        return refuse("assertion_audience", "The client_assertion aud must be the issuer "
                      "identifier of the authorization server.",
                      f"accepted: {sorted(policy.audiences)}")
    failed = check_times(claims, now, policy.time_rules)
    if failed is not None:
        return refuse(f"assertion_{failed}", _TIME_MESSAGES[failed])
    jti = claims.get("jti")
    if not valid_jti(jti, policy.max_jti_length):
        return refuse("assertion_jti", "The client_assertion must have a jti (OpenID Connect "
                      "Core §9).")
    exp = claims["exp"]
    assert isinstance(exp, int | float)  # check_times passed
    # The jti is remembered until the assertion expires (plus the leeway it was accepted
    # with), per client: jtis are unique per issuer (RFC 7519 §4.1.7).
    ttl = jti_ttl(exp, now, policy.leeway_seconds)
    return ReplayCheck(CLIENT_ASSERTION_JTI, f"{client.client_id}:{jti}", ttl,
                       refuse("assertion_replayed", "The client_assertion has been used before."))


_TIME_MESSAGES: Final[Mapping[str, str]] = time_failure_messages("client_assertion")


def _check_assertion_header(jws: CompactJws, client: Client, policy: ClientAuthPolicy,
                            refuse: _Refusal) -> OAuthError | None:
    if "crit" in jws.header:
        return refuse("assertion_crit", "The client_assertion has critical header parameters.")
    typ = jws.header.get("typ")
    if typ is not None and (not isinstance(typ, str)
                            or typ.lower().removeprefix("application/") not in ASSERTION_TYPES):
        return refuse("assertion_typ", "The client_assertion typ is not a client assertion type.")
    alg = jws.alg
    method = client.token_endpoint_auth_method
    family = HMAC_ALGORITHMS if method == "client_secret_jwt" else ASYMMETRIC_ALGORITHMS
    if client.token_endpoint_auth_signing_alg is not None:
        allowed = alg == client.token_endpoint_auth_signing_alg
    else:
        allowed = alg is not None and alg in family and alg in policy.assertion_algorithms
    if not allowed:
        # Never `none` (in no family), never HS* with a public key or the reverse.
        return refuse("assertion_alg", "The client_assertion alg is not allowed for this client.",
                      f"alg {alg!r}")
    return None


async def _check_assertion_signature(jws: CompactJws, client: Client, jwks: JwksSource,
                                     refuse: _Refusal) -> OAuthError | None:
    alg = jws.alg or ""
    if client.token_endpoint_auth_method == "client_secret_jwt":  # noqa: S105 - a method
        secret = (client.client_secret or "").encode("utf-8")
        if not hmac_key_long_enough(alg, secret):
            return refuse("assertion_alg", "The client_assertion alg is not allowed for this "
                          "client.", f"the registered secret is too short for {alg}")
        if not verify_hmac(jws, alg, secret):
            return refuse("assertion_signature", "The client_assertion signature is invalid.")
        return None
    keys = await _client_keys(client, jwks, kid=jws.kid)
    if isinstance(keys, str):
        return refuse("jwks_unavailable", "The client's keys could not be obtained.", keys)
    candidates = select_keys(keys, alg, jws.kid)
    if not candidates:
        return refuse("assertion_unknown_key", "No registered key of the client matches the "
                      "client_assertion.", f"kid {jws.kid!r}, alg {alg}")
    if not verify_signature(jws, alg, candidates):
        return refuse("assertion_signature", "The client_assertion signature is invalid.")
    return None


async def _client_keys(client: Client, jwks: JwksSource, *, kid: str | None = None,
                       x5t_s256: str | None = None) -> tuple[JwkEntry, ...] | str:
    """Registered keys, inline or fetched; a string saying why when they cannot be had."""
    if client.jwks_uri is None:
        return client.jwks
    try:
        return await jwks.keys_for(client.client_id, client.jwks_uri, kid, x5t_s256=x5t_s256)
    except JwksError as exc:
        return str(exc)


# ---------------------------------------------------------------------------------------
# Certificates (RFC 8705 §2).


def _eku_allows_client_auth(_policy: verification.Policy, _certificate: x509.Certificate,
                            extension: x509.ExtendedKeyUsage | None) -> None:
    if extension is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in extension \
            and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in extension:
        raise ValueError("the certificate's extended key usage does not allow clientAuth")


def _not_a_ca(_policy: verification.Policy, _certificate: x509.Certificate,
              extension: x509.BasicConstraints | None) -> None:
    if extension is not None and extension.ca:
        raise ValueError("the client certificate is a CA certificate")


def _is_a_ca(_policy: verification.Policy, _certificate: x509.Certificate,
             extension: x509.BasicConstraints) -> None:
    if not extension.ca:
        raise ValueError("an issuer certificate is not a CA (basicConstraints)")


def _may_sign_certificates(_policy: verification.Policy, _certificate: x509.Certificate,
                           extension: x509.KeyUsage | None) -> None:
    if extension is not None and not extension.key_cert_sign:
        raise ValueError("an issuer certificate may not sign certificates (keyUsage)")


# Client PKIs are private PKIs, not the Web PKI: the profile is RFC 5280's essentials (CA
# certificates say they are CAs and may sign certificates; the leaf is not a CA and, when it
# restricts its usage, allows clientAuth), not the CA/Browser Forum rules of cryptography's
# webpki defaults, which refuse common private-CA certificates (e.g. a critical SAN next to a
# subject, as trustme and many internal CAs write it). Signatures, validity periods and the
# path itself are always checked.
_CA_POLICY: Final = (
    verification.ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, verification.Criticality.AGNOSTIC, _is_a_ca)
    .may_be_present(x509.KeyUsage, verification.Criticality.AGNOSTIC, _may_sign_certificates)
)
_EE_POLICY: Final = (
    verification.ExtensionPolicy.permit_all()
    .may_be_present(x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC,
                    _eku_allows_client_auth)
    .may_be_present(x509.BasicConstraints, verification.Criticality.AGNOSTIC, _not_a_ca)
)
MAX_CHAIN_DEPTH: Final = 8


def _check_pki_certificate(certificate: ClientCertificate | None, client: Client, now: float,
                           refuse: _Refusal) -> OAuthError | None:
    if certificate is None:
        return refuse("certificate_required", "A client certificate is required.")
    store, subject = client.tls_trust_store, client.tls_client_auth_subject
    assert store is not None and subject is not None  # the registry requires both
    leaf = certificate.certificate()
    verifier = (
        verification.PolicyBuilder().store(store)
        .time(datetime.datetime.fromtimestamp(now, datetime.UTC))
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, [x509.load_der_x509_certificate(d) for d in certificate.chain])
    except (verification.VerificationError, ValueError) as exc:
        return refuse("certificate_untrusted", "The client certificate is not trusted for this "
                      "client.", str(exc))
    if not subject.matches(leaf):
        return refuse("certificate_subject", "The client certificate does not have the subject "
                      "registered for this client.", f"expected {subject.kind}")
    return None


async def _check_self_signed(certificate: ClientCertificate | None, client: Client,
                             jwks: JwksSource, refuse: _Refusal) -> OAuthError | None:
    if certificate is None:
        return refuse("certificate_required", "A client certificate is required.")
    keys = await _client_keys(client, jwks, x5t_s256=certificate.x5t_s256)
    if isinstance(keys, str):
        return refuse("jwks_unavailable", "The client's keys could not be obtained.", keys)
    # RFC 8705 §2.2: no chain validation; the certificate must be one the client registered
    # (the first x5c member of a key is that key's own certificate, RFC 7517 §4.7).
    if not any(k.x5c and k.x5c[0] == certificate.der for k in keys):
        return refuse("certificate_not_registered", "The client certificate is not one "
                      "registered for this client.")
    return None


# ---------------------------------------------------------------------------------------
# After authentication: the client's policy, and what the upstream is told.


def check_client_policy(auth: AuthenticatedClient, grant_type: str, *, dpop_proof: bool,
                        certificate: bool) -> OAuthError | None:
    """The registered policy of a known client, once the grant type is known.

    - `grant_types` (RFC 7591 §2): another grant is `unauthorized_client` (RFC 6749 §5.2);
    - `dpop_bound_access_tokens` (RFC 9449 §5.2): a request without a DPoP proof is refused;
    - `tls_client_certificate_bound_access_tokens` (RFC 8705 §3.4): the tokens are to be
      bound to a certificate, so one must be presented.
    """
    client = auth.client
    if client is None:
        return None
    if not client.allows_grant(grant_type):
        return errors.unauthorized_client(
            "client.grant_not_allowed", "The client is not allowed to use this grant type.",
            f"grant_type {grant_type!r}")
    if client.dpop_bound_access_tokens and not dpop_proof:
        return errors.invalid_dpop_proof("client.dpop_required",
                                         "This client must send a DPoP proof.")
    if client.tls_client_certificate_bound_access_tokens and not certificate:
        return errors.invalid_request("client.certificate_required_for_binding",
                                      "This client must present a client certificate.")
    return None


def context_headers(auth: AuthenticatedClient) -> list[tuple[str, str]]:
    """Context headers (names without the prefix) that come from the client registry."""
    headers = [("Client-Authenticated", "true" if auth.authenticated else "false")]
    client = auth.client
    if client is None:
        return headers
    if client.access_token_duration is not None:
        headers.append(("Access-Token-Duration", str(client.access_token_duration)))
    if client.refresh_token_duration is not None:
        headers.append(("Refresh-Token-Duration", str(client.refresh_token_duration)))
    if client.properties is not None:
        headers.append(("Properties", client.properties))
    if client.jwt_at_claims is not None:
        headers.append(("JWT-AT-Claims", client.jwt_at_claims))
    return headers


def dpop_nonce_required(auth: AuthenticatedClient, default: bool) -> bool:
    """The client's `dpop_nonce_required` when it registered one, else the global setting."""
    client = auth.client
    if client is None or client.dpop_nonce_required is None:
        return default
    return client.dpop_nonce_required
