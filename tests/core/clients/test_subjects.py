"""tls_client_auth subjects (sidecar.core.clients.subjects; RFC 8705 §2.1.2)."""

from __future__ import annotations

import pytest

from sidecar.core.clients.subjects import SubjectMatch


@pytest.mark.parametrize(("key", "value", "message"), [
    ("tls_client_auth_san_ip", "300.1.1.1", "does not appear to be an IPv4 or IPv6"),
    ("tls_client_auth_san_email", "nobody", "not an email"),
    ("tls_client_auth_san_dns", "bad\nname", "not printable"),
])
def test_bad_subject_values(key: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SubjectMatch.parse(key, value)


def test_ip_subjects_are_binary() -> None:
    # RFC 8705 §2.1.2 via RFC 5952 §8: compared in binary form, so any text spelling works.
    assert SubjectMatch.parse("tls_client_auth_san_ip", "2001:DB8:0:0:0:0:0:1").ip == \
        SubjectMatch.parse("tls_client_auth_san_ip", "2001:db8::1").ip
