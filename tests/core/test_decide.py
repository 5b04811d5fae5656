"""The token pipeline on its own (sidecar.core.decide): a `TokenRequest` in, a `Decision` out,
through the `StepContext` the HTTP shell builds (settings -> Policy, the memory store or a Redis
that is down, the fake clock, real keys and signatures).

One row of `CASES` is one request: the settings on top of the test defaults, the request
(method, form body, Authorization, DPoP proofs, certificate header, attestation headers), and
what the pipeline decides: forwarded with which context headers, or answered with which
error. Every step of `STEPS` has rows that pass it and rows it refuses. The tests after the
table are about the order of the steps: single-use values are burned last, by one step.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from sidecar.core.binding import REFRESH_BINDING
from sidecar.core.decide import STEPS, TokenDecider, decide
from sidecar.core.jose.keys import thumbprint
from sidecar.core.presented import ReadPresented
from sidecar.core.steps import Facts, Presented, StepBinder, bind_steps, run_steps
from sidecar.model import Action, Respond
from tests.support.pipeline import (
    AS_PUBLIC,
    ATTESTATION,
    AUTH_CODE,
    CC,
    CERT,
    CERT_HEADER,
    CLIENT,
    DPOP_REQUIRED,
    IDP,
    INSTANCE,
    INVALID_DPOP,
    ISSUER,
    JKT,
    JWT_GRANT,
    JWT_ISSUERS,
    NONCES,
    OTHER,
    REFRESH,
    REGISTRY,
    SECRET,
    SPA,
    STORE_DOWN,
    STORE_DOWN_OPEN,
    STRANGER,
    Case,
    Forwarded,
    Pipeline,
    Refused,
    Req,
    assert_decision,
    assertion_body,
    basic,
    profile,
    public_jwk,
)

CASES: tuple[Case, ...] = (
    # read_certificate: the certificate header a trusted proxy wrote (RFC 8705 §2).
    Case("read_certificate: a certificate is forwarded with its thumbprint",
         lambda p, env: Req(f"{CC}&client_id=app", cert=CERT_HEADER),
         Forwarded(Action.OK, {"Client-Cert-S256": CERT.x5t_s256, "Client-Cert": CERT_HEADER,
                               "Client-Auth-Method": "tls_client_auth", "Client-Id": "app"})),
    Case("read_certificate: a header that holds no certificate is refused",
         lambda p, env: Req(f"{CC}&client_id=app", cert="not%20a%20certificate"),
         Refused("invalid_request", "mtls.bad_certificate_header")),
    # identify_client: what the client presented (RFC 6749 §2.3).
    Case("identify_client: Basic credentials name the client for the upstream",
         lambda p, env: Req(CC, authorization=basic("app", SECRET)),
         Forwarded(Action.OK, {"Client-Id": "app", "Client-Auth-Method": "client_secret_basic",
                               "Client-Authenticated": "false"})),
    Case("identify_client: a malformed Basic header is refused",
         lambda p, env: Req(CC, authorization="Basic !!!"),
         Refused("invalid_client", "client.malformed_basic", 401)),
    Case("identify_client: two client_ids are refused",
         lambda p, env: Req(f"{CC}&client_id=a", authorization=basic("b", SECRET)),
         Refused("invalid_request", "client.client_id_mismatch")),
    # require_client_identification: every token request names its client (RFC 6749 §2.3).
    Case("require_client_identification: a request that names a client goes on",
         lambda p, env: Req(SPA), Forwarded(Action.OK, {"Client-Id": "spa"})),
    Case("require_client_identification: a request that names no client is refused",
         lambda p, env: Req(CC), Refused("invalid_client", "client.unidentified", 401)),
    Case("require_client_identification: the assertion grant needs no client",
         lambda p, env: Req(f"{JWT_GRANT}&assertion={p.grant_assertion()}"),
         Forwarded(Action.JWT_BEARER, {"Subject": "alice@example.com"}), settings=JWT_ISSUERS),
    # check_attestation (draft-ietf-oauth-attestation-based-client-auth §7).
    Case("check_attestation: an attested instance is the client",
         lambda p, env: Req(f"{AUTH_CODE}&client_id=wallet-app",
                            attestation=(p.attestation(),), attestation_pop=(p.attestation_pop(),)),
         Forwarded(Action.OK, {"Client-Id": "wallet-app",
                               "Client-Auth-Method": "attest_jwt_client_auth"},
                   refresh_binding=f"att:{thumbprint(public_jwk(INSTANCE))}"),
         settings=ATTESTATION),
    Case("check_attestation: a PoP signed by another key is refused",
         lambda p, env: Req(f"{AUTH_CODE}&client_id=wallet-app", attestation=(p.attestation(),),
                            attestation_pop=(p.attestation_pop(STRANGER),)),
         Refused("invalid_client_attestation", "attestation.pop_bad_signature"),
         settings=ATTESTATION),
    # authenticate_client: with a registry, the sidecar authenticates (RFC 6749 §2.3).
    Case("authenticate_client: the registered secret authenticates the client",
         lambda p, env: Req(CC, authorization=basic("basic", SECRET)),
         Forwarded(Action.OK, {"Client-Id": "basic", "Client-Auth-Method": "client_secret_basic",
                               "Client-Authenticated": "true"}),
         settings=REGISTRY),
    Case("authenticate_client: a wrong secret is refused with the Basic challenge",
         lambda p, env: Req(CC, authorization=basic("basic", SECRET + "x")),
         Refused("invalid_client", "client.secret_mismatch", 401,
                 {"WWW-Authenticate": f'Basic realm="{ISSUER}", error="invalid_client"'}),
         settings=REGISTRY),
    Case("authenticate_client: a private_key_jwt assertion authenticates the client",
         lambda p, env: Req(assertion_body(p.client_assertion())),
         Forwarded(Action.OK, {"Client-Id": "signer", "Client-Auth-Method": "private_key_jwt",
                               "Client-Authenticated": "true"}),
         settings=REGISTRY),
    Case("authenticate_client: an unregistered client is refused",
         lambda p, env: Req(CC, authorization=basic("stranger", SECRET)),
         Refused("invalid_client", "client.unknown", 401), settings=REGISTRY),
    # check_grant: the grant's own rules, then the registered client's policy.
    Case("check_grant: a known grant is forwarded with its action",
         lambda p, env: Req("grant_type=password&username=u&password=p&client_id=app"),
         Forwarded(Action.PASSWORD, {"Grant-Type": "password"})),
    Case("check_grant: an unknown grant_type is refused",
         lambda p, env: Req("grant_type=urn:example:magic&client_id=app"),
         Refused("unsupported_grant_type", "grant.unsupported")),
    Case("check_grant: a grant without its parameters is refused",
         lambda p, env: Req("grant_type=authorization_code&client_id=app"),
         Refused("invalid_request", "grant.missing_parameter")),
    Case("check_grant: a grant the registered client may not use is refused",
         lambda p, env: Req("grant_type=refresh_token&refresh_token=r",
                            authorization=basic("basic", SECRET)),
         Refused("unauthorized_client", "client.grant_not_allowed"), settings=REGISTRY),
    Case("check_grant: a client registered for DPoP-bound tokens needs a proof",
         lambda p, env: Req(AS_PUBLIC), Refused(INVALID_DPOP, "client.dpop_required"),
         settings=REGISTRY),
    # check_dpop_proof (RFC 9449 §4.3).
    Case("check_dpop_proof: a valid proof binds the request to its key",
         lambda p, env: Req(SPA, dpop=(p.proof(),)),
         # No client credentials: a public client, whose refresh token is bound to its key.
         Forwarded(Action.OK, {"DPoP-JKT": CLIENT.jkt}, refresh_binding=JKT)),
    Case("check_dpop_proof: a confidential client's refresh token is not bound",
         lambda p, env: Req(CC, authorization=basic("app", SECRET), dpop=(p.proof(),)),
         Forwarded(Action.OK, {"DPoP-JKT": CLIENT.jkt})),
    Case("check_dpop_proof: a public client's refresh token will be bound to the key",
         lambda p, env: Req(AS_PUBLIC, dpop=(p.proof(),)),
         Forwarded(Action.OK, {"DPoP-JKT": CLIENT.jkt, "Client-Id": "public"},
                   refresh_binding=JKT), settings=REGISTRY),
    Case("check_dpop_proof: a proof for another URL is refused",
         lambda p, env: Req(SPA, dpop=(p.proof(htu="https://other.example/token"),)),
         Refused(INVALID_DPOP, "dpop.htu_mismatch")),
    Case("check_dpop_proof: a proof for another method is refused",
         lambda p, env: Req(SPA, dpop=(p.proof(htm="GET"),)),
         Refused(INVALID_DPOP, "dpop.htm_mismatch"), settings={}),
    Case("check_dpop_proof: two proofs are refused",
         lambda p, env: Req(SPA, dpop=(p.proof(), p.proof())),
         Refused(INVALID_DPOP, "dpop.multiple_headers")),
    Case("check_dpop_proof: without a proof, when DPoP is required",
         lambda p, env: Req(SPA), Refused(INVALID_DPOP, "dpop.required"),
         settings=DPOP_REQUIRED),
    Case("check_dpop_proof: without the server's nonce",
         lambda p, env: Req(SPA, dpop=(p.proof(),)),
         Refused("use_dpop_nonce", "dpop.nonce_missing"), settings=NONCES),
    Case("check_dpop_proof: with the server's nonce",
         lambda p, env: Req(SPA, dpop=(p.proof(nonce=p.nonce(env)),)),
         Forwarded(Action.OK, {"DPoP-JKT": CLIENT.jkt}, refresh_binding=JKT), settings=NONCES),
    # check_jwt_bearer (RFC 7523 §3) with trusted issuers.
    Case("check_jwt_bearer: a trusted issuer's assertion forwards its subject",
         lambda p, env: Req(f"{JWT_GRANT}&assertion={p.grant_assertion()}"),
         Forwarded(Action.JWT_BEARER, {"Subject": "alice@example.com"}), settings=JWT_ISSUERS),
    Case("check_jwt_bearer: an assertion by an untrusted issuer is refused",
         lambda p, env: Req(f"{JWT_GRANT}&assertion={p.grant_assertion(STRANGER, IDP + 'x')}"),
         Refused("invalid_grant", "jwt_bearer.untrusted_issuer"), settings=JWT_ISSUERS),
    Case("check_jwt_bearer: a forged signature is refused",
         lambda p, env: Req(f"{JWT_GRANT}&assertion={p.grant_assertion(STRANGER)}"),
         Refused("invalid_grant", "jwt_bearer.bad_signature"), settings=JWT_ISSUERS),
    # check_refresh_binding (RFC 9449 §5, RFC 8705 §4).
    Case("check_refresh_binding: a bound refresh token with its key",
         lambda p, env: Req(REFRESH, dpop=(p.proof(),)),
         Forwarded(Action.OK, {"DPoP-JKT": CLIENT.jkt}, refresh_binding=JKT),
         bound={"rt-1": JKT}),
    Case("check_refresh_binding: a bound refresh token without a proof is refused",
         lambda p, env: Req(REFRESH),
         Refused("invalid_grant", "binding.dpop_proof_required"), bound={"rt-1": JKT}),
    Case("check_refresh_binding: a bound refresh token with another key is refused",
         lambda p, env: Req(REFRESH, dpop=(p.proof(OTHER),)),
         Refused("invalid_grant", "binding.dpop_key_mismatch"), bound={"rt-1": JKT}),
    Case("check_refresh_binding: a certificate-bound refresh token needs that certificate",
         lambda p, env: Req(REFRESH),
         Refused("invalid_grant", "binding.certificate_required"),
         bound={"rt-1": f"x5t:{CERT.x5t_s256}"}),
    Case("check_refresh_binding: ... and passes with it",
         lambda p, env: Req(REFRESH, cert=CERT_HEADER),
         Forwarded(Action.OK, {"Client-Cert-S256": CERT.x5t_s256},
                   refresh_binding=f"x5t:{CERT.x5t_s256}"),
         bound={"rt-1": f"x5t:{CERT.x5t_s256}"}),
    Case("check_refresh_binding: a bound refresh token cannot be exchanged without its key",
         lambda p, env: Req("grant_type=urn:ietf:params:oauth:grant-type:token-exchange"
                            "&subject_token=rt-1&subject_token_type="
                            "urn:ietf:params:oauth:token-type:access_token&client_id=spa"),
         Refused("invalid_grant", "binding.dpop_proof_required"), bound={"rt-1": JKT}),
    # burn_replays: single-use values, last of all (RFC 9449 §11.1, RFC 7523 §3).
    Case("burn_replays: a DPoP proof sent twice is refused the second time",
         lambda p, env: Req(SPA, dpop=(p.proof(),)),
         Refused(INVALID_DPOP, "dpop.jti_replayed"), sends=2),
    Case("burn_replays: a client assertion sent twice is refused the second time",
         lambda p, env: Req(assertion_body(p.client_assertion())),
         Refused("invalid_client", "client.assertion_replayed", 401), settings=REGISTRY,
         sends=2),
    Case("burn_replays: a grant assertion sent twice is refused the second time",
         lambda p, env: Req(f"{JWT_GRANT}&assertion={p.grant_assertion()}"),
         Refused("invalid_grant", "jwt_bearer.jti_replayed"), settings=JWT_ISSUERS, sends=2),
    Case("burn_replays: a store that is down refuses what it cannot check (closed)",
         lambda p, env: Req(SPA, dpop=(p.proof(),)),
         Refused("temporarily_unavailable", "store.unavailable", 503, {"Retry-After": "1"}),
         settings=STORE_DOWN),
    Case("burn_replays: a store that is down, for a client assertion (closed)",
         lambda p, env: Req(assertion_body(p.client_assertion())),
         Refused("temporarily_unavailable", "store.unavailable", 503),
         settings=profile(REGISTRY, STORE_DOWN)),
    Case("burn_replays: a store that is down skips the check and says so (open)",
         lambda p, env: Req(SPA, dpop=(p.proof(),)),
         Forwarded(Action.OK, {"DPoP-JKT": CLIENT.jkt, "Replay-Check": "skipped"},
                   refresh_binding=JKT),
         settings=STORE_DOWN_OPEN),
    Case("burn_replays: a request with nothing single-use needs no store",
         lambda p, env: Req(CC, authorization=basic("app", SECRET)),
         Forwarded(Action.OK, absent=("Replay-Check",)), settings=STORE_DOWN),
)


def test_every_step_has_cases_that_pass_it_and_cases_it_refuses() -> None:
    for binder in STEPS:
        name = step_name(binder)
        rows = [case for case in CASES if case.step == name]
        kinds = {type(case.expect) for case in rows}
        assert kinds == {Forwarded, Refused}, name


def step_name(binder: StepBinder[Facts]) -> str:
    """`CheckGrant.of` -> "check_grant", the prefix of that step's case names."""
    return snake_case(binder.__qualname__.split(".")[0])


