"""The JWT bearer authorization grant (RFC 7523 §2.1, §3) with trusted issuers.

When `grants.jwt_bearer.issuers` lists the issuers the operator trusts, with their keys, the
sidecar verifies the `assertion` itself - signature, `iss`, `aud`, `exp`/`nbf`/`iat`, `jti`
replay (burned by the pipeline's last step) - and forwards its `sub` as `X-Token-Subject`.
Without issuers the assertion is forwarded for the upstream to verify (the caller does not
call this module).

Errors are `invalid_grant` (RFC 7523 §3.1), result codes `jwt_bearer.<reason>`.

The audience: for the grant (unlike client authentication) draft-ietf-oauth-rfc7523bis allows
either the issuer identifier or the token endpoint URL; one of them among the `aud` values is
enough (RFC 7523 §3 item 3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Final

from sidecar import errors
from sidecar.core.clients.tables import TableReader, read_table_array
from sidecar.core.jose.claims import (
    TimeRules,
    audience_matches,
    check_times,
    jti_ttl,
    time_failure_messages,
    valid_jti,
)
from sidecar.core.jose.compact import parse_compact_jws
from sidecar.core.jose.key_sets import (
    ASYMMETRIC_ALGORITHMS,
    JwkEntry,
    JwksError,
    select_keys,
    verify_signature,
)
from sidecar.errors import OAuthError
from sidecar.model import ReplayCheck
from sidecar.ports import ConfigFiles, JwksSource
from sidecar.settings import Settings

JWT_BEARER_JTI: Final = "jwt_bearer"  # store kind
ISSUER_KEYS: Final = frozenset({"issuer", "jwks", "jwks_file", "jwks_uri", "algorithms",
                                "require_jti"})
# Explicitly typed JWTs of other kinds are not grant assertions (RFC 8725 §3.11).
FOREIGN_TYPES: Final = frozenset({"dpop+jwt", "client-authentication+jwt", "at+jwt",
                                  "oauth-client-attestation+jwt",
                                  "oauth-client-attestation-pop+jwt"})
# The subject is forwarded as a header value: printable ASCII only, so it can neither break
# the header nor be read differently by the upstream.
_HEADER_SAFE: Final = re.compile(r"[\x20-\x7e]{1,1024}")
_DETAIL_MAX: Final = 200


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    issuer: str
    jwks: tuple[JwkEntry, ...] = ()
    jwks_uri: str | None = None
    algorithms: frozenset[str] = frozenset(ASYMMETRIC_ALGORITHMS)
    require_jti: bool = True


@dataclass(frozen=True, slots=True)
class JwtBearerPolicy:
    issuers: Mapping[str, TrustedIssuer]
    audiences: frozenset[str]  # the issuer identifier and the token endpoint URL
    leeway_seconds: float = 60.0
    max_lifetime_seconds: float = 3600.0
    max_jti_length: int = 256
    time_rules: TimeRules = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_rules",
                           TimeRules(self.leeway_seconds, self.max_lifetime_seconds))

    @classmethod
    def from_settings(cls, settings: Settings,
                      issuers: tuple[TrustedIssuer, ...]) -> JwtBearerPolicy:
        config = settings.grants.jwt_bearer
        return cls(issuers={i.issuer: i for i in issuers},
                   audiences=frozenset({settings.issuer, settings.server.public_token_endpoint}),
                   leeway_seconds=float(config.leeway_seconds),
                   max_lifetime_seconds=float(config.max_lifetime_seconds))


@dataclass(frozen=True, slots=True)
class JwtBearerAssertion:
    issuer: str
    subject: str
    jti: str | None
    replay: ReplayCheck | None = None

    def context(self) -> list[tuple[str, str]]:
        """Context headers, names without the prefix."""
        return [("Subject", self.subject)]


def _invalid(reason: str, description: str, detail: str = "") -> OAuthError:
    return errors.invalid_grant(f"jwt_bearer.{reason}", description, detail[:_DETAIL_MAX])


_TIME_MESSAGES: Final[Mapping[str, str]] = time_failure_messages("assertion")


async def verify_jwt_bearer(
    assertion: str | None, *, policy: JwtBearerPolicy, now: float, jwks: JwksSource,
) -> JwtBearerAssertion | OAuthError:
    """Verify the `assertion` parameter of a jwt-bearer grant. The `jti` is not burned here:
    it comes back as `JwtBearerAssertion.replay` for the pipeline's last step, after every
    other check of the request."""
    verified = await _signed_by_trusted_issuer(assertion, policy, jwks)
    if isinstance(verified, OAuthError):
        return verified
    trusted, claims = verified
    subject = claims.get("sub")
    if not isinstance(subject, str) or not _HEADER_SAFE.fullmatch(subject):
        return _invalid("bad_subject", "The assertion sub is missing or not printable ASCII.")
    if not audience_matches(claims.get("aud"), policy.audiences, sole=False):
        return _invalid("bad_audience", "The assertion aud does not name this authorization "
                        "server.")
    failed = check_times(claims, now, policy.time_rules)
    if failed is not None:
        return _invalid(failed, _TIME_MESSAGES[failed])
    jti = claims.get("jti")
    if jti is None and trusted.require_jti:
        return _invalid("missing_jti", "The assertion must have a jti.")
    if jti is not None and not valid_jti(jti, policy.max_jti_length):
        return _invalid("bad_jti", "The assertion jti is not a valid identifier.")
    replay = None
    if isinstance(jti, str):
        exp = claims["exp"]
        assert isinstance(exp, int | float)  # check_times passed
        ttl = jti_ttl(exp, now, policy.leeway_seconds)
        replay = ReplayCheck(JWT_BEARER_JTI, f"{trusted.issuer}:{jti}", ttl,
                             _invalid("jti_replayed", "The assertion has been used before."))
    return JwtBearerAssertion(trusted.issuer, subject, jti, replay)


async def _signed_by_trusted_issuer(
    assertion: str | None, policy: JwtBearerPolicy, jwks: JwksSource,
) -> tuple[TrustedIssuer, Mapping[str, object]] | OAuthError:
    """The issuer and the claims, once the signature verified with one of its keys."""
    jws = parse_compact_jws(assertion or "")
    if jws is None:
        return _invalid("malformed", "The assertion is not a well-formed JWT.")
    typ = jws.header.get("typ")
    if "crit" in jws.header or (isinstance(typ, str) and
                                typ.lower().removeprefix("application/") in FOREIGN_TYPES):
        return _invalid("bad_header", "The assertion header is not acceptable.")
    issuer_id = jws.claims.get("iss")
    trusted = policy.issuers.get(issuer_id) if isinstance(issuer_id, str) else None
    if trusted is None:
        return _invalid("untrusted_issuer", "The assertion issuer is not trusted.",
                        f"iss {str(issuer_id)[:100]!r}")
    alg = jws.alg
    if alg is None or alg not in trusted.algorithms or alg not in ASYMMETRIC_ALGORITHMS:
        return _invalid("bad_alg", "The assertion alg is not allowed.", f"alg {alg!r}")
    keys: tuple[JwkEntry, ...] = trusted.jwks
    if trusted.jwks_uri is not None:
        try:
            keys = await jwks.keys_for(trusted.issuer, trusted.jwks_uri, jws.kid)
        except JwksError as exc:
            return _invalid("jwks_unavailable", "The issuer's keys could not be obtained.",
                            str(exc))
    candidates = select_keys(keys, alg, jws.kid)
    if not candidates or not verify_signature(jws, alg, candidates):
        return _invalid("bad_signature", "The assertion signature is invalid.",
                        f"kid {jws.kid!r}, {len(candidates)} candidate keys")
    return trusted, jws.claims


# ---------------------------------------------------------------------------------------
# Configuration: [[grants.jwt_bearer.issuers]].


def load_issuers(raw: object, base_dir: PurePath, files: ConfigFiles,
                 prefix: str = "grants.jwt_bearer.issuers") -> tuple[TrustedIssuer, ...]:
    """Build the trusted issuers from the TOML array of tables; raise ConfigError naming
    every problem as `<prefix>[<i>].<key>`. Key files are read now (a reload re-reads them)."""
    return read_table_array(raw, base_dir, files, prefix, build=_issuer,
                            identity=lambda item: item.issuer, identity_key="issuer")


def _issuer(reader: TableReader) -> TrustedIssuer | None:
    reader.unknown_keys(ISSUER_KEYS)
    issuer = reader.string("issuer", required=True)
    sources = [key for key in ("jwks", "jwks_file", "jwks_uri") if reader.has(key)]
    if len(sources) != 1:
        reader.problem(sources[1] if len(sources) > 1 else "jwks_uri",
                       "needs exactly one of jwks, jwks_file, jwks_uri")
    jwks: tuple[JwkEntry, ...] = ()
    if reader.has("jwks") or reader.has("jwks_file"):
        jwks = reader.jwks()
    jwks_uri = reader.http_url("jwks_uri")
    algorithms = reader.algorithms("algorithms", ASYMMETRIC_ALGORITHMS)
    require_jti = reader.boolean("require_jti")
    if not reader.ok or issuer is None:
        return None
    return TrustedIssuer(
        issuer=issuer, jwks=jwks, jwks_uri=jwks_uri,
        algorithms=frozenset(algorithms) if algorithms else frozenset(ASYMMETRIC_ALGORITHMS),
        require_jti=True if require_jti is None else require_jti)
