"""Every payload of the wire contract, valid and invalid, decoded as a receiver would.

Invalid payloads are raw JSON bytes that arrive on a parsed topic and go
through `decode_channel` (or `decode` for documents not tied to a topic); each
must be refused with a `PayloadError` whose `field` is the dotted path of the
offending field, so a receiver can log and count exactly what was wrong.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter

from schemas import (
    MAX_PAYLOAD_BYTES,
    Camera,
    CameraSet,
    Channel,
    CommandReply,
    EventAck,
    Heartbeat,
    NodeStatus,
    PayloadError,
    RecordCommand,
    ReportedState,
    ResyncCommand,
    ScheduleSet,
    SnapshotCommand,
    StopCommand,
    TopicTable,
    decode,
    encode,
    is_valid_id,
    redact_url,
)
from schemas.codec import ADAPTERS, decode_channel
from schemas.events import EVENT_TYPES
from schemas.schedules import (
    ContinuousSchedule,
    CronSchedule,
    DailySchedule,
    OnceSchedule,
    Schedule,
    WeeklySchedule,
)

NODE = "site-1"
TABLE = TopicTable()
SCHEDULE_ADAPTER: TypeAdapter[Any] = TypeAdapter(Schedule)
CAMERA_ADAPTER: TypeAdapter[Any] = TypeAdapter(Camera)
PASSWORD = "s3cret-Pa55"


def receive(channel: Channel, payload: bytes, kind: str | None = None, node: str = NODE) -> Any:
    """What a receiver does: parse the topic the message came on, decode for it."""
    topic = TABLE.parse(TABLE.topic(node, channel, kind))
    return decode_channel(topic, payload)


def raw(document: Any) -> bytes:
    return json.dumps(document).encode()


# --- valid documents, one per model and per variant --------------------------------------

ONCE: dict[str, Any] = {
    "schedule_id": "launch-day", "camera_ids": ["front"], "kind": "once", "tz": "Europe/Paris",
    "start": "2024-06-01T08:00:00Z", "end": "2024-06-01T09:30:00Z",
}
DAILY: dict[str, Any] = {
    "schedule_id": "nights", "camera_ids": ["front", "back"], "kind": "daily",
    "tz": "America/New_York", "start_time": "22:00:00", "end_time": "06:00:00",
    "segment_seconds": 300,
}
WEEKLY: dict[str, Any] = {
    "schedule_id": "office-hours", "camera_ids": ["lobby"], "kind": "weekly",
    "tz": "Asia/Tokyo", "days": ["mon", "tue", "wed", "thu", "fri"],
    "start_time": "08:30", "end_time": "18:00", "enabled": False,
}
CONTINUOUS: dict[str, Any] = {
    "schedule_id": "always", "camera_ids": ["yard"], "kind": "continuous",
    "segment_seconds": 3600,
}
CRON: dict[str, Any] = {
    "schedule_id": "quarter-hours", "camera_ids": ["front"], "kind": "cron", "tz": "UTC",
    "expression": "*/15 8-18 * * mon-fri", "duration_s": 120, "segment_seconds": 2,
}
SCHEDULE_SET: dict[str, Any] = {
    "revision": 3, "schedules": [ONCE, DAILY, WEEKLY, CONTINUOUS, CRON],
}

CAMERA: dict[str, Any] = {
    "camera_id": "front", "node_id": NODE, "name": "Front door",
    "url": f"rtsp://admin:{PASSWORD}@10.0.0.5:554/stream1", "enabled": True, "transport": "tcp",
}
CAMERA_SET: dict[str, Any] = {
    "revision": 2,
    "cameras": [
        CAMERA,
        {"camera_id": "usb", "node_id": NODE, "url": "device://0"},
        {"camera_id": "mjpeg", "node_id": NODE, "url": "https://[2001:db8::7]:8443/video.mjpg",
         "transport": "udp", "enabled": False},
    ],
}

RECORD: dict[str, Any] = {
    "command_id": "c1", "command": "record", "camera_id": "front", "duration_s": 30,
}
STOP: dict[str, Any] = {"command_id": "c2", "command": "stop", "camera_id": "front"}
SNAPSHOT: dict[str, Any] = {
    "command_id": "c3", "command": "snapshot", "camera_id": "back",
    "expires_at": "2024-06-01T08:00:05Z",
}
RESYNC: dict[str, Any] = {"command_id": "c4", "command": "resync"}

ACK: dict[str, Any] = {"upto_seq": 41}
STATUS: dict[str, Any] = {
    "state": "online", "session": 7, "ts": "2024-06-01T08:00:00Z", "version": "0.1.0",
}
STATE: dict[str, Any] = {
    "schedules_revision": 3, "cameras_revision": 2, "ts": "2024-06-01T08:00:01.250000Z",
}
HEARTBEAT: dict[str, Any] = {
    "ts": "2024-06-01T08:00:00Z", "session": 7, "uptime_s": 3600.5, "version": "0.1.0",
    "system": {"hostname": "edge-1", "os": "Linux 6.1", "ip": "10.0.0.2"},
    "disk_free_bytes": 10_000_000_000, "disk_total_bytes": 64_000_000_000,
    "upload_backlog": {"count": 3, "bytes": 12_345_678, "oldest_s": 42.0},
    "outbox": {"depth": 0, "oldest_s": 0},
    "schedules_revision": 3, "cameras_revision": 2,
    "cameras": [
        {"camera_id": "front", "state": "recording", "fps": 25.0, "width": 1920, "height": 1080,
         "codec": "h264", "reconnects_1h": 1, "last_segment_at": "2024-06-01T07:59:00Z",
         "bitrate_bps": 4_000_000},
        {"camera_id": "back", "state": "offline"},
    ],
}
REPLY_OK: dict[str, Any] = {
    "command_id": "c1", "ok": True,
    "result": {"recording_id": "r1", "until": "2024-06-01T08:00:30Z", "nested": [1, 2.5, None]},
}
REPLY_ERROR: dict[str, Any] = {"command_id": "c2", "ok": False, "error": "camera front is offline"}

CRC = "yZRlqg=="  # Cloud Storage's crc32c encoding: base64 of the big-endian 4 bytes

EVENT_DATA: dict[str, dict[str, Any]] = {
    "recording.started": {"recording_id": "r1", "camera_id": "front", "trigger": "schedule",
                          "schedule_id": "nights"},
    "recording.segment": {"recording_id": "r1", "segment_id": "r1-0001", "camera_id": "front",
                          "start": "2024-06-01T08:00:00Z", "end": "2024-06-01T08:00:59.960000Z",
                          "bytes": 7_654_321, "crc32c": CRC, "container": "mp4", "codec": "h264",
                          "width": 1920, "height": 1080, "frames": 1500, "lost_packets": 0},
    "recording.stopped": {"recording_id": "r1", "camera_id": "front",
                          "reason": "schedule_ended", "segments": 60},
    "recording.failed": {"camera_id": "front", "error": "connection refused",
                         "will_retry": True},
    "upload.completed": {"segment_id": "r1-0001", "bytes": 7_654_321, "crc32c": CRC,
                         "uri": "gs://cctv-archive/site-1/front/2024/06/01/"
                                "20240601T080000Z_r1-0001.mp4"},
    "upload.failed": {"segment_id": "r1-0001", "attempt": 3, "error": "503 Service Unavailable",
                      "will_retry": True},
    "camera.online": {"camera_id": "front", "fps": 25, "width": 1920, "height": 1080,
                      "codec": "h264"},
    "camera.offline": {"camera_id": "front", "error": "no packets for 10 s"},
    "storage.evicted": {"segment_id": "r1-0001", "uploaded": False, "reason": "disk full"},
}


def event(type_: str, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "event_id": "0190a6e0-5b1e-7c3a-9f00-1a2b3c4d5e6f", "node_id": NODE, "seq": 1,
        "ts": "2024-06-01T08:01:00Z", "type": type_, "data": copy.deepcopy(EVENT_DATA[type_]),
    }
    document.update(changes)
    return document


def kind_of(type_: str) -> str:
    return type_.partition(".")[0]


def changed(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `document` with the dotted `path` set to `value`."""
    result = copy.deepcopy(document)
    *parents, last = path.split(".")
    target: Any = result
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return result


