"""The recorded access-token binding as a token source (`sidecar.ports.TokenFactsSource`):
what the sidecar stored when it saw the token issued through its token side
(`sidecar.core.access_binding`, store kind ACCESS_BINDING). The first source the resource
side asks: no network hop beyond the store, and it works for opaque tokens too."""

from __future__ import annotations

from sidecar.core.access_binding import ACCESS_BINDING, decode_binding
from sidecar.core.resource.token_facts import TokenFacts
from sidecar.ports import Clock, ReplayStore


class RecordedBindingSource:
    """Facts from the store; a StoreError propagates (the check answers 503, fail closed)."""

    def __init__(self, store: ReplayStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def facts(self, access_token: str) -> TokenFacts | None:
        binding = decode_binding(await self._store.get_binding(ACCESS_BINDING, access_token))
        if binding is None:
            return None
        if binding.exp and binding.exp <= self._clock.now():
            return None  # the store's TTL ends it too; this covers a clock ahead of Redis
        return TokenFacts(source="recorded", jkt=binding.jkt, x5t_s256=binding.x5t_s256,
                          client_id=binding.client_id, scope=binding.scope,
                          expires_at=binding.exp)
