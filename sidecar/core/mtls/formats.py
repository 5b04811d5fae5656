"""The formats, as each proxy writes them (the package docstring names them). Each decoder
returns the certificates in the header, leaf first, or None when the header says there is no
certificate; each raises `MalformedError`."""

from __future__ import annotations

import re
from collections.abc import Callable

from sidecar.core.mtls.encodings import (
    MalformedError,
    b64decode,
    base64_der_list,
    limit_count,
    pem_certificates,
    percent_decode,
)

# RFC 8941 §3.3.5 sf-binary ":" *(base64) ":", then §3.1.2 parameters, which §2.2 lets a
# field carry even when it defines none: they are skipped. String parameter values may hold
# ";" and ",", hence the quoted-string alternative.
_SF_PARAMETERS = r'(?:[ \t]*;[ \t]*[a-z*][a-z0-9_.*-]*(?:=(?:"(?:[^"\\]|\\.)*"|[^;,"\s]+))?)*'
_SF_BINARY_ITEM = re.compile(r"[ \t]*:([A-Za-z0-9+/=]*):" + _SF_PARAMETERS + r"[ \t]*")
_SF_LIST_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")
# XFCC values (Envoy docs): a quoted string with backslash escapes (an unrolled loop, linear
# on long values), then optional blanks up to the ";" or "," or the end; or a bare value.
_XFCC_QUOTED = re.compile(r'[ \t]*"([^"\\]*(?:\\.[^"\\]*)*)"', re.DOTALL)
_XFCC_AFTER_QUOTED = re.compile(r"[ \t]*(?=[;,]|\Z)")
_XFCC_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_XFCC_UNQUOTED = re.compile(r"[^;,]*")


def _url_encoded_pem(text: str) -> list[bytes]:
    """nginx `$ssl_client_escaped_cert` and AWS ALB `X-Amzn-Mtls-Clientcert[-Leaf]`.

    nginx escapes everything but unreserved characters; ALB writes "URL-encoded PEM format
    with +=/ as safe characters" and, in mTLS passthrough mode, the whole chain as several
    PEM blocks, leaf first (ALB user guide, "Mutual authentication with TLS"). One decoder
    reads both, and a PEM that was not escaped at all.
    """
    pem = percent_decode(text)
    # Should a proxy form-encode the space of the boundaries as "+" (the ALB documentation
    # shows no example), "+" still cannot be a space anywhere else: it is base64.
    pem = pem.replace("BEGIN+CERTIFICATE", "BEGIN CERTIFICATE")
    return pem_certificates(pem.replace("END+CERTIFICATE", "END CERTIFICATE"))


def _plain_pem(text: str) -> list[bytes]:
    return pem_certificates(text)


def _traefik(text: str) -> list[bytes]:
    """Traefik passTLSClientCert `pem: true`: each certificate's PEM without its boundaries and
    line breaks (i.e. base64 DER), joined with ",", leaf first (Traefik
    pkg/middlewares/passtlsclientcert, `getCertificates` and `sanitize`).

    Traefik v1/v2 `url.QueryEscape`d the whole value ("," as %2C); v3 sends it as is. Base64
    holds no "%", so percent-decoding first reads both.
    """
    return base64_der_list(percent_decode(text))


def _sf_binary_item(text: str) -> list[bytes]:
    """RFC 9440 §2.1 `Client-Cert`: an RFC 8941 Item whose value is a Byte Sequence of the DER.

    RFC 8941 §4.2.7: base64 with the standard alphabet; a parser SHOULD NOT fail when the
    "=" padding is missing.
    """
    match = _SF_BINARY_ITEM.fullmatch(text)
    if match is None:
        raise MalformedError("it is not a structured-field byte sequence")
    return [b64decode(match.group(1))]


def _sf_binary_list(text: str) -> list[bytes]:
    """RFC 9440 §2.1 `Client-Cert-Chain`: an RFC 8941 List of Byte Sequences, leaf excluded.

    RFC 8941 §4.2.1: members separated by OWS "," OWS; a field split over several header
    lines arrives joined with ", ". Inner lists and other item types are refused.
    """
    ders: list[bytes] = []
    position = 0
    while True:
        match = _SF_BINARY_ITEM.match(text, position)
        if match is None:
            raise MalformedError("it is not a structured-field list of byte sequences")
        ders.append(b64decode(match.group(1)))
        limit_count(len(ders))
        position = match.end()
        if position == len(text):
            return ders
        separator = _SF_LIST_SEPARATOR.match(text, position)
        if separator is None or separator.end() == len(text):
            raise MalformedError("it is not a structured-field list of byte sequences")
        position = separator.end()