def removed(document: dict[str, Any], path: str) -> dict[str, Any]:
    """A deep copy of `document` without the dotted `path`."""
    result = copy.deepcopy(document)
    *parents, last = path.split(".")
    target: Any = result
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    del target[last]
    return result


def schedules(*items: dict[str, Any]) -> dict[str, Any]:
    return {"revision": 1, "schedules": list(items)}


def cameras(*items: dict[str, Any]) -> dict[str, Any]:
    return {"revision": 1, "cameras": list(items)}


# --- valid payloads ------------------------------------------------------------------------

VALID = [
    pytest.param(Channel.SCHEDULES, None, SCHEDULE_SET, ScheduleSet, id="schedule-set"),
    pytest.param(Channel.SCHEDULES, None, schedules(), ScheduleSet, id="schedule-set-empty"),
    pytest.param(Channel.CAMERAS, None, CAMERA_SET, CameraSet, id="camera-set"),
    pytest.param(Channel.CAMERAS, None, cameras(), CameraSet, id="camera-set-empty"),
    pytest.param(Channel.COMMANDS, None, RECORD, RecordCommand, id="command-record"),
    pytest.param(Channel.COMMANDS, None, STOP, StopCommand, id="command-stop"),
    pytest.param(Channel.COMMANDS, None, SNAPSHOT, SnapshotCommand, id="command-snapshot"),
    pytest.param(Channel.COMMANDS, None, RESYNC, ResyncCommand, id="command-resync"),
    pytest.param(Channel.ACKS, None, ACK, EventAck, id="ack"),
    pytest.param(Channel.ACKS, None, {"upto_seq": 0}, EventAck, id="ack-nothing-yet"),
    pytest.param(Channel.STATUS, None, STATUS, NodeStatus, id="status-online"),
    pytest.param(Channel.STATUS, None, {**STATUS, "state": "offline"}, NodeStatus,
                 id="status-offline-will"),
    pytest.param(Channel.STATE, None, STATE, ReportedState, id="state"),
    pytest.param(Channel.HEARTBEAT, None, HEARTBEAT, Heartbeat, id="heartbeat"),
    pytest.param(Channel.HEARTBEAT, None, {**HEARTBEAT, "cameras": []}, Heartbeat,
                 id="heartbeat-no-cameras"),
    pytest.param(Channel.REPLIES, None, REPLY_OK, CommandReply, id="reply-ok"),
    pytest.param(Channel.REPLIES, None, REPLY_ERROR, CommandReply, id="reply-error"),
    *[
        pytest.param(Channel.EVENTS, kind_of(t), event(t), None, id=f"event-{t}")
        for t in EVENT_TYPES
    ],
    pytest.param(Channel.EVENTS, "recording",
                 event("recording.started", data={"recording_id": "r2", "camera_id": "front",
                                                  "trigger": "manual", "command_id": "c1"}),
                 None, id="event-recording.started-manual"),
    pytest.param(Channel.EVENTS, "recording",
                 event("recording.failed", data={**EVENT_DATA["recording.failed"],
                                                 "recording_id": "r1"}),
                 None, id="event-recording.failed-with-recording"),
    pytest.param(Channel.EVENTS, "upload",
                 event("upload.completed", data={**EVENT_DATA["upload.completed"],
                                                 "uri": "file:///var/lib/cctv/r1-0001.mp4"}),
                 None, id="event-upload.completed-file"),
]


