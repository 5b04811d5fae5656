"""OAuth errors as values.

Every refusal the sidecar makes is an `OAuthError`: the RFC error code the client sees, the
HTTP status, a short description, a stable dotted `result_code` for logs and metrics, and a
`detail` that is logged but never sent (it may name what was expected). Errors are frozen;
`with_` builders return copies, so module-level constants can be shared safely.

One factory per RFC error code keeps the codes spelled once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class OAuthError:
    code: str
    description: str
    result_code: str
    status: int = 400
    detail: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    def with_detail(self, detail: str) -> OAuthError:
        return replace(self, detail=detail)

    def with_headers(self, *headers: tuple[str, str]) -> OAuthError:
        return replace(self, headers=self.headers + headers)

    @property
    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


def _factory(code: str, status: int = 400) -> _ErrorFactory:
    return _ErrorFactory(code, status)


@dataclass(frozen=True, slots=True)
class _ErrorFactory:
    code: str
    status: int

    def __call__(self, result_code: str, description: str, detail: str = "") -> OAuthError:
        return OAuthError(self.code, description, result_code, self.status, detail)


# RFC 6749 §5.2
invalid_request = _factory("invalid_request")
invalid_client = _factory("invalid_client", 401)
invalid_grant = _factory("invalid_grant")
unauthorized_client = _factory("unauthorized_client")
unsupported_grant_type = _factory("unsupported_grant_type")
invalid_scope = _factory("invalid_scope")
# RFC 8707 §2
invalid_target = _factory("invalid_target")
# RFC 9396 §5
invalid_authorization_details = _factory("invalid_authorization_details")
# RFC 9449 §5, §8
invalid_dpop_proof = _factory("invalid_dpop_proof")
use_dpop_nonce = _factory("use_dpop_nonce")
# RFC 6750 §3.1 (and RFC 9449 §7.1): the resource side's refusals
invalid_token = _factory("invalid_token", 401)
insufficient_scope = _factory("insufficient_scope", 403)
# draft-ietf-oauth-attestation-based-client-auth §6
invalid_client_attestation = _factory("invalid_client_attestation")
use_attestation_challenge = _factory("use_attestation_challenge")
use_fresh_attestation = _factory("use_fresh_attestation")
# The sidecar's own failures (RFC 6749 §5.2 has no code for these; the names follow the
# authorization-endpoint codes of RFC 6749 §4.1.2.1).
server_error = _factory("server_error", 500)
temporarily_unavailable = _factory("temporarily_unavailable", 503)
bad_gateway = _factory("server_error", 502)
gateway_timeout = _factory("temporarily_unavailable", 504)
payload_too_large = _factory("invalid_request", 413)
method_not_allowed = _factory("invalid_request", 405)
request_timeout = _factory("invalid_request", 408)  # RFC 9110 §15.5.9: too slow to send it
unsupported_media_type = _factory("invalid_request", 415)
