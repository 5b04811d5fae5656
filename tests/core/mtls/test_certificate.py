"""The RFC 8705 §3.1 x5t#S256 thumbprint (sidecar.core.mtls.certificate)."""

from __future__ import annotations

import pytest

from sidecar.core.mtls.certificate import ClientCertificate, x5t_s256
from sidecar.core.mtls.parse import parse_client_certificate
from sidecar.settings import CERT_FORMATS
from tests.core.mtls.support import ENCODERS, KNOWN_DER, KNOWN_PEM, KNOWN_X5T_S256

# RFC 8705 §3.1 x5t#S256.


def test_x5t_s256_of_a_known_certificate() -> None:
    assert x5t_s256(KNOWN_DER) == KNOWN_X5T_S256
    result = parse_client_certificate(KNOWN_PEM, "pem")
    assert isinstance(result, ClientCertificate)
    assert result.x5t_s256 == KNOWN_X5T_S256
    assert result.pem() == KNOWN_PEM


@pytest.mark.parametrize("fmt", CERT_FORMATS)
def test_every_format_gives_the_same_thumbprint(fmt: str) -> None:
    result = parse_client_certificate(ENCODERS[fmt]((KNOWN_DER,)), fmt)
    assert isinstance(result, ClientCertificate)
    assert result.x5t_s256 == KNOWN_X5T_S256
    assert result.der == KNOWN_DER


def test_from_der_computes_the_thumbprint() -> None:
    cert = ClientCertificate.from_der(KNOWN_DER)
    assert cert.x5t_s256 == KNOWN_X5T_S256
    assert cert.chain == ()
    assert "x5t_s256" in repr(cert) and "MII" not in repr(cert)


# ---------------------------------------------------------------------------------------
