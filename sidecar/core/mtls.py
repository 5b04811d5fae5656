"""The client certificate a front proxy forwards in a header, for RFC 8705 mTLS.

The proxy in front of the sidecar terminates TLS and passes the client's certificate on in a
header; every proxy writes it its own way (`settings.CERT_FORMATS`). This module turns that
header into a `ClientCertificate`: the leaf DER, the further certificates the client
presented, and the RFC 8705 §3.1 `x5t#S256` thumbprint. It checks that each certificate
*is* an X.509 certificate, never that it is trusted (that is a later step's job).

`parse_client_certificate` never raises: a header that does not parse is `invalid_request`
(malformed input is a 4xx, never a 500). No header, or an empty one, is `None`: the proxy
had no client certificate to forward. Only headers from trusted proxies reach this module
(README step 2: certificate headers count only from `trust.trusted_proxies`).

The formats, as each proxy writes them:

- `nginx`: `$ssl_client_escaped_cert`, the PEM percent-encoded by
  `ngx_escape_uri(..., NGX_ESCAPE_URI_COMPONENT)` (nginx src/event/ngx_event_openssl.c,
  `ngx_ssl_get_escaped_certificate`; https://nginx.org/en/docs/http/ngx_http_ssl_module.html).
- `envoy-xfcc`: `x-forwarded-client-cert`
  (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-forwarded-client-cert).
- `traefik`: `X-Forwarded-Tls-Client-Cert` of the passTLSClientCert middleware with `pem: true`
  (https://doc.traefik.io/traefik/middlewares/http/passtlsclientcert/).
- `aws-alb`: `X-Amzn-Mtls-Clientcert` / `X-Amzn-Mtls-Clientcert-Leaf`
  (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/mutual-authentication.html).
- `rfc9440`: `Client-Cert` and `Client-Cert-Chain` (RFC 9440 §2), as Cloudflare sends them.
- `pem`: plain PEM, one or several blocks, its line breaks possibly turned into spaces.
- `der-base64`: base64 DER, several separated by ",".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, unquote

from cryptography import x509

from sidecar import errors
from sidecar.core.bounded_cache import BoundedCache
from sidecar.errors import OAuthError

__all__ = [
    "MAX_CERTIFICATES",
    "MAX_HEADER_CHARS",
    "ClientCertificate",
    "parse_client_certificate",
    "x5t_s256",
]

# Limits on the work one header can cause. A client certificate is 1-2 KiB of PEM and real
# chains are 2-4 deep; these leave ample room and still bound the parse.
MAX_HEADER_CHARS = 64 * 1024
MAX_CERTIFICATES = 10  # the leaf and the chain together
# Header values memoised by the parse cache are at most this long, so the cache holds at most
# 256 entries of 32 KiB: longer (legitimate but unusual) values are simply parsed each time.
_CACHE_MAX_CHARS = 16 * 1024

_RESULT_CODE = "mtls.bad_certificate_header"
_BLANKS = " \t\r\n"

_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
_PEM_END = "-----END CERTIFICATE-----"
_PEM_BLOCK = re.compile(re.escape(_PEM_BEGIN) + r"(.*?)" + re.escape(_PEM_END), re.DOTALL)
# A header value may hold visible ASCII, and the whitespace of a PEM (newlines only where it
# did not travel in an HTTP header, e.g. the decision API). NUL, other controls and anything
# non-ASCII are refused before any decoding.
_FORBIDDEN_CHAR = re.compile(r"[^\t\n\r\x20-\x7e]")
_BAD_PERCENT_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_WHITESPACE = re.compile(r"\s+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_BASE64URL_ONLY = re.compile(r"[-_]")

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


# ---------------------------------------------------------------------------------------
# The result.


@dataclass(frozen=True, slots=True, repr=False)
class ClientCertificate:
    """A client certificate as presented by the client; parsed, not yet trusted."""

    der: bytes  # the leaf (client) certificate, DER
    chain: tuple[bytes, ...]  # DER of the further certificates presented, leaf excluded, in order
    x5t_s256: str  # RFC 8705 §3.1: base64url(SHA-256(DER)) without padding

    @classmethod
    def from_der(cls, der: bytes, chain: tuple[bytes, ...] = ()) -> ClientCertificate:
        """Build from DER the caller has already checked; computes the thumbprint."""
        return cls(der=der, chain=chain, x5t_s256=x5t_s256(der))

    def pem(self) -> str:
        return _to_pem(self.der)

    def url_encoded_pem(self) -> str:
        """The leaf PEM percent-encoded like nginx's `$ssl_client_escaped_cert`.

        Everything outside RFC 3986 unreserved characters is escaped (newlines, spaces,
        "+", "/", "="), so the value is pure ASCII with no whitespace: safe as a header value
        (`X-Token-Client-Cert`), and `urllib.parse.unquote` gives the PEM back.
        """
        return quote(self.pem(), safe="")

    def chain_pems(self) -> tuple[str, ...]:
        return tuple(_to_pem(der) for der in self.chain)

    def certificate(self) -> x509.Certificate:
        """The leaf, parsed (it was validated as X.509 when this object was built)."""
        return x509.load_der_x509_certificate(self.der)

    def __repr__(self) -> str:
        return f"ClientCertificate(x5t_s256={self.x5t_s256!r}, chain_length={len(self.chain)})"


def x5t_s256(der: bytes) -> str:
    """RFC 8705 §3.1: the base64url-encoded SHA-256 of the DER certificate, no padding."""
    digest = hashlib.sha256(der).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _to_pem(der: bytes) -> str:
    # RFC 7468 §2: base64 in lines of 64 characters between the encapsulation boundaries.
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([_PEM_BEGIN, *lines, _PEM_END]) + "\n"


# ---------------------------------------------------------------------------------------
# Entry point.


# The same client sends the same certificate on every request (and a proxy in front of many
# replicas sends the same few): memoise, in a cache the caller may hand in (`cache=None`:
# none). Results are immutable, so sharing them is safe.
CertificateCache = BoundedCache[tuple[str, str, str | None], "ClientCertificate | OAuthError"]
DEFAULT_CERTIFICATE_CACHE: Final[CertificateCache] = BoundedCache(256)


def parse_client_certificate(
    value: str | None, fmt: str, chain_value: str | None = None, *,
    cache: CertificateCache | None = DEFAULT_CERTIFICATE_CACHE,
) -> ClientCertificate | OAuthError | None:
    """Parse the proxy's client-certificate header (and its separate chain header, if any).

    Returns `None` when the proxy forwarded no certificate, the certificate otherwise, and
    `invalid_request` (`mtls.bad_certificate_header`) for anything that does not parse.
    """
    if value is None or not value.strip(_BLANKS):
        return None
    if chain_value is not None and not chain_value.strip(_BLANKS):
        chain_value = None
    if len(value) > MAX_HEADER_CHARS or len(chain_value or "") > MAX_HEADER_CHARS:
        return _bad("the header is too large")
    if cache is None or len(value) + len(chain_value or "") > _CACHE_MAX_CHARS:
        return _parse(value, fmt, chain_value)
    key = (value, fmt, chain_value)
    cached = cache.get(key)
    if cached is None:
        cached = _parse(value, fmt, chain_value)
        if cached is not None:
            cache.put(key, cached)
    return cached


class _MalformedError(Exception):
    """Raised inside the parsers; turned into `invalid_request` at the edge of the module."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _bad(reason: str) -> OAuthError:
    return errors.invalid_request(
        _RESULT_CODE, f"The client certificate header is malformed: {reason}."
    )


