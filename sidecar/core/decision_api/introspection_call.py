"""`POST /api/auth/introspection`: the resource-side check as a call (README "Calling instead
of proxying").

A resource server that terminates TLS itself posts what an API call carried: `token` (the
access token of `Authorization: DPoP` or `Bearer`), `dpop` (the proof; its presence says the
scheme was DPoP), `htm` and `htu` (the method and full URL the client called: the proof must
name them, RFC 9449 §4.3 steps 8-9), `clientCertificate` (PEM, for certificate-bound tokens,
RFC 8705 §3) and `scopes` (what this API needs, on top of `resource.required_scopes`). It gets
the very verdict the inline door and the check listener give (`sidecar.core.resource.check`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from sidecar.core.decision_api.fields import FieldError, Fields
from sidecar.core.decision_api.token_call import MAX_CERTIFICATE_LENGTH, MAX_HEADER_LENGTH
from sidecar.core.htu import normalize_htu
from sidecar.core.resource.check import Allowed, Denied
from sidecar.core.resource.policy import ResourcePolicy
from sidecar.core.resource.request import MAX_TOKEN_LENGTH, ResourceRequest

FIELDS: Final = frozenset({"token", "dpop", "htm", "htu", "clientCertificate",
                           "clientCertificatePath", "scopes"})
_MAX_URL_LENGTH: Final = 8192


@dataclass(frozen=True, slots=True)
class IntrospectionCall:
    token: str
    htm: str
    htu: str
    dpop: str | None = None
    client_certificate: str | None = None
    client_certificate_path: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()

    def __repr__(self) -> str:  # the token and the proof never reach a log
        return f"IntrospectionCall(htm={self.htm!r})"


def read_introspection_call(fields: Fields) -> IntrospectionCall | FieldError:
    unknown = fields.unknown()
    if unknown is not None:
        return unknown
    values = (fields.text("token", max_length=MAX_TOKEN_LENGTH),
              fields.text("htm", max_length=32),
              fields.text("htu", max_length=_MAX_URL_LENGTH),
              fields.text("dpop", max_length=MAX_HEADER_LENGTH),
              fields.text("clientCertificate", max_length=MAX_CERTIFICATE_LENGTH),
              fields.texts("clientCertificatePath", max_length=MAX_CERTIFICATE_LENGTH),
              fields.texts("scopes", max_length=1024))
    for value in values:
        if isinstance(value, FieldError):
            return value
    token, htm, htu, dpop, certificate, path, scopes = values
    for name, value in (("token", token), ("htm", htm), ("htu", htu)):
        if not value:
            return FieldError(f"{name} is required.")
    assert isinstance(token, str) and isinstance(htm, str) and isinstance(htu, str)
    return IntrospectionCall(
        token=token, htm=htm, htu=htu, dpop=dpop if isinstance(dpop, str) else None,
        client_certificate=certificate if isinstance(certificate, str) else None,
        client_certificate_path=path if isinstance(path, tuple) else (),
        scopes=scopes if isinstance(scopes, tuple) else ())


def resource_request_of(call: IntrospectionCall, policy: ResourcePolicy,
                        ) -> tuple[ResourceRequest, ResourcePolicy] | FieldError:
    """The check's request and policy for this call. The `htu` must be under
    `resource.public_origin`: the check signs proofs to that origin only (RFC 9449 §4.3
    step 9), so a call for another origin is a mistake to report, not a target to trust."""
    normalised = normalize_htu(call.htu)
    if normalised is None or not (normalised == policy.origin
                                  or normalised.startswith(policy.origin + "/")):
        return FieldError("htu is not a URL under resource.public_origin.")
    path = urlsplit(call.htu).path or "/"
    scheme = "DPoP" if call.dpop is not None else "Bearer"
    certificate = None if call.client_certificate is None else "\n".join(
        (call.client_certificate, *call.client_certificate_path))
    request = ResourceRequest(method=call.htm, path=path,
                              authorization=(f"{scheme} {call.token}",),
                              dpop=(call.dpop,) if call.dpop is not None else (),
                              client_cert_header=certificate)
    scopes = (*policy.required_scopes, *(s for s in call.scopes
                                         if s not in policy.required_scopes))
    return request, dataclasses.replace(policy, cert_format="pem", required_scopes=scopes)


def _action(verdict: Allowed | Denied) -> str:
    if isinstance(verdict, Allowed):
        return "OK"
    status = verdict.status
    if status >= 500:
        return "INTERNAL_SERVER_ERROR"
    return {401: "UNAUTHORIZED", 403: "FORBIDDEN"}.get(status, "BAD_REQUEST")


def introspection_answer(verdict: Allowed | Denied) -> dict[str, object]:
    """The answer's fields: `action`, and for a denial `responseContent` (the
    `WWW-Authenticate` value the resource server sends with `httpStatus`) and `dpopNonce`;
    for an allowed call what is known of the token (`clientId`, `subject`, `scopes`,
    `expiresAt` in milliseconds since the epoch, as in the reference)."""
    answer: dict[str, object] = {"resultCode": verdict.result_code, "action": _action(verdict)}
    if isinstance(verdict, Denied):
        error = verdict.error
        headers = dict(error.headers)
        answer["resultMessage"] = error.description
        answer["httpStatus"] = error.status
        challenges = [value for name, value in error.headers if name == "WWW-Authenticate"]
        if challenges:
            answer["responseContent"] = ", ".join(challenges)
        if "DPoP-Nonce" in headers:
            answer["dpopNonce"] = headers["DPoP-Nonce"]
        return answer
    answer["resultMessage"] = "The access token is valid for this request."
    facts = verdict.facts
    if facts is not None:
        answer.update({key: value for key, value in (
            ("clientId", facts.client_id), ("subject", facts.subject)) if value})
        if facts.scope:
            answer["scopes"] = facts.scope.split(" ")
        if facts.expires_at:
            answer["expiresAt"] = facts.expires_at * 1000
    if verdict.jkt is not None:
        answer["dpopJkt"] = verdict.jkt
    if verdict.cert_s256 is not None:
        answer["certificateThumbprint"] = verdict.cert_s256
    return answer
