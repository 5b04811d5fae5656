"""Certificates as client authentication (RFC 8705 §2): `tls_client_auth` against the client's
own CA bundle, `self_signed_tls_client_auth` against its registered certificates."""


from __future__ import annotations

import datetime
from typing import Final

from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from sidecar.core.client_authentication.assertions import client_keys
from sidecar.core.client_authentication.policy import Refusal
from sidecar.core.clients.model import Client
from sidecar.core.mtls.certificate import ClientCertificate
from sidecar.errors import OAuthError
from sidecar.ports import JwksSource


def _eku_allows_client_auth(_policy: verification.Policy, _certificate: x509.Certificate,
                            extension: x509.ExtendedKeyUsage | None) -> None:
    if extension is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in extension \
            and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in extension:
        raise ValueError("the certificate's extended key usage does not allow clientAuth")


def _not_a_ca(_policy: verification.Policy, _certificate: x509.Certificate,
              extension: x509.BasicConstraints | None) -> None:
    if extension is not None and extension.ca:
        raise ValueError("the client certificate is a CA certificate")


def _is_a_ca(_policy: verification.Policy, _certificate: x509.Certificate,
             extension: x509.BasicConstraints) -> None:
    if not extension.ca:
        raise ValueError("an issuer certificate is not a CA (basicConstraints)")


def _may_sign_certificates(_policy: verification.Policy, _certificate: x509.Certificate,
                           extension: x509.KeyUsage | None) -> None:
    if extension is not None and not extension.key_cert_sign:
        raise ValueError("an issuer certificate may not sign certificates (keyUsage)")


# Client PKIs are private PKIs, not the Web PKI: the profile is RFC 5280's essentials (CA
# certificates say they are CAs and may sign certificates; the leaf is not a CA and, when it
# restricts its usage, allows clientAuth), not the CA/Browser Forum rules of cryptography's
# webpki defaults, which refuse common private-CA certificates (e.g. a critical SAN next to a
# subject, as trustme and many internal CAs write it). Signatures, validity periods and the
# path itself are always checked.
_CA_POLICY: Final = (
    verification.ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, verification.Criticality.AGNOSTIC, _is_a_ca)
    .may_be_present(x509.KeyUsage, verification.Criticality.AGNOSTIC, _may_sign_certificates)
)
_EE_POLICY: Final = (
    verification.ExtensionPolicy.permit_all()
    .may_be_present(x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC,
                    _eku_allows_client_auth)
    .may_be_present(x509.BasicConstraints, verification.Criticality.AGNOSTIC, _not_a_ca)
)
MAX_CHAIN_DEPTH: Final = 8


def check_pki_certificate(certificate: ClientCertificate | None, client: Client, now: float,
                           refuse: Refusal) -> OAuthError | None:
    if certificate is None:
        return refuse("certificate_required", "A client certificate is required.")
    store, subject = client.tls_trust_store, client.tls_client_auth_subject
    assert store is not None and subject is not None  # the registry requires both
    leaf = certificate.certificate()
    verifier = (
        verification.PolicyBuilder().store(store)
        .time(datetime.datetime.fromtimestamp(now, datetime.UTC))
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, [x509.load_der_x509_certificate(d) for d in certificate.chain])
    except (verification.VerificationError, ValueError) as exc:
        return refuse("certificate_untrusted", "The client certificate is not trusted for this "
                      "client.", str(exc))
    if not subject.matches(leaf):
        return refuse("certificate_subject", "The client certificate does not have the subject "
                      "registered for this client.", f"expected {subject.kind}")
    return None


async def check_self_signed(certificate: ClientCertificate | None, client: Client,
                             jwks: JwksSource, refuse: Refusal) -> OAuthError | None:
    if certificate is None:
        return refuse("certificate_required", "A client certificate is required.")
    keys = await client_keys(client, jwks, x5t_s256=certificate.x5t_s256)
    if isinstance(keys, str):
        return refuse("jwks_unavailable", "The client's keys could not be obtained.", keys)
    # RFC 8705 §2.2: no chain validation; the certificate must be one the client registered
    # (the first x5c member of a key is that key's own certificate, RFC 7517 §4.7).
    if not any(k.x5c and k.x5c[0] == certificate.der for k in keys):
        return refuse("certificate_not_registered", "The client certificate is not one "
                      "registered for this client.")
    return None
