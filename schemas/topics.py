"""The one table of topics: every topic is built and parsed here, nowhere else.

`TopicTable` knows, for each channel under `{prefix}/{node_id}/`, who sends
it, its QoS, whether it is retained and which model its payload is. Code on
either side builds topics with `topic()`/`subscription()` and turns an
incoming topic into a `ParsedTopic` with `parse()`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from schemas.cameras import CameraSet
from schemas.commands import CommandReply
from schemas.events import EVENT_KINDS
from schemas.ids import check_id, is_valid_id
from schemas.schedules import ScheduleSet
from schemas.status import EventAck, Heartbeat, NodeStatus, ReportedState

DEFAULT_PREFIX = "cctv/v1"
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


class TopicError(ValueError):
    """A topic that is not in the table."""


class Channel(StrEnum):
    SCHEDULES = "schedules"
    CAMERAS = "cameras"
    COMMANDS = "commands"
    ACKS = "acks"
    STATUS = "status"
    STATE = "state"
    HEARTBEAT = "heartbeat"
    EVENTS = "events"
    REPLIES = "replies"


@dataclass(frozen=True)
class ChannelSpec:
    channel: Channel
    to_node: bool  # True: cloud/operator -> node; False: node -> cloud
    retained: bool
    payload: str  # the model's name, for documents
    summary: str
    qos: int = 1


CHANNELS: dict[Channel, ChannelSpec] = {
    spec.channel: spec
    for spec in (
        ChannelSpec(Channel.SCHEDULES, True, True, ScheduleSet.__name__,
                    "Desired schedules of the node's cameras; empty payload clears."),
        ChannelSpec(Channel.CAMERAS, True, True, CameraSet.__name__,
                    "Desired cameras of the node; empty payload clears."),
        ChannelSpec(Channel.COMMANDS, True, False, "Command",
                    "A command from the cloud or an operator."),
        ChannelSpec(Channel.ACKS, True, False, EventAck.__name__,
                    "The highest event seq stored with no gap."),
        ChannelSpec(Channel.STATUS, False, True, NodeStatus.__name__,
                    "Presence; also the node's Last Will."),
        ChannelSpec(Channel.STATE, False, True, ReportedState.__name__,
                    "Revisions the node has applied."),
        ChannelSpec(Channel.HEARTBEAT, False, False, Heartbeat.__name__,
                    "Periodic health of the node and its cameras."),
        ChannelSpec(Channel.EVENTS, False, False, "Event",
                    "Recording, upload, camera and storage events, kept in the "
                    "node's outbox until acknowledged."),
        ChannelSpec(Channel.REPLIES, False, False, CommandReply.__name__,
                    "The reply to a command."),
    )
}


@dataclass(frozen=True)
class ParsedTopic:
    node_id: str
    channel: Channel
    kind: str | None = None  # the event kind, for Channel.EVENTS only


class TopicTable:
    """Builds and parses `{prefix}/{node_id}/{channel}[/{kind}]`."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not _PREFIX_RE.fullmatch(prefix):
            raise ValueError(f"invalid topic prefix {prefix!r}: use letters, digits, - and _ "
                             "separated by /")
        self.prefix = prefix
        self._depth = prefix.count("/") + 1

    def topic(self, node_id: str, channel: Channel, kind: str | None = None) -> str:
        check_id(node_id, "node_id")
        if channel is Channel.EVENTS:
            if kind not in EVENT_KINDS:
                raise TopicError(f"event kind must be one of {', '.join(EVENT_KINDS)}")
            return f"{self.prefix}/{node_id}/events/{kind}"
        if kind is not None:
            raise TopicError(f"channel {channel} takes no kind")
        return f"{self.prefix}/{node_id}/{channel}"

    def subscription(self, channel: Channel, node_id: str = "+") -> str:
        """A filter for one channel of one node, or of every node with "+"."""
        if node_id != "+":
            check_id(node_id, "node_id")
        suffix = "events/#" if channel is Channel.EVENTS else channel.value
        return f"{self.prefix}/{node_id}/{suffix}"

    @staticmethod
    def shared(group: str, subscription: str) -> str:
        """An MQTT 5 shared subscription, so several processes split one stream."""
        check_id(group, "share group")
        return f"$share/{group}/{subscription}"

    def parse(self, topic: str) -> ParsedTopic:
        parts = topic.split("/")
        head, rest = "/".join(parts[: self._depth]), parts[self._depth:]
        if head != self.prefix or len(rest) < 2:
            raise TopicError(f"topic {topic!r} is not under {self.prefix}/{{node_id}}/")
        node_id, name, extra = rest[0], rest[1], rest[2:]
        if not is_valid_id(node_id):
            raise TopicError(f"topic {topic!r} has an invalid node_id")
        try:
            channel = Channel(name)
        except ValueError:
            raise TopicError(f"topic {topic!r} has unknown channel {name!r}") from None
        if channel is Channel.EVENTS:
            if len(extra) != 1 or extra[0] not in EVENT_KINDS:
                raise TopicError(f"topic {topic!r}: events/{{kind}} with kind one of "
                                 f"{', '.join(EVENT_KINDS)}")
            return ParsedTopic(node_id, channel, extra[0])
        if extra:
            raise TopicError(f"topic {topic!r} has extra levels")
        return ParsedTopic(node_id, channel)

