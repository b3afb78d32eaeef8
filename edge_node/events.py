"""Builds event envelopes and puts them in the outbox; the outbox's sender
publishes them. The only way an event leaves this node."""

from __future__ import annotations

from collections.abc import Callable

from edge_node.outbox import Outbox
from schemas.codec import encode
from schemas.events import EventData, event_kind, make_event
from schemas.ids import new_id, utc_now
from schemas.topics import Channel, TopicTable


class EventEmitter:
    def __init__(self, node_id: str, topics: TopicTable, outbox: Outbox,
                 on_stored: Callable[[], None]) -> None:
        self._node_id = node_id
        self._topics = topics
        self._outbox = outbox
        self._on_stored = on_stored

    def emit(self, type_: str, data: EventData) -> int:
        """Store an event of `type_` in the outbox under the next seq."""
        def build(seq: int) -> tuple[str, bytes]:
            event = make_event(type_, event_id=new_id(), node_id=self._node_id, seq=seq,
                               ts=utc_now(), data=data, outbox_id=self._outbox.outbox_id)
            return (self._topics.topic(self._node_id, Channel.EVENTS, event_kind(event)),
                    encode(event))

        seq = self._outbox.append(build)
        self._on_stored()
        return seq
