"""What attestation verification returns: the verified client, or one of its errors (§7.4).
Result codes are `attestation.<reason>`; descriptions never quote a token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from sidecar import errors
from sidecar.core.attestation.config import ATTESTATION_TYP, POP_TYP, REFRESH_BINDING_KIND
from sidecar.core.syntax import clip_detail
from sidecar.errors import OAuthError
from sidecar.model import ReplayCheck

Mode = Literal["attest_jwt_client_auth", "attest_jwt_client_auth_dpop"]


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


def refused(reason: str, description: str, detail: str = "") -> OAuthError:
    return errors.invalid_client_attestation(f"attestation.{reason}", description,
                                             clip_detail(detail))


MULTIPLE = refused("multiple_headers", "Exactly one OAuth-Client-Attestation header is "
                     "required.")
MULTIPLE_POP = refused("multiple_pop_headers", "Exactly one OAuth-Client-Attestation-PoP "
                         "header is required.")
MISSING = refused("missing", "An OAuth-Client-Attestation-PoP was sent without an "
                    "OAuth-Client-Attestation.")
NO_POP = refused("pop_missing", "The client attestation needs a proof of possession "
                   "(OAuth-Client-Attestation-PoP or DPoP).")
COMBINED_OFF = refused("pop_method_unsupported", "A DPoP proof is not accepted as the "
                         "attestation proof of possession; send OAuth-Client-Attestation-PoP.")
MALFORMED = refused("malformed", "The client attestation is not a well-formed JWT.")
CRIT = refused("unsupported_crit", "The client attestation has critical header parameters.")
TYP_ERROR = refused("bad_typ", f"The client attestation typ must be {ATTESTATION_TYP}.")
ALG = refused("bad_alg", "The client attestation alg is not allowed.")
SUBJECT = refused("bad_subject", "The client attestation sub must be a client id.")
UNTRUSTED = refused("untrusted_attester", "The client attestation is not from an attester "
                      "trusted for this client.")
SIGNATURE = refused("bad_signature", "The client attestation signature is invalid.")
CNF = refused("bad_cnf", "The client attestation cnf claim must hold a public jwk.")
CNF_PRIVATE = refused("cnf_private_key", "The client attestation cnf.jwk is a private key.")
POP_MALFORMED = refused("pop_malformed", "The attestation PoP is not a well-formed JWT.")
POP_CRIT = refused("pop_unsupported_crit", "The attestation PoP has critical header "
                     "parameters.")
POP_TYP_ERROR = refused("pop_bad_typ", f"The attestation PoP typ must be {POP_TYP}.")
POP_ALG = refused("pop_bad_alg", "The attestation PoP alg is not allowed for the attested "
                    "key.")
POP_SIGNATURE = refused("pop_bad_signature", "The attestation PoP signature does not verify "
                          "with the attested key.")
POP_AUDIENCE = refused("pop_bad_audience", "The attestation PoP aud must be the issuer "
                         "identifier of the authorization server, as its only value.")
POP_JTI = refused("pop_bad_jti", "The attestation PoP must have a jti.")
POP_ISSUER = refused("pop_bad_issuer", "The attestation PoP iss must be the client id.")
POP_REPLAYED = refused("pop_replayed", "The attestation PoP has been used before.")
KEY_MISMATCH = refused("dpop_key_mismatch", "The DPoP proof is not signed with the attested "
                         "client instance key.")
ID_MISMATCH = errors.invalid_client("attestation.client_id_mismatch",
                                     "The client_id is not the attested client.")

TIME_ERRORS: Final[Mapping[str, OAuthError]] = {
    "missing_exp": refused("bad_exp", "The client attestation must have an exp claim."),
    "bad_time_claim": refused("bad_time_claim", "The client attestation exp, nbf or iat is "
                               "not a number."),
    "expired": errors.use_fresh_attestation("attestation.expired",
                                            "The client attestation has expired."),
    "not_yet_valid": refused("not_yet_valid", "The client attestation is not valid yet."),
    "issued_in_future": refused("issued_in_future", "The client attestation iat is in the "
                                 "future."),
}
TOO_OLD = errors.use_fresh_attestation("attestation.too_old",
                                        "The client attestation is not fresh enough.")