@pytest.mark.parametrize(("channel", "kind", "document", "model"), VALID)
def test_valid_payload_decodes_and_round_trips(
    channel: Channel, kind: str | None, document: dict[str, Any], model: type[BaseModel] | None
) -> None:
    decoded = receive(channel, raw(document), kind)
    if model is not None:
        assert type(decoded) is model
    else:
        assert decoded.type == document["type"]
    assert isinstance(decoded, BaseModel)
    again = decode(encode(decoded), ADAPTERS[channel])
    assert again == decoded
    assert type(again) is type(decoded)
    # Encoding is stable: a decoded payload re-encodes to the same bytes.
    assert encode(again) == encode(decoded)


def test_every_event_type_has_a_valid_example() -> None:
    assert set(EVENT_DATA) == set(EVENT_TYPES)


@pytest.mark.parametrize(
    ("document", "model"),
    [
        pytest.param(ONCE, OnceSchedule, id="once"),
        pytest.param(DAILY, DailySchedule, id="daily"),
        pytest.param(WEEKLY, WeeklySchedule, id="weekly"),
        pytest.param(CONTINUOUS, ContinuousSchedule, id="continuous"),
        pytest.param(CRON, CronSchedule, id="cron"),
    ],
)
def test_every_schedule_kind_round_trips(document: dict[str, Any], model: type[BaseModel]) -> None:
    decoded = decode(raw(document), SCHEDULE_ADAPTER)
    assert type(decoded) is model
    assert decode(encode(decoded), SCHEDULE_ADAPTER) == decoded


def test_schedule_defaults() -> None:
    decoded = decode(raw({"schedule_id": "s", "camera_ids": ["a"], "kind": "continuous"}),
                     SCHEDULE_ADAPTER)
    assert decoded.tz == "UTC"
    assert decoded.enabled is True
    assert decoded.segment_seconds == 60


def test_camera_round_trips_and_defaults() -> None:
    decoded = decode(raw({"camera_id": "usb", "node_id": NODE, "url": "device://12"}),
                     CAMERA_ADAPTER)
    assert isinstance(decoded, Camera)
    assert (decoded.name, decoded.enabled, decoded.transport) == ("", True, "auto")
    assert decode(encode(decoded), CAMERA_ADAPTER) == decoded


def test_shell_example_from_design_is_a_record_command() -> None:
    payload = b'{"command_id":"c1","command":"record","camera_id":"front","duration_s":30}'
    command = decode_channel(TABLE.parse("cctv/v1/site-1/commands"), payload)
    assert isinstance(command, RecordCommand)
    assert command == RecordCommand(command_id="c1", command="record", camera_id="front",
                                    duration_s=30)
    assert command.expires_at is None


def test_limits_are_inclusive() -> None:
    assert receive(Channel.COMMANDS, raw({**RECORD, "duration_s": 1})).duration_s == 1
    assert receive(Channel.COMMANDS, raw({**RECORD, "duration_s": 4 * 3600})).duration_s == 14400
    longest = "a" * 63
    assert receive(Channel.COMMANDS, raw({**STOP, "camera_id": longest})).camera_id == longest
    for seconds in (2, 3600):
        decoded = decode(raw({**CONTINUOUS, "segment_seconds": seconds}), SCHEDULE_ADAPTER)
        assert decoded.segment_seconds == seconds


def test_payload_of_exactly_the_limit_is_decoded() -> None:
    document = raw(STATUS)
    padded = document[:-1] + b" " * (MAX_PAYLOAD_BYTES - len(document)) + b"}"
    assert len(padded) == MAX_PAYLOAD_BYTES
    assert isinstance(receive(Channel.STATUS, padded), NodeStatus)


# --- timestamps are normalised to UTC ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2024-06-01T10:00:00+02:00", datetime(2024, 6, 1, 8, tzinfo=UTC), id="plus-2"),
        pytest.param("2024-06-01T03:00:00-05:00", datetime(2024, 6, 1, 8, tzinfo=UTC),
                     id="minus-5"),
        pytest.param("2024-06-01T13:45:00+05:45", datetime(2024, 6, 1, 8, tzinfo=UTC),
                     id="nepal-plus-5-45"),
        pytest.param("2024-06-01T08:00:00Z", datetime(2024, 6, 1, 8, tzinfo=UTC), id="zulu"),
        pytest.param("2024-06-01T08:00:00+00:00", datetime(2024, 6, 1, 8, tzinfo=UTC),
                     id="plus-0"),
    ],
)
def test_offsets_are_normalised_to_utc(text: str, expected: datetime) -> None:
    status = receive(Channel.STATUS, raw({**STATUS, "ts": text}))
    assert status.ts == expected
    assert status.ts.utcoffset() == timedelta(0)
    assert status.ts.tzinfo is UTC
    assert b'"ts":"2024-06-01T08:00:00Z"' in encode(status)


