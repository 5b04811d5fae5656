"""Running the sidecar as a process: the two listeners, signals, reload, workers.

- SIGTERM/SIGINT: `/readyz` turns unready at once, the token listener (and the resource
  side's check listener, `resource.check_listen`) stops accepting, requests in flight get
  `server.shutdown_grace_seconds` to finish, then the admin listener stops.
- SIGHUP: the configuration file (and what it points to) is read again; a configuration that
  does not validate is refused with a log line and the old one stays in force. The listen
  addresses and the number of workers only change on restart.
- `server.workers = N`: N processes share the ports (SO_REUSEPORT); their metrics are summed
  through prometheus-client's multiprocess directory.
- `server.event_loop = "auto"`: each process runs on uvloop when it is installed, else (and
  with "asyncio") on asyncio's own loop; the start log line names it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import resource
import signal
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path

from aiohttp import web

from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.core.policy import Policy
from sidecar.gc_tuning import tune_collector
from sidecar.http.app import build_admin_app, build_app
from sidecar.http.decision_api import api_keys_of, build_api_app
from sidecar.http.resource_doors import build_check_app
from sidecar.http.runtime import STATE
from sidecar.http.server import SidecarRunner
from sidecar.logs import FIELDS_ATTRIBUTE, configure_logging
from sidecar.settings import ConfigError, Settings, load_settings

log = logging.getLogger("token_sidecar.serve")
_RESTART_ONLY = ("listen", "admin_listen", "api_listen", "workers", "event_loop", "gc")
# Descriptors besides connections: listeners, the event loop, logs, registry and JWKS fetches.
_SPARE_DESCRIPTORS = 64


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


async def serve(settings: Settings, config_path: str | None = None,
                supervisor_pid: int | None = None,
                started: Callable[[], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT (or, for a worker, until its supervisor is gone),
    then drain. `started` is called once both listeners accept connections and the signals
    are handled."""
    fit_descriptor_limit(settings)
    app = build_app(settings)
    reuse_port = settings.server.workers > 1 or None
    grace = settings.server.shutdown_grace_seconds
    token_runner = SidecarRunner(app, shutdown_timeout=grace)
    # The doors that serve the token application's runtime: the resource side's check-only
    # listener and the decision API. They stop before it: its cleanup closes that state.
    doors = [*_check_runner(app, settings, grace), *_api_runner(app, settings)]
    # Bounded like the token port (server.admin_max_connections): the two share the
    # process's descriptors.
    admin_runner = SidecarRunner(build_admin_app(app))
    runners: list[tuple[web.BaseRunner, str]] = [
        (token_runner, settings.server.listen), *doors,
        (admin_runner, settings.server.admin_listen)]
    for runner, _ in runners:
        await runner.setup()
    try:
        for runner, listen in runners:
            host, port = split_listen(listen)
            await web.TCPSite(runner, host, port, reuse_port=reuse_port).start()
        tune_collector(settings.server.gc)  # every startup object exists now
        _log_serving(settings)
        await _until_stopped(app, config_path, supervisor_pid, started)
        app[STATE].draining = True
        log.info("draining: finishing requests in flight")
    finally:
        for runner, _ in [*doors, (token_runner, ""), (admin_runner, "")]:
            await runner.cleanup()
    log.info("stopped")


def _check_runner(app: web.Application, settings: Settings,
                  grace: float) -> list[tuple[web.BaseRunner, str]]:
    """The resource side's check-only listener (Envoy ext_authz, nginx auth_request, Traefik
    forwardAuth), when configured."""
    check_listen = _check_listen(settings)
    if not check_listen:
        return []
    return [(SidecarRunner(build_check_app(app), shutdown_timeout=grace), check_listen)]


def _api_runner(app: web.Application, settings: Settings) -> list[tuple[web.BaseRunner, str]]:
    """The decision API's listener, when `server.api_listen` is set. Its keys are read before
    anything listens: without one it does not start (ConfigError)."""
    keys = api_keys_of(settings)
    if keys is None:
        return []
    api = build_api_app(app, keys, settings.api.max_body_bytes)
    return [(SidecarRunner(api), settings.server.api_listen)]


def _log_serving(settings: Settings) -> None:
    loop = running_loop_name()
    check = _check_listen(settings)
    message = (f"serving on {settings.server.listen} (admin {settings.server.admin_listen}"
               f"{f', resource check {check}' if check else ''}), event loop {loop}")
    log.info(message, extra={FIELDS_ATTRIBUTE: {
        "message": message, "listen": settings.server.listen,
        "admin_listen": settings.server.admin_listen, "check_listen": check,
        "event_loop": loop, "gc": settings.server.gc,
        "gc_frozen_objects": gc.get_freeze_count()}})


def running_loop_name() -> str:
    """"uvloop" or "asyncio": which event loop runs this process."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.split(".", 1)[0] == "uvloop" else "asyncio"


def fit_descriptor_limit(settings: Settings) -> None:
    """Past the descriptor limit the kernel refuses connections before the sidecar can choose
    which to close (README "Slow and idle clients"): raise the soft limit toward the hard one
    as far as `server.max_connections` needs, and say so when even that is short."""
    needed = descriptors_needed(settings)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft < needed:
        log.warning("server.max_connections = %d needs about %d file descriptors with the "
                    "other listeners' bounds and the upstream and store pools; the limit is "
                    "%d: lower server.max_connections or raise the limit (ulimit -n)",
                    settings.server.max_connections, needed, soft)


def _check_listen(settings: Settings) -> str:
    """Where the resource side's check-only listener listens; "" when it does not."""
    return settings.resource.check_listen if settings.resource.enabled else ""


