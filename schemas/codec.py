"""Bytes on the wire <-> models, with the limits every receiver enforces.

`decode` never lets a third-party exception out: size, JSON, type and
unknown-field problems all become one `PayloadError` whose message names the
offending field, ready to be logged and counted by the receiver.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.cameras import CameraSet
from schemas.commands import Command, CommandReply
from schemas.events import EVENT_ADAPTER, EVENT_TYPES, Event, event_kind
from schemas.schedules import ScheduleSet
from schemas.status import EventAck, Heartbeat, NodeStatus, ReportedState
from schemas.topics import Channel, ParsedTopic

T = TypeVar("T")

# Well above the largest legitimate payload (a heartbeat of 256 cameras, a
# ScheduleSet of 1000 schedules stays below it) and below the broker's limit.
MAX_PAYLOAD_BYTES = 256 * 1024

COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
_TAGS = frozenset(EVENT_TYPES) | {"record", "stop", "snapshot", "resync",
                                  "once", "daily", "weekly", "continuous", "cron"}

ADAPTERS: dict[Channel, TypeAdapter[Any]] = {
    Channel.SCHEDULES: TypeAdapter(ScheduleSet),
    Channel.CAMERAS: TypeAdapter(CameraSet),
    Channel.COMMANDS: COMMAND_ADAPTER,
    Channel.ACKS: TypeAdapter(EventAck),
    Channel.STATUS: TypeAdapter(NodeStatus),
    Channel.STATE: TypeAdapter(ReportedState),
    Channel.HEARTBEAT: TypeAdapter(Heartbeat),
    Channel.EVENTS: EVENT_ADAPTER,
    Channel.REPLIES: TypeAdapter(CommandReply),
}


class PayloadError(ValueError):
    """A payload that does not satisfy the contract. `field` is its dotted path."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field

    @classmethod
    def from_validation(cls, exc: ValidationError) -> PayloadError:
        first = exc.errors(include_url=False)[0]
        # Union discriminators add the tag to the path; the field is what matters.
        path = [str(p) for p in first["loc"] if p not in _TAGS]
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # A missing or unknown tag: the tag field itself is the culprit.
            path.append(str(first.get("ctx", {}).get("discriminator", "")).strip("'\""))
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return cls(f"{first['msg']}{more}", ".".join(path) or None)


class TopicMismatchError(PayloadError):
    """A valid event published on a topic it does not belong on: another
    node's subtree, or the wrong kind."""


def decode(payload: bytes, adapter: TypeAdapter[T]) -> T:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        return adapter.validate_json(payload)
    except ValidationError as exc:
        raise PayloadError.from_validation(exc) from None


def decode_channel(topic: ParsedTopic, payload: bytes) -> Any:
    """Decode a payload for the channel it arrived on; events are checked
    against the topic they came on (kind and node)."""
    model = decode(payload, ADAPTERS[topic.channel])
    if topic.channel is Channel.EVENTS:
        check_event_topic(topic, model)
    return model


def check_event_topic(topic: ParsedTopic, event: Event) -> None:
    if event.node_id != topic.node_id:
        raise TopicMismatchError(
            f"event of node {event.node_id!r} on node {topic.node_id!r}'s topic", "node_id")
    if event_kind(event) != topic.kind:
        raise TopicMismatchError(
            f"{event.type} does not belong on events/{topic.kind}", "type")


def encode(model: BaseModel) -> bytes:
    return model.model_dump_json(exclude_none=True).encode()
