"""Verifying the attestation headers of one request (§7): the Client Attestation JWT (§4,
§7.1), then its proof of possession, a PoP JWT (`pop`) or the DPoP proof (`combined`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from sidecar import errors
from sidecar.core.attestation.combined import check_combined
from sidecar.core.attestation.config import (
    ATTEST_JWT_CLIENT_AUTH,
    ATTEST_JWT_CLIENT_AUTH_DPOP,
    ATTESTATION_TYP,
    AttestationPolicy,
    Attester,
)
from sidecar.core.attestation.pop import check_pop, typ_ok
from sidecar.core.attestation.results import (
    ALG,
    CNF,
    CNF_PRIVATE,
    COMBINED_OFF,
    CRIT,
    ID_MISMATCH,
    MALFORMED,
    MISSING,
    MULTIPLE,
    MULTIPLE_POP,
    NO_POP,
    SIGNATURE,
    SUBJECT,
    TIME_ERRORS,
    TOO_OLD,
    TYP_ERROR,
    UNTRUSTED,
    AttestedClient,
    Mode,
    refused,
)
from sidecar.core.dpop.results import DpopProof
from sidecar.core.jose.claims import TimeRules, check_times
from sidecar.core.jose.compact import CompactJws, parse_compact_jws
from sidecar.core.jose.key_sets import (
    JwkEntry,
    JwksError,
    select_keys,
    verify_signature,
)
from sidecar.core.jose.keys import JwkError, KeyCache, public_key
from sidecar.core.nonces import WindowedHmac
from sidecar.core.syntax import VSCHAR, clip
from sidecar.errors import OAuthError
from sidecar.ports import JwksSource


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
        result = refused("malformed", "The client attestation is malformed.",
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
        return MISSING
    if len(attestation) != 1:  # §7.1 rule 1
        return MULTIPLE
    if len(pop) > 1:  # §7.2 rule 1
        return MULTIPLE_POP
    if not pop:
        if dpop_proof is None:
            return NO_POP
        if not policy.dpop_combined:  # §7, third bullet
            return COMBINED_OFF
    verified = await _check_attestation(attestation[0], policy, now, jwks, legacy)
    if isinstance(verified, OAuthError):
        return verified
    client_id, attester, entry = verified
    key = entry.key
    if body_client_id is not None and body_client_id != client_id:  # §7.1 rule 7, §7.5
        return ID_MISMATCH
    if pop:
        replay = check_pop(pop[0], client_id, entry, policy=policy, now=now, legacy=legacy)
        if isinstance(replay, OAuthError):
            return replay
        return AttestedClient(client_id, attester.issuer, key.thumbprint, ATTEST_JWT_CLIENT_AUTH,
                              replay, legacy)
    assert dpop_proof is not None
    error = check_combined(dpop_proof, key, policy=policy, now=now, dpop_nonces=dpop_nonces,
                            dpop_nonce_required=dpop_nonce_required)
    return error or AttestedClient(client_id, attester.issuer, key.thumbprint,
                                   ATTEST_JWT_CLIENT_AUTH_DPOP, None, legacy)


async def _check_attestation(
    token: str, policy: AttestationPolicy, now: float, jwks: JwksSource, legacy: bool,
) -> tuple[str, Attester, JwkEntry] | OAuthError:
    """§4 and §7.1: the client id, the attester whose key signed it, the instance key."""
    jws = parse_compact_jws(token)
    if jws is None:
        return MALFORMED
    if "crit" in jws.header:  # RFC 7515 §4.1.11: we understand no extension
        return CRIT
    if not typ_ok(jws.header.get("typ"), ATTESTATION_TYP, legacy):
        return TYP_ERROR.with_detail(f"typ={clip(jws.header.get('typ'), 60)}")
    alg = jws.alg
    if alg is None or alg not in policy.algorithms:  # §7.1 rule 3: never none, never HS*
        return ALG.with_detail(f"alg={clip(alg, 60)}")
    claims = jws.claims
    subject = claims.get("sub")
    if not isinstance(subject, str) or not VSCHAR.fullmatch(subject):
        return SUBJECT
    candidates = policy.attesters_for(subject)
    if not candidates:
        return errors.invalid_client("attestation.unknown_client", "Client authentication "
                                     "failed.", f"no attester may attest {subject[:100]!r}")
    if "iss" in claims:
        candidates = tuple(a for a in candidates if a.issuer == claims["iss"])
        if not candidates:
            return UNTRUSTED.with_detail(f"iss={clip(claims['iss'], 60)}")
    attester = await _signed_by(jws, alg, candidates, jwks)
    if isinstance(attester, OAuthError):
        return attester
    failed = check_times(claims, now, TimeRules(float(policy.leeway_seconds), math.inf))
    if failed is not None:
        return TIME_ERRORS.get(failed, MALFORMED)
    iat = claims.get("iat")
    if policy.max_age_seconds and isinstance(iat, int | float) \
            and now - iat > policy.max_age_seconds + policy.leeway_seconds:  # §7.1 rule 6
        return TOO_OLD
    key = _cnf_key(claims.get("cnf"), policy.keys)
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
        return refused("jwks_unavailable", "The attester's keys could not be obtained.",
                        "; ".join(unavailable))
    return SIGNATURE.with_detail(f"kid {jws.kid!r}, {len(candidates)} candidate attesters")


def _cnf_key(cnf: object, keys: KeyCache) -> JwkEntry | OAuthError:
    """The instance key, with the `alg` it is restricted to when it names one (RFC 7517
    §4.4), which `select_keys` then holds the PoP to."""
    jwk = cnf.get("jwk") if isinstance(cnf, Mapping) else None
    if not isinstance(jwk, Mapping):
        return CNF
    key = public_key(jwk, cache=keys)
    if isinstance(key, JwkError):  # §7.1 rule 5; symmetric keys cannot prove possession either
        return CNF_PRIVATE if key.reason == "private_key" else CNF.with_detail(key.reason)
    alg = jwk.get("alg")
    if alg is not None and not isinstance(alg, str):
        return CNF.with_detail("jwk alg is not a string")
    return JwkEntry(key, alg=alg)
