"""/api/schedules: what the fleet records and when.

Every change republishes, with the next revision, the ScheduleSet of each
node that has a camera the schedule names (before or after the change).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status
from sqlmodel import Session, col, func, select

from cloud_service import tables
from cloud_service.api.context import Ctx, DbSession, Limit, Offset, Page
from cloud_service.desired_state import SCHEDULE_ADAPTER, nodes_of_cameras, stage_nodes
from schemas.ids import ID_PATTERN
from schemas.schedules import Schedule

router = APIRouter(prefix="/api/schedules", tags=["schedules"])
ScheduleIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


def _document(schedule: Schedule) -> dict[str, Any]:
    return schedule.model_dump(mode="json")


def _load(row: tables.Schedule) -> Schedule:
    return SCHEDULE_ADAPTER.validate_python(row.document)


def _require_cameras(session: Session, schedule: Schedule) -> None:
    known = set(session.exec(select(tables.Camera.camera_id).where(
        col(tables.Camera.camera_id).in_(schedule.camera_ids))))
    missing = [c for c in schedule.camera_ids if c not in known]
    if missing:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"camera_ids: unknown camera(s) {', '.join(missing)}")


def _get(session: Session, schedule_id: str) -> tables.Schedule:
    row = session.get(tables.Schedule, schedule_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {schedule_id}")
    return row


@router.get("")
def list_schedules(session: DbSession, limit: Limit = 100, offset: Offset = 0) -> Page[Schedule]:
    total = session.exec(select(func.count()).select_from(tables.Schedule)).one()
    rows = session.exec(select(tables.Schedule).order_by(col(tables.Schedule.schedule_id))
                        .offset(offset).limit(limit))
    return Page(items=[_load(r) for r in rows], total=total)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_schedule(body: Schedule, session: DbSession, context: Ctx) -> Schedule:
    if session.get(tables.Schedule, body.schedule_id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"schedule {body.schedule_id} already exists")
    _require_cameras(session, body)
    session.add(tables.Schedule(schedule_id=body.schedule_id, document=_document(body)))
    session.flush()
    nodes = nodes_of_cameras(session, body.camera_ids)
    context.commit_and_publish(session, stage_nodes(session, context.topics, nodes,
                                                    cameras=False))
    return body


@router.get("/{schedule_id}")
def get_schedule(schedule_id: ScheduleIdPath, session: DbSession) -> Schedule:
    return _load(_get(session, schedule_id))


@router.put("/{schedule_id}")
def replace_schedule(schedule_id: ScheduleIdPath, body: Schedule, session: DbSession,
                     context: Ctx) -> Schedule:
    if body.schedule_id != schedule_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "schedule_id: the body's id must match the path")
    row = _get(session, schedule_id)
    _require_cameras(session, body)
    nodes = nodes_of_cameras(session, [*_load(row).camera_ids, *body.camera_ids])
    row.document = _document(body)
    session.add(row)
    session.flush()
    context.commit_and_publish(session, stage_nodes(session, context.topics, nodes,
                                                    cameras=False))
    return body


@router.delete("/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_schedule(schedule_id: ScheduleIdPath, session: DbSession, context: Ctx) -> None:
    row = _get(session, schedule_id)
    nodes = nodes_of_cameras(session, _load(row).camera_ids)
    session.delete(row)
    session.flush()
    context.commit_and_publish(session, stage_nodes(session, context.topics, nodes,
                                                    cameras=False))
