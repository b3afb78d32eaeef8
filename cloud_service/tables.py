"""The cloud's tables (SQLModel). Schema changes go through Alembic migrations.

Rows hold what the fleet reported; the Event table keeps every envelope as
sent, and the other tables are projections of it. Timestamps are UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def _utc_column(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable,
                                                index=index))


class Node(SQLModel, table=True):
    node_id: str = Field(primary_key=True, max_length=63)
    online: bool = False
    session: int = 0
    last_seen: datetime | None = _utc_column()
    # From the node's `online` status; with it, the node counts as gone once
    # nothing was heard from it until `silent_after` (1.5 x keepalive on).
    keepalive_s: int | None = None
    silent_after: datetime | None = _utc_column(index=True)
    last_heartbeat: datetime | None = _utc_column()
    heartbeat: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    schedules_revision_desired: int = 0
    schedules_revision_applied: int = 0
    cameras_revision_desired: int = 0
    cameras_revision_applied: int = 0
    # The node's current outbox ("" for one from before outbox ids); seqs are
    # tracked within it. Highest seq stored with none missing from 1, and how
    # many are missing above it.
    outbox_id: str = Field(default="", max_length=63)
    acked_seq: int = 0
    max_seq: int = 0
    seq_gaps: int = 0
    created_at: datetime | None = _utc_column()


class Camera(SQLModel, table=True):
    camera_id: str = Field(primary_key=True, max_length=63)
    node_id: str = Field(foreign_key="node.node_id", index=True, max_length=63)
    name: str = ""
    url: str
    enabled: bool = True
    transport: str = "auto"


class Schedule(SQLModel, table=True):
    schedule_id: str = Field(primary_key=True, max_length=63)
    # The whole `schemas.Schedule` document as the API received it.
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class Recording(SQLModel, table=True):
    recording_id: str = Field(primary_key=True, max_length=63)
    node_id: str = Field(index=True, max_length=63)
    camera_id: str = Field(index=True, max_length=63)
    trigger: str = "schedule"
    schedule_id: str | None = None
    command_id: str | None = None
    started_at: datetime | None = _utc_column(index=True)
    stopped_at: datetime | None = _utc_column()
    reason: str | None = None


class Segment(SQLModel, table=True):
    segment_id: str = Field(primary_key=True, max_length=63)
    recording_id: str = Field(index=True, max_length=63)
    node_id: str = Field(max_length=63)
    camera_id: str = Field(index=True, max_length=63)
    start: datetime | None = _utc_column(index=True)
    end: datetime | None = _utc_column()
    bytes: int = 0
    crc32c: str = ""
    codec: str = ""
    width: int = 0
    height: int = 0
    frames: int = 0
    lost_packets: int = 0
    uri: str | None = None
    upload_state: str = "pending"
    # seq of the event that set upload_state: a redelivered older outcome never
    # overrides a newer one.
    outcome_seq: int = 0


class SegmentOutcome(SQLModel, table=True):
    """An upload or eviction outcome that arrived before its segment (a batch
    redelivered after a failure commits after the one queued behind it); applied
    and removed when the segment is stored."""

    __tablename__ = "segment_outcome"

    segment_id: str = Field(primary_key=True, max_length=63)
    node_id: str = Field(max_length=63)
    seq: int
    upload_state: str
    uri: str | None = None


class Event(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("node_id", "outbox_id", "seq", name="uq_event_node_outbox_seq"),
        Index("ix_event_node_received", "node_id", "received_at"),
    )

    event_id: str = Field(primary_key=True, max_length=63)
    node_id: str = Field(max_length=63)
    outbox_id: str = Field(default="", max_length=63)
    seq: int
    type: str = Field(index=True, max_length=40)
    ts: datetime | None = _utc_column()
    received_at: datetime | None = _utc_column(index=True)
    envelope: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class RetiredNode(SQLModel, table=True):
    """The revisions a deleted node had reached: a node id registered again
    goes on from them, since its node only applies higher revisions."""

    __tablename__ = "retired_node"

    node_id: str = Field(primary_key=True, max_length=63)
    schedules_revision: int = 0
    cameras_revision: int = 0


class HeartbeatLog(SQLModel, table=True):
    """Every heartbeat received, once (the node row keeps only the latest).
    Every cloud process receives every heartbeat; the first to store it wins."""

    __tablename__ = "heartbeat_log"
    __table_args__ = (Index("ix_heartbeat_log_node_received", "node_id", "received_at"),
                      UniqueConstraint("node_id", "ts", name="uq_heartbeat_log_node_ts"))

    id: int | None = Field(default=None, primary_key=True)
    node_id: str = Field(max_length=63)
    ts: datetime | None = _utc_column()  # the node's own, which makes it unique
    received_at: datetime | None = _utc_column()
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class Command(SQLModel, table=True):
    """A command sent to a node through the API, and its reply once it came."""

    command_id: str = Field(primary_key=True, max_length=63)
    node_id: str = Field(index=True, max_length=63)
    command: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    issued_at: datetime | None = _utc_column()
    reply: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    replied_at: datetime | None = _utc_column()
