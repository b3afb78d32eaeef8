"""What ingest has just committed, handed to whoever waits for it: the
dashboard's event stream and API calls waiting for a command's reply.

Lives on the event loop; fed by ingest after each commit, so nothing is
announced that the database does not hold. A slow stream subscriber loses
its oldest items (counted), never slows ingest down.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import Counter

from schemas.commands import CommandReply
from schemas.topics import Channel, ParsedTopic

logger = logging.getLogger(__name__)
STREAM_DROPPED = Counter("cctv_stream_dropped_total", "Stream items a slow client missed")
QUEUE_SIZE = 1000


class Live:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._waiters: dict[str, asyncio.Future[CommandReply]] = {}

    # -- the stream ----------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    def _publish(self, item: dict[str, Any]) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
                STREAM_DROPPED.inc()
            queue.put_nowait(item)

    # -- command replies -------------------------------------------------------

    def expect_reply(self, command_id: str) -> asyncio.Future[CommandReply]:
        future: asyncio.Future[CommandReply] = asyncio.get_running_loop().create_future()
        self._waiters[command_id] = future
        return future

    def forget(self, command_id: str) -> None:
        self._waiters.pop(command_id, None)

    # -- fed by ingest and the silence watch ------------------------------------

    def went_silent(self, node_id: str, session: int) -> None:
        """A node shown offline because nothing was heard from it, as the stream
        would carry its Will."""
        self._publish({"kind": "status", "node_id": node_id,
                       "data": {"state": "offline", "session": session, "reason": "silent"}})

    def committed(self, topic: ParsedTopic, model: Any) -> None:
        if topic.channel is Channel.REPLIES and isinstance(model, CommandReply):
            waiter = self._waiters.pop(model.command_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(model)
        if not self._subscribers:
            return
        if topic.channel is Channel.EVENTS:
            self._publish({"kind": "event", "node_id": topic.node_id,
                           **model.model_dump(mode="json")})
        elif topic.channel in (Channel.STATUS, Channel.HEARTBEAT, Channel.STATE,
                               Channel.REPLIES):
            self._publish({"kind": topic.channel.value, "node_id": topic.node_id,
                           "data": model.model_dump(mode="json")})
