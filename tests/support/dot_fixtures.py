"""The `dot_server` fixture: one django-oauth-toolkit under gunicorn for the session
(tests/support/dot.py). Loaded by the root conftest (`pytest_plugins`).

Tests that use it must not stop it and revoke only the tokens they obtained themselves;
a test that needs another issuer or Host names starts a `DotServer` of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dot import DotServer


@pytest.fixture(scope="session")
def dot_server() -> Iterator[DotServer]:
    with DotServer() as server:
        yield server
