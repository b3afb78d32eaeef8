"""/api/coverage: scheduled seconds against recorded seconds, per camera."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AwareDatetime, BaseModel
from sqlmodel import col, select

from cloud_service import tables
from cloud_service.api.context import DbSession
from cloud_service.coverage import camera_coverage
from cloud_service.desired_state import SCHEDULE_ADAPTER
from cloud_service.timeutil import as_utc
from schemas.ids import ID_PATTERN, utc_now

router = APIRouter(prefix="/api", tags=["coverage"])
MAX_PERIOD = timedelta(days=31)


class Gap(BaseModel):
    start: datetime
    end: datetime


class CameraCoverage(BaseModel):
    camera_id: str
    node_id: str
    scheduled_s: float
    recorded_s: float
    ratio: float | None
    gaps: list[Gap]


class CoverageOut(BaseModel):
    since: datetime
    until: datetime
    items: list[CameraCoverage]


@router.get("/coverage")
def coverage(session: DbSession, *, since: AwareDatetime | None = None,
             until: AwareDatetime | None = None,
             camera_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
             node_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None) -> CoverageOut:
    """Default period: the last 24 hours; at most 31 days."""
    until = until.astimezone(UTC) if until else utc_now()
    since = since.astimezone(UTC) if since else until - timedelta(days=1)
    if not timedelta(0) < until - since <= MAX_PERIOD:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "until must be after since, by at most 31 days")
    query = select(tables.Camera)
    if camera_id is not None:
        query = query.where(tables.Camera.camera_id == camera_id)
    if node_id is not None:
        query = query.where(tables.Camera.node_id == node_id)
    cameras = list(session.exec(query.order_by(col(tables.Camera.camera_id))))
    schedules = [SCHEDULE_ADAPTER.validate_python(row.document)
                 for row in session.exec(select(tables.Schedule))]
    items = []
    for camera in cameras:
        rows = session.exec(select(tables.Segment.start, tables.Segment.end).where(
            tables.Segment.camera_id == camera.camera_id,
            col(tables.Segment.end) > since, col(tables.Segment.start) < until))
        segments = [(s, e) for s, e in ((as_utc(a), as_utc(b)) for a, b in rows)
                    if s is not None and e is not None]
        result = camera_coverage(camera.camera_id, schedules, segments, since=since,
                                 until=until)
        items.append(CameraCoverage(
            camera_id=camera.camera_id, node_id=camera.node_id,
            scheduled_s=result.scheduled_s, recorded_s=result.recorded_s, ratio=result.ratio,
            gaps=[Gap(start=s, end=e) for s, e in result.gaps]))
    return CoverageOut(since=since, until=until, items=items)
