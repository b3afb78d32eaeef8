"""/api/recordings and /api/events: what the fleet recorded and reported."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import AwareDatetime, BaseModel
from sqlmodel import Session, col, func, select

from cloud_service import tables
from cloud_service.api.context import DbSession, Limit, Offset, Page
from cloud_service.timeutil import as_utc
from schemas.ids import ID_PATTERN

router = APIRouter(prefix="/api", tags=["recordings"])
IdQuery = Annotated[str | None, Query(pattern=ID_PATTERN)]


class SegmentOut(BaseModel):
    segment_id: str
    start: datetime | None
    end: datetime | None
    bytes: int
    crc32c: str
    uri: str | None
    upload_state: str


class RecordingOut(BaseModel):
    recording_id: str
    node_id: str
    camera_id: str
    trigger: str
    schedule_id: str | None
    command_id: str | None
    started_at: datetime | None
    stopped_at: datetime | None
    reason: str | None
    segments: list[SegmentOut]


def _recording_out(session: Session, row: tables.Recording) -> RecordingOut:
    segments = session.exec(select(tables.Segment).where(
        tables.Segment.recording_id == row.recording_id).order_by(col(tables.Segment.start)))
    return RecordingOut(
        recording_id=row.recording_id, node_id=row.node_id, camera_id=row.camera_id,
        trigger=row.trigger, schedule_id=row.schedule_id, command_id=row.command_id,
        started_at=as_utc(row.started_at), stopped_at=as_utc(row.stopped_at), reason=row.reason,
        segments=[SegmentOut(segment_id=s.segment_id, start=as_utc(s.start), end=as_utc(s.end),
                             bytes=s.bytes, crc32c=s.crc32c, uri=s.uri,
                             upload_state=s.upload_state) for s in segments],
    )


@router.get("/recordings")
def list_recordings(session: DbSession, *, limit: Limit = 100, offset: Offset = 0,
                    node_id: IdQuery = None, camera_id: IdQuery = None,
                    since: AwareDatetime | None = None,
                    until: AwareDatetime | None = None) -> Page[RecordingOut]:
    query = select(tables.Recording)
    if node_id is not None:
        query = query.where(tables.Recording.node_id == node_id)
    if camera_id is not None:
        query = query.where(tables.Recording.camera_id == camera_id)
    if since is not None:
        query = query.where(col(tables.Recording.started_at) >= since.astimezone(UTC))
    if until is not None:
        query = query.where(col(tables.Recording.started_at) < until.astimezone(UTC))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(tables.Recording.started_at).desc())
                        .offset(offset).limit(limit))
    return Page(items=[_recording_out(session, r) for r in rows], total=total)


@router.get("/recordings/{recording_id}")
def get_recording(recording_id: Annotated[str, Path(pattern=ID_PATTERN)],
                  session: DbSession) -> RecordingOut:
    row = session.get(tables.Recording, recording_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no recording {recording_id}")
    return _recording_out(session, row)


@router.get("/events")
def list_events(session: DbSession, *, limit: Limit = 100, offset: Offset = 0,
                node_id: IdQuery = None,
                type: Annotated[list[str] | None, Query()] = None,  # noqa: A002  # the contract's name
                since: AwareDatetime | None = None) -> Page[dict[str, Any]]:
    query = select(tables.Event)
    if node_id is not None:
        query = query.where(tables.Event.node_id == node_id)
    if type:
        query = query.where(col(tables.Event.type).in_(type))
    if since is not None:
        query = query.where(col(tables.Event.received_at) >= since.astimezone(UTC))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(tables.Event.received_at).desc(),
                                       col(tables.Event.seq).desc()).offset(offset).limit(limit))
    items = [{**r.envelope, "received_at": as_utc(r.received_at)} for r in rows]
    return Page(items=items, total=total)