def test_nested_timestamps_are_normalised_to_utc() -> None:
    once = decode(raw({**ONCE, "start": "2024-06-01T10:00:00+02:00",
                       "end": "2024-06-01T05:30:00-04:00"}), SCHEDULE_ADAPTER)
    assert once.start == datetime(2024, 6, 1, 8, tzinfo=UTC)
    assert once.end == datetime(2024, 6, 1, 9, 30, tzinfo=UTC)
    assert once.start.tzinfo is UTC
    assert once.end.tzinfo is UTC
    segment = receive(Channel.EVENTS,
                      raw(event("recording.segment", ts="2024-06-01T09:01:00+01:00")), "recording")
    assert segment.ts == datetime(2024, 6, 1, 8, 1, tzinfo=UTC)
    assert segment.ts.tzinfo is UTC
    assert segment.data.start.tzinfo is UTC
    command = receive(Channel.COMMANDS, raw({**RECORD, "expires_at": "2024-06-01T17:00:00+09:00"}))
    assert command.expires_at == datetime(2024, 6, 1, 8, tzinfo=UTC)
    assert command.expires_at.tzinfo is UTC


def test_models_built_in_code_are_normalised_too() -> None:
    tokyo = timezone(timedelta(hours=9))
    status = NodeStatus(state="online", session=1, ts=datetime(2024, 6, 1, 17, tzinfo=tokyo),
                        version="1")
    assert status.ts == datetime(2024, 6, 1, 8, tzinfo=UTC)
    assert status.ts.tzinfo is UTC


# --- invalid payloads ----------------------------------------------------------------------

LONG_ID = "a" * 64
SEGMENT = event("recording.segment")
UPLOAD = event("upload.completed")


def case(channel: Channel, document: Any, field: str | None, case_id: str,
         kind: str | None = None) -> Any:
    payload = document if isinstance(document, bytes) else raw(document)
    return pytest.param(channel, kind, payload, field, id=case_id)


