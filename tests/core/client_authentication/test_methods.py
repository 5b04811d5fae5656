"""Authenticating with the registered method (sidecar.core.client_authentication.methods):
the secret methods, unknown clients, wrong methods, public clients (RFC 6749 §2.3, §5.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.core.client_authentication.client_policy import (
    context_headers,
)
from sidecar.core.client_authentication.policy import AuthenticatedClient
from sidecar.core.clients.loading import registry_from_mapping
from sidecar.core.credentials import (
    ClientCredentials,
    extract_client_credentials,
)
from tests.core.client_authentication.support import (
    FAST_ARGON2,
    ISSUER,
    JWT_SECRET,
    SECRET,
    World,
    assertion,
    params,
    presented,
    via_assertion,
    via_basic,
    via_id,
    via_post,
)


async def test_basic_with_plus_percent_colon_and_non_ascii(world: World) -> None:
    result = await world.ok(via_basic("basic", SECRET))
    assert (result.authenticated, result.method) == (True, "client_secret_basic")
    assert result.client is not None and result.client.client_id == "basic"


async def test_basic_wrong_secret_gets_the_basic_challenge(world: World) -> None:
    error = await world.refused(via_basic("basic", SECRET + "x"), "client.secret_mismatch")
    # RFC 6749 §5.2: the client used the Authorization header, so the challenge is Basic.
    assert error.headers == (("WWW-Authenticate",
                              f'Basic realm="{ISSUER}", error="invalid_client"'),)
    assert error.body == {"error": "invalid_client",
                          "error_description": "Client authentication failed."}


@pytest.mark.parametrize("wrong", [
    "p ss%20w:rd é ✓ &=;",  # "+" read as a space: what a decoder that skips App. B does
    "p+ss w:rd é ✓ &=;",  # "%20" decoded twice
    "p+ss%20w:rd e ✓ &=;",  # NFC vs ASCII: no Unicode folding of secrets
    "P+SS%20W:RD É ✓ &=;",
    "",
])
async def test_near_misses_are_refused(world: World, wrong: str) -> None:
    await world.refused(via_basic("basic", wrong), "client.secret_mismatch")
    await world.refused(via_post("post", wrong) if wrong else via_post("post", "x"),
                        "client.secret_mismatch")


async def test_post_with_the_same_secret(world: World) -> None:
    result = await world.ok(via_post("post", SECRET))
    assert (result.authenticated, result.method) == (True, "client_secret_post")
    error = await world.refused(via_post("post", "nope"), "client.secret_mismatch")
    assert error.headers == ()  # no Authorization header was used: no challenge


async def test_secret_with_control_characters_is_refused_before_comparing(world: World
                                                                           ) -> None:
    credentials = ClientCredentials("post", "client_secret_post", secret="a\x00b")
    await world.refused(credentials, "client.secret_mismatch")


async def test_hashed_secret_is_verified_once_then_remembered(world: World) -> None:
    for _ in range(3):
        result = await world.ok(via_basic("hashed", SECRET))
        assert result.authenticated
    assert world.secrets.hash_verifications == 1


async def test_wrong_secret_for_a_hash_is_never_remembered(world: World) -> None:
    for _ in range(3):
        await world.refused(via_basic("hashed", "wrong"), "client.secret_mismatch")
    assert world.secrets.hash_verifications == 3
    await world.ok(via_basic("hashed", SECRET))
    assert world.secrets.hash_verifications == 4


async def test_a_new_hash_invalidates_what_was_remembered(world: World, tmp_path: Path) -> None:
    await world.ok(via_basic("hashed", SECRET))
    world.registry = registry_from_mapping({"clients": [{
        "client_id": "hashed", "token_endpoint_auth_method": "client_secret_basic",
        "client_secret_hash": FAST_ARGON2.hash("rotated")}]}, tmp_path, LOCAL_FILES)
    await world.refused(via_basic("hashed", SECRET), "client.secret_mismatch")
    await world.ok(via_basic("hashed", "rotated"))


# ---------------------------------------------------------------------------------------
# Unknown clients, wrong methods


async def test_unknown_client_is_refused_or_forwarded(world: World) -> None:
    error = await world.refused(via_basic("stranger", "x"), "client.unknown")
    assert error.headers[0][0] == "WWW-Authenticate"
    assert "stranger" in error.detail and "stranger" not in error.description
    forwarded = await world.ok(via_basic("stranger", "x"), unknown="forward")
    assert forwarded == AuthenticatedClient(None, False, "client_secret_basic")
    assert context_headers(forwarded) == [("Client-Authenticated", "false")]


async def test_unidentified_client(world: World) -> None:
    nobody = extract_client_credentials(None, params(grant_type="client_credentials"), False,
                                        realm=ISSUER)
    await world.refused(nobody, "client.unidentified")
    assert (await world.ok(nobody, unknown="forward")).client is None


@pytest.mark.parametrize(("credentials", "why"), [
    (via_post("basic", SECRET), "a basic client using the body"),
    (via_basic("post", SECRET), "a post client using Basic"),
    (via_basic("signer", SECRET), "a key client using a secret"),
    (via_post("public", SECRET), "a public client sending a secret"),
    (via_id("basic"), "a secret client sending none"),
])
async def test_only_the_registered_method_is_accepted(world: World,
                                                      credentials: ClientCredentials,
                                                      why: str) -> None:
    await world.refused(credentials, "client.wrong_method")


async def test_hs256_assertion_for_a_private_key_client_is_the_wrong_method(world: World
                                                                           ) -> None:
    token = assertion(JWT_SECRET.encode(), "signer", "HS256")
    await world.refused(via_assertion(token), "client.wrong_method")


async def test_public_client(world: World) -> None:
    result = await world.ok(via_id("public"))
    assert (result.authenticated, result.method) == (False, "none")
    # RFC 8705 §4: a public client may present a certificate to bind its tokens.
    cert = presented(world.pki.issue())
    with_cert = await world.ok(via_id("public", certificate=True), cert)
    assert (with_cert.authenticated, with_cert.method) == (False, "none")
