"""The entry point (sidecar.core.grants.validate): nothing raises, whatever the form."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.grants.names import GrantResult
from sidecar.core.grants.validate import validate_grant
from sidecar.errors import OAuthError
from sidecar.model import FormParams
from sidecar.settings import GRANT_TYPES, GrantsSettings, PasswordGrant
from tests.core.grants.support import (
    DEFAULTS,
    DEVICE_SECRET_TYPE,
    RFC8693_TYPES,
    VALID,
    VERIFIER,
    jwt,
)

# Nothing raises.

KNOWN_NAMES = sorted({"grant_type", "scope", "resource", "audience", "authorization_details",
                      "device_secret", "actor_token", "actor_token_type", "subject_token",
                      "subject_token_type", "requested_token_type", "redirect_uri",
                      "code_verifier", "assertion", "tx_code"}
                     | {name for params in VALID.values() for name in params})
VALUES = st.one_of(
    st.text(),
    st.sampled_from([*GRANT_TYPES, *RFC8693_TYPES, DEVICE_SECRET_TYPE, jwt(), VERIFIER, "[]",
                     '[{"type": "a"}]', "[" * 5000, "https://a.example/#x", "openid  x"]),
    st.text(alphabet="[]{}\"type:,1 ", max_size=200),
    st.text(alphabet="ABCabc012-_.=", max_size=200),
)


@settings(max_examples=400, deadline=None)
@given(
    params=st.dictionaries(
        st.one_of(st.sampled_from(KNOWN_NAMES), st.text(max_size=20)),
        st.lists(VALUES, max_size=3).map(tuple),
        max_size=12,
    ),
    allowed=st.lists(st.sampled_from(GRANT_TYPES), unique=True).map(tuple),
    password=st.sampled_from(["forward", "reject"]),
    extra=st.lists(st.text(max_size=30), max_size=2).map(tuple),
)
def test_arbitrary_parameters_never_raise(
    params: dict[str, tuple[str, ...]], allowed: tuple[str, ...], password: PasswordGrant,
    extra: tuple[str, ...],
) -> None:
    grants = GrantsSettings(allowed=allowed, password=password, extra_token_types=extra)
    result = validate_grant(FormParams(params), grants)
    assert isinstance(result, GrantResult | OAuthError)
    if isinstance(result, OAuthError):
        assert 400 <= result.status < 500
    else:
        assert result.grant_type in allowed


@settings(max_examples=200, deadline=None)
@given(grant_type=st.sampled_from(GRANT_TYPES), extra=st.dictionaries(
    st.sampled_from(KNOWN_NAMES), VALUES.map(lambda v: (v,)), max_size=6))
def test_valid_requests_with_arbitrary_additions_never_raise(
    grant_type: str, extra: dict[str, tuple[str, ...]],
) -> None:
    values = {k: (v,) if isinstance(v, str) else v for k, v in VALID[grant_type].items()}
    result = validate_grant(FormParams({**values, **extra, "grant_type": (grant_type,)}),
                            DEFAULTS)
    assert isinstance(result, GrantResult | OAuthError)
