"""The problems only a combination of keys shows: listeners that clash, paths taken twice,
what an enabled resource side needs."""

from __future__ import annotations

from sidecar.settings.sections import Settings


def cross_checks(settings: Settings) -> list[str]:
    """Problems that only a combination of keys shows."""
    problems = []
    if settings.server.workers > 1 and settings.store.url.startswith("memory:"):
        # Each worker would keep its own replay cache: a proof could pass once per worker.
        problems.append("server.workers: more than one worker needs a shared store "
                        "(store.url redis://...), not memory://")
    if settings.store.warm_connections > settings.store.max_connections:
        problems.append("store.warm_connections: must not exceed store.max_connections "
                        f"({settings.store.max_connections})")
    server = settings.server
    if _same_socket(server.listen, server.admin_listen):
        problems.append("server.admin_listen: must differ from server.listen")
    if server.api_listen and (_same_socket(server.api_listen, server.listen)
                              or _same_socket(server.api_listen, server.admin_listen)):
        problems.append("server.api_listen: must differ from server.listen and "
                        "server.admin_listen")
    if settings.server.api_listen and not settings.api.key_file:
        # The API decides who gets tokens: it never listens without a key.
        problems.append("api.key_file: required when server.api_listen is set")
    if settings.dpop.nonce_required and not settings.dpop.nonce_secret_file:
        problems.append("dpop.nonce_required: needs dpop.nonce_secret_file")
    problems.extend(_path_clashes(settings))
    problems.extend(_resource_checks(settings))
    return problems


def _resource_checks(settings: Settings) -> list[str]:
    """[resource]: what an enabled resource side needs, and what it must not take over."""
    resource = settings.resource
    if not resource.enabled:
        return []
    problems = []
    if not resource.public_origin:
        problems.append("resource.public_origin: required when resource.enabled")
    if not resource.prefixes and not resource.check_listen:
        problems.append("resource.enabled: needs resource.prefixes (inline) or "
                        "resource.check_listen (check-only), or both")
    if resource.prefixes and not resource.upstream_url:
        problems.append("resource.upstream_url: required with resource.prefixes")
    server = settings.server
    if resource.check_listen and any(
            _same_socket(resource.check_listen, other)
            for other in (server.listen, server.admin_listen, server.api_listen) if other):
        problems.append("resource.check_listen: must differ from server.listen, "
                        "server.admin_listen and server.api_listen")
    if resource.nonce_required and not (resource.nonce_secret_file
                                        or settings.dpop.nonce_secret_file):
        problems.append("resource.nonce_required: needs resource.nonce_secret_file or "
                        "dpop.nonce_secret_file")
    if resource.introspection_url and not resource.introspection_credentials_file:
        problems.append("resource.introspection_credentials_file: required with "
                        "resource.introspection_url")
    guarded = [p for p in (settings.server.token_path, settings.dpop.par_path,
                           settings.introspection.path, settings.introspection.revocation_path)
               if p]
    for prefix in resource.prefixes:
        taken = [p for p in guarded if (p.rstrip("/") + "/").lower().startswith(
            prefix.rstrip("/").lower() + "/")]
        if taken:
            problems.append(f"resource.prefixes: {prefix!r} would take over {taken[0]!r}")
    return problems


_WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]")  # noqa: S104 - names, not a bind


def _same_socket(one: str, other: str) -> bool:
    """Two listen addresses that cannot both be bound: equal, or one port where either host
    is a wildcard (0.0.0.0:8080 takes 127.0.0.1:8080 too)."""
    if one == other:
        return True
    host, _, port = one.rpartition(":")
    other_host, _, other_port = other.rpartition(":")
    return port == other_port and (host in _WILDCARD_HOSTS or other_host in _WILDCARD_HOSTS)


def _path_clashes(settings: Settings) -> list[str]:
    """Each endpoint the sidecar handles needs a path of its own."""
    claimed = {"server.token_path": settings.server.token_path}
    for name, path in (("dpop.par_path", settings.dpop.par_path),
                       ("introspection.path", settings.introspection.path),
                       ("introspection.revocation_path", settings.introspection.revocation_path)):
        if not path:
            continue
        clash = next((other for other, taken in claimed.items() if taken == path), None)
        if clash is not None:
            return [f"{name}: {path!r} is already {clash}"]
        claimed[name] = path
    return []
