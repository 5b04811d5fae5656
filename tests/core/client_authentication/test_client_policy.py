"""Once the client is known (sidecar.core.client_authentication.client_policy): its grant
types and bound tokens, the context headers, its DPoP nonce setting, and the jti left to the
pipeline's last step."""

from __future__ import annotations

from sidecar.core.client_authentication.client_policy import (
    check_client_policy,
    context_headers,
    dpop_nonce_required,
)
from sidecar.core.client_authentication.methods import authenticate
from sidecar.core.client_authentication.policy import AuthenticatedClient
from sidecar.core.credentials import (
    ClientCredentials,
)
from tests.core.client_authentication.support import (
    NOW,
    SECRET,
    World,
    assertion,
    via_assertion,
    via_basic,
    via_id,
    via_post,
)
from tests.support.pipeline import burn_last, pipeline_env, pipeline_settings


async def test_client_policy(world: World) -> None:
    basic_client = await world.ok(via_basic("basic", SECRET))
    assert check_client_policy(basic_client, "client_credentials", dpop_proof=False,
                               certificate=False) is None
    error = check_client_policy(basic_client, "authorization_code", dpop_proof=False,
                                certificate=False)
    assert error is not None and error.code == "unauthorized_client"
    assert error.result_code == "client.grant_not_allowed" and error.status == 400
    public = await world.ok(via_id("public"))
    error = check_client_policy(public, "refresh_token", dpop_proof=False, certificate=True)
    assert error is not None and error.result_code == "client.dpop_required"
    error = check_client_policy(public, "refresh_token", dpop_proof=True, certificate=False)
    assert error is not None and error.result_code == "client.certificate_required_for_binding"
    assert check_client_policy(public, "refresh_token", dpop_proof=True, certificate=True) is None
    unknown = AuthenticatedClient(None, False, "none")
    assert check_client_policy(unknown, "password", dpop_proof=False, certificate=False) is None


async def test_context_headers(world: World) -> None:
    basic_client = await world.ok(via_basic("basic", SECRET))
    assert context_headers(basic_client) == [
        ("Client-Authenticated", "true"),
        ("Access-Token-Duration", "300"),
        ("Refresh-Token-Duration", "3600"),
        ("Properties", '{"tier":"gold"}'),
        ("JWT-AT-Claims", '{"roles":["reader"]}'),
    ]
    public = await world.ok(via_id("public"))
    assert context_headers(public) == [("Client-Authenticated", "false")]


async def test_dpop_nonce_required_follows_the_client_or_the_default(world: World) -> None:
    public = await world.ok(via_id("public"))
    assert dpop_nonce_required(public, False) is True
    post = await world.ok(via_post("post", SECRET))
    assert dpop_nonce_required(post, True) is True and dpop_nonce_required(post, False) is False
    assert dpop_nonce_required(AuthenticatedClient(None, False, "none"), True) is True


async def test_the_assertion_jti_is_left_to_the_last_step(world: World) -> None:
    # Everything but the jti is checked; the pipeline burns it last, with the DPoP jti, so a
    # request refused later (use_dpop_nonce) keeps its assertion usable.
    token = assertion(world.signer_key, jti="deferred", exp=int(NOW) + 60)
    credentials = via_assertion(token)
    assert isinstance(credentials, ClientCredentials)
    replays = []
    for _ in range(2):  # authenticating does not use the assertion up
        result = await authenticate(credentials, None, world.registry, policy=world.policy,
                                    now=NOW, jwks=world.jwks, secrets=world.secrets)
        assert isinstance(result, AuthenticatedClient) and result.replay is not None
        replays.append(result.replay)
    replay = replays[-1]
    assert replays[0].value == replay.value
    assert (replay.kind, replay.value) == ("client_assertion", "signer:deferred")
    assert 60 < replay.ttl_seconds <= 120  # until exp, plus the leeway
    env = pipeline_env(pipeline_settings(), clock=world.clock, store=world.store)
    assert await burn_last(env, replay) is None
    burned_twice = await burn_last(env, replay)
    assert burned_twice is not None
    assert (burned_twice.status, burned_twice.result_code) == (401, "client.assertion_replayed")
    # Secrets and certificates have nothing to burn.
    assert (await world.ok(via_post("post", SECRET))).replay is None
