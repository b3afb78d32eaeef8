"""/api/cameras: cameras and the node each belongs to.

Stream credentials are stored (the node needs them) but every answer carries
the URL with its password replaced by `***`; a PUT that sends `***` back keeps
the stored password.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel
from sqlmodel import Session, col, func, select

from cloud_service import tables
from cloud_service.api.context import Ctx, DbSession, Limit, Offset, Page
from cloud_service.desired_state import stage_nodes
from schemas.cameras import Camera, keep_stored_password, redact_url
from schemas.ids import ID_PATTERN

router = APIRouter(prefix="/api/cameras", tags=["cameras"])
CameraIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


class CameraOut(BaseModel):
    camera_id: str
    node_id: str
    name: str
    url: str
    enabled: bool
    transport: str

    @classmethod
    def of(cls, row: tables.Camera) -> CameraOut:
        return cls(camera_id=row.camera_id, node_id=row.node_id, name=row.name,
                   url=redact_url(row.url), enabled=row.enabled, transport=row.transport)


def _require_node(session: Session, node_id: str) -> None:
    if session.get(tables.Node, node_id) is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"node_id: no node {node_id}; register it first")


def _republish(session: Session, context: Ctx, node_ids: set[str]) -> None:
    context.commit_and_publish(
        session, stage_nodes(session, context.topics, node_ids, cameras=True))


@router.get("")
def list_cameras(session: DbSession, limit: Limit = 100, offset: Offset = 0,
                 node_id: str | None = None) -> Page[CameraOut]:
    query = select(tables.Camera)
    if node_id is not None:
        query = query.where(tables.Camera.node_id == node_id)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(tables.Camera.camera_id)).offset(offset).limit(limit))
    return Page(items=[CameraOut.of(r) for r in rows], total=total)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_camera(body: Camera, session: DbSession, context: Ctx) -> CameraOut:
    if session.get(tables.Camera, body.camera_id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"camera {body.camera_id} already exists")
    _require_node(session, body.node_id)
    row = tables.Camera(**body.model_dump())
    session.add(row)
    session.flush()
    _republish(session, context, {body.node_id})
    return CameraOut.of(row)


@router.get("/{camera_id}")
def get_camera(camera_id: CameraIdPath, session: DbSession) -> CameraOut:
    row = session.get(tables.Camera, camera_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id}")
    return CameraOut.of(row)


@router.put("/{camera_id}")
def replace_camera(camera_id: CameraIdPath, body: Camera, session: DbSession,
                   context: Ctx) -> CameraOut:
    if body.camera_id != camera_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "camera_id: the body's id must match the path")
    row = session.get(tables.Camera, camera_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id}")
    _require_node(session, body.node_id)
    try:
        url = keep_stored_password(body.url, row.url)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"url: {exc}") from None
    affected = {row.node_id, body.node_id}
    for key, value in body.model_copy(update={"url": url}).model_dump().items():
        setattr(row, key, value)
    session.add(row)
    session.flush()
    _republish(session, context, affected)
    return CameraOut.of(row)


@router.delete("/{camera_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_camera(camera_id: CameraIdPath, session: DbSession, context: Ctx) -> None:
    row = session.get(tables.Camera, camera_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id}")
    session.delete(row)
    session.flush()
    _republish(session, context, {row.node_id})
