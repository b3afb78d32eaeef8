"""The `Event` envelope and the strict `data` model of every event type.

An event travels on `events/{kind}` where kind is the part of `type` before
the dot. Parsing goes through `EVENT_ADAPTER`, a union discriminated on
`type`, so a handler always receives the concrete model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import Field, TypeAdapter, ValidationInfo, field_validator

from schemas.base import WireModel
from schemas.ids import CameraId, Identifier, NodeId, ScheduleId, UtcDatetime

EventKind = Literal["recording", "upload", "camera", "storage"]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)

# Cloud Storage's crc32c: base64 of the big-endian 4 bytes.
Crc32c = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{6}==$")]
Codec = Literal["h264", "hevc", "mpeg4", "mjpeg"]
Count = Annotated[int, Field(ge=0)]
Reason = Annotated[str, Field(min_length=1, max_length=1000)]
StorageUri = Annotated[str, Field(pattern=r"^(gs://[a-z0-9._-]{3,222}/|file:///)\S+$",
                                  max_length=2048)]


class RecordingStarted(WireModel):
    recording_id: Identifier
    camera_id: CameraId
    trigger: Literal["schedule", "manual"]
    schedule_id: ScheduleId | None = Field(default=None, validate_default=True)
    command_id: Identifier | None = None

    @field_validator("schedule_id")
    @classmethod
    def _schedule_named(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("trigger") == "schedule" and value is None:
            raise ValueError("required when the trigger is a schedule")
        return value


class RecordingSegment(WireModel):
    recording_id: Identifier
    segment_id: Identifier
    camera_id: CameraId
    start: UtcDatetime
    end: UtcDatetime
    bytes: Count
    crc32c: Crc32c
    container: Literal["mp4"]
    codec: Codec
    width: Count
    height: Count
    frames: Count
    lost_packets: Count


StopReason = Literal["schedule_ended", "manual_ended", "stopped", "camera_lost", "shutdown"]


class RecordingStopped(WireModel):
    recording_id: Identifier
    camera_id: CameraId
    reason: StopReason
    segments: Count


class RecordingFailed(WireModel):
    camera_id: CameraId
    recording_id: Identifier | None = None
    error: Reason
    will_retry: bool


class UploadCompleted(WireModel):
    segment_id: Identifier
    uri: StorageUri
    bytes: Count
    crc32c: Crc32c


class UploadFailed(WireModel):
    segment_id: Identifier
    attempt: Annotated[int, Field(ge=1)]
    error: Reason
    will_retry: bool


class CameraPresence(WireModel):
    camera_id: CameraId
    error: Reason | None = None
    fps: Annotated[float, Field(ge=0)] | None = None
    width: Count | None = None
    height: Count | None = None
    codec: Annotated[str, Field(max_length=32)] | None = None


class StorageEvicted(WireModel):
    segment_id: Identifier
    uploaded: bool
    reason: Reason


class _Envelope(WireModel):
    event_id: Identifier
    node_id: NodeId
    seq: Annotated[int, Field(ge=1)]
    ts: UtcDatetime
    # The outbox that numbered `seq`: made with the node's data dir, so a node
    # whose disk was wiped or replaced starts again at seq 1 under a new one,
    # and the cloud tracks and acks it afresh. Absent from nodes before it.
    outbox_id: Identifier | None = None


class RecordingStartedEvent(_Envelope):
    type: Literal["recording.started"]
    data: RecordingStarted


class RecordingSegmentEvent(_Envelope):
    type: Literal["recording.segment"]
    data: RecordingSegment


class RecordingStoppedEvent(_Envelope):
    type: Literal["recording.stopped"]
    data: RecordingStopped


class RecordingFailedEvent(_Envelope):
    type: Literal["recording.failed"]
    data: RecordingFailed


class UploadCompletedEvent(_Envelope):
    type: Literal["upload.completed"]
    data: UploadCompleted


class UploadFailedEvent(_Envelope):
    type: Literal["upload.failed"]
    data: UploadFailed


class CameraOnlineEvent(_Envelope):
    type: Literal["camera.online"]
    data: CameraPresence


class CameraOfflineEvent(_Envelope):
    type: Literal["camera.offline"]
    data: CameraPresence


class StorageEvictedEvent(_Envelope):
    type: Literal["storage.evicted"]
    data: StorageEvicted


EVENT_MODELS: tuple[type[_Envelope], ...] = (
    RecordingStartedEvent, RecordingSegmentEvent, RecordingStoppedEvent, RecordingFailedEvent,
    UploadCompletedEvent, UploadFailedEvent, CameraOnlineEvent, CameraOfflineEvent,
    StorageEvictedEvent,
)

Event = Annotated[
    RecordingStartedEvent | RecordingSegmentEvent | RecordingStoppedEvent
    | RecordingFailedEvent | UploadCompletedEvent | UploadFailedEvent
    | CameraOnlineEvent | CameraOfflineEvent | StorageEvictedEvent,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

EventData = (RecordingStarted | RecordingSegment | RecordingStopped | RecordingFailed
             | UploadCompleted | UploadFailed | CameraPresence | StorageEvicted)

EVENT_TYPES: tuple[str, ...] = tuple(
    get_args(m.model_fields["type"].annotation)[0] for m in EVENT_MODELS
)


def event_kind(event: Event) -> str:
    """The `events/{kind}` topic suffix an event belongs on."""
    return event.type.partition(".")[0]


def make_event(type_: str, *, event_id: str, node_id: str, seq: int, ts: datetime,
               data: EventData, outbox_id: str | None = None) -> Event:
    """Build (and validate) the envelope of an event of `type_`."""
    return EVENT_ADAPTER.validate_python({"event_id": event_id, "node_id": node_id, "seq": seq,
                                          "ts": ts, "type": type_, "data": data,
                                          "outbox_id": outbox_id})