def snake_case(class_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


def test_step_names_are_the_case_prefixes() -> None:
    assert [step_name(binder) for binder in STEPS] == [
        "check_attestation", "require_client_identification", "authenticate_client",
        "check_grant", "check_dpop_proof", "check_jwt_bearer", "check_refresh_binding",
        "burn_replays"]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_decide(pipeline: Pipeline, case: Case) -> None:
    env = pipeline.env(case.settings)
    for token, binding in case.bound.items():
        await env.store.set_binding(REFRESH_BINDING, token, binding, 3600)
    request = case.request(pipeline, env).token_request()
    for _ in range(case.sends):
        decision = await decide(request, env)
    assert_decision(decision, case.expect)


# ---------------------------------------------------------------------------------------
# The order of the steps: what users rely on.


async def test_a_request_refused_by_a_later_step_does_not_burn_its_proof(
        pipeline: Pipeline) -> None:
    # check_jwt_bearer runs after check_dpop_proof: the proof was valid, the grant was not.
    env = pipeline.env(JWT_ISSUERS)
    proof = pipeline.proof()
    forged = Req(f"{JWT_GRANT}&assertion={pipeline.grant_assertion(STRANGER)}", dpop=(proof,))
    assert_decision(await decide(forged.token_request(), env),
                    Refused("invalid_grant", "jwt_bearer.bad_signature"))
    fixed = Req(f"{JWT_GRANT}&assertion={pipeline.grant_assertion()}", dpop=(proof,))
    assert_decision(await decide(fixed.token_request(), env),
                    Forwarded(Action.JWT_BEARER, {"DPoP-JKT": CLIENT.jkt,
                                                  "Subject": "alice@example.com"},
                              refresh_binding=JKT))
    # ...and once forwarded, it is used up.
    assert_decision(await decide(fixed.token_request(), env),
                    Refused(INVALID_DPOP, "dpop.jti_replayed"))


async def test_a_client_assertion_survives_a_nonce_challenge(pipeline: Pipeline) -> None:
    # RFC 9449 §8: the first request gets use_dpop_nonce; the client retries with the same
    # assertion and a proof with the nonce. Refused after authenticate_client, the first
    # request must not have used the assertion up.
    env = pipeline.env(profile(REGISTRY, NONCES))
    body = assertion_body(pipeline.client_assertion())
    first = await decide(Req(body, dpop=(pipeline.proof(),)).token_request(), env)
    assert_decision(first, Refused("use_dpop_nonce", "dpop.nonce_missing"))
    retry = Req(body, dpop=(pipeline.proof(nonce=pipeline.nonce(env)),))
    assert_decision(await decide(retry.token_request(), env),
                    Forwarded(Action.OK, {"Client-Id": "signer", "DPoP-JKT": CLIENT.jkt}))


async def test_a_proof_refused_for_a_bound_refresh_token_stays_usable(
        pipeline: Pipeline) -> None:
    # check_refresh_binding runs after check_dpop_proof and before burn_replays.
    env = pipeline.env()
    await env.store.set_binding(REFRESH_BINDING, "rt-1", f"jkt:{OTHER.jkt}", 3600)
    proof = pipeline.proof()
    assert_decision(await decide(Req(REFRESH, dpop=(proof,)).token_request(), env),
                    Refused("invalid_grant", "binding.dpop_key_mismatch"))
    assert_decision(await decide(Req(SPA, dpop=(proof,)).token_request(), env),
                    Forwarded(Action.OK, {"DPoP-JKT": CLIENT.jkt}, refresh_binding=JKT))


async def test_a_refusal_stops_the_steps(pipeline: Pipeline) -> None:
    env = pipeline.env()
    request = Req("grant_type=urn:example:magic&client_id=app", dpop=(pipeline.proof(),))
    token_request = request.token_request()
    presented = ReadPresented.of(env)(token_request)
    assert isinstance(presented, Presented)
    facts = Facts.of(presented, token_request)
    error = await run_steps(token_request, facts, bind_steps(STEPS, env))
    assert error is not None and error.result_code == "grant.unsupported"
    # The client was identified before; the proof, checked after the grant, was not.
    assert facts.client is not None and facts.client.client_id == "app"
    assert facts.dpop is None and facts.replays == []
    # The summary for logs and metrics says who was refused.
    decision = await decide(request.token_request(), env)
    assert isinstance(decision, Respond)
    assert (decision.summary.client_id, decision.summary.result_code,
            decision.action) == ("app", "grant.unsupported", Action.BAD_REQUEST)


@pytest.mark.parametrize(("settings", "bound"), [
    ({}, ["require_client_identification", "check_grant", "check_dpop_proof",
          "check_refresh_binding", "burn_replays"]),
    (REGISTRY, ["require_client_identification", "authenticate_client", "check_grant",
                "check_dpop_proof", "check_refresh_binding", "burn_replays"]),
    (JWT_ISSUERS, ["require_client_identification", "check_grant", "check_dpop_proof",
                   "check_jwt_bearer", "check_refresh_binding", "burn_replays"]),
], ids=["no registry, no issuers", "a registry", "trusted issuers"])
def test_steps_with_nothing_to_check_are_left_out(
        pipeline: Pipeline, settings: dict[str, dict[str, Any]], bound: list[str]) -> None:
    # Bound once per runtime: a step the configuration leaves idle is not asked every time.
    decider = TokenDecider.bind(pipeline.env(settings))
    assert [snake_case(type(step).__name__) for step in decider.steps] == bound
