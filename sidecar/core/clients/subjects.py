"""Subject matching for tls_client_auth (RFC 8705 §2.1.2): the one expected subject, matched on
the leaf only. The registered value is parsed at load time: a `tls_client_auth_subject_dn`
that is not an RFC 4514 string is a configuration error, not a per-request surprise."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from sidecar.core.clients.dn import NormalisedDn, normalise_name, parse_dn

SubjectKind = Literal["subject_dn", "san_dns", "san_uri", "san_ip", "san_email"]


@dataclass(frozen=True, slots=True)
class SubjectMatch:
    """The one expected subject of a `tls_client_auth` client, matched on the leaf only."""

    kind: SubjectKind
    value: str  # as registered
    dn: NormalisedDn = ()  # subject_dn: RDNs in certificate (RDNSequence) order
    ip: bytes = b""  # san_ip: the address in binary form (RFC 5952 §8)

    @classmethod
    def parse(cls, key: str, value: str) -> SubjectMatch:
        """Raises ValueError naming what is wrong with `value`."""
        kind: SubjectKind = key.removeprefix("tls_client_auth_")  # type: ignore[assignment]
        if kind == "subject_dn":
            return cls(kind, value, dn=parse_dn(value))
        if kind == "san_ip":
            return cls(kind, value, ip=ipaddress.ip_address(value).packed)
        if not value or not value.isprintable():
            raise ValueError("empty or not printable")
        if kind == "san_email" and "@" not in value:
            raise ValueError("not an email address")
        return cls(kind, value)

    def matches(self, certificate: x509.Certificate) -> bool:
        if self.kind == "subject_dn":
            return normalise_name(certificate.subject) == self.dn
        names = _san(certificate)
        if self.kind == "san_dns":
            # RFC 5280 §7.2 / RFC 4343: DNS names compare case-insensitively.
            wanted = self.value.lower().rstrip(".")
            return any(n.lower().rstrip(".") == wanted
                       for n in names.get_values_for_type(x509.DNSName))
        if self.kind == "san_uri":
            return self.value in names.get_values_for_type(x509.UniformResourceIdentifier)
        if self.kind == "san_ip":
            return any(isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address)
                       and a.packed == self.ip
                       for a in names.get_values_for_type(x509.IPAddress))
        return any(_same_mailbox(self.value, m)
                   for m in names.get_values_for_type(x509.RFC822Name))


def _san(certificate: x509.Certificate) -> x509.SubjectAlternativeName:
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return x509.SubjectAlternativeName([])


def _same_mailbox(registered: str, presented: str) -> bool:
    # RFC 5280 §7.5: the local part is case-sensitive, the host part is not.
    local_a, _, host_a = registered.rpartition("@")
    local_b, _, host_b = presented.rpartition("@")
    return local_a == local_b and host_a.lower() == host_b.lower()
