"""What a node reports about itself: presence, applied state, heartbeat; and
the cloud's acknowledgement of its events."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import WireModel
from schemas.ids import CameraId, Identifier, UtcDatetime

NonNegative = Annotated[int, Field(ge=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
ShortText = Annotated[str, Field(max_length=200)]


class NodeStatus(WireModel):
    """Retained presence; also the Last Will, carrying the same session."""

    state: Literal["online", "offline"]
    session: Annotated[int, Field(ge=1)]
    ts: UtcDatetime
    version: ShortText
    # The node's MQTT keepalive. A node that gives it publishes a heartbeat at
    # least this often, and the cloud shows it offline once silent for 1.5 x
    # keepalive, whether or not the broker has sent its Will yet.
    keepalive_s: Annotated[int, Field(ge=1, le=65535)] | None = None


class ReportedState(WireModel):
    """The desired-state revisions a node has applied and stored on disk."""

    schedules_revision: NonNegative
    cameras_revision: NonNegative
    ts: UtcDatetime


class EventAck(WireModel):
    """The highest seq the cloud has stored with no gap from 1 up to it, in
    the node's outbox `outbox_id` (see the event envelope): a node ignores an
    ack for another outbox than its own."""

    upto_seq: NonNegative
    outbox_id: Identifier | None = None


class SystemInfo(WireModel):
    hostname: ShortText
    os: ShortText
    ip: ShortText


class UploadBacklog(WireModel):
    count: NonNegative
    bytes: NonNegative
    oldest_s: NonNegativeFloat


class OutboxInfo(WireModel):
    depth: NonNegative
    oldest_s: NonNegativeFloat


class CameraHealth(WireModel):
    camera_id: CameraId
    state: Literal["recording", "idle", "offline", "error"]
    fps: NonNegativeFloat | None = None
    width: NonNegative | None = None
    height: NonNegative | None = None
    codec: ShortText | None = None
    reconnects_1h: NonNegative = 0
    last_segment_at: UtcDatetime | None = None
    bitrate_bps: NonNegative | None = None


class Heartbeat(WireModel):
    ts: UtcDatetime
    session: Annotated[int, Field(ge=1)]
    uptime_s: NonNegativeFloat
    version: ShortText
    system: SystemInfo
    disk_free_bytes: NonNegative
    disk_total_bytes: NonNegative
    upload_backlog: UploadBacklog
    outbox: OutboxInfo
    schedules_revision: NonNegative
    cameras_revision: NonNegative
    cameras: Annotated[list[CameraHealth], Field(max_length=256)]
