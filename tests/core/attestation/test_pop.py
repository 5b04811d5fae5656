"""The Client Attestation PoP JWT (sidecar.core.attestation.pop; §5.1, §7.2)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.core.attestation.support import AS_ISSUER, ENDPOINT, INVALID, NOW, Instance, World


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"typ": "JWT"}, "pop_bad_typ"),
    ({"typ": None}, "pop_bad_typ"),
    ({"typ": "oauth-client-attestation+jwt"}, "pop_bad_typ"),
    ({"typ": "dpop+jwt"}, "pop_bad_typ"),
    ({"headers": {"crit": ["x"], "x": 1}}, "pop_unsupported_crit"),
    ({"aud": "https://other.example"}, "pop_bad_audience"),
    ({"aud": ENDPOINT}, "pop_bad_audience"),
    ({"aud": [AS_ISSUER, "https://other.example"]}, "pop_bad_audience"),
    ({"aud": None}, "pop_bad_audience"),
    ({"jti": None}, "pop_bad_jti"),
    ({"jti": ""}, "pop_bad_jti"),
    ({"jti": 7}, "pop_bad_jti"),
    ({"jti": "j" * 257}, "pop_bad_jti"),
    ({"iat": None}, "pop_missing_iat"),
    ({"iat": "now"}, "pop_bad_claim"),
    ({"iat": True}, "pop_bad_claim"),
    ({"iat": int(NOW) - 61}, "pop_iat_out_of_window"),
    ({"iat": int(NOW) + 11}, "pop_iat_out_of_window"),
    ({"exp": int(NOW) - 11}, "pop_expired"),
    ({"nbf": int(NOW) + 11}, "pop_not_yet_valid"),
    ({"iss": "other-app"}, "pop_bad_issuer"),
])
async def test_pop_refusals(world: World, kwargs: dict[str, Any], reason: str) -> None:
    instance = Instance()
    await world.refused(world.attestation(instance), instance.pop(**kwargs), code=INVALID,
                        reason=reason)


async def test_pop_accepts_a_one_member_aud_array_and_iss_of_the_client(world: World) -> None:
    instance = Instance()
    assert await world.ok(world.attestation(instance), instance.pop(aud=[AS_ISSUER],
                                                                    iss="wallet-app"))


async def test_pop_signature_and_algorithm(world: World) -> None:
    instance = Instance()
    token = world.attestation(instance)
    other = ec.generate_private_key(ec.SECP256R1())
    await world.refused(token, instance.pop(key=other), code=INVALID, reason="pop_bad_signature")
    ed = ed25519.Ed25519PrivateKey.generate()  # EdDSA against the attested EC key
    await world.refused(token, instance.pop(key=ed, alg="EdDSA"), code=INVALID,
                        reason="pop_bad_alg")
    hs = instance.pop(key=b"a shared secret of sufficient length!!", alg="HS256")
    await world.refused(token, hs, code=INVALID, reason="pop_bad_alg")
    for bad in ("", "a.b", "not-a-jwt"):
        await world.refused(token, bad, code=INVALID, reason="pop_malformed")
    # A cnf.jwk that names another alg than the PoP's.
    pinned = world.attestation(instance, cnf={"jwk": {**instance.jwk, "alg": "ES384"}})
    await world.refused(pinned, instance.pop(), code=INVALID, reason="pop_bad_alg")


async def test_pop_jti_is_single_use_through_the_store(world: World) -> None:
    instance = Instance()
    token, pop = world.attestation(instance), instance.pop(jti="one-time")
    first, second = await world.ok(token, pop), await world.ok(token, pop)
    assert first.replay is not None and second.replay is not None
    replay = first.replay
    assert await world.store.first_use(replay.kind, replay.value, replay.ttl_seconds)
    assert not await world.store.first_use(second.replay.kind, second.replay.value,
                                           second.replay.ttl_seconds)
    assert (replay.error.code, replay.error.result_code) == (INVALID, "attestation.pop_replayed")
    # The same jti from another instance key is another PoP.
    other = Instance()
    third = await world.ok(world.attestation(other), other.pop(jti="one-time"))
    assert third.replay is not None
    assert await world.store.first_use(third.replay.kind, third.replay.value, 71.0)