def _parse(value: str, fmt: str, chain_value: str | None) -> ClientCertificate | OAuthError | None:
    decoders = _FORMATS.get(fmt)
    if decoders is None:
        # settings.py refuses an unknown format at startup; reaching this is a wiring bug,
        # which is the sidecar's fault and not the client's.
        return errors.server_error(
            "mtls.unknown_format", "The sidecar is misconfigured.", f"unknown format {fmt!r}"
        )
    decode_value, decode_chain = decoders
    try:
        _check_characters(value)
        certs = decode_value(value)
        if certs is None:
            return None
        extra: list[bytes] = []
        if chain_value is not None:
            _check_characters(chain_value)
            extra = decode_chain(chain_value)
        return _assemble(certs, extra)
    except _MalformedError as exc:
        return _bad(exc.reason)
    except Exception as exc:  # a malformed header must never become a 500
        # Defence in depth: every decoder above raises _MalformedError for what it knows to be
        # wrong; anything else (a ValueError from a library on input nobody foresaw) is still
        # the header's fault.
        return _bad("the value cannot be decoded").with_detail(type(exc).__name__)


def _check_characters(text: str) -> None:
    if _FORBIDDEN_CHAR.search(text):
        raise _MalformedError("it contains control or non-ASCII characters")


def _assemble(certs: list[bytes], extra_chain: list[bytes]) -> ClientCertificate:
    """The first certificate is the leaf; the rest, then the separate chain header, its chain.

    A copy of the leaf in the chain is dropped: Envoy's XFCC `Chain` and some proxies' chain
    headers include it, RFC 9440's `Client-Cert-Chain` does not (RFC 9440 §2). So is a
    certificate given twice (XFCC `Chain` plus a separate chain header).
    """
    if not certs:
        raise _MalformedError("it holds no certificate")
    leaf = certs[0]
    chain = tuple(der for der in dict.fromkeys(certs[1:] + extra_chain) if der != leaf)
    if 1 + len(chain) > MAX_CERTIFICATES:
        raise _MalformedError("it holds too many certificates")
    for der in (leaf, *chain):
        _check_x509(der)
    return ClientCertificate.from_der(leaf, chain)