INVALID = [
    # Not JSON, or not an object.
    case(Channel.ACKS, b'{"upto_seq": 1', None, "malformed-json"),
    case(Channel.ACKS, b"", None, "empty-payload"),
    case(Channel.STATUS, b'{"state":"online","session":1,"ts":"2024-06-01T08:00:00Z",'
                         b'"version":"\xff\xfe"}', None, "non-utf8-bytes"),
    case(Channel.STATUS, json.dumps({**STATUS, "version": "caf\u00e9"}, ensure_ascii=False)
         .encode("latin-1"), None, "latin1-encoded-json"),
    case(Channel.ACKS, b"[41]", None, "json-array-not-object"),
    case(Channel.COMMANDS, b"null", None, "json-null"),
    # Unknown fields, top level and nested.
    case(Channel.COMMANDS, {**RECORD, "priority": 1}, "priority", "unknown-field-top-level"),
    case(Channel.ACKS, {"upto_seq": 1, "node_id": NODE}, "node_id", "unknown-field-ack"),
    case(Channel.CAMERAS, cameras({**CAMERA, "password": "x"}), "cameras.0.password",
         "unknown-field-in-camera"),
    case(Channel.SCHEDULES, schedules(DAILY, {**CRON, "color": "red"}), "schedules.1.color",
         "unknown-field-in-schedule"),
    case(Channel.SCHEDULES, schedules({**CONTINUOUS, "start_time": "08:00"}),
         "schedules.0.start_time", "field-of-another-kind"),
    case(Channel.EVENTS, changed(SEGMENT, "data.note", "x"), "data.note",
         "unknown-field-in-event-data", "recording"),
    case(Channel.HEARTBEAT, changed(HEARTBEAT, "system.kernel", "6.1"), "system.kernel",
         "unknown-field-in-heartbeat-system"),
    case(Channel.HEARTBEAT, changed(HEARTBEAT, "cameras.1.temperature", 40),
         "cameras.1.temperature", "unknown-field-in-heartbeat-camera"),
    # Wrong types: the models are strict.
    case(Channel.COMMANDS, {**RECORD, "duration_s": "30"}, "duration_s", "string-for-int"),
    case(Channel.COMMANDS, {**RECORD, "duration_s": 30.5}, "duration_s", "float-for-int"),
    case(Channel.COMMANDS, {**RECORD, "duration_s": 30.0}, "duration_s", "integral-float-for-int"),
    case(Channel.ACKS, {"upto_seq": True}, "upto_seq", "bool-for-int"),
    case(Channel.CAMERAS, cameras({**CAMERA, "enabled": 1}), "cameras.0.enabled", "int-for-bool"),
    case(Channel.REPLIES, {**REPLY_OK, "ok": "true"}, "ok", "string-true-for-bool"),
    case(Channel.HEARTBEAT, {**HEARTBEAT, "uptime_s": "12.5"}, "uptime_s", "string-for-float"),
    case(Channel.STATUS, {**STATUS, "version": 1}, "version", "int-for-string"),
    case(Channel.STATUS, {**STATUS, "session": None}, "session", "null-for-required"),
    case(Channel.SCHEDULES, schedules({**DAILY, "camera_ids": "front"}), "schedules.0.camera_ids",
         "string-for-list"),
    case(Channel.EVENTS, changed(event("storage.evicted"), "data.uploaded", "no"), "data.uploaded",
         "string-for-bool-in-event", "storage"),
    case(Channel.REPLIES, {**REPLY_OK, "result": [1, 2]}, "result", "list-for-object"),
    # Missing required fields.
    case(Channel.COMMANDS, removed(RECORD, "duration_s"), "duration_s", "missing-duration"),
    case(Channel.COMMANDS, removed(STOP, "camera_id"), "camera_id", "missing-camera-id"),
    case(Channel.EVENTS, removed(SEGMENT, "data.crc32c"), "data.crc32c", "missing-crc32c",
         "recording"),
    case(Channel.HEARTBEAT, removed(HEARTBEAT, "outbox.depth"), "outbox.depth",
         "missing-nested-field"),
    # Timestamps: aware ISO 8601 only.
    case(Channel.STATUS, {**STATUS, "ts": "2024-06-01T08:00:00"}, "ts", "naive-datetime"),
    case(Channel.SCHEDULES, schedules({**ONCE, "start": "2024-06-01T08:00:00"}),
         "schedules.0.start", "naive-datetime-in-once"),
    case(Channel.COMMANDS, {**RECORD, "expires_at": "2024-06-01T08:00:00"}, "expires_at",
         "naive-expires-at"),
    case(Channel.HEARTBEAT, changed(HEARTBEAT, "cameras.0.last_segment_at", "2024-06-01"),
         "cameras.0.last_segment_at", "date-for-datetime"),
    case(Channel.STATE, {**STATE, "ts": "yesterday"}, "ts", "not-a-datetime"),
    case(Channel.STATUS, {**STATUS, "ts": 1_717_228_800}, "ts", "unix-int-for-datetime"),
    case(Channel.STATUS, {**STATUS, "ts": "1717228800"}, "ts", "unix-string-for-datetime"),
    # Ids: ^[a-z0-9][a-z0-9-]{0,62}$, safe in topics and paths.
    case(Channel.COMMANDS, {**STOP, "camera_id": "front/../x"}, "camera_id", "id-with-slash"),
    case(Channel.COMMANDS, {**STOP, "camera_id": ".."}, "camera_id", "id-dot-dot"),
    case(Channel.COMMANDS, {**STOP, "camera_id": "Front"}, "camera_id", "id-uppercase"),
    case(Channel.SCHEDULES, schedules({**DAILY, "schedule_id": "a+b"}), "schedules.0.schedule_id",
         "id-with-plus"),
    case(Channel.SCHEDULES, schedules({**DAILY, "camera_ids": ["front", "#"]}),
         "schedules.0.camera_ids.1", "id-hash"),
    case(Channel.COMMANDS, {**STOP, "command_id": ""}, "command_id", "id-empty"),
    case(Channel.CAMERAS, cameras({**CAMERA, "node_id": LONG_ID}), "cameras.0.node_id",
         "id-64-chars"),
    case(Channel.COMMANDS, {**STOP, "camera_id": "-front"}, "camera_id", "id-leading-hyphen"),
    case(Channel.COMMANDS, {**STOP, "camera_id": "front\n"}, "camera_id", "id-trailing-newline"),
    case(Channel.COMMANDS, {**STOP, "camera_id": "caméra"}, "camera_id", "id-non-ascii"),
    case(Channel.EVENTS, {**SEGMENT, "event_id": "e 1"}, "event_id", "event-id-with-space",
         "recording"),
    case(Channel.EVENTS, {**SEGMENT, "node_id": "site/1"}, "node_id", "event-node-id-with-slash",
         "recording"),
    case(Channel.EVENTS, changed(SEGMENT, "data.segment_id", "../etc"), "data.segment_id",
         "segment-id-path-traversal", "recording"),
    # Time zones.
    case(Channel.SCHEDULES, schedules({**DAILY, "tz": "Mars/Olympus"}), "schedules.0.tz",
         "tz-unknown"),
    case(Channel.SCHEDULES, schedules({**DAILY, "tz": "../../etc/passwd"}), "schedules.0.tz",
         "tz-path-traversal"),
    case(Channel.SCHEDULES, schedules({**DAILY, "tz": "/etc/localtime"}), "schedules.0.tz",
         "tz-absolute-path"),
    case(Channel.SCHEDULES, schedules({**DAILY, "tz": ""}), "schedules.0.tz", "tz-empty"),
    case(Channel.SCHEDULES, schedules({**DAILY, "tz": "+02:00"}), "schedules.0.tz",
         "tz-offset-not-iana"),
    case(Channel.SCHEDULES, schedules({**DAILY, "tz": "localtime"}), "schedules.0.tz",
         "tz-localtime-not-iana"),
    # once / daily / weekly consistency.
    case(Channel.SCHEDULES, schedules({**ONCE, "end": "2024-06-01T07:00:00Z"}), "schedules.0.end",
         "once-end-before-start"),
    case(Channel.SCHEDULES, schedules({**ONCE, "end": ONCE["start"]}), "schedules.0.end",
         "once-end-equals-start"),
    case(Channel.SCHEDULES, schedules({**DAILY, "end_time": "22:00:00"}), "schedules.0.end_time",
         "daily-equal-times"),
    case(Channel.SCHEDULES, schedules({**WEEKLY, "start_time": "18:00"}), "schedules.0.end_time",
         "weekly-equal-times"),
    case(Channel.SCHEDULES, schedules({**DAILY, "start_time": "22:00:00+02:00"}),
         "schedules.0.start_time", "daily-time-with-offset"),
    case(Channel.SCHEDULES, schedules({**DAILY, "start_time": "25:00"}), "schedules.0.start_time",
         "daily-hour-25"),
    case(Channel.SCHEDULES, schedules({**DAILY, "end_time": 3600}), "schedules.0.end_time",
         "daily-int-for-time"),
    case(Channel.SCHEDULES, schedules({**WEEKLY, "days": ["monday"]}), "schedules.0.days.0",
         "weekly-bad-day-name"),
    case(Channel.SCHEDULES, schedules({**WEEKLY, "days": ["mon", "mon"]}), "schedules.0.days",
         "weekly-duplicate-days"),
    case(Channel.SCHEDULES, schedules({**WEEKLY, "days": []}), "schedules.0.days",
         "weekly-no-days"),
    # cron.
    case(Channel.SCHEDULES, schedules({**CRON, "expression": "61 * * * *"}),
         "schedules.0.expression", "cron-minute-out-of-range"),
    case(Channel.SCHEDULES, schedules({**CRON, "expression": "* * * *"}),
         "schedules.0.expression", "cron-four-fields"),
    case(Channel.SCHEDULES, schedules({**CRON, "expression": "*/0 * * * *"}),
         "schedules.0.expression", "cron-step-zero"),
    case(Channel.SCHEDULES, schedules({**CRON, "expression": "0 0 * * funday"}),
         "schedules.0.expression", "cron-bad-day-name"),
    case(Channel.SCHEDULES, schedules({**CRON, "expression": "@hourly"}),
         "schedules.0.expression", "cron-macro"),
    case(Channel.SCHEDULES, schedules({**CRON, "duration_s": 0}), "schedules.0.duration_s",
         "cron-duration-zero"),
    case(Channel.SCHEDULES, schedules({**CRON, "duration_s": 86_401}), "schedules.0.duration_s",
         "cron-duration-over-a-day"),
    case(Channel.SCHEDULES, schedules(removed(CRON, "duration_s")), "schedules.0.duration_s",
         "cron-without-duration"),
    # Segment length 2-3600 s.
    case(Channel.SCHEDULES, schedules({**CONTINUOUS, "segment_seconds": 1}),
         "schedules.0.segment_seconds", "segment-seconds-1"),
    case(Channel.SCHEDULES, schedules({**CONTINUOUS, "segment_seconds": 3601}),
         "schedules.0.segment_seconds", "segment-seconds-3601"),
    # Schedule kinds and the document.
    case(Channel.SCHEDULES, schedules({**CONTINUOUS, "kind": "hourly"}), "schedules.0.kind",
         "schedule-unknown-kind"),
    case(Channel.SCHEDULES, schedules(removed(CONTINUOUS, "kind")), "schedules.0.kind",
         "schedule-without-kind"),
    case(Channel.SCHEDULES, schedules(DAILY, {**CONTINUOUS, "schedule_id": DAILY["schedule_id"]}),
         "schedules", "duplicate-schedule-ids"),
    case(Channel.SCHEDULES, schedules({**DAILY, "camera_ids": ["front", "front"]}),
         "schedules.0.camera_ids", "duplicate-camera-ids-in-schedule"),
    case(Channel.SCHEDULES, schedules({**DAILY, "camera_ids": []}), "schedules.0.camera_ids",
         "schedule-without-cameras"),
    case(Channel.SCHEDULES, {**SCHEDULE_SET, "revision": -1}, "revision", "negative-revision"),
    # Commands.
    case(Channel.COMMANDS, {**RECORD, "duration_s": 0}, "duration_s", "duration-zero"),
    case(Channel.COMMANDS, {**RECORD, "duration_s": -30}, "duration_s", "duration-negative"),
    case(Channel.COMMANDS, {**RECORD, "duration_s": 4 * 3600 + 1}, "duration_s",
         "duration-over-cap"),
    case(Channel.COMMANDS, {**RECORD, "command": "explode"}, "command", "unknown-command"),
    case(Channel.COMMANDS, removed(RECORD, "command"), "command", "missing-command"),
    case(Channel.COMMANDS, {**RESYNC, "camera_id": "front"}, "camera_id",
         "resync-takes-no-camera"),
    # Events.
    case(Channel.EVENTS, {**SEGMENT, "type": "recording.paused"}, "type", "unknown-event-type",
         "recording"),
    case(Channel.EVENTS, removed(SEGMENT, "type"), "type", "event-without-type", "recording"),
    case(Channel.EVENTS, {**SEGMENT, "seq": 0}, "seq", "event-seq-zero", "recording"),
    case(Channel.EVENTS, changed(SEGMENT, "data.crc32c", "abc"), "data.crc32c", "crc32c-short",
         "recording"),
    case(Channel.EVENTS, changed(SEGMENT, "data.crc32c", "c9946aaa"), "data.crc32c",
         "crc32c-hex-not-base64", "recording"),
    case(Channel.EVENTS, changed(SEGMENT, "data.crc32c", 3381945770), "data.crc32c",
         "crc32c-integer", "recording"),
    case(Channel.EVENTS, changed(UPLOAD, "data.crc32c", "yZRlqg"), "data.crc32c",
         "crc32c-unpadded-in-upload", "upload"),
    case(Channel.EVENTS, changed(SEGMENT, "data.container", "mkv"), "data.container",
         "segment-container-mkv", "recording"),
    case(Channel.EVENTS, changed(SEGMENT, "data.codec", "vp9"), "data.codec",
         "segment-codec-vp9", "recording"),
    case(Channel.EVENTS, changed(SEGMENT, "data.bytes", -1), "data.bytes",
         "segment-negative-bytes", "recording"),
    case(Channel.EVENTS, changed(event("recording.stopped"), "data.reason", "bored"),
         "data.reason", "stopped-unknown-reason", "recording"),
    case(Channel.EVENTS, changed(event("recording.started"), "data.trigger", "motion"),
         "data.trigger", "started-unknown-trigger", "recording"),
    case(Channel.EVENTS, removed(event("recording.started"), "data.schedule_id"),
         "data.schedule_id", "started-by-schedule-without-schedule-id", "recording"),
    case(Channel.EVENTS, changed(UPLOAD, "data.uri", "s3://bucket/x.mp4"), "data.uri",
         "upload-uri-s3", "upload"),
    case(Channel.EVENTS, changed(event("upload.failed"), "data.attempt", 0), "data.attempt",
         "upload-attempt-zero", "upload"),
    case(Channel.EVENTS, changed(event("storage.evicted"), "data.reason", ""), "data.reason",
         "evicted-without-reason", "storage"),
    # Events checked against the topic they arrived on.
    case(Channel.EVENTS, {**SEGMENT, "node_id": "site-2"}, "node_id", "event-of-another-node",
         "recording"),
    case(Channel.EVENTS, SEGMENT, "type", "event-on-wrong-kind-topic", "upload"),
    case(Channel.EVENTS, event("camera.online"), "type", "camera-event-on-storage-topic",
         "storage"),
    # Cameras.
    case(Channel.CAMERAS, cameras({**CAMERA, "url": "ftp://cam.local/live"}), "cameras.0.url",
         "camera-url-ftp"),
    case(Channel.CAMERAS, cameras({**CAMERA, "url": "file:///dev/video0"}), "cameras.0.url",
         "camera-url-file"),
    case(Channel.CAMERAS, cameras({**CAMERA, "url": "cam.local/live"}), "cameras.0.url",
         "camera-url-no-scheme"),
    case(Channel.CAMERAS, cameras({**CAMERA, "url": "device://front"}), "cameras.0.url",
         "device-url-not-a-number"),
    case(Channel.CAMERAS, cameras({**CAMERA, "url": "device:///dev/video0"}), "cameras.0.url",
         "device-url-path"),
    case(Channel.CAMERAS, cameras({**CAMERA, "url": "device://1234"}), "cameras.0.url",
         "device-url-too-long"),
    case(Channel.CAMERAS, cameras({**CAMERA, "url": "rtsp:///stream1"}), "cameras.0.url",
         "camera-url-no-host"),
    case(Channel.CAMERAS, cameras({**CAMERA, "url": "rtsp://cam.local/live stream"}),
         "cameras.0.url", "camera-url-whitespace"),
    case(Channel.CAMERAS, cameras({**CAMERA, "url": ""}), "cameras.0.url", "camera-url-empty"),
    case(Channel.CAMERAS, cameras({**CAMERA, "url": "rtsp://admin:pw@cam.local:99999/live"}),
         "cameras.0.url", "camera-url-port-out-of-range"),
    case(Channel.CAMERAS, cameras({**CAMERA, "url": "rtsp://cam.local:rtsp/live"}),
         "cameras.0.url", "camera-url-port-not-a-number"),
    case(Channel.CAMERAS, cameras({**CAMERA, "transport": "quic"}), "cameras.0.transport",
         "camera-unknown-transport"),
    case(Channel.CAMERAS, cameras({**CAMERA, "name": "x" * 201}), "cameras.0.name",
         "camera-name-too-long"),
    case(Channel.CAMERAS, cameras(CAMERA, {**CAMERA, "name": "again"}), "cameras",
         "duplicate-camera-ids"),
    # Presence, state, heartbeat, replies.
    case(Channel.STATUS, {**STATUS, "state": "away"}, "state", "status-unknown-state"),
    case(Channel.STATUS, {**STATUS, "session": 0}, "session", "status-session-zero"),
    case(Channel.STATE, {**STATE, "cameras_revision": -1}, "cameras_revision",
         "state-negative-revision"),
    case(Channel.HEARTBEAT, changed(HEARTBEAT, "cameras.0.state", "sleeping"), "cameras.0.state",
         "heartbeat-camera-unknown-state"),
    case(Channel.HEARTBEAT, {**HEARTBEAT, "disk_free_bytes": -1}, "disk_free_bytes",
         "heartbeat-negative-disk"),
    case(Channel.HEARTBEAT, changed(HEARTBEAT, "upload_backlog.oldest_s", -0.5),
         "upload_backlog.oldest_s", "heartbeat-negative-age"),
    case(Channel.REPLIES, removed(REPLY_OK, "ok"), "ok", "reply-without-ok"),
    case(Channel.REPLIES, {**REPLY_ERROR, "error": "e" * 1001}, "error", "reply-error-too-long"),
]


