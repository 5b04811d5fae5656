"""The token sources of the resource side, in the order they are asked (README "The
resource side"): the recorded access-token binding, then a JWT access token's claims
(RFC 9068, `resource.jwks_uri`), then the upstream's introspection answer (RFC 7662,
`resource.introspection_url`). The first source that knows the token wins."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sidecar.adapters.introspection_source import introspection_source
from sidecar.adapters.jwt_source import jwt_source
from sidecar.adapters.recorded_binding import RecordedBindingSource
from sidecar.core.resource.policy import ResourcePolicy
from sidecar.core.resource.token_facts import TokenFacts
from sidecar.ports import Clock, TokenFactsSource
from sidecar.settings import Settings

if TYPE_CHECKING:
    from sidecar.http.runtime import Resources


def build_token_sources(settings: Settings, policy: ResourcePolicy, resources: Resources,
                        clock: Clock) -> tuple[TokenFactsSource, ...]:
    """The sources for `settings`, over the runtime's open resources (the store, the HTTP
    session, the JWKS cache and its fetcher): the recorded binding; JWT access tokens, their
    keys at `resource.jwks_uri` or in the upstream's metadata (a token that is not a JWT
    costs nothing there); the introspection source when `resource.introspection_url` is set,
    with the credentials the policy read."""
    sources: list[TokenFactsSource] = [
        RecordedBindingSource(resources.store, clock),
        jwt_source(settings, resources.clients.fetcher, resources.clients.jwks, clock)]
    introspection = introspection_source(settings, policy.introspection_credentials,
                                         resources.session, clock)
    if introspection is not None:
        sources.append(introspection)
    return tuple(sources)


async def first_facts(sources: tuple[TokenFactsSource, ...],
                      access_token: str) -> TokenFacts | None:
    """The facts of the first source that knows the token. A source that cannot answer
    raises (StoreError, SourceUnavailableError): the later ones are not asked, since a
    "not known" from them could turn a bound token into a bearer one. A source that knows
    the token to be invalid (a JWT that fails) raises InvalidTokenError: no later source
    may vouch for it."""
    for source in sources:
        facts = await source.facts(access_token)
        if facts is not None:
            return facts
    return None
