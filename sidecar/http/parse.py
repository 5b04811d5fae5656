"""Turn an aiohttp request into a `TokenRequest` (README "What one token request goes through",
steps 1-2), or the error that ends it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from aiohttp import web

from sidecar import errors
from sidecar.core.bounded_cache import Memo
from sidecar.core.form import parse_form
from sidecar.errors import OAuthError
from sidecar.http.headers import fold, values_of
from sidecar.model import TokenRequest
from sidecar.settings import Settings

FORM_TYPE = "application/x-www-form-urlencoded"
_READ_CHUNK = 16384
_TRUSTED_PEERS_KEPT = 1024  # peer addresses whose answer is remembered, per ReadPolicy

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ReadPolicy:
    max_body_bytes: int
    cert_headers: tuple[str, ...]  # the certificate header and, if any, the chain header
    trusted_proxies: tuple[IPNetwork, ...]
    # Fast path of `is_trusted_peer`: peer address -> answer, bounded. Not part of the value.
    _peers: Memo[str | None, bool] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        networks = self.trusted_proxies
        object.__setattr__(self, "_peers", Memo(lambda remote: _is_trusted(remote, networks),
                                                _TRUSTED_PEERS_KEPT))

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadPolicy:
        trust = settings.trust
        headers = tuple(h for h in (trust.client_cert_header, trust.client_cert_chain_header) if h)
        return cls(
            max_body_bytes=settings.server.max_body_bytes,
            cert_headers=headers,
            trusted_proxies=tuple(ipaddress.ip_network(c, strict=False)
                                  for c in trust.trusted_proxies),
        )

    def is_trusted_peer(self, remote: str | None) -> bool:
        """Fast path: the answer for each peer address is kept, so a request (which asks up
        to three times) costs a dict lookup; the earlier `lru_cache` hashed the tuple of
        networks (a Python `__hash__` per network) on every call."""
        return self._peers(remote)


def _is_trusted(remote: str | None, networks: tuple[IPNetwork, ...]) -> bool:
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def check_content_type(request: web.Request) -> OAuthError | None:
    # RFC 6749 §3.2: the token endpoint takes application/x-www-form-urlencoded, and a
    # charset, when given, can only be UTF-8 (Appendix B).
    if request.content_type != FORM_TYPE:
        return errors.invalid_request(
            "request.content_type", f"The body must be {FORM_TYPE}.")
    charset = request.charset
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        return errors.invalid_request("request.charset", "The body's charset must be UTF-8.")
    return None


def check_content_encoding(request: web.Request) -> OAuthError | None:
    # The sidecar checks the body exactly as the upstream receives it: a coded body would be
    # checked in one form and acted on in another (RFC 9110 §8.4).
    codings = [c.strip().lower() for value in request.headers.getall("Content-Encoding", ())
               for c in value.split(",") if c.strip()]
    if any(c != "identity" for c in codings):
        # RFC 9110 §15.5.16: Accept-Encoding says which codings would have been accepted.
        return errors.unsupported_media_type(
            "request.content_encoding", "The body must not be content-coded (identity only).",
        ).with_headers(("Accept-Encoding", "identity"))
    return None


def check_cert_headers(request: web.BaseRequest, policy: ReadPolicy) -> OAuthError | None:
    """A trusted proxy sends the certificate header once. Two mean it appended to the
    client's own (a victim's public certificate, say) instead of replacing it, and neither
    can be believed."""
    if not policy.cert_headers or not policy.is_trusted_peer(request.remote):
        return None
    if len(values_of(request.headers, policy.cert_headers[0])) > 1:
        return _MULTIPLE_CERTIFICATES
    return None


_MULTIPLE_CERTIFICATES = errors.invalid_request(
    "request.multiple_client_certificates", "More than one client certificate header was sent.")


def trusted_cert_headers(request: web.BaseRequest,
                         policy: ReadPolicy) -> tuple[str | None, str | None]:
    """The certificate header and the chain header, from a trusted proxy only (the first
    certificate; `check_cert_headers` refuses two)."""
    certs, chains = trusted_cert_header_values(request, policy)
    return (certs[0] if certs else None), joined_chain(chains)


def joined_chain(chains: list[str]) -> str | None:
    """A chain may be a list split over several lines (RFC 9440 §2.3), joined as RFC 9110
    §5.3 says."""
    return ", ".join(chains) if chains else None


def trusted_cert_header_values(request: web.BaseRequest,
                               policy: ReadPolicy) -> tuple[list[str], list[str]]:
    """Every value of the certificate header and of the chain header, from a trusted proxy
    only, in whatever spelling it used (see `headers.fold`). Fast path: both from one pass
    over the headers (the token endpoint looked three times: ~4 µs a request)."""
    if not policy.cert_headers or not policy.is_trusted_peer(request.remote):
        return [], []
    cert = fold(policy.cert_headers[0])
    chain = fold(policy.cert_headers[1]) if len(policy.cert_headers) > 1 else None
    certs: list[str] = []
    chains: list[str] = []
    lengths = (len(cert), len(chain or ""))
    for name, value in request.headers.items():
        # Fast path: folding keeps an ASCII name's length (`lower()` may lengthen another, never
        # into an ASCII one), so a name of another length is not folded.
        if len(name) not in lengths:
            continue
        folded = fold(name)
        if folded == cert:
            certs.append(value)
        elif folded == chain:
            chains.append(value)
    return certs, chains


async def read_body(request: web.Request, limit: int) -> bytes | OAuthError:
    """Read at most `limit` bytes; a longer body is refused before it is all read."""
    length = request.content_length
    if length is not None and length > limit:
        return _too_large(limit)
    if length:
        whole = await _read_whole(request, length)
        if whole is not None:
            return whole
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(_READ_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            return _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_whole(request: web.Request, length: int) -> bytes | None:
    """Fast path for a body with a Content-Length (within the limit) that is all in, the
    usual token request: one read instead of the loop's two (whose last one only learns
    that the body ended, which the parser, counting Content-Length, already said). None
    when the body is still arriving: the loop below reads it."""
    content = request.content
    return await content.read(length) if content.is_eof() else None


def _too_large(limit: int) -> OAuthError:
    # Made when needed only: it was built (an f-string, a dataclass) on every request.
    return errors.payload_too_large(
        "request.body_too_large", f"The body is larger than {limit} bytes.")


async def read_token_request(request: web.Request, policy: ReadPolicy) -> TokenRequest | OAuthError:
    certs, chains = trusted_cert_header_values(request, policy)
    error = (_MULTIPLE_CERTIFICATES if len(certs) > 1 else None) \
        or check_content_type(request) or check_content_encoding(request)
    if error is not None:
        return error
    body = await read_body(request, policy.max_body_bytes)
    if isinstance(body, OAuthError):
        return body
    params = parse_form(body)
    if isinstance(params, OAuthError):
        return params
    headers = request.headers
    authorizations = headers.getall("Authorization", ())
    if len(authorizations) > 1:
        return errors.invalid_request("request.multiple_authorization",
                                      "More than one Authorization header was sent.")
    return TokenRequest(
        method=request.method,
        parameters=params,
        authorization=authorizations[0] if authorizations else None,
        client_cert_header=certs[0] if certs else None,
        client_cert_chain_header=joined_chain(chains),
        dpop=tuple(headers.getall("DPoP", ())),
        attestation=tuple(headers.getall("OAuth-Client-Attestation", ())),
        attestation_pop=tuple(headers.getall("OAuth-Client-Attestation-PoP", ())),
        body=body,
    )