@pytest.mark.parametrize(("channel", "kind", "payload", "field"), INVALID)
def test_invalid_payload_is_rejected_naming_the_field(
    channel: Channel, kind: str | None, payload: bytes, field: str | None
) -> None:
    with pytest.raises(PayloadError) as caught:
        receive(channel, payload, kind)
    assert caught.value.field == field
    if field is not None:
        assert str(caught.value).startswith(f"{field}: ")
    assert caught.value.reason


def test_there_are_plenty_of_invalid_payloads() -> None:
    assert len(INVALID) >= 40


@pytest.mark.parametrize(
    ("document", "field"),
    [
        pytest.param({**CONTINUOUS, "camera_ids": ["Front"]}, "camera_ids.0", id="camera-id"),
        pytest.param({**ONCE, "end": "2024-06-01T07:00:00Z"}, "end", id="once-end-before-start"),
        pytest.param({**DAILY, "tz": "Nowhere/Land"}, "tz", id="tz"),
        pytest.param({**CONTINUOUS, "kind": "sometimes"}, "kind", id="unknown-kind"),
    ],
)
def test_a_single_schedule_names_the_field(document: dict[str, Any], field: str) -> None:
    """A schedule on its own (as the REST API receives it) has no `schedules.N.` prefix."""
    with pytest.raises(PayloadError) as caught:
        decode(raw(document), SCHEDULE_ADAPTER)
    assert caught.value.field == field


