"""Configuration: file, environment overrides, every problem named by its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.settings import ConfigError, load_settings, settings_from_mapping

EXAMPLE = Path(__file__).parent.parent / "config" / "sidecar.example.toml"
MINIMAL = {"server": {"public_token_endpoint": "https://as.example.com/token"},
           "upstream": {"url": "http://127.0.0.1:9000"}}


def test_example_config_is_valid() -> None:
    settings = load_settings(EXAMPLE, environ={})
    assert settings.server.public_token_endpoint == "https://as.example.com/token"
    assert settings.trust.client_cert_format == "nginx"


def test_defaults() -> None:
    settings = settings_from_mapping(MINIMAL, {})
    assert settings.server.listen == "0.0.0.0:8080"
    assert settings.server.token_path == "/token"
    assert settings.server.max_body_bytes == 65536
    assert (settings.server.token_path_match, settings.server.token_query_allowed) == \
        ("lenient", ())
    assert (settings.server.header_timeout_seconds, settings.server.body_timeout_seconds,
            settings.server.keepalive_timeout_seconds) == (10, 10, 75)
    assert settings.server.max_connections == 1024
    assert settings.store.url == "memory://"
    assert settings.issuer == "https://as.example.com"


def test_environment_overrides_every_kind_of_key() -> None:
    settings = settings_from_mapping(MINIMAL, {
        "TOKEN_SIDECAR_UPSTREAM_URL": "http://upstream:9001",
        "TOKEN_SIDECAR_UPSTREAM_TIMEOUT_SECONDS": "2.5",
        "TOKEN_SIDECAR_SERVER_MAX_BODY_BYTES": "1000",
        "TOKEN_SIDECAR_DPOP_REQUIRED": "true",
        "TOKEN_SIDECAR_TRUST_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.0.0/16",
        "TOKEN_SIDECAR_DPOP_ALGORITHMS": '["ES256"]',
    })
    assert settings.upstream.url == "http://upstream:9001"
    assert settings.upstream.timeout_seconds == 2.5
    assert settings.server.max_body_bytes == 1000
    assert settings.dpop.required is True
    assert settings.trust.trusted_proxies == ("10.0.0.0/8", "192.168.0.0/16")
    assert settings.dpop.algorithms == ("ES256",)


def test_required_keys_can_come_from_the_environment() -> None:
    settings = settings_from_mapping({}, {
        "TOKEN_SIDECAR_SERVER_PUBLIC_TOKEN_ENDPOINT": "https://as.example.com/token",
        "TOKEN_SIDECAR_UPSTREAM_URL": "http://127.0.0.1:9000"})
    assert settings.upstream.url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(("raw", "environ", "expected"), [
    ({"server": {"bogus": 1}}, {}, "server.bogus: unknown key"),
    ({"nope": {}}, {}, "nope: unknown section"),
    ({"server": {"listen": "8080"}}, {}, "server.listen: expected HOST:PORT"),
    ({"server": {"max_body_bytes": "big"}}, {}, "server.max_body_bytes: expected int"),
    ({"server": {"max_body_bytes": True}}, {}, "server.max_body_bytes: expected an integer"),
    ({"upstream": {"url": "ftp://x"}}, {}, "upstream.url: expected an absolute http(s) URL"),
    ({"trust": {"trusted_proxies": ["10.0.0.0/33"]}}, {}, "trust.trusted_proxies: not a CIDR"),
    ({"trust": {"client_cert_format": "iis"}}, {}, "trust.client_cert_format: must be one of"),
    ({"trust": {"drop_headers": ["X-Ok", "X Bad"]}}, {}, "trust.drop_headers: not header"),
    ({"trust": {"drop_headers": ["X-*-Mid"]}}, {}, "trust.drop_headers: not header names"),
    ({"store": {"url": "mysql://x"}}, {}, "store.url: scheme must be one of"),
    ({"server": {"max_in_flight": 0}}, {}, "server.max_in_flight: must be greater than 0"),
    ({"server": {"max_queued": -1}}, {}, "server.max_queued: must not be negative"),
    ({"server": {"queue_timeout_seconds": 0}}, {}, "server.queue_timeout_seconds: must be"),
    ({"store": {"warm_connections": 0}}, {}, "store.warm_connections: must be greater"),
    ({"store": {"warm_connections": 101}}, {}, "store.warm_connections: must not exceed"),
    ({"store": {"keepalive_seconds": 0}}, {}, "store.keepalive_seconds: must be greater"),
    ({"store": {"memory_when_full": "drop"}}, {}, "store.memory_when_full: must be one of"),
    ({"grants": {"allowed": ["implicit"]}}, {}, "grants.allowed: unknown values"),
    ({"server": {"header_timeout_seconds": 0}}, {}, "server.header_timeout_seconds: must be"),
    ({"server": {"body_timeout_seconds": -1}}, {}, "server.body_timeout_seconds: must be"),
    ({"server": {"keepalive_timeout_seconds": 7200}}, {},
     "server.keepalive_timeout_seconds: must be greater than 0 and at most 3600"),
    ({"server": {"max_connections": 0}}, {}, "server.max_connections: must be"),
    ({}, {"TOKEN_SIDECAR_DPOP_REQUIRED": "maybe"}, "dpop.required (from TOKEN_SIDECAR_DPOP_"),
    # Request targets (issue 13): a guarded path must be reachable, the URL's query harmless.
    ({"server": {"token_path_match": "loose"}}, {}, "server.token_path_match: must be one of"),
    ({"server": {"token_query_allowed": ["tenant", "Grant.Type"]}}, {},
     "server.token_query_allowed: ['Grant.Type'] read as token request parameters"),
    ({"server": {"token_query_allowed": [""]}}, {}, "server.token_query_allowed: an empty"),
    ({"server": {"token_path": "/oauth/../token"}}, {}, "server.token_path: The path contains"),
    ({"server": {"token_path": "/token?x=1"}}, {}, "server.token_path: a path without a query"),
    ({"dpop": {"par_path": "/par;x"}}, {}, "dpop.par_path: The path contains ';'"),
    ({"upstream": {"url": "http://up.example/?x=1"}}, {}, "upstream.url: a URL with a query"),
    ({"upstream": {"url": "http://u:p@up.example"}}, {}, "upstream.url: a URL with user info"),
])
def test_problems_name_the_key(raw: dict[str, dict[str, object]], environ: dict[str, str],
                               expected: str) -> None:
    merged = {name: {**MINIMAL.get(name, {}), **raw.get(name, {})}
              for name in {*MINIMAL, *raw}}
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(merged, environ)
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"server": {"listen": "x", "bogus": 1}}, {})
    keys = {p.split(":")[0] for p in caught.value.problems}
    assert {"server.listen", "server.bogus", "server.public_token_endpoint", "upstream.url"} <= keys


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, environ={})
