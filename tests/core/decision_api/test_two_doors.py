"""One table, two doors: every row of the token pipeline's table (tests/core/test_decide.py)
sent as a decision-API call decides exactly as the proxy's request did.

The call is what an authorization server makes of the same HTTP request (README "Calling
instead of proxying"): it takes `clientId`/`clientSecret` out of `Authorization: Basic`, the
certificate as PEM, the one `DPoP` header, the attestation headers, and posts the body as
`parameters`. Rows whose input an AS cannot express as a call (a malformed Basic header, two
DPoP headers: the AS refuses those itself) are listed, not silently dropped.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from urllib.parse import unquote, unquote_plus

import pytest

from sidecar.core.binding import REFRESH_BINDING
from sidecar.core.decide import decide
from sidecar.core.decision_api.fields import FieldError
from sidecar.core.decision_api.token_call import TokenCall, policy_for_call, token_request_of
from sidecar.core.steps import StepContext
from sidecar.errors import OAuthError
from tests.core.test_decide import CASES
from tests.support.pipeline import Case, Pipeline, Req, assert_decision


def call_of(request: Req) -> TokenCall | None:
    """The call an AS makes of this request; None when it cannot make one."""
    client_id = client_secret = None
    if request.authorization is not None:
        scheme, _, value = request.authorization.partition(" ")
        if scheme != "Basic":
            return None
        try:
            pair = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if ":" not in pair:
            return None
        raw_id, _, raw_secret = pair.partition(":")
        client_id, client_secret = unquote_plus(raw_id), unquote_plus(raw_secret)
    if len(request.dpop) > 1 or len(request.attestation) > 1 or len(request.attestation_pop) > 1:
        return None
    return TokenCall(
        parameters=request.body, client_id=client_id, client_secret=client_secret,
        # nginx's $ssl_client_escaped_cert is URL-encoded PEM: the AS has the PEM itself.
        client_certificate=unquote(request.cert) if request.cert is not None else None,
        dpop=request.dpop[0] if request.dpop else None, htm=request.method,
        attestation=request.attestation[0] if request.attestation else None,
        attestation_pop=request.attestation_pop[0] if request.attestation_pop else None)


NOT_EXPRESSIBLE = frozenset({
    "identify_client: a malformed Basic header is refused",
    "check_dpop_proof: two proofs are refused",
})


def _expressible(case: Case) -> bool:
    return case.name not in NOT_EXPRESSIBLE


def test_the_rows_an_as_cannot_send_as_a_call_are_the_listed_ones(pipeline: Pipeline) -> None:
    unexpressible = {case.name for case in CASES
                     if call_of(case.request(pipeline, pipeline.env(case.settings))) is None}
    assert unexpressible == NOT_EXPRESSIBLE


@pytest.mark.parametrize("case", [case for case in CASES if _expressible(case)],
                         ids=[case.name for case in CASES if _expressible(case)])
async def test_a_call_decides_as_the_proxy_did(pipeline: Pipeline, case: Case) -> None:
    env = pipeline.env(case.settings)
    for token, binding in case.bound.items():
        await env.store.set_binding(REFRESH_BINDING, token, binding, 3600)
    call = call_of(case.request(pipeline, env))
    assert call is not None
    policy = policy_for_call(env.policy, call)
    assert not isinstance(policy, FieldError), policy
    call_env = dataclasses.replace(env, policy=policy)
    token_request = token_request_of(call)
    assert not isinstance(token_request, OAuthError), token_request
    for _ in range(case.sends):
        decision = await decide(token_request, call_env)
    assert_decision(decision, case.expect)


def test_a_call_for_another_endpoint_is_refused(pipeline: Pipeline) -> None:
    env: StepContext = pipeline.env()
    call = TokenCall(parameters="grant_type=client_credentials",
                     htu="https://elsewhere.example/token")
    assert policy_for_call(env.policy, call) == FieldError(
        "htu is not this server's token endpoint "
        "(server.public_token_endpoint or one of dpop.htu_aliases).")
    same = dataclasses.replace(call, htu="HTTPS://AS.EXAMPLE.COM:443/token?x=1")
    assert not isinstance(policy_for_call(env.policy, same), FieldError)


def test_dpop_nonce_required_can_require_a_nonce_but_never_waive_one(
        pipeline: Pipeline) -> None:
    env = pipeline.env({"dpop": {"nonce_secret_file": "nonce.secret", "nonce_required": True}})
    for asked in (False, True):
        policy = policy_for_call(env.policy, TokenCall(parameters="", dpop_nonce_required=asked))
        assert not isinstance(policy, FieldError) and policy.nonce_required
    relaxed = pipeline.env()
    policy = policy_for_call(relaxed.policy, TokenCall(parameters="", dpop_nonce_required=True))
    assert not isinstance(policy, FieldError) and policy.nonce_required
