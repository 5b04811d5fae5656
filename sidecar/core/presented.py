"""What a token request presents, read before any step runs (README step 3, "Decide"): the
certificate a trusted proxy passed (RFC 8705 §2), then the client credentials (RFC 6749 §2.3),
or a legacy (drafts -00...-02) attestation sent in the body."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar import errors
from sidecar.core.attestation.legacy import LegacyAssertion, legacy_client_assertion
from sidecar.core.credentials import extract_client_credentials
from sidecar.core.mtls.certificate import ClientCertificate
from sidecar.core.mtls.parse import CertificateCache, parse_client_certificate
from sidecar.core.steps import Presented, StepContext
from sidecar.errors import OAuthError
from sidecar.model import TokenRequest
from sidecar.settings import CertFormat


@dataclass(frozen=True, slots=True)
class ReadPresented:
    """What a token request presents, read before anything is checked: the certificate a
    trusted proxy passed, then the client credentials."""

    cert_format: CertFormat
    certificates: CertificateCache
    accept_legacy_attestation: bool  # drafts -00...-02 sent the attestation in the body
    realm: str  # the Basic challenge's realm (the issuer)

    @classmethod
    def of(cls, env: StepContext) -> ReadPresented:
        policy = env.policy
        return cls(policy.cert_format, policy.certificates,
                   policy.attestation is not None
                   and policy.attestation.accept_legacy_client_assertion,
                   policy.client_auth.issuer)

    def __call__(self, request: TokenRequest) -> Presented | OAuthError:
        certificate = parse_client_certificate(
            request.client_cert_header, self.cert_format, request.client_cert_chain_header,
            cache=self.certificates)
        if isinstance(certificate, OAuthError):
            return certificate
        return self._identify_client(request, certificate)

    def _identify_client(self, request: TokenRequest,
                         certificate: ClientCertificate | None) -> Presented | OAuthError:
        params = request.parameters
        legacy: LegacyAssertion | None = None
        if self.accept_legacy_attestation:
            found = legacy_client_assertion(params)
            if isinstance(found, OAuthError):
                return found
            if found is not None:
                if request.attestation or request.attestation_pop:
                    return errors.invalid_request(
                        "attestation.multiple_methods",
                        "The request uses more than one client authentication method.")
                legacy, params = found, found.remaining
        credentials = extract_client_credentials(
            request.authorization, params, certificate is not None, realm=self.realm)
        if isinstance(credentials, OAuthError):
            return credentials
        return Presented(certificate, credentials, legacy)
