"""Reading `/api/auth/token` calls: the reference's fields, typed, and what they turn into."""

from __future__ import annotations

import base64
from urllib.parse import unquote_plus

import pytest

from sidecar.core.decision_api.fields import FieldError, Fields
from sidecar.core.decision_api.token_call import FIELDS, TokenCall, read_token_call


def _read(**members: object) -> TokenCall | FieldError:
    return read_token_call(Fields(members, FIELDS))


def test_only_parameters_is_required_and_htm_defaults_to_post() -> None:
    call = _read(parameters="grant_type=client_credentials")
    assert call == TokenCall(parameters="grant_type=client_credentials", htm="POST")
    assert _read(clientId="c") == FieldError(
        "parameters is required: the token request's form body.")


def test_every_reference_field_is_read() -> None:
    call = _read(parameters="p", clientId="c", clientSecret="s", clientCertificate="CERT",
                 clientCertificatePath=["CA"], dpop="proof", htm="PUT", htu="https://as/t",
                 oauthClientAttestation="att", oauthClientAttestationPop="pop",
                 dpopNonceRequired=True, accessTokenDuration=60, refreshTokenDuration=0,
                 properties={"k": "v"}, jwtAtClaims='{"x":1}')
    assert call == TokenCall(
        parameters="p", client_id="c", client_secret="s", client_certificate="CERT",
        client_certificate_path=("CA",), dpop="proof", htm="PUT", htu="https://as/t",
        attestation="att", attestation_pop="pop", dpop_nonce_required=True,
        access_token_duration=60, refresh_token_duration=0, properties={"k": "v"},
        jwt_at_claims='{"x":1}')


@pytest.mark.parametrize(("members", "field"), [
    ({"parameters": 1}, "parameters"),
    ({"parameters": "p", "clientId": ["c"]}, "clientId"),
    ({"parameters": "p", "dpopNonceRequired": "yes"}, "dpopNonceRequired"),
    ({"parameters": "p", "accessTokenDuration": -5}, "accessTokenDuration"),
    ({"parameters": "p", "clientCertificatePath": "PEM"}, "clientCertificatePath"),
    ({"parameters": "p", "properties": "k=v"}, "properties"),
    ({"parameters": "x" * 65537}, "parameters"),
    ({"parameters": "p", "dpop": "x" * 16385}, "dpop"),
])
def test_a_wrong_field_is_named(members: dict[str, object], field: str) -> None:
    error = read_token_call(Fields(members, FIELDS))
    assert isinstance(error, FieldError) and error.message.startswith(field)


def test_an_unknown_field_is_refused() -> None:
    assert _read(parameters="p", clientSecert="s") == FieldError("Unknown member 'clientSecert'.")


def test_credentials_become_the_basic_header_they_came_from() -> None:
    # RFC 6749 §2.3.1: both parts form-urlencoded, then base64 of "id:secret".
    call = TokenCall(parameters="", client_id="my client", client_secret="p:ß&=")
    header = call.basic_authorization()
    assert header is not None and header.startswith("Basic ")
    pair = base64.b64decode(header.removeprefix("Basic ")).decode("ascii")
    client_id, secret = pair.split(":")
    assert (unquote_plus(client_id), unquote_plus(secret)) == ("my client", "p:ß&=")
    assert TokenCall(parameters="").basic_authorization() is None


def test_the_certificate_and_its_path_make_one_pem_text() -> None:
    call = TokenCall(parameters="", client_certificate="LEAF", client_certificate_path=("CA",))
    assert call.certificate_pem() == "LEAF\nCA"
    assert TokenCall(parameters="").certificate_pem() is None


def test_the_repr_shows_no_secret() -> None:
    call = TokenCall(parameters="client_secret=hunter2", client_secret="hunter2", dpop="jwt")
    assert "hunter2" not in repr(call) and "jwt" not in repr(call)
