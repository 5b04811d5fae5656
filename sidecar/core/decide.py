"""The decision: a parsed token request in, a `Decision` out (SPEC step 3).

`decide` runs `STEPS` in order; each step reads the request and what earlier steps found
(`Facts`), and either records more facts or returns the `OAuthError` that ends the request.
Reading the list is reading the pipeline. Steps that need the store are async; nothing here
imports aiohttp or redis, so the same core serves the proxy and the decision API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sidecar.core.client_auth import ClientCredentials, extract_client_credentials
from sidecar.core.grants import GrantResult, validate_grant
from sidecar.core.mtls import ClientCertificate, parse_client_certificate
from sidecar.errors import OAuthError
from sidecar.model import Action, Decision, Forward, Respond, Summary, TokenRequest
from sidecar.ports import Clock, ReplayStore
from sidecar.settings import GrantsSettings, Settings


@dataclass(frozen=True, slots=True)
class Policy:
    """What the steps need from the configuration, computed once at start-up."""

    cert_format: str
    grants: GrantsSettings

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(cert_format=settings.trust.client_cert_format, grants=settings.grants)


@dataclass(frozen=True, slots=True)
class Env:
    policy: Policy
    store: ReplayStore
    clock: Clock


@dataclass(slots=True)
class Facts:
    """What the steps have established so far about one request."""

    certificate: ClientCertificate | None = None
    client: ClientCredentials | None = None
    grant: GrantResult | None = None
    context: list[tuple[str, str]] = field(default_factory=list)

    def summary(self, result_code: str, message: str) -> Summary:
        client = self.client
        return Summary(
            result_code=result_code,
            message=message,
            grant_type=self.grant.grant_type if self.grant else "",
            client_id=(client.client_id or "") if client else "",
            auth_method=client.method if client else "",
        )


Step = Callable[[TokenRequest, Facts, Env], Awaitable[OAuthError | None]]


async def read_certificate(request: TokenRequest, facts: Facts, env: Env) -> OAuthError | None:
    parsed = parse_client_certificate(
        request.client_cert_header, env.policy.cert_format, request.client_cert_chain_header)
    if isinstance(parsed, OAuthError):
        return parsed
    facts.certificate = parsed
    return None


async def identify_client(request: TokenRequest, facts: Facts, env: Env) -> OAuthError | None:
    credentials = extract_client_credentials(
        request.authorization, request.parameters, facts.certificate is not None)
    if isinstance(credentials, OAuthError):
        return credentials
    facts.client = credentials
    return None


async def check_grant(request: TokenRequest, facts: Facts, env: Env) -> OAuthError | None:
    result = validate_grant(request.parameters, env.policy.grants)
    if isinstance(result, OAuthError):
        return result
    facts.grant = result
    return None


STEPS: Sequence[Step] = (
    read_certificate,
    identify_client,
    check_grant,
)


async def decide(request: TokenRequest, env: Env, steps: Sequence[Step] = STEPS) -> Decision:
    facts = Facts()
    for step in steps:
        error = await step(request, facts, env)
        if error is not None:
            return Respond(error, facts.summary(error.result_code, error.description))
    return _forward(facts)


def _forward(facts: Facts) -> Forward:
    grant, client, cert = facts.grant, facts.client, facts.certificate
    assert grant is not None and client is not None  # every step ran
    context: list[tuple[str, str]] = [
        ("Action", grant.action.value),
        ("Grant-Type", grant.grant_type),
        ("Client-Auth-Method", client.method),
        ("Client-Authenticated", "false"),
    ]
    if client.client_id:
        context.append(("Client-Id", client.client_id))
    if cert is not None:
        context.append(("Client-Cert-S256", cert.x5t_s256))
        context.append(("Client-Cert", cert.url_encoded_pem()))
    context.extend(grant.context)
    context.extend(facts.context)
    message = f"{grant.grant_type} request is valid"
    return Forward(
        action=grant.action,
        summary=facts.summary(_result_code(grant.action), message),
        context=tuple(context),
        cert_s256=cert.x5t_s256 if cert else None,
    )


def _result_code(action: Action) -> str:
    return f"token.{action.value.lower()}"