def _envoy_xfcc(text: str) -> list[bytes] | None:
    """Envoy `x-forwarded-client-cert`: the certificate of the LAST element.

    With `forward_client_cert_details: APPEND_FORWARD` each proxy appends its own element
    after a ",". The last one was added by the proxy that talks to us, which we trust
    (trusted_proxies); earlier elements were written by hops further out, or forged by the
    client if the outer proxy did not sanitise, so they are parsed for syntax only.

    `Cert` is the leaf as URL-encoded PEM; `Chain` the whole chain *including* the leaf
    (Envoy docs). An element with `Chain` but no `Cert` (Envoy configured with
    `set_current_client_cert_details: {chain: true}` only) takes its leaf from the chain,
    which Envoy writes leaf first. An element with neither - only `By`, `Hash`, `Subject`,
    `URI` or `DNS` - means no certificate for us: a `Hash` alone gives nothing to compute an
    `x5t#S256` from (it is the SHA-256 of the DER, but hex, and unverifiable), so None.
    """
    elements = _xfcc_elements(text)
    limit_count(len(elements))
    fields: dict[str, str] = {}
    for key, field_value in elements[-1]:
        if key in ("cert", "chain"):
            if key in fields:
                raise MalformedError(f"its XFCC element repeats {key.title()}")
            fields[key] = field_value
    cert, chain = fields.get("cert", ""), fields.get("chain", "")
    leaf = _url_encoded_pem(cert) if cert else []
    if len(leaf) > 1:
        raise MalformedError("its XFCC Cert holds more than one certificate")
    chain_ders = _url_encoded_pem(chain) if chain else []
    if not leaf and not chain_ders:
        return None
    return leaf + chain_ders


def _xfcc_elements(text: str) -> list[list[tuple[str, str]]]:
    """Split XFCC into elements (",") of key=value pairs (";"), keys lower-cased.

    Envoy docs: keys are case-insensitive; a value holding "," ";" or "=" is double-quoted,
    with a double quote inside written as \\". Envoy writes `Subject` (an RFC 2253 name, whose
    own escapes use backslashes) always quoted, so a backslash escapes whatever follows it.
    Envoy leaves `By`, `URI` and `DNS` unquoted even when they hold "=", so an unquoted
    value runs to the next ";" or ",".
    """
    elements: list[list[tuple[str, str]]] = []
    pairs: list[tuple[str, str]] = []
    position, end = 0, len(text)
    while True:
        key, position = _xfcc_key(text, position)
        value, position = _xfcc_value(text, position)
        pairs.append((key, value))
        if position == end:
            elements.append(pairs)
            return elements
        if text[position] == ",":
            elements.append(pairs)
            pairs = []
        position += 1  # past the ";" or ","


def _xfcc_key(text: str, position: int) -> tuple[str, int]:
    equals = text.find("=", position)
    key = text[position:equals].strip() if equals != -1 else ""
    if not key or any(c in key for c in ',;"'):
        raise MalformedError("it is not a valid XFCC key=value list")
    return key.lower(), equals + 1


def _xfcc_value(text: str, position: int) -> tuple[str, int]:
    """Read a value from `position`; return it and the index of the ";" or "," after it."""
    quoted = _XFCC_QUOTED.match(text, position)
    if quoted is not None:
        after = _XFCC_AFTER_QUOTED.match(text, quoted.end())
        if after is None:
            raise MalformedError("it has text after a quoted XFCC value")
        return _XFCC_ESCAPE.sub(r"\1", quoted.group(1)), after.end()
    unquoted = _XFCC_UNQUOTED.match(text, position)
    assert unquoted is not None  # the pattern matches the empty string
    value = unquoted.group(0).strip()
    if '"' in value:
        # An opening quote with no closing one lands here too.
        raise MalformedError("it has an unterminated or stray quote in an XFCC value")
    return value, unquoted.end()


_Decoder = Callable[[str], list[bytes] | None]
_ChainDecoder = Callable[[str], list[bytes]]

# format -> (decoder of the certificate header, decoder of the separate chain header).
# A separate chain header uses the encoding of the certificate header, except for RFC 9440
# (its own Client-Cert-Chain list) and Envoy, where it is the URL-encoded PEM of the custom
# header formatter %DOWNSTREAM_PEER_CHAIN%, the same encoding as the XFCC Chain value.
FORMATS: dict[str, tuple[_Decoder, _ChainDecoder]] = {
    "nginx": (_url_encoded_pem, _url_encoded_pem),
    "envoy-xfcc": (_envoy_xfcc, _url_encoded_pem),
    "traefik": (_traefik, _traefik),
    "aws-alb": (_url_encoded_pem, _url_encoded_pem),
    "rfc9440": (_sf_binary_item, _sf_binary_list),
    "pem": (_plain_pem, _plain_pem),
    "der-base64": (base64_der_list, base64_der_list),
}
