"""Which client is this, and how did it present itself? (README step 2, "Extract"; RFC 6749 §2.3)

This module only *extracts*: it decodes the Basic header, reads `client_secret_post` and
`client_assertion` parameters, and refuses requests that present credentials ambiguously.
Whether the credentials are right is a question for the client registry, when one is
configured.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, replace
from typing import Final
from urllib.parse import quote

from sidecar import errors
from sidecar.core.form import decode_component

# RFC 6749 Appendix A.1: client-id = *VSCHAR; it keeps CR/LF out of the upstream's headers.
from sidecar.core.jose.compact import UNBOUNDED, library_json_object, split_compact
from sidecar.core.syntax import VSCHAR
from sidecar.errors import OAuthError
from sidecar.model import FormParams

JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# RFC 9110 §11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ].
_CREDENTIALS = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]{1,32})(?:[ \t]+(.*))?", re.DOTALL)


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class ClientCredentials:
    client_id: Final[str | None]
    method: Final[str]  # a token_endpoint_auth_method value (RFC 7591 §2), "none" when only an id
    secret: Final[str | None] = None
    assertion: Final[str | None] = None
    used_basic: Final[bool] = False
    # The Basic password exactly as sent, when RFC 6749 §2.3.1 decoding changed it: many
    # clients (requests-oauth2client, authlib, ...) do not form-encode before Basic, so a
    # secret with '+' or '%' arrives raw. Both readings are compared with the registered one.
    secret_as_sent: Final[str | None] = None
    # The scheme of an Authorization header that was not Basic ("Bearer", or "non-Basic" when
    # it does not even parse): not client authentication, but worth telling the client.
    other_scheme: Final[str | None] = None

    @property
    def secret_candidates(self) -> tuple[str, ...]:
        if self.secret is None:
            return ()
        if self.secret_as_sent is None or self.secret_as_sent == self.secret:
            return (self.secret,)
        return (self.secret, self.secret_as_sent)

    def __repr__(self) -> str:  # secrets and assertions never reach a log line
        return f"ClientCredentials(client_id={self.client_id!r}, method={self.method!r})"


def basic_authorization(client_id: str, secret: str) -> str:
    """The `Authorization: Basic` value of a client id and secret, as `_read_basic` reads it
    (RFC 6749 §2.3.1: each part form-urlencoded, spaces as "+", then base64 of `id:secret`)."""
    pair = f"{_form_encode(client_id)}:{_form_encode(secret)}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


def _form_encode(text: str) -> str:
    return quote(text, safe="", encoding="utf-8").replace("%20", "+")


def basic_challenge(realm: str) -> tuple[str, str]:
    """The one `WWW-Authenticate` of every `invalid_client` answer to a client that used (or
    tried) the Authorization header, RFC 6749 §5.2; the realm is the issuer."""
    escaped = realm.replace("\\", "\\\\").replace('"', '\\"')
    return ("WWW-Authenticate", f'Basic realm="{escaped}", error="invalid_client"')


def extract_client_credentials(
    authorization: str | None, params: FormParams, has_certificate: bool, *, realm: str
) -> ClientCredentials | OAuthError:
    """`realm` is the issuer, named in the challenge of a malformed Basic value."""
    basic = _read_basic(authorization)
    if isinstance(basic, OAuthError):
        return basic.with_headers(basic_challenge(realm))
    credentials = _credentials(basic, params, has_certificate)
    if isinstance(credentials, OAuthError) or basic is not None or authorization is None:
        return credentials
    return replace(credentials, other_scheme=_scheme_of(authorization))


def _credentials(basic: ClientCredentials | None, params: FormParams,
                 has_certificate: bool) -> ClientCredentials | OAuthError:
    presented = [m for m in (
        "client_secret_basic" if basic else None,
        "client_secret_post" if "client_secret" in params else None,
        "client_assertion" if "client_assertion" in params or
        "client_assertion_type" in params else None,
    ) if m]
    if len(presented) > 1:
        # RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in
        # each request."
        return errors.invalid_request(
            "client.multiple_methods",
            "The request uses more than one client authentication method.",
            detail=", ".join(presented))
    body_id = params.get("client_id")
    if body_id is not None and not VSCHAR.fullmatch(body_id):
        return errors.invalid_request("client.bad_client_id",
                                      "The client_id has characters outside RFC 6749 A.1.")
    if basic:
        credentials: ClientCredentials | OAuthError = basic
    elif "client_secret" in params:
        credentials = ClientCredentials(body_id, "client_secret_post",
                                        secret=params["client_secret"])
    elif presented:
        credentials = _read_assertion(params)
    else:
        # With a certificate and nothing else, the certificate is the credential (RFC 8705
        # §2); whether PKI or self-signed is for the registry to say.
        credentials = ClientCredentials(body_id, "tls_client_auth" if has_certificate and body_id
                                        else "none")
    if isinstance(credentials, OAuthError):
        return credentials
    if body_id is not None and credentials.client_id != body_id:
        return errors.invalid_request(
            "client.client_id_mismatch",
            "The client_id parameter does not match the authenticated client.")
    if credentials.client_id is None and credentials.method == "client_secret_post":
        return errors.invalid_request("client.missing_client_id",
                                      "client_secret was sent without client_id.")
    return credentials


def _scheme_of(authorization: str) -> str:
    parsed = _CREDENTIALS.fullmatch(authorization.strip())
    return parsed.group(1) if parsed else "non-Basic"


def _read_basic(authorization: str | None) -> ClientCredentials | OAuthError | None:
    """Decode `Authorization: Basic` per RFC 6749 §2.3.1: both parts are form-urlencoded.

    Clients that skip the form-encoding are common (many HTTP libraries send the secret as it
    is), so the undecoded password is kept too, and text that is not UTF-8 is read as Latin-1,
    the encoding such clients use. The scheme is case-insensitive (RFC 9110 §11.1), and a bare
    `Basic` is a malformed Basic value, not another scheme.
    """
    parsed = _CREDENTIALS.fullmatch(authorization.strip()) if authorization else None
    if parsed is None or parsed.group(1).lower() != "basic":
        return None  # another scheme is not client authentication; the upstream may use it
    token = (parsed.group(2) or "").strip()
    if not token:
        return _bad_basic("The Basic credentials are empty.")
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        return _bad_basic("The Basic credentials are not valid base64.")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        decoded = raw.decode("latin-1")
    if _CONTROL.search(decoded):
        return _bad_basic("The Basic credentials contain control characters.")
    user, colon, password = decoded.partition(":")
    if not colon:
        return _bad_basic("The Basic credentials have no ':' separator.")
    client_id = _form_decode(user)
    secret = _form_decode(password)
    if client_id is None or not client_id or not VSCHAR.fullmatch(client_id):
        return _bad_basic("The client id in the Basic credentials is empty or malformed.")
    if secret is not None and _CONTROL.search(secret):
        return _bad_basic("The Basic credentials contain control characters.")
    return ClientCredentials(client_id, "client_secret_basic",
                             secret=password if secret is None else secret,
                             used_basic=True, secret_as_sent=password)


def _form_decode(text: str) -> str | None:
    decoded = decode_component(text.encode("utf-8"))
    return None if isinstance(decoded, OAuthError) else decoded


def _bad_basic(description: str) -> OAuthError:
    # RFC 6749 §5.2: a client that tried the Authorization header gets 401 with a challenge
    # (added by the caller, which knows the realm).
    return errors.invalid_client("client.malformed_basic", description)


def _read_assertion(params: FormParams) -> ClientCredentials | OAuthError:
    """RFC 7521 §4.2 / RFC 7523 §2.2: both parameters, the JWT type, a well-formed JWT."""
    assertion = params.get("client_assertion")
    assertion_type = params.get("client_assertion_type")
    if assertion is None or assertion_type is None:
        return errors.invalid_request(
            "client.incomplete_assertion",
            "client_assertion and client_assertion_type must be sent together.")
    if assertion_type != JWT_BEARER_ASSERTION:
        # RFC 7521 §4.2.1: an unsupported assertion type is refused with invalid_client.
        return errors.invalid_client("client.unsupported_assertion_type",
                                     "The client_assertion_type is not supported.")
    parts = _unverified_jwt(assertion)
    if parts is None:
        return errors.invalid_client("client.malformed_assertion",
                                     "The client_assertion is not a well-formed JWT.")
    header, claims = parts
    issuer, subject = claims.get("iss"), claims.get("sub")
    # RFC 7523 §3 items 1-2: iss and sub are both the client id.
    if not isinstance(subject, str) or not VSCHAR.fullmatch(subject) or issuer != subject:
        return errors.invalid_client("client.assertion_subject",
                                     "The client_assertion must have iss = sub = client id.")
    alg = header.get("alg")
    method = "client_secret_jwt" if isinstance(alg, str) and alg.startswith("HS") \
        else "private_key_jwt"
    return ClientCredentials(subject, method, assertion=assertion)


def _unverified_jwt(token: str) -> tuple[dict[str, object], dict[str, object]] | None:
    """Header and claims of a compact JWS, not verified: only to learn who claims to be who,
    read as the upstream's JWT library reads them (jose.compact: `library_json_object`)."""
    segments = split_compact(token, max_length=UNBOUNDED)
    if segments is None:
        return None
    header, claims = library_json_object(segments[0]), library_json_object(segments[1])
    if header is None or claims is None:
        return None
    return header, claims