def test_oversized_payload_is_rejected_before_parsing() -> None:
    document = raw(STATUS)
    padded = document[:-1] + b" " * (MAX_PAYLOAD_BYTES + 1 - len(document)) + b"}"
    assert len(padded) == MAX_PAYLOAD_BYTES + 1
    with pytest.raises(PayloadError) as caught:
        receive(Channel.STATUS, padded)
    assert caught.value.field is None
    assert "exceeds" in str(caught.value)
    assert str(MAX_PAYLOAD_BYTES) in str(caught.value)


def test_oversized_garbage_is_reported_as_oversized() -> None:
    with pytest.raises(PayloadError, match="exceeds") as caught:
        decode(b"\xff" * (MAX_PAYLOAD_BYTES * 2), ADAPTERS[Channel.HEARTBEAT])
    assert caught.value.field is None


def test_several_errors_are_counted_in_the_message() -> None:
    with pytest.raises(PayloadError) as caught:
        receive(Channel.STATUS, raw({"state": "away", "session": 0, "ts": "x", "version": 1}))
    assert caught.value.field == "state"
    assert "(and 3 more)" in str(caught.value)


def test_payload_error_is_a_value_error_and_hides_pydantic() -> None:
    with pytest.raises(ValueError, match="duration_s") as caught:
        receive(Channel.COMMANDS, raw({**RECORD, "duration_s": 0}))
    assert isinstance(caught.value, PayloadError)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=70))
