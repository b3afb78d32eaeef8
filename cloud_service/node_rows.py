"""Creating and deleting node rows (the one place that keeps revisions growing
for a node id across its deletion and registration again), and noting that a
node was heard from."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from cloud_service import tables


def new_node(session: Session, node_id: str, now: datetime) -> tables.Node:
    retired = session.get(tables.RetiredNode, node_id)
    node = tables.Node(node_id=node_id, created_at=now)
    if retired is not None:
        node.schedules_revision_desired = retired.schedules_revision
        node.cameras_revision_desired = retired.cameras_revision
    session.add(node)
    return node


SILENT_KEEPALIVES = 1.5  # MQTT's own rule for a client gone quiet


def heard_from(node: tables.Node, now: datetime) -> None:
    """Anything from the node proves it alive until 1.5 x its keepalive from now."""
    node.last_seen = now
    if node.keepalive_s:
        node.silent_after = now + timedelta(seconds=SILENT_KEEPALIVES * node.keepalive_s)


def retire_node(session: Session, node: tables.Node) -> None:
    retired = session.get(tables.RetiredNode, node.node_id) or tables.RetiredNode(
        node_id=node.node_id)
    retired.schedules_revision = max(retired.schedules_revision,
                                     node.schedules_revision_desired)
    retired.cameras_revision = max(retired.cameras_revision, node.cameras_revision_desired)
    session.add(retired)
    session.delete(node)
