"""`POST /api/auth/token`: the call's fields, read strictly, and the token request they make.

The fields are those of the reference token API (`parameters`, `clientId`, `clientSecret`,
`clientCertificate`, `clientCertificatePath`, `dpop`, `htm`, `htu`, `oauthClientAttestation`,
`oauthClientAttestationPop`, `dpopNonceRequired`, `accessTokenDuration`,
`refreshTokenDuration`, `properties`, `jwtAtClaims`). The call becomes the very
`TokenRequest` the proxy builds from an HTTP request, so the same steps decide it:

- `parameters` is the form body as the client sent it, read by the proxy's strict form reader
  (a parameter sent twice is `invalid_request`, RFC 6749 §3.2);
- `clientId`/`clientSecret` are what the AS took out of `Authorization: Basic`; they are put
  back as that header, form-encoded as RFC 6749 §2.3.1 requires, so the one credential reader
  sees them;
- `clientCertificate` (and `clientCertificatePath`, the chain) are PEM, read as the `pem`
  certificate format whatever `trust.client_cert_format` says;
- `htm` defaults to `POST`, `htu` to `server.public_token_endpoint`, as in the reference.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final

from sidecar.core.credentials import basic_authorization
from sidecar.core.decision_api.fields import FieldError, Fields
from sidecar.core.form import parse_form
from sidecar.core.htu import normalize_htu
from sidecar.core.policy import Policy
from sidecar.errors import OAuthError
from sidecar.model import TokenRequest

MAX_PARAMETERS_LENGTH: Final = 65536
MAX_HEADER_LENGTH: Final = 16384
MAX_CERTIFICATE_LENGTH: Final = 65536
_MAX_NAME_LENGTH: Final = 1024

FIELDS: Final = frozenset({
    "parameters", "clientId", "clientSecret", "clientCertificate", "clientCertificatePath",
    "dpop", "htm", "htu", "oauthClientAttestation", "oauthClientAttestationPop",
    "dpopNonceRequired", "accessTokenDuration", "refreshTokenDuration", "properties",
    "jwtAtClaims",
})


@dataclass(frozen=True, slots=True)
class TokenCall:
    """One `/api/auth/token` call, every field read and typed; nothing in it is trusted."""

    parameters: str
    client_id: str | None = None
    client_secret: str | None = None
    client_certificate: str | None = None
    client_certificate_path: tuple[str, ...] = ()
    dpop: str | None = None
    htm: str = "POST"
    htu: str | None = None
    attestation: str | None = None
    attestation_pop: str | None = None
    dpop_nonce_required: bool = False
    access_token_duration: int | None = None
    refresh_token_duration: int | None = None
    properties: dict[str, object] | None = None
    jwt_at_claims: str | None = None

    def __repr__(self) -> str:  # every field but the method may hold a secret
        return f"TokenCall(htm={self.htm!r})"

    def basic_authorization(self) -> str | None:
        """`clientId`/`clientSecret` as the `Authorization: Basic` value they came out of
        (RFC 6749 §2.3.1: each form-urlencoded, then joined by a colon). None without them."""
        if self.client_id is None and self.client_secret is None:
            return None
        return basic_authorization(self.client_id or "", self.client_secret or "")

    def certificate_pem(self) -> str | None:
        """The certificate and its chain as one PEM text, the `pem` format's input."""
        if self.client_certificate is None:
            return None
        return "\n".join((self.client_certificate, *self.client_certificate_path))


def read_token_call(fields: Fields) -> TokenCall | FieldError:
    """The call's fields, or the first one that is missing or of the wrong type."""
    unknown = fields.unknown()
    if unknown is not None:
        return unknown
    values = (
        fields.text("parameters", max_length=MAX_PARAMETERS_LENGTH),
        fields.text("clientId", max_length=_MAX_NAME_LENGTH),
        fields.text("clientSecret", max_length=_MAX_NAME_LENGTH),
        fields.text("clientCertificate", max_length=MAX_CERTIFICATE_LENGTH),
        fields.texts("clientCertificatePath", max_length=MAX_CERTIFICATE_LENGTH),
        fields.text("dpop", max_length=MAX_HEADER_LENGTH),
        fields.text("htm", max_length=32),
        fields.text("htu", max_length=_MAX_NAME_LENGTH),
        fields.text("oauthClientAttestation", max_length=MAX_HEADER_LENGTH),
        fields.text("oauthClientAttestationPop", max_length=MAX_HEADER_LENGTH),
        fields.flag("dpopNonceRequired"),
        fields.seconds("accessTokenDuration"),
        fields.seconds("refreshTokenDuration"),
        fields.json_object("properties"),
        fields.text("jwtAtClaims", max_length=MAX_HEADER_LENGTH),
    )
    for value in values:
        if isinstance(value, FieldError):
            return value
    (parameters, client_id, client_secret, certificate, path, dpop, htm, htu, attestation,
     attestation_pop, nonce_required, access_duration, refresh_duration, properties,
     jwt_at_claims) = values
    if parameters is None:
        return FieldError("parameters is required: the token request's form body.")
    assert isinstance(parameters, str)  # every value was checked above
    return TokenCall(
        parameters=parameters,
        client_id=_opt_text(client_id), client_secret=_opt_text(client_secret),
        client_certificate=_opt_text(certificate),
        client_certificate_path=path if isinstance(path, tuple) else (),
        dpop=_opt_text(dpop), htm=_opt_text(htm) or "POST", htu=_opt_text(htu),
        attestation=_opt_text(attestation), attestation_pop=_opt_text(attestation_pop),
        dpop_nonce_required=nonce_required is True,
        access_token_duration=access_duration if isinstance(access_duration, int) else None,
        refresh_token_duration=refresh_duration if isinstance(refresh_duration, int) else None,
        properties=properties if isinstance(properties, dict) else None,
        jwt_at_claims=_opt_text(jwt_at_claims),
    )


def _opt_text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def token_request_of(call: TokenCall) -> TokenRequest | OAuthError:
    """The `TokenRequest` the proxy would have read from the same HTTP request; the form is
    read by the proxy's own strict reader, so its refusals are the proxy's."""
    body = call.parameters.encode("utf-8")
    parameters = parse_form(body)
    if isinstance(parameters, OAuthError):
        return parameters
    return TokenRequest(
        method=call.htm,
        parameters=parameters,
        authorization=call.basic_authorization(),
        client_cert_header=call.certificate_pem(),
        dpop=(call.dpop,) if call.dpop is not None else (),
        attestation=(call.attestation,) if call.attestation is not None else (),
        attestation_pop=(call.attestation_pop,) if call.attestation_pop is not None else (),
        body=body,
    )


def policy_for_call(policy: Policy, call: TokenCall) -> Policy | FieldError:
    """The policy the proxy decides with, as this call adjusts it: the certificate is PEM,
    and `dpopNonceRequired` can require a nonce (never waive one the settings require).

    `htu` is checked, not adopted: a proof is only ever valid for this server's own token
    endpoint (`server.public_token_endpoint`, `dpop.htu_aliases`; RFC 9449 §4.3 step 9), so
    a call naming another URL is a mistake to report, not a target to trust."""
    if call.htu is not None and normalize_htu(call.htu) not in policy.dpop.htu_targets:
        return FieldError("htu is not this server's token endpoint "
                          "(server.public_token_endpoint or one of dpop.htu_aliases).")
    proof = dataclasses.replace(policy.proof, nonce_required=policy.proof.nonce_required
                                or call.dpop_nonce_required)
    return dataclasses.replace(policy, cert_format="pem", proof=proof)
