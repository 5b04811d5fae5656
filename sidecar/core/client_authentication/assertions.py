"""Client assertions: `client_secret_jwt` and `private_key_jwt` (OpenID Connect Core §9,
RFC 7523 §3, draft-ietf-oauth-rfc7523bis)."""


from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from sidecar.core.client_authentication.policy import (
    ASSERTION_TYPES,
    CLIENT_ASSERTION_JTI,
    ClientAuthPolicy,
    Refusal,
)
from sidecar.core.clients.model import Client
from sidecar.core.credentials import ClientCredentials
from sidecar.core.jose.algorithms import HMAC_ALGORITHMS, hmac_key_long_enough
from sidecar.core.jose.claims import (
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
from sidecar.errors import OAuthError
from sidecar.model import ReplayCheck
from sidecar.ports import JwksSource


async def check_assertion(credentials: ClientCredentials, client: Client, refuse: Refusal, *,
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
                            refuse: Refusal) -> OAuthError | None:
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
                                     refuse: Refusal) -> OAuthError | None:
    alg = jws.alg or ""
    if client.token_endpoint_auth_method == "client_secret_jwt":  # noqa: S105 - a method
        secret = (client.client_secret or "").encode("utf-8")
        if not hmac_key_long_enough(alg, secret):
            return refuse("assertion_alg", "The client_assertion alg is not allowed for this "
                          "client.", f"the registered secret is too short for {alg}")
        if not verify_hmac(jws, alg, secret):
            return refuse("assertion_signature", "The client_assertion signature is invalid.")
        return None
    keys = await client_keys(client, jwks, kid=jws.kid)
    if isinstance(keys, str):
        return refuse("jwks_unavailable", "The client's keys could not be obtained.", keys)
    candidates = select_keys(keys, alg, jws.kid)
    if not candidates:
        return refuse("assertion_unknown_key", "No registered key of the client matches the "
                      "client_assertion.", f"kid {jws.kid!r}, alg {alg}")
    if not verify_signature(jws, alg, candidates):
        return refuse("assertion_signature", "The client_assertion signature is invalid.")
    return None


async def client_keys(client: Client, jwks: JwksSource, *, kid: str | None = None,
                       x5t_s256: str | None = None) -> tuple[JwkEntry, ...] | str:
    """Registered keys, inline or fetched; a string saying why when they cannot be had."""
    if client.jwks_uri is None:
        return client.jwks
    try:
        return await jwks.keys_for(client.client_id, client.jwks_uri, kid, x5t_s256=x5t_s256)
    except JwksError as exc:
        return str(exc)
