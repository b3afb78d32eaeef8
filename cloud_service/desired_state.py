"""The retained desired-state documents the cloud publishes to each node.

Which schedules a node gets is a pure function of the schedules and the
node's cameras; every change republishes the node's whole document with the
next revision, so the node (which applies only higher revisions) converges
on the latest however many changes it missed while offline.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import TypeAdapter
from sqlmodel import Session, col, select

from cloud_service import tables
from schemas.cameras import Camera, CameraSet
from schemas.codec import encode
from schemas.schedules import Schedule, ScheduleSet
from schemas.topics import Channel, TopicTable

SCHEDULE_ADAPTER: TypeAdapter[Schedule] = TypeAdapter(Schedule)


@dataclass(frozen=True)
class Publication:
    """A retained document to publish once the transaction that chose its
    revision has committed (publishing first could announce a revision the
    database then rolls back)."""

    topic: str
    payload: bytes


def schedules_for_node(schedules: Iterable[Schedule], camera_ids: set[str]) -> list[Schedule]:
    """The schedules naming at least one of the node's cameras, each narrowed
    to those cameras."""
    chosen = []
    for schedule in schedules:
        mine = [c for c in schedule.camera_ids if c in camera_ids]
        if mine:
            chosen.append(schedule.model_copy(update={"camera_ids": mine}))
    return sorted(chosen, key=lambda s: s.schedule_id)


def node_camera_rows(session: Session, node_id: str) -> list[tables.Camera]:
    return list(session.exec(
        select(tables.Camera).where(tables.Camera.node_id == node_id)
        .order_by(tables.Camera.camera_id)))


def nodes_of_cameras(session: Session, camera_ids: Iterable[str]) -> set[str]:
    ids = list(camera_ids)
    if not ids:
        return set()
    return set(session.exec(
        select(tables.Camera.node_id).where(col(tables.Camera.camera_id).in_(ids))))


def stage_schedules(session: Session, topics: TopicTable, node_id: str) -> Publication | None:
    """Bump the node's schedules revision and build its ScheduleSet."""
    node = session.get(tables.Node, node_id)
    if node is None:
        return None
    cameras = {c.camera_id for c in node_camera_rows(session, node_id)}
    all_schedules = [SCHEDULE_ADAPTER.validate_python(row.document)
                     for row in session.exec(select(tables.Schedule))]
    node.schedules_revision_desired += 1
    document = ScheduleSet(revision=node.schedules_revision_desired,
                           schedules=schedules_for_node(all_schedules, cameras))
    session.add(node)
    return Publication(topics.topic(node_id, Channel.SCHEDULES), encode(document))


def stage_cameras(session: Session, topics: TopicTable, node_id: str) -> Publication | None:
    """Bump the node's cameras revision and build its CameraSet."""
    node = session.get(tables.Node, node_id)
    if node is None:
        return None
    node.cameras_revision_desired += 1
    document = CameraSet(revision=node.cameras_revision_desired, cameras=[
        Camera.model_validate(row.model_dump()) for row in node_camera_rows(session, node_id)])
    session.add(node)
    return Publication(topics.topic(node_id, Channel.CAMERAS), encode(document))


def stage_nodes(session: Session, topics: TopicTable, node_ids: Iterable[str], *,
                cameras: bool) -> list[Publication]:
    """Both documents (or only schedules) for each node, in a stable order."""
    staged: list[Publication | None] = []
    for node_id in sorted(set(node_ids)):
        if cameras:
            staged.append(stage_cameras(session, topics, node_id))
        staged.append(stage_schedules(session, topics, node_id))
    return [p for p in staged if p is not None]