def descriptors_needed(settings: Settings) -> int:
    """The descriptors one worker may hold at once: every listener's connection bound (the
    token port's, the admin port's, and `server.max_connections` again for each of the
    resource check listener and the decision API when they listen: each has its own table),
    two upstream pools of `upstream.pool_size` (the token hop's, sidecar/http/upstream_client.py,
    and the streamed pass-through's), the store's connections, and a margin for the rest."""
    server = settings.server
    doors = bool(_check_listen(settings)) + bool(server.api_listen)
    return (server.max_connections * (1 + doors) + server.admin_max_connections
            + 2 * settings.upstream.pool_size + settings.store.max_connections
            + _SPARE_DESCRIPTORS)


async def _until_stopped(app: web.Application, config_path: str | None,
                         supervisor_pid: int | None,
                         started: Callable[[], None] | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if config_path is not None:
        loop.add_signal_handler(signal.SIGHUP, reload, app, config_path)
    if started is not None:
        started()  # only now: a signal sent by whoever saw it drains instead of killing
    watchdog = None
    if supervisor_pid is not None:
        watchdog = asyncio.create_task(_watch_supervisor(supervisor_pid, stop))
    await stop.wait()
    if watchdog is not None:
        watchdog.cancel()


async def _watch_supervisor(supervisor_pid: int, stop: asyncio.Event) -> None:
    # A worker whose supervisor was killed (SIGKILL cannot be forwarded) must not live on
    # holding the port: it drains and exits like on SIGTERM.
    while os.getppid() == supervisor_pid:
        await asyncio.sleep(1.0)
    log.warning("supervisor %d is gone; stopping", supervisor_pid)
    stop.set()


def reload(app: web.Application, config_path: str) -> bool:
    """Re-read the configuration; keep the old one when the new one does not validate."""
    state = app[STATE]
    try:
        settings = load_settings(config_path)
        policy = Policy.from_settings(settings, LOCAL_FILES)
    except ConfigError as exc:
        state.metrics.config_reloads.labels("refused").inc()
        log.error("configuration reload refused, the previous configuration stays in force: %s",
                  "; ".join(exc.problems))
        return False
    pending = [f"server.{key}" for key in _RESTART_ONLY
               if getattr(settings.server, key) != getattr(state.settings.server, key)]
    if (settings.resource.enabled, settings.resource.check_listen) != (
            state.settings.resource.enabled, state.settings.resource.check_listen):
        pending.append("resource.check_listen")  # the listener is opened at start only
    if pending:
        log.warning("configuration reloaded; these keys take effect on restart: %s",
                    ", ".join(pending))
    configure_logging(settings.logging.level, settings.logging.format)
    state.swap(settings, policy)
    state.metrics.config_reloads.labels("applied").inc()
    log.info("configuration reloaded")
    return True


def run_on_event_loop(main: Coroutine[object, object, None], event_loop: str) -> None:
    """Run `main` to completion like `asyncio.run`, on uvloop when `event_loop` is "auto" and
    uvloop is installed (its sockets and callbacks cost the sidecar less CPU per request)."""
    with asyncio.Runner(loop_factory=_loop_factory(event_loop)) as runner:
        runner.run(main)


def _loop_factory(event_loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if event_loop == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415 - optional at import time: "auto" falls back
    except ImportError:
        return None
    return uvloop.new_event_loop


# ---------------------------------------------------------------------------------------
# Workers.


def run(settings: Settings, config_path: str | None) -> int:
    """The `serve` command: one process, or a supervisor of `server.workers` processes."""
    if settings.server.workers == 1:
        run_on_event_loop(serve(settings, config_path), settings.server.event_loop)
        return 0
    return _supervise(settings, config_path)


def _supervise(settings: Settings, config_path: str | None) -> int:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Must be set before any worker imports prometheus-client.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="token-sidecar-metrics-")
    _clear_metric_files(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_worker, args=(config_path, settings, os.getpid()),
                               daemon=False)
               for _ in range(settings.server.workers)]
    for worker in workers:
        worker.start()

    def forward(signum: int, _frame: object) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    log.info("supervising %d workers", len(workers))
    exit_code = 0
    for worker in workers:
        worker.join()
        if worker.exitcode:
            exit_code = 1
            forward(signal.SIGTERM, None)  # one worker down: stop all, let the platform restart
    return exit_code


def _worker(config_path: str | None, settings: Settings, supervisor_pid: int) -> None:
    configure_logging(settings.logging.level, settings.logging.format)
    try:
        run_on_event_loop(serve(settings, config_path, supervisor_pid),
                          settings.server.event_loop)
    finally:
        from prometheus_client import multiprocess  # noqa: PLC0415 - only in workers

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def _clear_metric_files(directory: Path) -> None:
    for stale in directory.glob("*.db"):
        stale.unlink()


__all__ = ["ConfigError", "reload", "run", "serve", "split_listen"]
