"""The `token-sidecar` command: serve, check-config, metadata, demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence

from sidecar import __version__
from sidecar.adapters import check_store
from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.core.clients.loading import load_registry
from sidecar.core.clients.model import Registry
from sidecar.core.metadata import enforced_fields
from sidecar.core.policy import Policy
from sidecar.demo import DemoPorts, demo_settings, run_demo
from sidecar.http.decision_api import api_keys_of
from sidecar.logs import configure_logging
from sidecar.serve import run
from sidecar.settings import ConfigError, Settings, load_settings

EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="token-sidecar", description=__doc__)
    parser.add_argument("--version", action="version", version=f"token-sidecar {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the sidecar")
    serve.add_argument("--config", required=True, help="TOML configuration file")
    check = commands.add_parser(
        "check-config", help="validate a configuration, or a client registry, and exit")
    check.add_argument("--config", help="TOML configuration file")
    check.add_argument("--registry", help="a client registry file (clients.registry_file) "
                       "to check on its own")
    meta = commands.add_parser(
        "metadata", help="print the metadata fields the sidecar writes into the upstream's "
        "discovery documents (RFC 8414)")
    meta.add_argument("--config", required=True, help="TOML configuration file")
    demo = commands.add_parser("demo", help="run an example upstream and the sidecar")
    demo.add_argument("--port", type=int, default=8080, help="sidecar port (default 8080)")
    demo.add_argument("--upstream-port", type=int, default=9000,
                      help="example upstream port (default 9000)")
    demo.add_argument("--admin-port", type=int, default=9090,
                      help="admin port: /metrics /livez /readyz (default 9090)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(DemoPorts(args.port, args.upstream_port, args.admin_port))
    if args.command == "check-config":
        if args.config is None and args.registry is None:
            check.error("give --config FILE, --registry FILE, or both")
        return _check(args.config, args.registry)
    settings = _load(args.config)
    if settings is None:
        return EXIT_CONFIG
    if args.command == "metadata":
        return _metadata(settings)
    return _serve(settings, args.config)


def _check(config: str | None, registry: str | None) -> int:
    if config is not None:
        if _load(config) is None:
            return EXIT_CONFIG
        print(f"{config}: configuration is valid")
    if registry is not None:
        try:
            clients = load_registry(registry, LOCAL_FILES)
        except ConfigError as exc:
            _print_problems(registry, exc.problems)
            return EXIT_CONFIG
        print(f"{registry}: client registry is valid: {registry_summary(clients)}")
    return 0


def registry_summary(registry: Registry) -> str:
    """`3 clients (client_secret_basic: 2, none: 1)`: what a reviewer of the file checks."""
    methods = Counter(client.token_endpoint_auth_method for client in registry)
    counts = ", ".join(f"{method}: {count}" for method, count in sorted(methods.items()))
    noun = "client" if len(registry) == 1 else "clients"
    return f"{len(registry)} {noun}" + (f" ({counts})" if counts else "")


def _load(path: str) -> Settings | None:
    """The settings, checked as deeply as serving them would: files read, URLs usable."""
    try:
        settings = load_settings(path)
        Policy.from_settings(settings, LOCAL_FILES)
        check_store(settings.store)
        api_keys_of(settings)
        return settings
    except ValueError as exc:  # the store URL or its files (check_store)
        _print_problems(path, [str(exc)])
        return None
    except ConfigError as exc:
        _print_problems(path, exc.problems)
        return None


def _print_problems(path: str, problems: list[str]) -> None:
    print(f"{path}: {len(problems)} configuration problem(s):", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)


def _metadata(settings: Settings) -> int:
    if not settings.metadata.augment:
        print("metadata.augment is off: the upstream's documents pass unchanged",
              file=sys.stderr)
        return 0
    fields = enforced_fields(settings, Policy.from_settings(settings, LOCAL_FILES)).fields()
    print(json.dumps(fields, indent=2))
    return 0


def _serve(settings: Settings, config_path: str) -> int:
    configure_logging(settings.logging.level, settings.logging.format)
    try:
        return run(settings, config_path)
    except OSError as exc:
        print(f"token-sidecar: cannot listen on {settings.server.listen} or "
              f"{settings.server.admin_listen}: {exc.strerror}", file=sys.stderr)
        return 1


def _demo(ports: DemoPorts) -> int:
    try:
        settings = demo_settings(ports, os.environ)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.logging.level, "human")
    try:
        asyncio.run(run_demo(settings, ports))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers are installed
        pass
    except OSError as exc:
        print(f"token-sidecar demo: {exc.strerror} (is port {ports.sidecar}, {ports.upstream} "
              f"or {ports.admin} in use? try --port / --upstream-port / --admin-port)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
