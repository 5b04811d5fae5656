"""The decision API's OpenAPI document (sidecar/decision-api.openapi.json) is valid OpenAPI
3.1 and names every field the handlers read and write."""

from __future__ import annotations

import json
from typing import Any

from openapi_spec_validator import validate

from sidecar.core.decision_api import introspection_call, token_answer
from sidecar.core.decision_api.token_call import FIELDS
from sidecar.http.decision_api import openapi_text


def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(openapi_text())
    return document


def _properties(schema: str) -> set[str]:
    return set(_document()["components"]["schemas"][schema]["properties"])


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(_document())  # raises on any violation


def test_the_call_schema_is_exactly_the_fields_the_handler_reads() -> None:
    assert _properties("TokenCall") == set(FIELDS)


def test_the_introspection_call_schema_is_exactly_the_fields_the_handler_reads() -> None:
    assert _properties("IntrospectionCall") == set(introspection_call.FIELDS)


def test_every_answer_field_the_handler_can_write_is_documented() -> None:
    written = {"resultCode", "resultMessage", "action", "dpopNonce", "responseContent",
               "httpStatus", "clientAuthenticated", "properties", "scopes", "resources",
               "username", "password", "audiences",
               *token_answer._CONTEXT_FIELDS.values(), *token_answer._DURATIONS.values(),
               *token_answer._EXCHANGE_FIELDS.values()}
    assert written <= _properties("TokenAnswer"), written - _properties("TokenAnswer")
