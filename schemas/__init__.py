"""The wire contract: every MQTT topic and payload, as pure pydantic models.

Imported by the edge node, the cloud service and the CLI; imports none of
them. Never does I/O.
"""

from schemas.cameras import Camera, CameraSet, redact_url
from schemas.codec import ADAPTERS, COMMAND_ADAPTER, MAX_PAYLOAD_BYTES, PayloadError, decode, encode
from schemas.commands import (
    Command,
    CommandReply,
    RecordCommand,
    ResyncCommand,
    SnapshotCommand,
    StopCommand,
)
from schemas.events import EVENT_ADAPTER, EVENT_TYPES, Event, event_kind
from schemas.ids import ID_PATTERN, check_id, is_valid_id, utc_now
from schemas.schedules import Schedule, ScheduleSet
from schemas.status import EventAck, Heartbeat, NodeStatus, ReportedState
from schemas.topics import Channel, ParsedTopic, TopicError, TopicTable

__all__ = [
    "ADAPTERS", "COMMAND_ADAPTER", "EVENT_ADAPTER", "EVENT_TYPES", "ID_PATTERN",
    "MAX_PAYLOAD_BYTES", "Camera", "CameraSet", "Channel", "Command", "CommandReply",
    "Event", "EventAck", "Heartbeat", "NodeStatus", "ParsedTopic", "PayloadError",
    "RecordCommand", "ReportedState", "ResyncCommand", "Schedule", "ScheduleSet",
    "SnapshotCommand", "StopCommand", "TopicError", "TopicTable", "check_id", "decode",
    "encode", "event_kind", "is_valid_id", "redact_url", "utc_now",
]
