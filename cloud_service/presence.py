"""Which node reports change what the cloud believes, pure decisions first.

A node's session counter grows on every connect and its Last Will carries
the session it was registered with, so a Will delivered late (after the node
already reconnected) is recognised as stale and ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, SQLModel, col

from cloud_service import tables
from cloud_service.database import insert_skipping_conflicts
from cloud_service.event_store import ensure_node
from cloud_service.node_rows import heard_from
from schemas.commands import CommandReply
from schemas.status import Heartbeat, NodeStatus, ReportedState


def status_applies(held_session: int, status: NodeStatus) -> bool:
    """An `online` from this or a newer session applies; an `offline` only
    from the session the cloud currently believes in (or a newer one)."""
    return status.session >= held_session


def apply_status(session: Session, node_id: str, status: NodeStatus, now: datetime) -> bool:
    node = ensure_node(session, node_id, now)
    if not status_applies(node.session, status):
        return False
    node.session = status.session
    node.online = status.state == "online"
    if node.online:
        node.keepalive_s = status.keepalive_s
    heard_from(node, now)
    session.add(node)
    return True


def mark_silent_offline(session: Session, now: datetime) -> list[tuple[str, int]]:
    """Nodes online but heard from by no message for 1.5 x their keepalive go
    offline, without waiting for the broker's Will: Mosquitto 2.0 checks
    keepalives only every few seconds. One conditional UPDATE, so a message
    committed meanwhile by another ingest process is never overwritten.
    Returns the (node_id, session) of each node marked."""
    rows = session.execute(
        update(tables.Node)
        .where(col(tables.Node.online), col(tables.Node.silent_after) < now)
        .values(online=False)
        .returning(col(tables.Node.node_id), col(tables.Node.session)))
    return [(node_id, node_session) for node_id, node_session in rows]


def apply_state(session: Session, node_id: str, state: ReportedState, now: datetime) -> None:
    node = ensure_node(session, node_id, now)
    node.schedules_revision_applied = state.schedules_revision
    node.cameras_revision_applied = state.cameras_revision
    heard_from(node, now)
    session.add(node)


def apply_reply(session: Session, reply: CommandReply, now: datetime) -> None:
    """Note a reply against the command the API sent (replies to commands sent
    straight over MQTT by an operator have no row and are only streamed)."""
    row = session.get(tables.Command, reply.command_id)
    if row is not None and row.reply is None:
        row.reply, row.replied_at = reply.model_dump(mode="json"), now
        session.add(row)


def apply_heartbeat(session: Session, node_id: str, heartbeat: Heartbeat,
                    now: datetime) -> dict[str, Any]:
    """Presence and the latest figures from a heartbeat; returns its row for
    the heartbeat log (see `log_heartbeats`)."""
    node = ensure_node(session, node_id, now)
    if heartbeat.session >= node.session:
        # A heartbeat proves the session is alive even if its `online` was missed.
        node.session, node.online = heartbeat.session, True
    document = heartbeat.model_dump(mode="json")
    held = node.heartbeat
    if held is None or heartbeat.ts >= datetime.fromisoformat(held["ts"]):
        # A heartbeat redelivered late never replaces a newer one.
        node.heartbeat = document
        node.schedules_revision_applied = heartbeat.schedules_revision
        node.cameras_revision_applied = heartbeat.cameras_revision
    node.last_heartbeat = now
    heard_from(node, now)
    session.add(node)
    return {"node_id": node_id, "ts": heartbeat.ts, "received_at": now, "payload": document}


def log_heartbeats(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert heartbeat log rows, skipping those stored already: every cloud
    process receives every heartbeat (presence must not depend on which one
    is up), and a redelivered one comes again."""
    session.execute(insert_skipping_conflicts(session, SQLModel.metadata.tables["heartbeat_log"]),
                    list(rows))
