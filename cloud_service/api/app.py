"""The FastAPI application: routes, auth, /health and /metrics.

`create_app` only wires things together; it opens no connection. The
composition root (cloud_service.service) builds the context it serves.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import create_engine

from cloud_service.api import (
    cameras,
    commands,
    coverage,
    dashboard,
    live_routes,
    nodes,
    recordings,
    schedules,
)
from cloud_service.api.auth import require_token
from cloud_service.api.context import ApiContext
from cloud_service.fleet_metrics import FleetCollector
from schemas.topics import TopicTable

VERSION = "0.1.0"


def create_app(context: ApiContext) -> FastAPI:
    app = FastAPI(title="CCTV fleet cloud service", version=VERSION,
                  description="Fleet state, schedules, recordings and commands.")
    app.state.context = context
    for module in (nodes, cameras, schedules, recordings, commands, coverage):
        app.include_router(module.router, dependencies=[Depends(require_token)])
    app.include_router(live_routes.router)  # its own auth: header or ?token=
    app.include_router(dashboard.router)  # the web dashboard at / (static files, no auth)

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    fleet = CollectorRegistry(auto_describe=False)
    fleet.register(FleetCollector(context.engine))

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """This process's counters, then the fleet's gauges from the database."""
        return PlainTextResponse(generate_latest() + generate_latest(fleet),
                                 media_type=CONTENT_TYPE_LATEST)

    return app


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document, without a database or a broker."""
    context = ApiContext(create_engine("sqlite://"), TopicTable(), lambda _t, _p: None, ())
    return create_app(context).openapi()
