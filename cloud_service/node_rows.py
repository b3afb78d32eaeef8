"""Creating and deleting node rows, the one place that keeps revisions growing
for a node id across its deletion and registration again."""

from __future__ import annotations

from datetime import datetime

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


def retire_node(session: Session, node: tables.Node) -> None:
    retired = session.get(tables.RetiredNode, node.node_id) or tables.RetiredNode(
        node_id=node.node_id)
    retired.schedules_revision = max(retired.schedules_revision,
                                     node.schedules_revision_desired)
    retired.cameras_revision = max(retired.cameras_revision, node.cameras_revision_desired)
    session.add(retired)
    session.delete(node)
