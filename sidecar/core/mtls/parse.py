"""The entry point: `parse_client_certificate` turns the proxy's header into a
`ClientCertificate`, never raises (a header that does not parse is `invalid_request`), and
memoises in a cache the caller may hand in."""

from __future__ import annotations

from typing import Final

from cryptography import x509

from sidecar import errors
from sidecar.core.bounded_cache import BoundedCache
from sidecar.core.mtls.certificate import ClientCertificate
from sidecar.core.mtls.encodings import (
    MAX_CERTIFICATES,
    MAX_HEADER_CHARS,
    MalformedError,
    check_characters,
)
from sidecar.core.mtls.formats import FORMATS
from sidecar.errors import OAuthError

# Header values memoised by the parse cache are at most this long, so the cache holds at most
# 256 entries of 32 KiB: longer (legitimate but unusual) values are simply parsed each time.
_CACHE_MAX_CHARS = 16 * 1024

_RESULT_CODE = "mtls.bad_certificate_header"
_BLANKS = " \t\r\n"


# The same client sends the same certificate on every request (and a proxy in front of many
# replicas sends the same few): memoise, in the cache the caller owns and hands in (the
# policy built at start-up; `cache=None`: none). Results are immutable, so sharing them is safe.
CertificateCache = BoundedCache[tuple[str, str, str | None], "ClientCertificate | OAuthError"]
CERTIFICATE_CACHE_SIZE: Final = 256


def certificate_cache() -> CertificateCache:
    return CertificateCache(CERTIFICATE_CACHE_SIZE)


def parse_client_certificate(
    value: str | None, fmt: str, chain_value: str | None = None, *,
    cache: CertificateCache | None = None,
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


def _bad(reason: str) -> OAuthError:
    return errors.invalid_request(
        _RESULT_CODE, f"The client certificate header is malformed: {reason}."
    )


def _parse(value: str, fmt: str, chain_value: str | None) -> ClientCertificate | OAuthError | None:
    decoders = FORMATS.get(fmt)
    if decoders is None:
        # sidecar.settings refuses an unknown format at startup; reaching this is a wiring bug,
        # which is the sidecar's fault and not the client's.
        return errors.server_error(
            "mtls.unknown_format", "The sidecar is misconfigured.", f"unknown format {fmt!r}"
        )
    decode_value, decode_chain = decoders
    try:
        check_characters(value)
        certs = decode_value(value)
        if certs is None:
            return None
        extra: list[bytes] = []
        if chain_value is not None:
            check_characters(chain_value)
            extra = decode_chain(chain_value)
        return _assemble(certs, extra)
    except MalformedError as exc:
        return _bad(exc.reason)
    except Exception as exc:  # a malformed header must never become a 500
        # Defence in depth: every decoder above raises MalformedError for what it knows to be
        # wrong; anything else (a ValueError from a library on input nobody foresaw) is still
        # the header's fault.
        return _bad("the value cannot be decoded").with_detail(type(exc).__name__)


def _assemble(certs: list[bytes], extra_chain: list[bytes]) -> ClientCertificate:
    """The first certificate is the leaf; the rest, then the separate chain header, its chain.

    A copy of the leaf in the chain is dropped: Envoy's XFCC `Chain` and some proxies' chain
    headers include it, RFC 9440's `Client-Cert-Chain` does not (RFC 9440 §2). So is a
    certificate given twice (XFCC `Chain` plus a separate chain header).
    """
    if not certs:
        raise MalformedError("it holds no certificate")
    leaf = certs[0]
    chain = tuple(der for der in dict.fromkeys(certs[1:] + extra_chain) if der != leaf)
    if 1 + len(chain) > MAX_CERTIFICATES:
        raise MalformedError("it holds too many certificates")
    for der in (leaf, *chain):
        _check_x509(der)
    return ClientCertificate.from_der(leaf, chain)


def _check_x509(der: bytes) -> None:
    try:
        x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise MalformedError("it holds something that is not an X.509 certificate") from exc
