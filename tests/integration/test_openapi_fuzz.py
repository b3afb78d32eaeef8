"""Schemathesis against the cloud's OpenAPI document: whatever a client sends
that the schema allows (and much it does not), the API never answers 5xx.

Runs in-process on SQLite with a real schema migration; the live stream (an
endless response) and commands (which wait for a node) are left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from cloud_service.api.app import create_app
from cloud_service.api.context import ApiContext
from cloud_service.database import make_engine, migrate
from cloud_service.media_source import MediaSource
from schemas.topics import TopicTable

TOKEN = "fuzz-token"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    directory: Path = tmp_path_factory.mktemp("fuzz")
    engine = make_engine(f"sqlite:///{directory / 'cloud.db'}")
    migrate(engine)
    return create_app(ApiContext(engine, TopicTable(), lambda _t, _p: None, (TOKEN,),
                                 media=MediaSource(directory / "storage")))


OPERATIONS_LEFT_OUT = "^/api/(stream|commands)$"


def test_no_input_makes_the_api_fail(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(
        path_regex=OPERATIONS_LEFT_OUT)
    operations = [result.ok() for result in schema.get_all_operations()
                  if isinstance(result, Ok)]
    assert len(operations) >= 15, "every route is in the document"
    failures: list[str] = []
    statuses: set[int] = set()
    for operation in operations:

        @settings(max_examples=20, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case[Any]) -> None:
            response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
            statuses.add(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> "
                                f"{response.status_code}: {response.text[:200]}")

        call()
    assert failures == []
    assert {200, 201, 422} <= statuses, "the fuzzer got past auth and validation"
