"""Introspection answers read strictly, and how long they are kept
(sidecar.core.resource.introspection_answer; RFC 7662 §2.2)."""

from __future__ import annotations

import json
import time

import pytest

from sidecar.core.resource.introspection_answer import (
    INACTIVE,
    Inactive,
    NotUnderstood,
    cache_seconds,
    read_answer,
)
from sidecar.core.resource.token_facts import TokenFacts

NOW = float(int(time.time()))
JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
JSON = "application/json"


def read(answer: object, status: int = 200, content_type: str = JSON
         ) -> TokenFacts | Inactive | NotUnderstood:
    return read_answer(status, content_type, json.dumps(answer).encode(), NOW, 60)


def test_an_active_bound_answer() -> None:
    facts = read({"active": True, "client_id": "app", "sub": "alice", "scope": "read",
                  "exp": int(NOW) + 60, "token_type": "DPoP", "cnf": {"jkt": JKT},
                  "iss": "https://as.example.com", "extension": {"any": "thing"}})
    assert facts == TokenFacts(source="introspection", jkt=JKT, client_id="app",
                               subject="alice", scope="read", expires_at=int(NOW) + 60)


def test_inactive_and_expired_answers() -> None:
    assert read({"active": False}) is INACTIVE
    assert read({"active": False, "cnf": "ignored"}) is INACTIVE
    assert read({"active": True, "exp": int(NOW) - 61}) is INACTIVE
    assert isinstance(read({"active": True, "exp": int(NOW) - 59}), TokenFacts)  # leeway


@pytest.mark.parametrize(("answer", "status", "content_type"), [
    ({"active": True}, 401, JSON),
    ({"active": True}, 200, "application/token-introspection+jwt"),
    ({"active": None}, 200, JSON),
    ({"active": True, "client_id": ["app"]}, 200, JSON),
    ({"active": True, "cnf": {"x5t#S256": 7}}, 200, JSON),
], ids=["401", "jwt answer", "active null", "client_id array", "x5t number"])
def test_answers_not_understood(answer: object, status: int, content_type: str) -> None:
    assert isinstance(read(answer, status, content_type), NotUnderstood)


def test_nan_is_not_json() -> None:
    body = b'{"active": true, "exp": NaN}'
    assert isinstance(read_answer(200, JSON, body, NOW, 60), NotUnderstood)


@pytest.mark.parametrize(("expires_at", "expected"), [
    (int(NOW) + 30, 30.0),  # until the token's exp
    (int(NOW) + 86400, 300.0),  # at most max_seconds
    (0, 300.0),  # no exp: max_seconds
    (int(NOW) - 5, 0.0),  # within the leeway but past: not kept
])
def test_active_answers_are_kept_until_exp_at_most_max(expires_at: int,
                                                       expected: float) -> None:
    facts = TokenFacts(source="introspection", expires_at=expires_at)
    assert cache_seconds(facts, NOW, max_seconds=300, inactive_seconds=10) == expected


def test_inactive_answers_are_kept_briefly() -> None:
    assert cache_seconds(INACTIVE, NOW, max_seconds=300, inactive_seconds=10) == 10
    assert cache_seconds(INACTIVE, NOW, max_seconds=0, inactive_seconds=10) == 0


def test_an_exp_no_float_can_hold_is_not_understood_and_no_crash() -> None:
    assert isinstance(read({"active": True, "exp": 10**400}), NotUnderstood)
