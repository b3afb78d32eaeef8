"""Ingest: every message from the fleet parsed, stored once, then acknowledged.

Messages are parsed as they arrive and queued; one writer task commits them
in batches and only then resolves each message's future, which releases its
PUBACK to the broker and publishes `EventAck` to the nodes. Bad input is
logged with its reason and counted, never stored and never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from cloud_service import tables
from cloud_service.event_store import store_events
from cloud_service.presence import (
    apply_heartbeat,
    apply_reply,
    apply_state,
    apply_status,
    log_heartbeats,
)
from schemas.codec import PayloadError, TopicMismatchError, decode_channel, encode
from schemas.commands import CommandReply
from schemas.events import EVENT_TYPES
from schemas.ids import utc_now
from schemas.status import EventAck, Heartbeat, NodeStatus, ReportedState
from schemas.topics import Channel, ParsedTopic, TopicError, TopicTable

logger = logging.getLogger(__name__)

MESSAGES = Counter("cctv_ingest_messages_total", "Messages received, by channel", ["channel"])
REJECTED = Counter("cctv_ingest_rejected_total", "Messages refused, by reason", ["reason"])
EVENTS_STORED = Counter("cctv_ingest_events_stored_total", "Events stored", ["type"])
EVENTS_DUPLICATE = Counter("cctv_ingest_events_duplicate_total", "Duplicate events ignored")
BATCH_SECONDS = Histogram("cctv_ingest_batch_seconds", "Time to commit one batch")
BATCHES_FAILED = Counter("cctv_ingest_batches_failed_total", "Batches rolled back")
CLEARED = Counter("cctv_ingest_cleared_total",
                  "Empty retained status or state messages: documents cleared")
ACKS_DEFERRED = Counter("cctv_ingest_acks_deferred_total",
                        "EventAcks that could not be published at once, kept for a retry")
for _type in EVENT_TYPES:
    EVENTS_STORED.labels(_type)
for _reason in ("topic", "wrong_topic", "payload"):
    REJECTED.labels(_reason)

PUBACK_SUCCESS = 0
SHARE_GROUP = "cctv-ingest"
ACK_RETRY_S = 0.2
INBOUND = (Channel.EVENTS, Channel.HEARTBEAT, Channel.STATUS, Channel.STATE, Channel.REPLIES)
RETAINED = (Channel.STATUS, Channel.STATE)
# Resolved once: `labels()` per message was a few percent of ingest's CPU.
_MESSAGES_BY_CHANNEL = {channel: MESSAGES.labels(channel.value) for channel in INBOUND}


@dataclass
class _Pending:
    topic: ParsedTopic
    model: Any
    done: asyncio.Future[None]


Publish = Callable[[str, bytes], None]


def ingest_subscriptions(topics: TopicTable, mqtt5: bool) -> list[str]:
    """Events are shared between ingest processes when the broker can;
    presence and state are retained and shared subscribers get no retained
    messages, so every process subscribes to those directly."""
    filters = [topics.subscription(c) for c in INBOUND]
    if mqtt5:
        filters[0] = topics.shared(SHARE_GROUP, filters[0])
    return filters


class Ingest:
    def __init__(self, engine: Engine, topics: TopicTable, publish: Publish, *,
                 on_failure: Callable[[], Awaitable[None]] | None = None,
                 batch_size: int = 500, batch_wait_s: float = 0.0) -> None:
        self._engine = engine
        self._topics = topics
        self._publish = publish
        self._batch_size = batch_size
        self._batch_wait_s = batch_wait_s
        self._on_failure = on_failure
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._unsent_acks: dict[str, EventAck] = {}  # node_id -> ack not yet published
        self._ack_retry: asyncio.TimerHandle | None = None
        self.listeners: list[Callable[[ParsedTopic, Any], None]] = []

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_forever(), name="ingest-writer")

    async def stop(self) -> None:
        if self._ack_retry is not None:
            self._ack_retry.cancel()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def handle(self, topic: str, payload: bytes) -> int:
        """Parse one message and wait until it is committed; the return value
        is the PUBACK reason code."""
        try:
            parsed = self._topics.parse(topic)
            if not payload and parsed.channel in RETAINED:
                # A retained document cleared (a node deleted): nothing to store.
                CLEARED.inc()
                logger.info("ingest.cleared topic=%s", topic[:200])
                return PUBACK_SUCCESS
            model = decode_channel(parsed, payload)
        except TopicError as exc:
            return _reject("topic", topic, exc)
        except TopicMismatchError as exc:
            return _reject("wrong_topic", topic, exc)
        except PayloadError as exc:
            return _reject("payload", topic, exc)
        counter = _MESSAGES_BY_CHANNEL.get(parsed.channel)
        (counter or MESSAGES.labels(parsed.channel.value)).inc()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(parsed, model, done))
        await done
        return PUBACK_SUCCESS

    async def _next_batch(self) -> list[_Pending]:
        """What has arrived, up to `batch_size`, once at least one message is here.

        Group commit: messages that arrive while a batch commits make up the
        next one, so under load batches fill up by themselves (the broker sends
        up to our Receive Maximum, MQTT 5's default 65,535, before our PUBACKs:
        `bench/ingest.py` saw about 495 a batch). Waiting for a fuller batch
        would only add latency when the fleet is quiet.
        """
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._batch_wait_s
        while len(batch) < self._batch_size:
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            timeout = deadline - loop.time()
            if len(batch) >= self._batch_size or timeout <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), timeout))
            except TimeoutError:
                break
        return batch

    async def _write_forever(self) -> None:
        while True:
            batch = await self._next_batch()
            try:
                with BATCH_SECONDS.time():
                    acked = await asyncio.to_thread(self._commit, batch)
            except Exception as exc:  # loop edge: the batch is redelivered
                BATCHES_FAILED.inc()
                logger.exception("ingest.batch_failed size=%d", len(batch))
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(exc)
                if self._on_failure is not None:
                    # Unacknowledged QoS 1 messages come back only on a new
                    # connection of the same session: reconnect to get them.
                    await self._on_failure()
                continue
            self._send_acks(acked)
            for item in batch:
                item.done.set_result(None)
                for listener in self.listeners:
                    listener(item.topic, item.model)

    def _send_acks(self, acks: dict[str, EventAck]) -> None:
        """Publish each node's EventAck; one that cannot go out now is kept and
        tried again after the next batch, or shortly if none comes.

        The broker lets us have only its Receive Maximum (100 with the
        project's mosquitto.conf) of QoS 1 publishes unacknowledged, and gmqtt
        raises beyond that: a batch from more nodes than that, or batches
        faster than the broker's PUBACKs, would otherwise kill this writer and
        stall ingest for good. Acks are cumulative and batches commit one
        after the other, so keeping only the latest per node loses nothing.
        """
        self._unsent_acks.update(acks)
        for node_id, ack in list(self._unsent_acks.items()):
            try:
                self._publish(self._topics.topic(node_id, Channel.ACKS), encode(ack))
            except (OverflowError, RuntimeError, OSError) as exc:  # gmqtt: window full; link down
                ACKS_DEFERRED.inc(len(self._unsent_acks))
                logger.info("ingest.acks_deferred nodes=%d error=%s", len(self._unsent_acks),
                            exc)
                break
            del self._unsent_acks[node_id]
        if self._unsent_acks and self._ack_retry is None:
            self._ack_retry = asyncio.get_running_loop().call_later(
                ACK_RETRY_S, self._retry_acks)

    def _retry_acks(self) -> None:
        self._ack_retry = None
        self._send_acks({})

    def _commit(self, batch: Sequence[_Pending]) -> dict[str, EventAck]:
        now = utc_now()
        events = [p.model for p in batch if p.topic.channel is Channel.EVENTS]
        with Session(self._engine) as session:
            # Every node the batch touches, loaded in one query, locked in node
            # order and held here (the session keeps only weak references).
            # Locking them all at once, in one order, keeps two cloud processes
            # (which both get every status and heartbeat) from deadlocking;
            # holding them saves a SELECT and an autoflush per message.
            held = session.exec(
                select(tables.Node).where(col(tables.Node.node_id).in_(
                    list({p.topic.node_id for p in batch})))
                .order_by(col(tables.Node.node_id)).with_for_update()).all()
            result = store_events(session, events, now) if events else None
            heartbeats = []
            for item in batch:
                node_id, model = item.topic.node_id, item.model
                if isinstance(model, NodeStatus):
                    apply_status(session, node_id, model, now)
                elif isinstance(model, ReportedState):
                    apply_state(session, node_id, model, now)
                elif isinstance(model, Heartbeat):
                    heartbeats.append(apply_heartbeat(session, node_id, model, now))
                elif isinstance(model, CommandReply):
                    apply_reply(session, model, now)
            if heartbeats:
                log_heartbeats(session, heartbeats)
            session.commit()
            del held
        if result is None:
            return {}
        EVENTS_DUPLICATE.inc(result.duplicates)
        for type_, count in result.stored.items():
            EVENTS_STORED.labels(type_).inc(count)
        return {node_id: EventAck(upto_seq=upto, outbox_id=result.outboxes[node_id] or None)
                for node_id, upto in result.acked.items()}


def _reject(reason: str, topic: str, exc: ValueError) -> int:
    REJECTED.labels(reason).inc()
    logger.warning("ingest.rejected reason=%s topic=%s error=%s", reason, topic[:200], exc)
    # Acknowledged all the same: redelivering a bad message would not mend it.
    return PUBACK_SUCCESS
