"""What a registered secret may be (sidecar.core.clients.secret_policy)."""

from __future__ import annotations

import pytest

from sidecar.core.clients.secret_policy import valid_secret_text


@pytest.mark.parametrize(("secret", "ok"), [
    ("plain", True),
    ("p+ss%20w:rd é ✓", True),
    ("with space", True),
    ("", False),
    ("tab\there", False),
    ("nul\x00", False),
    ("del\x7f", False),
    ("c1\x85", False),
    ("surrogate\ud800", False),
])
def test_valid_secret_text(secret: str, ok: bool) -> None:
    assert valid_secret_text(secret) is ok
