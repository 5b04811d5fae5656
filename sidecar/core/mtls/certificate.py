"""The result: the client certificate a proxy forwarded (the leaf DER, the chain the client
presented) and its RFC 8705 §3.1 `x5t#S256` thumbprint."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from urllib.parse import quote

from cryptography import x509

from sidecar.core.mtls.encodings import PEM_BEGIN, PEM_END


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
    return "\n".join([PEM_BEGIN, *lines, PEM_END]) + "\n"
