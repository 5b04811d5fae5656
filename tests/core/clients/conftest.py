from __future__ import annotations

import json
from pathlib import Path

import pytest
import trustme

from tests.core.clients.support import SECRET, ec_jwk


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "billing.secret").write_text(SECRET + "\n", encoding="utf-8")
    (tmp_path / "jwt.secret").write_text("a" * 40, encoding="utf-8")
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [ec_jwk(kid="f")]}))
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return tmp_path
