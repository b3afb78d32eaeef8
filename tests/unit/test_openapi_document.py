"""docs/openapi.json is the API as the code serves it."""

from __future__ import annotations

import json
from pathlib import Path

from cloud_service.api.app import openapi_document

DOCUMENT = Path(__file__).parents[2] / "docs" / "openapi.json"


def test_the_committed_openapi_document_is_current() -> None:
    committed = json.loads(DOCUMENT.read_text())
    assert committed == json.loads(json.dumps(openapi_document())), (
        "docs/openapi.json is stale: run `cctv schemas openapi > docs/openapi.json`")


def test_every_api_path_requires_the_bearer_token() -> None:
    document = openapi_document()
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    for path, operations in document["paths"].items():
        if not path.startswith("/api/") or path in ("/api/stream",
                                                    "/api/segments/{segment_id}/media"):
            continue
        for operation in operations.values():
            assert operation.get("security"), f"{path} is not protected in the document"