def _check_x509(der: bytes) -> None:
    try:
        x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise _MalformedError("it holds something that is not an X.509 certificate") from exc


def _limit_count(count: int) -> None:
    # Counted before anything is decoded, so a header of thousands of tiny certificates costs
    # one scan and not thousands of base64 and ASN.1 parses.
    if count > MAX_CERTIFICATES:
        raise _MalformedError("it holds too many certificates")


# ---------------------------------------------------------------------------------------
# Building blocks: percent-encoding, base64, PEM.


def _percent_decode(text: str) -> str:
    """Percent-decode strictly, and without turning "+" into a space.

    nginx and Envoy escape "+" as %2B, but ALB leaves "+" unescaped (it is one of its "safe"
    characters), so "+" is a literal here, never the form-encoding of a space: that is
    `unquote`, not `unquote_plus`. A "%" not followed by two hex digits is refused instead of
    being passed through as `unquote` would.
    """
    if _BAD_PERCENT_ESCAPE.search(text):
        raise _MalformedError("it has a bad percent-escape")
    try:
        decoded = unquote(text, encoding="ascii", errors="strict")
    except UnicodeDecodeError as exc:
        raise _MalformedError("it has a percent-escape of a non-ASCII byte") from exc
    _check_characters(decoded)
    return decoded


def _b64decode(text: str, *, urlsafe: bool = False) -> bytes:
    """Decode base64 strictly: only the alphabet, "=" only at the end; padding optional."""
    if urlsafe and _BASE64URL_ONLY.search(text):
        text = text.replace("-", "+").replace("_", "/")
    text = text.rstrip("=")
    if len(text) % 4 == 1 or not _BASE64.fullmatch(text):
        raise _MalformedError("it is not valid base64")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise _MalformedError("it is not valid base64") from exc


def _pem_certificates(text: str) -> list[bytes]:
    """The DER of each `CERTIFICATE` block; nothing but whitespace may surround them.

    Whitespace inside a block is ignored, which accepts a PEM whose line breaks a proxy
    replaced by spaces (a header cannot carry a newline) and nginx's deprecated
    `$ssl_client_cert`, where every line after the first starts with a tab (nginx
    `ngx_ssl_get_certificate`), whatever the HTTP parser made of the folded lines.
    """
    _limit_count(text.count(_PEM_BEGIN))
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        raise _MalformedError("it holds no PEM certificate")
    if _PEM_BLOCK.sub("", text).strip():
        raise _MalformedError("it has text outside the PEM certificates, or a truncated one")
    return [_b64decode(_WHITESPACE.sub("", body)) for body in blocks]


def _base64_der_list(text: str) -> list[bytes]:
    members = text.split(",")
    _limit_count(len(members))
    ders = []
    for member in members:
        token = member.strip()
        if not token:
            raise _MalformedError("it has an empty member")
        ders.append(_b64decode(token, urlsafe=True))
    return ders


# ---------------------------------------------------------------------------------------
# The formats. Each decoder returns the certificates in the header, leaf first, or None
# when the header says there is no certificate; each raises _MalformedError.


def _url_encoded_pem(text: str) -> list[bytes]:
    """nginx `$ssl_client_escaped_cert` and AWS ALB `X-Amzn-Mtls-Clientcert[-Leaf]`.

    nginx escapes everything but unreserved characters; ALB writes "URL-encoded PEM format
    with +=/ as safe characters" and, in mTLS passthrough mode, the whole chain as several
    PEM blocks, leaf first (ALB user guide, "Mutual authentication with TLS"). One decoder
    reads both, and a PEM that was not escaped at all.
    """
    pem = _percent_decode(text)
    # Should a proxy form-encode the space of the boundaries as "+" (the ALB documentation
    # shows no example), "+" still cannot be a space anywhere else: it is base64.
    pem = pem.replace("BEGIN+CERTIFICATE", "BEGIN CERTIFICATE")
    return _pem_certificates(pem.replace("END+CERTIFICATE", "END CERTIFICATE"))


