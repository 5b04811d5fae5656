"""The -00...-02 form (sidecar.core.attestation.legacy): client_assertion = attestation "~" PoP."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from sidecar.core.attestation.challenges import (
    issue_challenge,
)
from sidecar.core.attestation.config import (
    LEGACY_ASSERTION_TYPE,
)
from sidecar.core.attestation.legacy import legacy_client_assertion
from sidecar.core.attestation.results import AttestedClient
from sidecar.errors import OAuthError
from sidecar.model import FormParams
from tests.core.attestation.support import AS_ISSUER, ATTESTER, ENDPOINT, NOW, Instance, World


def legacy_params(value: str, **extra: str) -> FormParams:
    return FormParams({"grant_type": ("authorization_code",), "code": ("c",),
                       "client_assertion_type": (LEGACY_ASSERTION_TYPE,),
                       "client_assertion": (value,),
                       **{k: (v,) for k, v in extra.items()}})


def test_legacy_client_assertion_is_split() -> None:
    parsed = legacy_client_assertion(legacy_params("a.b.c~d.e.f", client_id="wallet-app"))
    assert parsed is not None and not isinstance(parsed, OAuthError)
    assert (parsed.attestation, parsed.pop) == (("a.b.c",), ("d.e.f",))
    assert sorted(parsed.remaining) == ["client_id", "code", "grant_type"]
    assert "a.b.c" not in repr(parsed)
    other = FormParams({"client_assertion_type": ("urn:ietf:params:oauth:client-assertion-"
                                                  "type:jwt-bearer",),
                        "client_assertion": ("x",)})
    assert legacy_client_assertion(other) is None
    assert legacy_client_assertion(FormParams({})) is None
    for bad in ("a.b.c", "a~b~c", "~d.e.f", "a.b.c~"):
        error = legacy_client_assertion(legacy_params(bad))
        assert isinstance(error, OAuthError)
        assert (error.code, error.result_code, error.status) == \
            ("invalid_client", "attestation.legacy_malformed", 401)


async def test_legacy_form_is_verified(world: World) -> None:
    instance = Instance()
    # -00...-02: iss on both JWTs, no typ, a PoP with exp and no iat, aud among others.
    token = world.attestation(instance, typ=None, iss=ATTESTER)
    pop = instance.pop(typ=None, iat=None, exp=int(NOW) + 60, iss="wallet-app",
                       aud=[AS_ISSUER, ENDPOINT])
    parsed = legacy_client_assertion(legacy_params(f"{token}~{pop}"))
    assert parsed is not None and not isinstance(parsed, OAuthError)
    result = await world.verify(parsed.attestation, parsed.pop, legacy=True)
    assert isinstance(result, AttestedClient) and result.legacy
    assert result.replay is not None
    assert (result.replay.error.code, result.replay.error.status) == ("invalid_client", 401)
    # A nonce claim serves as the challenge.
    policy = world.build(challenge_required=True)
    challenge = issue_challenge(policy, NOW)
    assert challenge is not None
    noncey = instance.pop(typ=None, iat=None, exp=int(NOW) + 60, nonce=challenge)
    assert isinstance(await world.verify((token,), (noncey,), legacy=True, policy=policy),
                      AttestedClient)


async def test_legacy_refusals_are_invalid_client(world: World) -> None:
    instance = Instance()
    stranger = ec.generate_private_key(ec.SECP256R1())
    await world.refused(world.attestation(instance, key=stranger, typ=None), instance.pop(),
                        legacy=True, code="invalid_client", reason="bad_signature", status=401)
    await world.refused(world.attestation(instance, typ=None), instance.pop(exp=int(NOW) + 3600,
                                                                            iat=None),
                        legacy=True, code="invalid_client", reason="pop_lifetime_too_long",
                        status=401)
    await world.refused(world.attestation(instance, typ=None), instance.pop(iat=None),
                        legacy=True, code="invalid_client", reason="pop_missing_iat", status=401)
    await world.refused(world.attestation(instance, exp=int(NOW) - 600), instance.pop(),
                        legacy=True, code="invalid_client", reason="expired", status=401)
    # A typ of another kind of JWT is still refused.
    await world.refused(world.attestation(instance, typ="dpop+jwt"), instance.pop(),
                        legacy=True, code="invalid_client", reason="bad_typ", status=401)
