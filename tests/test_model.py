"""sidecar/model.py "Request records": the dataclasses made for every request are not frozen
(a frozen one's `__init__` cost 8% of a token request), so each of their fields is `Final`,
which mypy enforces: an assignment to one fails the type check like one to a frozen field."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
from mypy import api as mypy_api

from sidecar.core.access_binding import AccessBinding
from sidecar.core.credentials import ClientCredentials
from sidecar.core.dpop.results import DpopProof
from sidecar.core.grants.names import GrantResult
from sidecar.core.resource.check import Allowed, Denied
from sidecar.core.resource.check import Presented as ResourcePresented
from sidecar.core.resource.request import Credentials, ResourceRequest
from sidecar.core.resource.token_facts import TokenFacts
from sidecar.core.steps import Presented
from sidecar.core.target import Target
from sidecar.core.upstream_answer import AnswerEdit
from sidecar.http.proxy import UpstreamAnswer
from sidecar.http.upstream_connection import RawAnswer
from sidecar.model import Forward, ReplayCheck, Summary, TokenRequest

# Those of a token request, with and without DPoP (a count of the dataclass __init__ calls
# under load), then those of an API call on the resource side. StoreOutcome is generic, and
# mypy's Final cannot hold a type variable: it is a NamedTuple (tests/core/test_store_failures.py).
REQUEST_RECORDS: tuple[type, ...] = (
    Target, TokenRequest, ClientCredentials, Presented, GrantResult, Summary, Forward,
    RawAnswer, UpstreamAnswer, AnswerEdit, DpopProof, ReplayCheck, AccessBinding,
    ResourceRequest, Credentials, ResourcePresented, TokenFacts, Allowed, Denied)


@pytest.mark.parametrize("record", REQUEST_RECORDS, ids=lambda record: record.__name__)
def test_every_field_of_a_request_record_is_final(record: type) -> None:
    assert dataclasses.is_dataclass(record) and "__slots__" in vars(record)
    annotations = record.__annotations__  # as written (postponed evaluation): "Final[...]"
    not_final = [f.name for f in dataclasses.fields(record)
                 if not str(annotations[f.name]).startswith("Final[")]
    assert not_final == [], f"{record.__name__}: make {not_final} Final"


def test_mypy_refuses_an_assignment_to_a_field_of_a_request_record(tmp_path: Path) -> None:
    module = tmp_path / "assigns.py"
    module.write_text(textwrap.dedent("""
        from sidecar.model import Summary

        summary = Summary(result_code="token.ok", message="ok")
        summary.client_id = "someone else"
    """))
    out, _, status = mypy_api.run(["--strict", "--no-incremental", "--follow-imports=silent",
                                   str(module)])
    assert status == 1
    assert 'Cannot assign to final attribute "client_id"' in out