def test_ids_are_accepted_exactly_when_they_match_the_pattern(candidate: str) -> None:
    payload = raw({**STOP, "camera_id": candidate})
    if is_valid_id(candidate):
        assert receive(Channel.COMMANDS, payload).camera_id == candidate
    else:
        with pytest.raises(PayloadError) as caught:
            receive(Channel.COMMANDS, payload)
        assert caught.value.field == "camera_id"


# --- stream credentials never leak ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(f"rtsp://admin:{PASSWORD}@10.0.0.5:554/stream1",
                     "rtsp://admin:***@10.0.0.5:554/stream1", id="user-pass-port"),
        pytest.param(f"rtsp://admin:{PASSWORD}@cam.local/live",
                     "rtsp://admin:***@cam.local/live", id="user-pass"),
        pytest.param(f"rtsp://:{PASSWORD}@cam.local/live", "rtsp://***@cam.local/live",
                     id="pass-only"),
        pytest.param(f"rtsp://admin:{PASSWORD}@[fe80::1]:8554/live",
                     "rtsp://admin:***@[fe80::1]:8554/live", id="ipv6-port"),
        pytest.param(f"http://viewer:{PASSWORD}@[2001:db8::7]/video.mjpg",
                     "http://viewer:***@[2001:db8::7]/video.mjpg", id="ipv6-no-port"),
        pytest.param(f"https://admin:{PASSWORD}@cam.local:8443/mjpeg?fps=5#view",
                     "https://admin:***@cam.local:8443/mjpeg?fps=5#view", id="query-fragment"),
        pytest.param("rtsp://admin:p@ss@cam.local/live", "rtsp://admin:***@cam.local/live",
                     id="at-sign-in-password"),
        pytest.param("rtsp://cam.local:554/live?channel=1", "rtsp://cam.local:554/live?channel=1",
                     id="no-credentials"),
        pytest.param("rtsp://viewer@cam.local/live", "rtsp://viewer@cam.local/live",
                     id="user-without-password"),
        pytest.param("rtsp://[::1]:554/live", "rtsp://[::1]:554/live", id="ipv6-no-credentials"),
        pytest.param("device://0", "device://0", id="device"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"rtsp://admin:{PASSWORD}@cam.local:99999/live", id="port-out-of-range"),
        pytest.param(f"rtsp://admin:{PASSWORD}@cam.local:rtsp/live", id="port-not-a-number"),
        pytest.param(f"rtsp://admin:{PASSWORD}@[fe80::1/live", id="broken-ipv6"),
    ],
)
def test_redact_url_never_raises_nor_leaks_on_malformed_urls(url: str) -> None:
    assert PASSWORD not in redact_url(url)


def test_camera_repr_never_shows_the_password() -> None:
    camera = decode(raw(CAMERA), CAMERA_ADAPTER)
    assert camera.url == CAMERA["url"]  # the model keeps it: the node needs it
    camera_set = decode(raw(CAMERA_SET), ADAPTERS[Channel.CAMERAS])
    for text in (repr(camera), str(camera), repr(camera_set), str(camera_set), f"{camera!r}"):
        assert PASSWORD not in text
        assert "admin:***@10.0.0.5:554" in text


def test_camera_repr_without_password_is_unchanged() -> None:
    camera = Camera(camera_id="usb", node_id=NODE, url="device://0")
    assert "url='device://0'" in repr(camera)


def test_error_for_a_bad_camera_does_not_echo_its_password() -> None:
    bad = cameras({**CAMERA, "url": f"ftp://admin:{PASSWORD}@cam.local/live"})
    with pytest.raises(PayloadError) as caught:
        receive(Channel.CAMERAS, raw(bad))
    assert caught.value.field == "cameras.0.url"
    assert PASSWORD not in str(caught.value)
