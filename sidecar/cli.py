"""The `token-sidecar` command: serve, check-config, metadata, demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence

from sidecar.adapters import check_store
from sidecar.core.metadata import enforced_fields
from sidecar.core.policy import Policy
from sidecar.demo import demo_settings, run_demo
from sidecar.logs import configure_logging
from sidecar.serve import run
from sidecar.settings import ConfigError, Settings, load_settings

EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="token-sidecar", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the sidecar")
    serve.add_argument("--config", required=True, help="TOML configuration file")
    check = commands.add_parser("check-config", help="validate a configuration and exit")
    check.add_argument("--config", required=True, help="TOML configuration file")
    meta = commands.add_parser(
        "metadata", help="print the metadata fields the sidecar writes into the upstream's "
        "discovery documents (RFC 8414)")
    meta.add_argument("--config", required=True, help="TOML configuration file")
    demo = commands.add_parser("demo", help="run an example upstream and the sidecar")
    demo.add_argument("--port", type=int, default=8080, help="sidecar port (default 8080)")
    demo.add_argument("--upstream-port", type=int, default=9000,
                      help="example upstream port (default 9000)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args.port, args.upstream_port)
    settings = _load(args.config)
    if settings is None:
        return EXIT_CONFIG
    if args.command == "check-config":
        print(f"{args.config}: configuration is valid")
        return 0
    if args.command == "metadata":
        return _metadata(settings)
    return _serve(settings, args.config)


def _load(path: str) -> Settings | None:
    """The settings, checked as deeply as serving them would: files read, URLs usable."""
    try:
        settings = load_settings(path)
        Policy.from_settings(settings)
        check_store(settings.store)
        return settings
    except ValueError as exc:  # the store URL or its files (check_store)
        print(f"{path}: 1 configuration problem(s):\n  - {exc}", file=sys.stderr)
        return None
    except ConfigError as exc:
        print(f"{path}: {len(exc.problems)} configuration problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return None


def _metadata(settings: Settings) -> int:
    if not settings.metadata.augment:
        print("metadata.augment is off: the upstream's documents pass unchanged",
              file=sys.stderr)
        return 0
    fields = enforced_fields(settings, Policy.from_settings(settings)).fields()
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


def _demo(port: int, upstream_port: int) -> int:
    try:
        settings = demo_settings(port, upstream_port, os.environ)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.logging.level, "human")
    try:
        asyncio.run(run_demo(settings, upstream_port))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"token-sidecar demo: {exc.strerror} (is port {port} or {upstream_port} in use? "
              "try --port / --upstream-port)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
