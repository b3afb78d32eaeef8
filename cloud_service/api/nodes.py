"""/api/nodes: the fleet, as the nodes last reported it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict
from sqlmodel import col, func, select

from cloud_service import tables
from cloud_service.api.context import Ctx, DbSession, Limit, Offset, Page
from cloud_service.node_rows import new_node, retire_node
from cloud_service.timeutil import as_utc
from schemas.ids import ID_PATTERN, Identifier, utc_now
from schemas.topics import Channel

router = APIRouter(prefix="/api/nodes", tags=["nodes"])
NodeIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


class NodeOut(BaseModel):
    node_id: str
    online: bool
    session: int
    last_seen: datetime | None
    last_heartbeat: datetime | None
    schedules_revision_desired: int
    schedules_revision_applied: int
    cameras_revision_desired: int
    cameras_revision_applied: int
    seq_gaps: int
    upload_backlog: dict[str, Any] | None
    system: dict[str, Any] | None

    @classmethod
    def of(cls, row: tables.Node) -> NodeOut:
        heartbeat = row.heartbeat or {}
        return cls(
            node_id=row.node_id, online=row.online, session=row.session,
            last_seen=as_utc(row.last_seen), last_heartbeat=as_utc(row.last_heartbeat),
            schedules_revision_desired=row.schedules_revision_desired,
            schedules_revision_applied=row.schedules_revision_applied,
            cameras_revision_desired=row.cameras_revision_desired,
            cameras_revision_applied=row.cameras_revision_applied,
            seq_gaps=row.seq_gaps, upload_backlog=heartbeat.get("upload_backlog"),
            system=heartbeat.get("system"),
        )


class NodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node_id: Identifier


@router.get("")
def list_nodes(session: DbSession, limit: Limit = 100, offset: Offset = 0,
               online: Annotated[bool | None, Query()] = None) -> Page[NodeOut]:
    query = select(tables.Node)
    if online is not None:
        query = query.where(tables.Node.online == online)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(tables.Node.node_id)).offset(offset).limit(limit))
    return Page(items=[NodeOut.of(r) for r in rows], total=total)


@router.post("", status_code=status.HTTP_201_CREATED)
def register_node(body: NodeIn, session: DbSession) -> NodeOut:
    if session.get(tables.Node, body.node_id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"node {body.node_id} already exists")
    row = new_node(session, body.node_id, utc_now())
    session.commit()
    session.refresh(row)
    return NodeOut.of(row)


@router.get("/{node_id}")
def get_node(node_id: NodeIdPath, session: DbSession) -> NodeOut:
    row = session.get(tables.Node, node_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no node {node_id}")
    return NodeOut.of(row)


@router.delete("/{node_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_node(node_id: NodeIdPath, session: DbSession, context: Ctx) -> None:
    row = session.get(tables.Node, node_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no node {node_id}")
    for camera in session.exec(select(tables.Camera).where(tables.Camera.node_id == node_id)):
        session.delete(camera)
    retire_node(session, row)
    session.commit()
    # An empty retained payload clears the node's desired state at the broker.
    for channel in (Channel.SCHEDULES, Channel.CAMERAS):
        context.publish_retained(context.topics.topic(node_id, channel), b"")
