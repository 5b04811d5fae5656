"""sidecar.http.resource_sources: the token sources in order, the first that knows a token
winning; a source that cannot answer stops the lookup (the check answers 503)."""

from __future__ import annotations

import pytest

from sidecar.adapters.memory import MemoryStore
from sidecar.adapters.recorded_binding import RecordedBindingSource
from sidecar.core.resource.token_facts import TokenFacts
from sidecar.http.resource_sources import first_facts
from sidecar.ports import (
    InvalidTokenError,
    SourceUnavailableError,
    SystemClock,
    TokenFactsSource,
)


class Known:
    """A source that knows some tokens (a stand-in for the JWT and introspection sources,
    which implement the same port)."""

    def __init__(self, facts: dict[str, TokenFacts]) -> None:
        self.known = facts
        self.asked: list[str] = []

    async def facts(self, access_token: str) -> TokenFacts | None:
        self.asked.append(access_token)
        return self.known.get(access_token)


class Down:
    async def facts(self, access_token: str) -> TokenFacts | None:
        raise SourceUnavailableError("jwks unreachable")


async def test_the_first_source_that_knows_the_token_wins() -> None:
    first = Known({"a": TokenFacts("recorded", jkt="k1")})
    second = Known({"a": TokenFacts("jwt", jkt="k2"), "b": TokenFacts("jwt", jkt="k3")})
    sources: tuple[TokenFactsSource, ...] = (first, second)
    assert await first_facts(sources, "a") == TokenFacts("recorded", jkt="k1")
    assert second.asked == []  # not asked once the first knew
    assert await first_facts(sources, "b") == TokenFacts("jwt", jkt="k3")
    assert await first_facts(sources, "c") is None


async def test_a_source_that_cannot_answer_stops_the_lookup() -> None:
    later = Known({"a": TokenFacts("introspection")})
    with pytest.raises(SourceUnavailableError):
        await first_facts((Known({}), Down(), later), "a")
    assert later.asked == []


async def test_the_recorded_binding_is_a_source() -> None:
    source: TokenFactsSource = RecordedBindingSource(
        MemoryStore(max_entries=10, prefix="t:", clock=SystemClock()), SystemClock())
    assert await first_facts((source,), "unknown") is None


class Refusing:
    async def facts(self, access_token: str) -> TokenFacts | None:
        raise InvalidTokenError("jwt.expired", "The access token has expired.")


async def test_a_source_that_knows_the_token_invalid_stops_the_lookup() -> None:
    """A JWT that fails is never handed to introspection for a second opinion."""
    later = Known({"a": TokenFacts("introspection", jkt="k")})
    with pytest.raises(InvalidTokenError, match=r"jwt\.expired"):
        await first_facts((Known({}), Refusing(), later), "a")
    assert later.asked == []
