"""Registering nodes in the cloud's database, used by provisioning."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from cloud_service import tables
from cloud_service.node_rows import new_node
from schemas.ids import check_id, utc_now


def register_nodes(engine: Engine, node_ids: Iterable[str]) -> int:
    """Add the nodes not registered yet; returns how many were added."""
    ids = sorted({check_id(n, "node_id") for n in node_ids})
    now = utc_now()
    with Session(engine) as session:
        known = set(session.exec(select(tables.Node.node_id).where(
            col(tables.Node.node_id).in_(ids))))
        new = [n for n in ids if n not in known]
        for node_id in new:
            new_node(session, node_id, now)
        session.commit()
    return len(new)