def _plain_pem(text: str) -> list[bytes]:
    return _pem_certificates(text)


def _traefik(text: str) -> list[bytes]:
    """Traefik passTLSClientCert `pem: true`: each certificate's PEM without its boundaries and
    line breaks (i.e. base64 DER), joined with ",", leaf first (Traefik
    pkg/middlewares/passtlsclientcert, `getCertificates` and `sanitize`).

    Traefik v1/v2 `url.QueryEscape`d the whole value ("," as %2C); v3 sends it as is. Base64
    holds no "%", so percent-decoding first reads both.
    """
    return _base64_der_list(_percent_decode(text))


def _sf_binary_item(text: str) -> list[bytes]:
    """RFC 9440 §2.1 `Client-Cert`: an RFC 8941 Item whose value is a Byte Sequence of the DER.

    RFC 8941 §4.2.7: base64 with the standard alphabet; a parser SHOULD NOT fail when the
    "=" padding is missing.
    """
    match = _SF_BINARY_ITEM.fullmatch(text)
    if match is None:
        raise _MalformedError("it is not a structured-field byte sequence")
    return [_b64decode(match.group(1))]


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
            raise _MalformedError("it is not a structured-field list of byte sequences")
        ders.append(_b64decode(match.group(1)))
        _limit_count(len(ders))
        position = match.end()
        if position == len(text):
            return ders
        separator = _SF_LIST_SEPARATOR.match(text, position)
        if separator is None or separator.end() == len(text):
            raise _MalformedError("it is not a structured-field list of byte sequences")
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
    _limit_count(len(elements))
    fields: dict[str, str] = {}
    for key, field_value in elements[-1]:
        if key in ("cert", "chain"):
            if key in fields:
                raise _MalformedError(f"its XFCC element repeats {key.title()}")
            fields[key] = field_value
    cert, chain = fields.get("cert", ""), fields.get("chain", "")
    leaf = _url_encoded_pem(cert) if cert else []
    if len(leaf) > 1:
        raise _MalformedError("its XFCC Cert holds more than one certificate")
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
        raise _MalformedError("it is not a valid XFCC key=value list")
    return key.lower(), equals + 1


def _xfcc_value(text: str, position: int) -> tuple[str, int]:
    """Read a value from `position`; return it and the index of the ";" or "," after it."""
    quoted = _XFCC_QUOTED.match(text, position)
    if quoted is not None:
        after = _XFCC_AFTER_QUOTED.match(text, quoted.end())
        if after is None:
            raise _MalformedError("it has text after a quoted XFCC value")
        return _XFCC_ESCAPE.sub(r"\1", quoted.group(1)), after.end()
    unquoted = _XFCC_UNQUOTED.match(text, position)
    assert unquoted is not None  # the pattern matches the empty string
    value = unquoted.group(0).strip()
    if '"' in value:
        # An opening quote with no closing one lands here too.
        raise _MalformedError("it has an unterminated or stray quote in an XFCC value")
    return value, unquoted.end()


_Decoder = Callable[[str], list[bytes] | None]
_ChainDecoder = Callable[[str], list[bytes]]

# format -> (decoder of the certificate header, decoder of the separate chain header).
# A separate chain header uses the encoding of the certificate header, except for RFC 9440
# (its own Client-Cert-Chain list) and Envoy, where it is the URL-encoded PEM of the custom
# header formatter %DOWNSTREAM_PEER_CHAIN%, the same encoding as the XFCC Chain value.
_FORMATS: dict[str, tuple[_Decoder, _ChainDecoder]] = {
    "nginx": (_url_encoded_pem, _url_encoded_pem),
    "envoy-xfcc": (_envoy_xfcc, _url_encoded_pem),
    "traefik": (_traefik, _traefik),
    "aws-alb": (_url_encoded_pem, _url_encoded_pem),
    "rfc9440": (_sf_binary_item, _sf_binary_list),
    "pem": (_plain_pem, _plain_pem),
    "der-base64": (_base64_der_list, _base64_der_list),
}
