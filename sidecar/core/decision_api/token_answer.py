"""`POST /api/auth/token`: the decision as the reference token API's response fields.

`action` and `responseContent` are what the proxy would have done: for a refusal, the OAuth
JSON error the AS returns as it is (with `httpStatus`, the status the proxy would have used);
for a forwarding action, the fields the proxy would have sent upstream as `X-Token-*` context,
plus the request parameters the AS needs for that action (`username`/`password` for
`PASSWORD`, the RFC 8693 §2.1 parameters for `TOKEN_EXCHANGE`) and the binding the AS must
put into the token it issues: `dpopJkt` (RFC 9449 §6) and `certificateThumbprint` (RFC 8705
§3). Per-client policy from the registry (`accessTokenDuration`, ...) wins over the call's own
value: it is the operator's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from sidecar.core.decision_api.token_call import TokenCall
from sidecar.model import Action, Decision, FormParams, Forward, Respond

# Context names (without the prefix) → response field, for plain text values.
_CONTEXT_FIELDS: Final = {
    "Grant-Type": "grantType",
    "Client-Id": "clientId",
    "Client-Auth-Method": "clientAuthMethod",
    "DPoP-JKT": "dpopJkt",
    "Client-Cert-S256": "certificateThumbprint",
    "Subject": "subject",
    "JWT-AT-Claims": "jwtAtClaims",
    "Attestation-Issuer": "attestationIssuer",
    "Attestation-JKT": "attestationJkt",
    "Device-Secret-Hash": "deviceSecretHash",
}
_DURATIONS: Final = {"Access-Token-Duration": "accessTokenDuration",
                     "Refresh-Token-Duration": "refreshTokenDuration"}
# RFC 8693 §2.1 parameters → the reference's field names.
_EXCHANGE_FIELDS: Final = {
    "subject_token": "subjectToken", "subject_token_type": "subjectTokenType",
    "actor_token": "actorToken", "actor_token_type": "actorTokenType",
    "requested_token_type": "requestedTokenType",
}


def token_answer(decision: Decision, call: TokenCall, parameters: FormParams | None,
                 dpop_nonce: str | None) -> dict[str, object]:
    """The response body of one call. `parameters` is None when the form itself was
    refused; `dpop_nonce` is the fresh nonce to hand the client when nonces are on."""
    answer: dict[str, object] = {
        "resultCode": decision.summary.result_code,
        "resultMessage": decision.summary.message,
        "action": decision.action.value,
    }
    if dpop_nonce is not None:
        answer["dpopNonce"] = dpop_nonce
    if isinstance(decision, Respond):
        answer["responseContent"] = json.dumps(decision.error.body, separators=(",", ":"))
        answer["httpStatus"] = decision.error.status
        _add_summary(answer, decision)
        return answer
    answer.update(_forward_fields(decision, call))
    if parameters is not None:
        answer.update(_parameter_fields(decision.action, parameters))
    return answer


def _add_summary(answer: dict[str, object], decision: Respond) -> None:
    # Who the refused request came from, when that much was established: the AS logs it.
    if decision.summary.client_id:
        answer["clientId"] = decision.summary.client_id
    if decision.summary.grant_type:
        answer["grantType"] = decision.summary.grant_type


def _forward_fields(decision: Forward, call: TokenCall) -> dict[str, object]:
    fields: dict[str, object] = {}
    context = dict(decision.context)
    for name, field in _CONTEXT_FIELDS.items():
        if name in context:
            fields[field] = context[name]
    for name, field in _DURATIONS.items():
        if name in context:
            fields[field] = int(context[name])
    if "Properties" in context:
        fields["properties"] = json.loads(context["Properties"])
    fields.setdefault("accessTokenDuration", call.access_token_duration)
    fields.setdefault("refreshTokenDuration", call.refresh_token_duration)
    if call.properties is not None:
        fields.setdefault("properties", call.properties)
    if call.jwt_at_claims is not None:
        fields.setdefault("jwtAtClaims", call.jwt_at_claims)
    fields["clientAuthenticated"] = context.get("Client-Authenticated") != "false"
    return {name: value for name, value in fields.items() if value is not None}


def _parameter_fields(action: Action, parameters: FormParams) -> Mapping[str, object]:
    fields: dict[str, object] = {}
    scope = parameters.get("scope")
    if scope:
        fields["scopes"] = scope.split(" ")
    if resources := parameters.get_all("resource"):
        fields["resources"] = list(resources)  # RFC 8707 §2
    if action is Action.PASSWORD:
        fields["username"] = parameters.get("username")
        fields["password"] = parameters.get("password")
    if action is Action.TOKEN_EXCHANGE:
        for name, field in _EXCHANGE_FIELDS.items():
            if name in parameters:
                fields[field] = parameters[name]
        if audiences := parameters.get_all("audience"):
            fields["audiences"] = list(audiences)
    return fields
