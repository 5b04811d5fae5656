"""Attestation-based client authentication (draft-ietf-oauth-attestation-based-client-auth-10).

A client instance sends an attestation signed by a Client Attester (`OAuth-Client-Attestation`)
and proves possession of the key the attestation names in `cnf.jwk`, either with a dedicated
PoP JWT (`OAuth-Client-Attestation-PoP`, method `attest_jwt_client_auth`) or with its DPoP proof
("combined mode", `attest_jwt_client_auth_dpop`, since -09). This module is pure: header values,
the policy, the time and a `JwksSource` in; an `AttestedClient` or an `OAuthError` out. Single-use
values are returned as `ReplayCheck`s for the pipeline's last step, never burned here.

The rules are those of -10; where -11 changed one (combined mode uses DPoP nonces only), both
readings are accepted. Section numbers are those of the WG editor's copy after -11 (the
numbering third-party code cites for -11; not checked against the -10 text): §4 attestation,
§5.1 PoP, §5.2 combined mode, §6 challenges, §7.1-§7.4 verification and errors, §7.5-§7.6
client authentication and additional signal, §10.3 refresh binding, §10.8 key resolution.

Finding the attester. Since -08 the attestation has no `iss` (that draft dropped it); how
the server trusts attesters and finds their keys is out of scope of the draft (§10.8,
which suggests "the kid header parameter combined with ... pre-shared information"). So:
1. the candidates are the configured attesters whose `clients` list holds the attestation's
   `sub` - none is `invalid_client` (RFC 6749 §5.2 "unknown client");
2. when the attestation still carries `iss` (drafts up to -07, and attesters that keep it as
   an "other claim", §4 rule 1), only the attester with that `issuer` remains;
3. the signature is tried with each remaining attester's keys (inline, file, or `jwks_uri`
   through the bounded cache), narrowed by `kid` when the header has one; the first attester
   whose key verifies is the one reported upstream.
Attester keys are asymmetric only (MAC-protected attestations, allowed since -07, need a
shared secret per attester and are not supported); `x5c`/`jku` resolution is not supported.

Errors (§7.4): the draft's codes are answered with 400 ("Authorization Servers SHOULD return
these error codes with an HTTP 400"): `invalid_client_attestation` when the attestation or its
proof could not be verified, `use_fresh_attestation` when the attestation has expired or is
older than `max_age_seconds`, `use_attestation_challenge` (with a fresh
`OAuth-Client-Attestation-Challenge`) when a challenge is missing or not ours, and in combined
mode `use_dpop_nonce` with a fresh `DPoP-Nonce` (§7.4 first bullet, -11). Where the draft
defers to RFC 6749 (§7.4 last paragraph), RFC 6749 §5.2 applies: `invalid_client` (401) for an
unknown client, a `client_id` that is not the attested one (§7.1 rule 7, §7.5), or a client
registered with another method; `invalid_request` for attestation next to another method
(RFC 6749 §2.3) unless the client registered attestation as an additional signal (§7.6).
The -00...-02 `client_assertion` form predates these codes: its refusals are `invalid_client`
(RFC 7521 §4.2.1). Result codes are `attestation.<reason>`; descriptions never quote a token.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from sidecar import errors
from sidecar.core.client_authentication import TLS_METHODS, AuthenticatedClient
from sidecar.core.credentials import ClientCredentials
from sidecar.core.dpop import NONCE_HEADER, DpopProof
from sidecar.core.jose.claims import TimeRules, audience_matches, check_times
from sidecar.core.jose.compact import CompactJws, parse_compact_jws
from sidecar.core.jose.key_sets import (
    ASYMMETRIC_ALGORITHMS,
    JwkEntry,
    JwksError,
    JwksSource,
    select_keys,
    verify_signature,
)
from sidecar.core.jose.keys import JwkError, PublicKeyInfo, public_key
from sidecar.core.nonces import WindowedHmac
from sidecar.core.registry import Client, Registry, TableReader, read_table_array
from sidecar.errors import OAuthError
from sidecar.model import FormParams, ReplayCheck
from sidecar.settings import AttestationSettings, ConfigError, read_secret_lines

ATTEST_JWT_CLIENT_AUTH: Final = "attest_jwt_client_auth"
ATTEST_JWT_CLIENT_AUTH_DPOP: Final = "attest_jwt_client_auth_dpop"
ATTESTATION_METHODS: Final = frozenset({ATTEST_JWT_CLIENT_AUTH, ATTEST_JWT_CLIENT_AUTH_DPOP})
ATTESTATION_POP_JTI: Final = "attestation_pop"  # store kind
REFRESH_BINDING_KIND: Final = "att"  # refresh binding "att:<instance jkt>"
CHALLENGE_HEADER: Final = "OAuth-Client-Attestation-Challenge"
CHALLENGE_PURPOSE: Final = "attestation-challenge"
ATTESTATION_TYP: Final = "oauth-client-attestation+jwt"
POP_TYP: Final = "oauth-client-attestation-pop+jwt"
LEGACY_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-client-attestation"
ATTESTER_KEYS: Final = frozenset({"issuer", "jwks", "jwks_file", "jwks_uri", "clients",
                                  "algorithms"})
DEFAULT_ALGORITHMS: Final = ("ES256", "EdDSA", "Ed25519", "PS256", "RS256")
_VSCHAR: Final = re.compile(r"[\x20-\x7e]+")  # RFC 6749 A.1; also keeps header values safe
_DETAIL_MAX: Final = 200

Mode = Literal["attest_jwt_client_auth", "attest_jwt_client_auth_dpop"]


# ---------------------------------------------------------------------------------------
# Configuration.


@dataclass(frozen=True, slots=True)
class Attester:
    issuer: str
    clients: frozenset[str]
    jwks: tuple[JwkEntry, ...] = ()
    jwks_uri: str | None = None
    algorithms: frozenset[str] = frozenset(ASYMMETRIC_ALGORITHMS)


@dataclass(frozen=True, slots=True)
class AttestationPolicy:
    issuer: str  # the PoP `aud` (RFC 8414 issuer identifier)
    attesters: tuple[Attester, ...]
    challenges: WindowedHmac | None
    challenge_required: bool = False
    challenge_path: str = "/attestation-challenge"
    algorithms: frozenset[str] = frozenset(DEFAULT_ALGORITHMS)
    pop_iat_max_age_seconds: int = 60
    pop_iat_max_future_seconds: int = 10
    leeway_seconds: int = 60
    max_age_seconds: int = 0
    max_jti_length: int = 256
    dpop_combined: bool = True
    accept_legacy_client_assertion: bool = False
    _by_client: Mapping[str, tuple[Attester, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_client: dict[str, list[Attester]] = {}
        for attester in self.attesters:
            for client_id in attester.clients:
                by_client.setdefault(client_id, []).append(attester)
        object.__setattr__(self, "_by_client", {k: tuple(v) for k, v in by_client.items()})

    @classmethod
    def from_settings(cls, config: AttestationSettings, *, issuer: str,
                      base_dir: str | Path) -> AttestationPolicy:
        """Check the section, load the attesters, read the challenge secrets. Raises
        ConfigError naming `attestation.<key>` (or `attestation.attesters[i].<key>`)."""
        problems = _config_problems(config)
        challenges = None
        if config.challenge_secret_file:
            try:
                challenges = _challenges(config, Path(base_dir))
            except ConfigError as exc:
                problems.extend(exc.problems)
        try:
            attesters = load_attesters(list(config.attesters), Path(base_dir))
        except ConfigError as exc:
            problems.extend(exc.problems)
            attesters = ()
        if problems:
            raise ConfigError(problems)
        return cls(issuer=issuer, attesters=attesters, challenges=challenges,
                   challenge_required=config.challenge_required,
                   challenge_path=config.challenge_path,
                   algorithms=frozenset(config.algorithms),
                   pop_iat_max_age_seconds=config.pop_iat_max_age_seconds,
                   pop_iat_max_future_seconds=config.pop_iat_max_future_seconds,
                   leeway_seconds=config.leeway_seconds, max_age_seconds=config.max_age_seconds,
                   max_jti_length=config.max_jti_length, dpop_combined=config.dpop_combined,
                   accept_legacy_client_assertion=config.accept_legacy_client_assertion)

    def attesters_for(self, client_id: str) -> tuple[Attester, ...]:
        return self._by_client.get(client_id, ())

    @property
    def jwks_uris(self) -> frozenset[str]:
        return frozenset(a.jwks_uri for a in self.attesters if a.jwks_uri)

    @property
    def pop_replay_ttl_seconds(self) -> float:
        """How long a PoP `jti` is remembered: the whole `iat` window, plus the rounding of
        `iat` to seconds (draft §10.7: the window is what bounds the seen-values list)."""
        return float(self.pop_iat_max_age_seconds + self.pop_iat_max_future_seconds + 1)


def _config_problems(config: AttestationSettings) -> list[str]:
    problems: list[str] = []
    unknown = [a for a in config.algorithms if a not in ASYMMETRIC_ALGORITHMS]
    if unknown or not config.algorithms:
        problems.append(f"attestation.algorithms: unsupported {unknown!r}; allowed: "
                        f"{', '.join(ASYMMETRIC_ALGORITHMS)} (asymmetric only, §5.1 rule 2)")
    if config.challenge_required and not config.challenge_secret_file:
        problems.append("attestation.challenge_required: needs attestation.challenge_secret_file")
    if not config.challenge_path.startswith("/"):
        problems.append(f"attestation.challenge_path: expected a path starting with '/', got "
                        f"{config.challenge_path!r}")
    for name in ("challenge_step_seconds", "max_jti_length"):
        if getattr(config, name) <= 0:
            problems.append(f"attestation.{name}: must be greater than 0")
    for name in ("challenge_window_steps", "pop_iat_max_age_seconds",
                 "pop_iat_max_future_seconds", "leeway_seconds", "max_age_seconds"):
        if getattr(config, name) < 0:
            problems.append(f"attestation.{name}: must not be negative")
    if not config.attesters:
        problems.append("attestation.attesters: at least one [[attestation.attesters]] is needed")
    return problems


def _challenges(config: AttestationSettings, base_dir: Path) -> WindowedHmac:
    path = base_dir / config.challenge_secret_file
    try:
        secrets = read_secret_lines(str(path))
    except OSError as exc:
        raise ConfigError([f"attestation.challenge_secret_file: cannot read: {exc.strerror}"]) \
            from exc
    except ConfigError as exc:
        raise ConfigError([f"attestation.challenge_secret_file: {p}" for p in exc.problems]) \
            from exc
    try:
        return WindowedHmac(secrets, config.challenge_step_seconds,
                            config.challenge_window_steps, purpose=CHALLENGE_PURPOSE)
    except ValueError as exc:
        raise ConfigError([f"attestation.challenge_secret_file: {exc}"]) from exc


def load_attesters(raw: object, base_dir: Path,
                   prefix: str = "attestation.attesters") -> tuple[Attester, ...]:
    """The trusted attesters of `[[attestation.attesters]]`; key files are read now. Raises
    ConfigError naming every problem as `<prefix>[<i>].<key>`."""
    return read_table_array(raw, base_dir, prefix, build=_attester,
                            identity=lambda item: item.issuer, identity_key="issuer")


def _attester(reader: TableReader) -> Attester | None:
    reader.unknown_keys(ATTESTER_KEYS)
    issuer = reader.string("issuer", required=True)
    if issuer is not None and not _VSCHAR.fullmatch(issuer):
        reader.problem("issuer", "must be printable ASCII (it is sent upstream in a header)")
    sources = [key for key in ("jwks", "jwks_file", "jwks_uri") if reader.has(key)]
    if len(sources) != 1:
        reader.problem(sources[1] if len(sources) > 1 else "jwks_file",
                       "needs exactly one of jwks, jwks_file, jwks_uri")
    jwks = reader.jwks() if reader.has("jwks") or reader.has("jwks_file") else ()
    jwks_uri = reader.http_url("jwks_uri")
    clients = reader.strings("clients")
    if clients is None and not reader.has("clients"):
        reader.problem("clients", "required: the client ids this attester may attest")
    elif clients is not None and (not clients or not all(_VSCHAR.fullmatch(c) for c in clients)):
        reader.problem("clients", "expected a non-empty list of client ids (RFC 6749 A.1)")
    algorithms = reader.strings("algorithms")
    if algorithms is not None:
        unknown = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if unknown or not algorithms:
            reader.problem("algorithms", f"unsupported {unknown!r}; allowed: "
                           f"{', '.join(ASYMMETRIC_ALGORITHMS)}")
    if not reader.ok or issuer is None or clients is None:
        return None
    return Attester(issuer=issuer, clients=frozenset(clients), jwks=jwks, jwks_uri=jwks_uri,
                    algorithms=frozenset(algorithms or ASYMMETRIC_ALGORITHMS))


# ---------------------------------------------------------------------------------------
# Results and errors.


@dataclass(frozen=True, slots=True)
class AttestedClient:
    """A verified attestation. `replay` is the PoP `jti` still to be burned (None in combined
    mode: the DPoP step burns the proof's `jti`)."""

    client_id: str
    attester_issuer: str
    instance_jkt: str  # RFC 7638 thumbprint of cnf.jwk
    mode: Mode
    replay: ReplayCheck | None = None
    legacy: bool = False

    def context(self) -> list[tuple[str, str]]:
        """Context headers, names without the prefix (Client-Auth-Method comes from the
        AuthenticatedClient, see `authenticate_with_attestation`)."""
        return [("Attestation-Issuer", self.attester_issuer),
                ("Attestation-JKT", self.instance_jkt)]

    @property
    def refresh_binding(self) -> str:
        """§10.3: refresh tokens are bound to the Client Instance Key."""
        return f"{REFRESH_BINDING_KIND}:{self.instance_jkt}"


def _invalid(reason: str, description: str, detail: str = "") -> OAuthError:
    return errors.invalid_client_attestation(f"attestation.{reason}", description,
                                             detail[:_DETAIL_MAX])


def _clip(value: object) -> str:
    return repr(value)[:60]


_MULTIPLE = _invalid("multiple_headers", "Exactly one OAuth-Client-Attestation header is "
                     "required.")
_MULTIPLE_POP = _invalid("multiple_pop_headers", "Exactly one OAuth-Client-Attestation-PoP "
                         "header is required.")
_MISSING = _invalid("missing", "An OAuth-Client-Attestation-PoP was sent without an "
                    "OAuth-Client-Attestation.")
_NO_POP = _invalid("pop_missing", "The client attestation needs a proof of possession "
                   "(OAuth-Client-Attestation-PoP or DPoP).")
_COMBINED_OFF = _invalid("pop_method_unsupported", "A DPoP proof is not accepted as the "
                         "attestation proof of possession; send OAuth-Client-Attestation-PoP.")
_MALFORMED = _invalid("malformed", "The client attestation is not a well-formed JWT.")
_CRIT = _invalid("unsupported_crit", "The client attestation has critical header parameters.")
_TYP = _invalid("bad_typ", f"The client attestation typ must be {ATTESTATION_TYP}.")
_ALG = _invalid("bad_alg", "The client attestation alg is not allowed.")
_SUBJECT = _invalid("bad_subject", "The client attestation sub must be a client id.")
_UNTRUSTED = _invalid("untrusted_attester", "The client attestation is not from an attester "
                      "trusted for this client.")
_SIGNATURE = _invalid("bad_signature", "The client attestation signature is invalid.")
_CNF = _invalid("bad_cnf", "The client attestation cnf claim must hold a public jwk.")
_CNF_PRIVATE = _invalid("cnf_private_key", "The client attestation cnf.jwk is a private key.")
_POP_MALFORMED = _invalid("pop_malformed", "The attestation PoP is not a well-formed JWT.")
_POP_CRIT = _invalid("pop_unsupported_crit", "The attestation PoP has critical header "
                     "parameters.")
_POP_TYP = _invalid("pop_bad_typ", f"The attestation PoP typ must be {POP_TYP}.")
_POP_ALG = _invalid("pop_bad_alg", "The attestation PoP alg is not allowed for the attested "
                    "key.")
_POP_SIGNATURE = _invalid("pop_bad_signature", "The attestation PoP signature does not verify "
                          "with the attested key.")
_POP_AUDIENCE = _invalid("pop_bad_audience", "The attestation PoP aud must be the issuer "
                         "identifier of the authorization server, as its only value.")
_POP_JTI = _invalid("pop_bad_jti", "The attestation PoP must have a jti.")
_POP_ISSUER = _invalid("pop_bad_issuer", "The attestation PoP iss must be the client id.")
_POP_REPLAYED = _invalid("pop_replayed", "The attestation PoP has been used before.")
_KEY_MISMATCH = _invalid("dpop_key_mismatch", "The DPoP proof is not signed with the attested "
                         "client instance key.")
_ID_MISMATCH = errors.invalid_client("attestation.client_id_mismatch",
                                     "The client_id is not the attested client.")

_TIME_ERRORS: Final[Mapping[str, OAuthError]] = {
    "missing_exp": _invalid("bad_exp", "The client attestation must have an exp claim."),
    "bad_time_claim": _invalid("bad_time_claim", "The client attestation exp, nbf or iat is "
                               "not a number."),
    "expired": errors.use_fresh_attestation("attestation.expired",
                                            "The client attestation has expired."),
    "not_yet_valid": _invalid("not_yet_valid", "The client attestation is not valid yet."),
    "issued_in_future": _invalid("issued_in_future", "The client attestation iat is in the "
                                 "future."),
}
_TOO_OLD = errors.use_fresh_attestation("attestation.too_old",
                                        "The client attestation is not fresh enough.")


# ---------------------------------------------------------------------------------------
# Verification.


def attestation_mode(attestation: tuple[str, ...], pop: tuple[str, ...],
                     dpop: tuple[str, ...]) -> Mode | None:
    """Which method the request uses (§7): None without attestation headers; combined mode when
    there is an attestation and a DPoP proof but no PoP header."""
    if not attestation and not pop:
        return None
    if attestation and not pop and dpop:
        return ATTEST_JWT_CLIENT_AUTH_DPOP
    return ATTEST_JWT_CLIENT_AUTH


async def verify_attestation(
    attestation: tuple[str, ...], pop: tuple[str, ...], *, dpop_proof: DpopProof | None,
    body_client_id: str | None, policy: AttestationPolicy, now: float, jwks: JwksSource,
    dpop_nonces: WindowedHmac | None = None, dpop_nonce_required: bool = False,
    legacy: bool = False,
) -> AttestedClient | OAuthError | None:
    """Verify the attestation headers of one request (§7.1, §7.2, §7.3). None when there are
    none. In combined mode `dpop_proof` is the proof the caller validated with
    `validate_proof(..., nonces=None, nonce_required=False)`: its `nonce` is checked here, as
    an attestation challenge (-10) or a DPoP nonce (-11). Never raises."""
    if not attestation and not pop:
        return None
    try:
        result = await _verify(attestation, pop, dpop_proof=dpop_proof,
                               body_client_id=body_client_id, policy=policy, now=now, jwks=jwks,
                               dpop_nonces=dpop_nonces, dpop_nonce_required=dpop_nonce_required,
                               legacy=legacy)
    except Exception as exc:  # a bug must still be a 4xx, never a 500 or a crash
        result = _invalid("malformed", "The client attestation is malformed.",
                          f"unexpected {type(exc).__name__}")
    if legacy and isinstance(result, OAuthError) and result.status == 400 \
            and result.code in ("invalid_client_attestation", "use_fresh_attestation"):
        # Drafts -00...-02 used RFC 7521 client assertions: refusals are invalid_client.
        return errors.invalid_client(result.result_code, result.description, result.detail)
    return result


async def _verify(attestation: tuple[str, ...], pop: tuple[str, ...], *,
                  dpop_proof: DpopProof | None, body_client_id: str | None,
                  policy: AttestationPolicy, now: float, jwks: JwksSource,
                  dpop_nonces: WindowedHmac | None, dpop_nonce_required: bool,
                  legacy: bool) -> AttestedClient | OAuthError:
    if not attestation:
        return _MISSING
    if len(attestation) != 1:  # §7.1 rule 1
        return _MULTIPLE
    if len(pop) > 1:  # §7.2 rule 1
        return _MULTIPLE_POP
    if not pop:
        if dpop_proof is None:
            return _NO_POP
        if not policy.dpop_combined:  # §7, third bullet
            return _COMBINED_OFF
    verified = await _check_attestation(attestation[0], policy, now, jwks, legacy)
    if isinstance(verified, OAuthError):
        return verified
    client_id, attester, entry = verified
    key = entry.key
    if body_client_id is not None and body_client_id != client_id:  # §7.1 rule 7, §7.5
        return _ID_MISMATCH
    if pop:
        replay = _check_pop(pop[0], client_id, entry, policy=policy, now=now, legacy=legacy)
        if isinstance(replay, OAuthError):
            return replay
        return AttestedClient(client_id, attester.issuer, key.thumbprint, ATTEST_JWT_CLIENT_AUTH,
                              replay, legacy)
    assert dpop_proof is not None
    error = _check_combined(dpop_proof, key, policy=policy, now=now, dpop_nonces=dpop_nonces,
                            dpop_nonce_required=dpop_nonce_required)
    return error or AttestedClient(client_id, attester.issuer, key.thumbprint,
                                   ATTEST_JWT_CLIENT_AUTH_DPOP, None, legacy)


def _typ_ok(typ: object, expected: str, legacy: bool) -> bool:
    if legacy and (typ is None or (isinstance(typ, str) and typ.lower() == "jwt")):
        return True  # explicit typing came with -04
    # RFC 7515 §4.1.9: the "application/" prefix may be omitted; media types are
    # case-insensitive.
    return isinstance(typ, str) and typ.lower().removeprefix("application/") == expected


async def _check_attestation(
    token: str, policy: AttestationPolicy, now: float, jwks: JwksSource, legacy: bool,
) -> tuple[str, Attester, JwkEntry] | OAuthError:
    """§4 and §7.1: the client id, the attester whose key signed it, the instance key."""
    jws = parse_compact_jws(token)
    if jws is None:
        return _MALFORMED
    if "crit" in jws.header:  # RFC 7515 §4.1.11: we understand no extension
        return _CRIT
    if not _typ_ok(jws.header.get("typ"), ATTESTATION_TYP, legacy):
        return _TYP.with_detail(f"typ={_clip(jws.header.get('typ'))}")
    alg = jws.alg
    if alg is None or alg not in policy.algorithms:  # §7.1 rule 3: never none, never HS*
        return _ALG.with_detail(f"alg={_clip(alg)}")
    claims = jws.claims
    subject = claims.get("sub")
    if not isinstance(subject, str) or not _VSCHAR.fullmatch(subject):
        return _SUBJECT
    candidates = policy.attesters_for(subject)
    if not candidates:
        return errors.invalid_client("attestation.unknown_client", "Client authentication "
                                     "failed.", f"no attester may attest {subject[:100]!r}")
    if "iss" in claims:
        candidates = tuple(a for a in candidates if a.issuer == claims["iss"])
        if not candidates:
            return _UNTRUSTED.with_detail(f"iss={_clip(claims['iss'])}")
    attester = await _signed_by(jws, alg, candidates, jwks)
    if isinstance(attester, OAuthError):
        return attester
    failed = check_times(claims, now, TimeRules(float(policy.leeway_seconds), math.inf))
    if failed is not None:
        return _TIME_ERRORS.get(failed, _MALFORMED)
    iat = claims.get("iat")
    if policy.max_age_seconds and isinstance(iat, int | float) \
            and now - iat > policy.max_age_seconds + policy.leeway_seconds:  # §7.1 rule 6
        return _TOO_OLD
    key = _cnf_key(claims.get("cnf"))
    if isinstance(key, OAuthError):
        return key
    return subject, attester, key


async def _signed_by(jws: CompactJws, alg: str, candidates: Sequence[Attester],
                     jwks: JwksSource) -> Attester | OAuthError:
    """§7.1 rule 4: the first candidate attester one of whose keys verifies the signature."""
    unavailable: list[str] = []
    for attester in candidates:
        if alg not in attester.algorithms:
            continue
        keys = attester.jwks
        if attester.jwks_uri is not None:
            try:
                keys = await jwks.keys_for(attester.issuer, attester.jwks_uri, jws.kid)
            except JwksError as exc:
                unavailable.append(str(exc))
                continue
        selected = select_keys(keys, alg, jws.kid)
        if selected and verify_signature(jws, alg, selected):
            return attester
    if unavailable:
        return _invalid("jwks_unavailable", "The attester's keys could not be obtained.",
                        "; ".join(unavailable))
    return _SIGNATURE.with_detail(f"kid {jws.kid!r}, {len(candidates)} candidate attesters")


def _cnf_key(cnf: object) -> JwkEntry | OAuthError:
    """The instance key, with the `alg` it is restricted to when it names one (RFC 7517
    §4.4), which `select_keys` then holds the PoP to."""
    jwk = cnf.get("jwk") if isinstance(cnf, Mapping) else None
    if not isinstance(jwk, Mapping):
        return _CNF
    key = public_key(jwk)
    if isinstance(key, JwkError):  # §7.1 rule 5; symmetric keys cannot prove possession either
        return _CNF_PRIVATE if key.reason == "private_key" else _CNF.with_detail(key.reason)
    alg = jwk.get("alg")
    if alg is not None and not isinstance(alg, str):
        return _CNF.with_detail("jwk alg is not a string")
    return JwkEntry(key, alg=alg)


def _check_pop(token: str, client_id: str, entry: JwkEntry, *, policy: AttestationPolicy,
               now: float, legacy: bool) -> ReplayCheck | OAuthError:
    """§5.1 and §7.2: every check but the replay; the `jti` to burn when they all pass."""
    jws = parse_compact_jws(token)
    if jws is None:
        return _POP_MALFORMED
    if "crit" in jws.header:
        return _POP_CRIT
    if not _typ_ok(jws.header.get("typ"), POP_TYP, legacy):
        return _POP_TYP.with_detail(f"typ={_clip(jws.header.get('typ'))}")
    alg, key = jws.alg, entry.key
    # §7.2 rule 3, §5.1 rule 2: an allowed asymmetric alg, of the attested key's type.
    if alg is None or alg not in policy.algorithms or not select_keys([entry], alg, None):
        return _POP_ALG.with_detail(f"alg={_clip(alg)} kty={key.kty}")
    if not verify_signature(jws, alg, [entry]):  # §7.2 rule 4
        return _POP_SIGNATURE
    claims = jws.claims
    # §5.1: a single audience, the issuer (the -00...-02 text only asked for "a value").
    if not audience_matches(claims.get("aud"), frozenset({policy.issuer}), sole=not legacy):
        return _POP_AUDIENCE
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > policy.max_jti_length:
        return _POP_JTI
    if "iss" in claims and claims["iss"] != client_id:  # -07 and earlier: iss = client_id
        return _POP_ISSUER
    error = _check_pop_times(claims, policy, now, legacy)
    if error is not None:
        return error
    # §7.2 rule 5, last: a retry with the challenge must succeed (as for DPoP nonces).
    challenge = claims.get("challenge", claims.get("nonce") if legacy else None)
    present = "challenge" in claims or (legacy and "nonce" in claims)
    error = _check_challenge(challenge, present, policy, now)
    if error is not None:
        return error
    # §12.1: jtis are remembered for the iat window; unique per instance key.
    replayed = _POP_REPLAYED if not legacy else errors.invalid_client(
        _POP_REPLAYED.result_code, _POP_REPLAYED.description)
    return ReplayCheck(ATTESTATION_POP_JTI, f"{key.thumbprint}:{jti}",
                       policy.pop_replay_ttl_seconds, replayed)


def _check_pop_times(claims: Mapping[str, object], policy: AttestationPolicy, now: float,
                     legacy: bool) -> OAuthError | None:
    """§7.2 rule 6: the creation time within the window; `exp` and `nbf`, when present, are
    honoured (RFC 7519; the PoP of -00...-05 had an `exp` and no required `iat`)."""
    numbers: dict[str, float] = {}
    for name in ("iat", "exp", "nbf"):
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            return _invalid("pop_bad_claim", f"The attestation PoP {name} is not a number.")
        numbers[name] = float(value)
    low, high = now - policy.pop_iat_max_age_seconds, now + policy.pop_iat_max_future_seconds
    iat, exp, nbf = numbers.get("iat"), numbers.get("exp"), numbers.get("nbf")
    if iat is None:
        if not legacy or exp is None:
            return _invalid("pop_missing_iat", "The attestation PoP must have an iat claim.")
        # -00...-02 without iat: a short exp stands in for it, which bounds the replay window.
        if exp > high + policy.pop_iat_max_age_seconds:
            return _invalid("pop_lifetime_too_long", "The attestation PoP lifetime is too long.")
    elif not low <= iat <= high:
        return _invalid("pop_iat_out_of_window",
                        "The attestation PoP is too old." if iat < low
                        else "The attestation PoP iat is in the future.",
                        f"iat={iat} now={now:.3f}")
    skew = policy.pop_iat_max_future_seconds
    if exp is not None and now > exp + skew:
        return _invalid("pop_expired", "The attestation PoP has expired.")
    if nbf is not None and now + skew < nbf:
        return _invalid("pop_not_yet_valid", "The attestation PoP is not valid yet.")
    return None


def _check_challenge(value: object, present: bool, policy: AttestationPolicy,
                     now: float) -> OAuthError | None:
    challenges = policy.challenges
    if challenges is None:
        return None  # a challenge we never issue is a claim we do not understand (§5.1 rule 1)
    if not present:
        if not policy.challenge_required:
            return None
        return _use_challenge("challenge_missing", "A server-provided challenge is required "
                              "in the attestation PoP.", challenges, now)
    if not challenges.verify(value, now):
        return _use_challenge("challenge_invalid", "The attestation PoP challenge is invalid "
                              "or has expired.", challenges, now)
    return None


def _use_challenge(reason: str, description: str, challenges: WindowedHmac,
                   now: float) -> OAuthError:
    # §6.1, §7.4: the error MUST carry a fresh challenge.
    return errors.use_attestation_challenge(f"attestation.{reason}", description) \
        .with_headers((CHALLENGE_HEADER, challenges.issue(now)))


def _check_combined(proof: DpopProof, key: PublicKeyInfo, *, policy: AttestationPolicy,
                    now: float, dpop_nonces: WindowedHmac | None,
                    dpop_nonce_required: bool) -> OAuthError | None:
    """§5.2, §7.3: the DPoP key is the attested key (by RFC 7638 thumbprint, §7.3 rule 4);
    the DPoP `nonce` is the challenge (-10) or a DPoP nonce (-11: "combined mode now
    exclusively uses the DPoP nonce mechanism"): either is accepted."""
    if proof.jkt != key.thumbprint:
        return _KEY_MISMATCH
    challenges = policy.challenges
    nonce = proof.nonce
    if nonce is None:
        if policy.challenge_required or dpop_nonce_required:
            return _use_dpop_nonce("dpop_nonce_missing", "A server-provided nonce is required "
                                   "in the DPoP proof.", challenges, dpop_nonces, now)
        return None
    if challenges is None and dpop_nonces is None:
        return None  # not ours: the upstream's affair, as in dpop.validate_proof
    if (challenges is not None and challenges.verify(nonce, now)) \
            or (dpop_nonces is not None and dpop_nonces.verify(nonce, now)):
        return None
    return _use_dpop_nonce("dpop_nonce_invalid", "The DPoP proof nonce is invalid or has "
                           "expired.", challenges, dpop_nonces, now)


def _use_dpop_nonce(reason: str, description: str, challenges: WindowedHmac | None,
                    dpop_nonces: WindowedHmac | None, now: float) -> OAuthError:
    """§7.4 (-11): use_dpop_nonce with a fresh DPoP-Nonce. The value is a challenge when
    challenges are on, so that a -10 client reading OAuth-Client-Attestation-Challenge and a
    -11 client reading DPoP-Nonce both retry with a nonce this module accepts."""
    issuer = challenges if challenges is not None else dpop_nonces
    if issuer is None:
        return errors.server_error("attestation.nonce_unconfigured", "The server is "
                                   "misconfigured.", "dpop nonce required without a secret")
    value = issuer.issue(now)
    error = errors.use_dpop_nonce(f"attestation.{reason}", description) \
        .with_headers((NONCE_HEADER, value))
    return error.with_headers((CHALLENGE_HEADER, value)) if challenges is not None else error


# ---------------------------------------------------------------------------------------
# The attestation among the client's credentials (RFC 6749 §2.3, draft §7.5, §7.6).


def authenticate_with_attestation(
    attested: AttestedClient, credentials: ClientCredentials, registry: Registry | None, *,
    unknown: str = "reject",
) -> AuthenticatedClient | OAuthError | None:
    """What the verified attestation means for client authentication:

    - an `AuthenticatedClient` (method `attest_jwt_client_auth`) when the attestation *is* the
      client authentication: no other method was presented and, with a registry, the client
      registered an attestation method (`attest_jwt_client_auth` accepts both modes,
      `attest_jwt_client_auth_dpop` only combined mode);
    - None when the attestation is an additional signal (§7.6) next to the method the client
      registered, which the caller authenticates as usual;
    - `invalid_request` for attestation plus another method, unless the registry marks the
      client `attestation_additional_signal`; `invalid_client` for a client id that is not the
      attested one, an unregistered client, or a client registered with another method.
    """
    client = registry.get(attested.client_id) if registry is not None else None
    if credentials.client_id is not None and credentials.client_id != attested.client_id:
        return _ID_MISMATCH
    other = _other_method(credentials, client)
    signal = client is not None and client.attestation_additional_signal
    if other is not None:
        if not signal:
            return errors.invalid_request(
                "attestation.multiple_methods",
                "The request uses more than one client authentication method.",
                f"attestation and {other}")
        return None
    if registry is not None and client is None:
        if unknown == "forward":
            return AuthenticatedClient(None, True, ATTEST_JWT_CLIENT_AUTH)
        return errors.invalid_client("attestation.unregistered_client", "Client "
                                     "authentication failed.", "attested but not registered")
    if client is not None:
        registered = client.token_endpoint_auth_method
        if registered not in (ATTEST_JWT_CLIENT_AUTH, attested.mode):
            if signal and registered not in ATTESTATION_METHODS:
                return None
            return errors.invalid_client(
                "attestation.wrong_method", "The client used an authentication method that is "
                "not registered for it.", f"registered {registered}, presented {attested.mode}")
    return AuthenticatedClient(client, True, ATTEST_JWT_CLIENT_AUTH)


def _other_method(credentials: ClientCredentials, client: Client | None) -> str | None:
    method = credentials.method
    if method == "none":
        return None
    if method == "tls_client_auth" and credentials.secret is None \
            and credentials.assertion is None:
        # A certificate alone is a credential only for a client registered with a TLS method;
        # otherwise it is there to bind tokens (RFC 8705 §4).
        tls = client is not None and client.token_endpoint_auth_method in TLS_METHODS
        return method if tls else None
    return method


def check_refresh_binding(bound_jkt: str, attested: AttestedClient | None) -> OAuthError | None:
    """§10.3: a refresh token bound (`att:<jkt>`) to an instance key is refreshed only with an
    attestation of that same key."""
    if attested is None or attested.instance_jkt != bound_jkt:
        return errors.invalid_grant("binding.attestation_key_mismatch",
                                    "The refresh token is bound to another client instance.")
    return None


# ---------------------------------------------------------------------------------------
# The -00...-02 form: RFC 7521 client_assertion, "<attestation>~<pop>".


@dataclass(frozen=True, slots=True)
class LegacyAssertion:
    attestation: tuple[str, ...]
    pop: tuple[str, ...]
    remaining: FormParams  # the parameters without client_assertion and client_assertion_type

    def __repr__(self) -> str:
        return "LegacyAssertion()"


_LEGACY_PARAMS: Final = frozenset({"client_assertion", "client_assertion_type"})


def legacy_client_assertion(params: FormParams) -> LegacyAssertion | OAuthError | None:
    """The attestation and PoP of a -00...-02 request (`client_assertion_type` =
    `...:jwt-client-attestation`, `client_assertion` = the two JWTs joined by `~`); None when
    the request does not use that form. The caller checks `accept_legacy_client_assertion`."""
    if params.get("client_assertion_type") != LEGACY_ASSERTION_TYPE:
        return None
    parts = params.get("client_assertion", "").split("~")
    if len(parts) != 2 or not all(parts):
        return errors.invalid_client("attestation.legacy_malformed", "The client_assertion is "
                                     "not a client attestation and its PoP joined by '~'.")
    remaining = FormParams({name: params.get_all(name) for name in params
                            if name not in _LEGACY_PARAMS})
    return LegacyAssertion((parts[0],), (parts[1],), remaining)


# ---------------------------------------------------------------------------------------
# Challenges (§6).


def issue_challenge(policy: AttestationPolicy, now: float) -> str | None:
    return policy.challenges.issue(now) if policy.challenges is not None else None


def response_headers(policy: AttestationPolicy | None, now: float) -> tuple[tuple[str, str], ...]:
    """§6.2: a fresh challenge on token-endpoint responses, when challenges are on."""
    challenge = issue_challenge(policy, now) if policy is not None else None
    return ((CHALLENGE_HEADER, challenge),) if challenge is not None else ()


@dataclass(frozen=True, slots=True)
class ChallengeResponse:
    status: int
    body: dict[str, str]
    headers: tuple[tuple[str, str], ...]


_NO_STORE: Final = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


def challenge_endpoint(policy: AttestationPolicy, now: float, *, method: str,
                       dpop_nonces: WindowedHmac | None = None) -> ChallengeResponse:
    """§6.3: `POST` answers 200 `{"attestation_challenge": ...}`, uncacheable, with a fresh
    `DPoP-Nonce` when DPoP nonces are on (-11); other methods 405. Only mounted when
    challenges are on (`policy.challenges`)."""
    if method != "POST":
        error = errors.method_not_allowed("attestation.challenge_method",
                                          "The challenge endpoint accepts POST only.")
        return ChallengeResponse(405, error.body, (("Allow", "POST"), *_NO_STORE))
    challenge = issue_challenge(policy, now)
    if challenge is None:
        error = errors.invalid_request("attestation.challenges_off",
                                       "The server does not issue attestation challenges.")
        return ChallengeResponse(404, error.body, _NO_STORE)
    headers = _NO_STORE + (((NONCE_HEADER, dpop_nonces.issue(now)),) if dpop_nonces else ())
    return ChallengeResponse(200, {"attestation_challenge": challenge}, headers)

