"""The decision core driven the way the HTTP shell drives it: settings -> `Policy` -> `Env`
(sidecar/http/runtime.py builds the same one), with the store `store.url` names (memory://,
or a Redis that is down), the fake clock, scripted JWKS documents and the real secret
verifier. No HTTP: what goes in is a `TokenRequest`, what comes out a `Decision`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sidecar.adapters import open_store
from sidecar.core.jwks import CachingJwksSource
from sidecar.core.policy import Policy
from sidecar.core.secrets import SecretVerifier
from sidecar.core.steps import Env, Facts, burn_replays
from sidecar.errors import OAuthError
from sidecar.model import FormParams, ReplayCheck, TokenRequest
from sidecar.ports import Clock, ReplayStore
from sidecar.settings import Settings
from tests.conftest import make_settings
from tests.support.fakes import ScriptedFetcher

UNUSED_UPSTREAM = "http://127.0.0.1:9"  # the core never calls the upstream


def pipeline_settings(base_dir: Path | None = None, **sections: dict[str, Any]) -> Settings:
    """The test settings (tests/conftest.py) with `sections` on top; files named in them are
    relative to `base_dir`, as they are to the config file."""
    settings = make_settings(UNUSED_UPSTREAM, **sections)
    return dataclasses.replace(settings, base_dir=str(base_dir)) if base_dir else settings


def pipeline_env(settings: Settings, *, clock: Clock, store: ReplayStore | None = None,
                 fetcher: ScriptedFetcher | None = None) -> Env:
    clients = settings.clients
    jwks = CachingJwksSource(ScriptedFetcher() if fetcher is None else fetcher, clock,
                             ttl_seconds=clients.jwks_cache_ttl_seconds,
                             min_refetch_seconds=clients.jwks_min_refetch_seconds,
                             stale_if_error_seconds=clients.jwks_stale_if_error_seconds)
    secrets = SecretVerifier(cache_size=clients.secret_cache_size,
                             max_concurrent_hashes=clients.max_concurrent_hash_checks)
    if store is None:  # not `store or ...`: an empty MemoryStore is falsy (it has a length)
        store = open_store(settings.store, clock)
    return Env(Policy.from_settings(settings), store, clock, jwks, secrets)


def form(**values: str) -> FormParams:
    return FormParams({name: (value,) for name, value in values.items()})


async def burn_last(env: Env, *replays: ReplayCheck) -> OAuthError | None:
    """What the pipeline's last step does with the single-use values a check returned."""
    return await burn_replays(TokenRequest("POST", form()), Facts(replays=list(replays)), env)
