"""/api/nodes: the fleet, as the nodes last reported it."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Row
from sqlalchemy import select as select_columns
from sqlmodel import col, func, select

from broker.passwords import (
    RESERVED_ACCOUNTS,
    BrokerNotRunningError,
    list_accounts,
    signal_reload,
)
from broker.provisioning import provision_nodes
from cloud_service import tables
from cloud_service.api.context import Ctx, DbSession, Limit, Offset, Page
from cloud_service.node_rows import new_node, retire_node
from cloud_service.timeutil import as_utc
from schemas.ids import ID_PATTERN, Identifier, utc_now
from schemas.topics import Channel

logger = logging.getLogger(__name__)
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

    @classmethod
    def listed(cls, row: Row[Any]) -> NodeOut:
        """From a row of `_LISTED` columns."""
        values = dict(row._mapping)
        values["last_seen"] = as_utc(values["last_seen"])
        values["last_heartbeat"] = as_utc(values["last_heartbeat"])
        return cls(**values)


# What a listing shows, as columns: whole rows cost an ORM object each and the
# decoding of the node's whole last heartbeat (every camera's health) for the
# two parts of it shown, which was most of a page's time at 10,000 nodes.
_NODE = tables.Node
_LISTED = (
    col(_NODE.node_id), col(_NODE.online), col(_NODE.session), col(_NODE.last_seen),
    col(_NODE.last_heartbeat), col(_NODE.schedules_revision_desired),
    col(_NODE.schedules_revision_applied), col(_NODE.cameras_revision_desired),
    col(_NODE.cameras_revision_applied), col(_NODE.seq_gaps),
    col(_NODE.heartbeat)["upload_backlog"].label("upload_backlog"),
    col(_NODE.heartbeat)["system"].label("system"),
)


class NodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node_id: Identifier


@router.get("")
def list_nodes(session: DbSession, limit: Limit = 100, offset: Offset = 0,
               online: Annotated[bool | None, Query()] = None) -> Page[NodeOut]:
    page = select(_NODE.node_id)
    counted = select(func.count()).select_from(_NODE)
    if online is not None:
        page = page.where(col(_NODE.online) == online)
        counted = counted.where(col(_NODE.online) == online)
    total = session.exec(counted).one()
    # The page's ids first, then their columns: PostgreSQL computes the listed
    # columns (the heartbeat fields parsed from JSON) of every row it skips for
    # the offset, which made a page at offset 5,000 cost 30 ms instead of 5.
    page = page.order_by(col(_NODE.node_id)).offset(offset).limit(limit)
    rows = session.execute(select_columns(*_LISTED)  # sqlmodel's select takes at most four
                           .where(col(_NODE.node_id).in_(page.scalar_subquery()))
                           .order_by(col(_NODE.node_id)))
    return Page(items=[NodeOut.listed(r) for r in rows], total=total)


class RegisteredNode(NodeOut):
    """A new node; where the service manages the broker's accounts, also its
    broker URL with the password, shown this once (null when the node had an
    account already: it is left as it was)."""

    mqtt_url: str | None = None
    env: str | None = None


@router.post("", status_code=status.HTTP_201_CREATED)
def register_node(body: NodeIn, session: DbSession, context: Ctx) -> RegisteredNode:
    if session.get(tables.Node, body.node_id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"node {body.node_id} already exists")
    if body.node_id in RESERVED_ACCOUNTS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"node_id: {body.node_id} is a reserved account name")
    row = new_node(session, body.node_id, utc_now())
    mqtt_url = env = None
    # An account made earlier (`cctv node add`) is kept as it is: its node may
    # be running with that password, which was handed out when it was made.
    if context.provisioning is not None and body.node_id not in list_accounts(
            context.provisioning.password_file):
        env = provision_nodes(context.provisioning.password_file, [body.node_id],
                              context.provisioning.public_url)[body.node_id]
        mqtt_url = env.split("CCTV_MQTT_URL=", 1)[1].strip()
        if context.provisioning.broker_pid_file is not None:
            try:
                signal_reload(context.provisioning.broker_pid_file)
            except BrokerNotRunningError as exc:
                logger.warning("provisioning.reload_failed error=%s", exc)
    session.commit()
    session.refresh(row)
    return RegisteredNode(**NodeOut.of(row).model_dump(), mqtt_url=mqtt_url, env=env)


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
    # An empty retained payload clears the node's desired state at the broker,
    # and its last status and state, from which ingest would list it again.
    for channel in (Channel.SCHEDULES, Channel.CAMERAS, Channel.STATUS, Channel.STATE):
        context.publish_retained(context.topics.topic(node_id, channel), b"")
