"""The resource-side check as the doors run it: the pure halves of
`sidecar.core.resource.check` around the I/O (token sources, the replay burn), then one log
line and one count per check (README "Operating it"). Never the token, the proof or the
certificate in a log line."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sidecar.core.resource.check import (
    Allowed,
    Denied,
    decide,
    invalid_token,
    present,
    replayed,
    unavailable,
)
from sidecar.core.resource.metadata import protected_resource_metadata
from sidecar.core.resource.policy import ResourcePolicy
from sidecar.core.resource.request import ResourceRequest
from sidecar.core.target import lenient_path
from sidecar.http.metrics import Metrics
from sidecar.http.proxy import StreamingUpstream
from sidecar.http.resource_sources import build_token_sources, first_facts
from sidecar.logs import log_fields
from sidecar.ports import (
    Clock,
    InvalidTokenError,
    ReplayStore,
    SourceUnavailableError,
    StoreError,
    TokenFactsSource,
)
from sidecar.settings import Settings

if TYPE_CHECKING:
    from sidecar.http.runtime import Resources

log = logging.getLogger("token_sidecar.access")
Verdict = Allowed | Denied


@dataclass(frozen=True, slots=True)
class ResourceRuntime:
    """What the doors need, rebuilt with the rest of the runtime on reload."""

    policy: ResourcePolicy
    sources: tuple[TokenFactsSource, ...]
    store: ReplayStore
    clock: Clock
    upstream: StreamingUpstream | None  # the inline door's API; None without resource.prefixes
    prefixes: tuple[str, ...]  # lenient spellings (sidecar.http.target.lenient_path)
    under: tuple[str, ...]  # each prefix + "/", for `guards`
    metadata: bytes  # the RFC 9728 document, as served

    @classmethod
    def build(cls, settings: Settings, policy: ResourcePolicy, resources: Resources,
              clock: Clock) -> ResourceRuntime:
        resource = settings.resource
        upstream = StreamingUpstream(resources.session, dataclasses.replace(
            settings.upstream, url=resource.upstream_url)) if resource.prefixes else None
        document = protected_resource_metadata(policy, resource=resource.public_origin,
                                               issuer=settings.issuer)
        return cls(policy=policy, sources=build_token_sources(settings, policy, resources, clock),
                   store=resources.store, clock=clock, upstream=upstream,
                   prefixes=(prefixes := tuple(lenient_path(p) for p in resource.prefixes)),
                   under=tuple(prefix + "/" for prefix in prefixes),
                   metadata=json.dumps(document, separators=(",", ":")).encode())

    def guards(self, lenient: str) -> bool:
        """Is a target (its lenient reading) under one of the inline prefixes? Compared as
        a lenient upstream reads it, so /API/x and /%61pi/x are checked like /api/x.

        Fast path: one `startswith` over the tuple of `prefix + "/"`, made once (this runs
        for every request on the main listener), not a generator concatenating them."""
        return lenient in self.prefixes or lenient.startswith(self.under)


async def run_check(request: ResourceRequest, runtime: ResourceRuntime) -> Verdict:
    now = runtime.clock.now()
    presented = present(request, runtime.policy, now)
    if isinstance(presented, Denied):
        return presented
    try:
        facts = await first_facts(runtime.sources, presented.token)
    except (StoreError, SourceUnavailableError) as exc:  # fail closed, whatever failure_mode
        return unavailable(runtime.policy, "resource.source_unavailable",
                           f"{type(exc).__name__}: {exc}")
    except InvalidTokenError as exc:  # no later source may vouch for it
        return invalid_token(presented, runtime.policy, exc.reason, exc.description, str(exc))
    verdict = decide(presented, facts, runtime.policy, now)
    if isinstance(verdict, Denied) or verdict.replay is None:
        return verdict
    replay = verdict.replay  # burned last: a request refused otherwise keeps its proof
    try:
        first = await runtime.store.first_use(replay.kind, replay.value, replay.ttl_seconds)
    except StoreError as exc:
        return unavailable(runtime.policy, "store.unavailable", type(exc).__name__)
    return verdict if first else replayed(verdict, runtime.policy)


def record(verdict: Verdict, *, door: str, request_id: str, status: int, started: float,
           metrics: Metrics) -> None:
    """One count and one JSON line per check."""
    metrics.child(metrics.resource_requests, verdict.result_code).inc()
    allowed = verdict if isinstance(verdict, Allowed) else None
    denied = verdict.error if isinstance(verdict, Denied) else None
    facts = allowed.facts if allowed is not None else None
    # Fast path: the access log's direct line (sidecar/logs.py `log_fields`), as the token
    # side writes it: no `findCaller`, no `LogRecord` with only the JSON handler.
    log_fields(log, f"resource {verdict.result_code}", {
        "request_id": request_id,
        "endpoint": "resource",
        "door": door,
        "result_code": verdict.result_code,
        "status": status,
        "scheme": allowed.credentials.scheme if allowed else (
            verdict.scheme if isinstance(verdict, Denied) else None),
        "token_source": facts.source if facts else "",
        "client_id": facts.client_id if facts else "",
        "dpop_jkt": allowed.jkt if allowed else "",
        "message": denied.description if denied else "",
        "detail": denied.detail if denied else "",
        "duration_seconds": round(time.perf_counter() - started, 6),
    })
