"""The edge node's service loop: desired state in, recorders and events out.

One thread owns all state. MQTT callbacks, recorder threads, snapshot
threads and the uploader only put messages into `inbox`; the loop handles
them, reconciles recorders with the schedules once a second, sends the
outbox and heartbeats. This module wires the parts together and routes
messages; the decisions live in the modules it calls.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from edge_node.command_log import CommandLog
from edge_node.commands import CommandDone, Commands
from edge_node.desired_state import DesiredStateStore
from edge_node.events import EventEmitter
from edge_node.heartbeat import NodeFacts, build_heartbeat
from edge_node.local_api import LocalApi, LocalCommand, create_local_app
from edge_node.local_segments import LocalSegments
from edge_node.mqtt_link import Connected, Inbound, NodeLink, SessionCounter
from edge_node.open_recordings import OpenRecordings
from edge_node.outbox import Outbox
from edge_node.recordings import (
    CameraOnline,
    RecorderExited,
    Recordings,
    SegmentReady,
)
from edge_node.retention import Eviction, RetentionPolicy
from edge_node.settings import EdgeSettings
from edge_node.stores import open_store
from edge_node.upload_queue import UploadQueue
from edge_node.uploader import UploadDone, Uploader, UploadFailedResult
from schemas.addresses import MqttUrl, parse_host_port
from schemas.cameras import CameraSet
from schemas.codec import PayloadError, decode_channel, encode
from schemas.commands import (
    CommandReply,
    RecordCommand,
    ResyncCommand,
    SnapshotCommand,
    StopCommand,
)
from schemas.events import StorageEvicted, UploadCompleted, UploadFailed
from schemas.ids import utc_now
from schemas.schedules import ScheduleSet
from schemas.status import EventAck, ReportedState
from schemas.topics import Channel, TopicError, TopicTable

logger = logging.getLogger(__name__)

TICK_S = 1.0
RETENTION_EVERY_S = 5.0
ACK_WAIT_ON_SHUTDOWN_S = 3.0
RECORDERS_STOP_S = 20.0


def package_version() -> str:
    try:
        return version("cctv-fleet")
    except PackageNotFoundError:
        return "0.0.0"


Message = (Inbound | Connected | SegmentReady | CameraOnline | RecorderExited | UploadDone
           | UploadFailedResult | CommandDone | LocalCommand)


@dataclass
class EdgeNode:
    settings: EdgeSettings
    inbox: queue.Queue[Message] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        data = self.settings.data_dir
        self.node_id = self.settings.node_id
        self.topics = TopicTable(self.settings.topic_prefix)
        self.version = package_version()
        self.desired = DesiredStateStore(data / "state")
        self.outbox = Outbox(data / "outbox.db")
        self.command_log = CommandLog(data / "commands.db")
        self.events = EventEmitter(self.node_id, self.topics, self.outbox, self._send_outbox)
        self.link = NodeLink(
            MqttUrl.parse(self.settings.mqtt_url.get_secret_value()), self.node_id, self.topics,
            sessions=SessionCounter(data / "session"), deliver=self.inbox.put,
            version=self.version, ca_file=self.settings.mqtt_ca_file,
            keepalive=self.settings.keepalive_s, protocol=self.settings.mqtt_protocol)
        store = open_store(self.settings.resolved_storage_url,
                           max_bytes_per_s=self.settings.upload_max_bytes_per_s)
        self.upload_queue = UploadQueue(data / "uploads.db")
        self.local = LocalSegments(data / "segments", data / "uploaded", self.upload_queue,
                                   RetentionPolicy(self.settings.min_free_bytes,
                                                   self.settings.max_local_bytes,
                                                   self.settings.keep_uploaded_s))
        self.uploader = Uploader(store, self.upload_queue, self.node_id, self.inbox.put,
                                 uploaded=self.local.keep_uploaded)
        self.recordings = Recordings(
            desired=self.desired, events=self.events,
            open_recordings=OpenRecordings(data / "recordings"),
            segments_dir=data / "segments", deliver=self.inbox.put,
            submit_upload=self.uploader.submit)
        self.commands = Commands(
            node_id=self.node_id, log=self.command_log, recordings=self.recordings,
            store=store, send_reply=self._send_reply, resync=self._resync,
            deliver=self.inbox.put)
        host, port = parse_host_port(self.settings.edge_http_addr, "CCTV_EDGE_HTTP_ADDR")
        self.local_api = LocalApi(create_local_app(
            snapshot=lambda: self.status,
            schedules=lambda: self.desired.schedules.model_dump(mode="json"),
            submit=self.inbox.put, version=self.version), host, port)
        self.status: dict[str, Any] = {"node_id": self.node_id, "starting": True}
        self._sent_upto = 0
        self._acked_seen = -1
        self._ack_moved_at = 0.0
        self._started = time.monotonic()
        self._next_heartbeat = 0.0
        self._next_retention = 0.0
        self._stopping = threading.Event()

    # -- lifecycle ---------------------------------------------------------

    def run(self) -> None:
        """Run until `stop()`; then seal what is recording and say goodbye."""
        self.desired.load()
        self.outbox.open()
        self.command_log.open()
        self.upload_queue.open()
        self._sent_upto = self.outbox.acked_seq
        self.uploader.start()
        self.recordings.recover()
        self.link.start()
        self.local_api.start()
        logger.info("edge.started node_id=%s schedules_revision=%d cameras_revision=%d",
                    self.node_id, self.desired.schedules.revision, self.desired.cameras.revision)
        next_tick = time.monotonic()
        try:
            while not self._stopping.is_set():
                timeout = max(0.0, next_tick - time.monotonic())
                try:
                    self._handle(self.inbox.get(timeout=timeout))
                except queue.Empty:
                    next_tick = time.monotonic() + TICK_S
                    self._tick()
        finally:
            self._shutdown()

    def stop(self) -> None:
        self._stopping.set()

    def _shutdown(self) -> None:
        self.recordings.stop_all("shutdown")
        deadline = time.monotonic() + RECORDERS_STOP_S
        while self.recordings.active and time.monotonic() < deadline:
            self._handle_next(0.5)
        self.uploader.stop()
        while self._handle_next(0):
            pass
        self._await_acks(ACK_WAIT_ON_SHUTDOWN_S)
        self.link.stop()
        self.local_api.stop()
        self.outbox.close()
        self.command_log.close()
        self.upload_queue.close()
        logger.info("edge.stopped node_id=%s", self.node_id)

    def _handle_next(self, timeout: float) -> bool:
        try:
            message = self.inbox.get(timeout=timeout) if timeout else self.inbox.get_nowait()
        except queue.Empty:
            return False
        self._handle(message)
        return True

    def _await_acks(self, timeout: float) -> None:
        """Give the cloud a moment to acknowledge the last events; whatever it
        has not acked by then stays in the outbox for the next start."""
        self._send_outbox()
        deadline = time.monotonic() + timeout
        while (self.link.connected.is_set() and self.outbox.stats().depth
               and time.monotonic() < deadline):
            self._handle_next(min(0.2, max(0.01, deadline - time.monotonic())))

    def _tick(self) -> None:
        now = time.monotonic()
        self.recordings.reconcile(now)
        self.status = self._status(now)
        self._resend_if_stuck(now)
        if now >= self._next_retention:
            self._next_retention = now + RETENTION_EVERY_S
            self._enforce_retention()
        self._send_outbox()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.settings.heartbeat_interval_s
            self._publish_heartbeat(now)

    # -- messages ------------------------------------------------------------

    def _handle(self, message: Message) -> None:
        match message:
            case Inbound():
                self._on_inbound(message)
            case Connected():
                self._resync()
            case SegmentReady() | CameraOnline() | RecorderExited():
                self.recordings.handle(message)
            case CommandDone(reply=reply):
                self.commands.finish(reply)
            case LocalCommand(command=command, reply=future):
                future.set_result(self.commands.local(command))
                self.recordings.reconcile(time.monotonic())
            case UploadDone(segment=segment, uri=uri):
                self.events.emit("upload.completed", UploadCompleted(
                    segment_id=segment.segment_id, uri=uri, bytes=segment.bytes,
                    crc32c=segment.crc32c))
            case UploadFailedResult():
                self.events.emit("upload.failed", UploadFailed(
                    segment_id=message.segment.segment_id, attempt=message.attempt,
                    error=message.error, will_retry=message.will_retry))

    def _decode_inbound(self, message: Inbound) -> object:
        """The message's model; None for an empty retained payload (cleared)."""
        parsed = self.topics.parse(message.topic)
        if parsed.node_id != self.node_id:
            raise TopicError(f"topic {message.topic!r} is not this node's")
        if parsed.channel in (Channel.SCHEDULES, Channel.CAMERAS) and not message.payload:
            logger.warning("desired_state.cleared channel=%s", parsed.channel)
            return None
        return decode_channel(parsed, message.payload)

    def _on_inbound(self, message: Inbound) -> None:
        try:
            model = self._decode_inbound(message)
        except (TopicError, PayloadError) as exc:
            logger.warning("inbound.rejected topic=%s error=%s", message.topic, exc)
            return
        match model:
            case ScheduleSet():
                if self.desired.apply_schedules(model):
                    logger.info("schedules.applied revision=%d", model.revision)
                    self._report_state()
            case CameraSet():
                if self._apply_cameras(model):
                    self._report_state()
            case EventAck(upto_seq=upto, outbox_id=outbox_id):
                if outbox_id in (None, self.outbox.outbox_id):
                    self.outbox.acknowledge(upto)
                else:  # for the outbox of a data dir this node no longer has
                    logger.warning("ack.other_outbox outbox_id=%s upto_seq=%d", outbox_id, upto)
            case RecordCommand() | StopCommand() | SnapshotCommand() | ResyncCommand():
                self.commands.handle(model)
                self.recordings.reconcile(time.monotonic())

    def _apply_cameras(self, document: CameraSet) -> bool:
        foreign = [c.camera_id for c in document.cameras if c.node_id != self.node_id]
        if foreign:
            logger.warning("cameras.rejected reason=other_node camera_ids=%s", foreign)
            return False
        if not self.desired.apply_cameras(document):
            return False
        logger.info("cameras.applied revision=%d count=%d", document.revision,
                    len(document.cameras))
        return True

    # -- outbound ------------------------------------------------------------

    def _resync(self) -> None:
        """After a (re)connect or on request: state again, and every unacked event."""
        self._sent_upto = self.outbox.acked_seq
        self._report_state()
        self._send_outbox()

    def _resend_if_stuck(self, now: float) -> None:
        """Sent events the cloud never acknowledged are sent again: a broker
        restart can drop what it held for an offline subscriber, and the
        cloud acks only a gapless run, so a hole would otherwise stay open
        until the next reconnect. Duplicates are harmless (idempotent)."""
        acked = self.outbox.acked_seq
        if acked != self._acked_seen or self._sent_upto <= acked:
            self._acked_seen, self._ack_moved_at = acked, now
        elif now - self._ack_moved_at > self.settings.resend_after_s:
            logger.warning("outbox.resend from_seq=%d sent_upto=%d", acked + 1,
                           self._sent_upto)
            self._ack_moved_at = now
            self._sent_upto = acked
            self._send_outbox()

    def _report_state(self) -> None:
        state = ReportedState(schedules_revision=self.desired.schedules.revision,
                              cameras_revision=self.desired.cameras.revision, ts=utc_now())
        self.link.publish(self.topics.topic(self.node_id, Channel.STATE), encode(state),
                          retain=True)

    def _send_reply(self, reply: CommandReply) -> None:
        self.link.publish(self.topics.topic(self.node_id, Channel.REPLIES), encode(reply))

    def _send_outbox(self) -> None:
        if not self.link.connected.is_set():
            return
        for item in self.outbox.pending(self._sent_upto):
            if not self.link.publish(item.topic, item.payload):
                return
            self._sent_upto = item.seq

    def _status(self, now_mono: float) -> dict[str, Any]:
        """What the local API shows; rebuilt once a tick and swapped whole."""
        current = self.uploader.current
        backlog = self.uploader.backlog()
        outbox = self.outbox.stats()
        return {
            "node_id": self.node_id, "version": self.version,
            "uptime_s": round(now_mono - self._started, 1),
            "connected": self.link.connected.is_set(), "session": self.link.session,
            "schedules_revision": self.desired.schedules.revision,
            "cameras_revision": self.desired.cameras.revision,
            "recordings": self.recordings.in_progress(),
            "uploads": {
                "current": None if current is None else {
                    "segment_id": current.segment.segment_id, "bytes": current.segment.bytes,
                    "sent": self.uploader.current_sent, "attempts": current.attempts},
                "backlog": {"count": backlog.count, "bytes": backlog.bytes}},
            "outbox": {"depth": outbox.depth, "oldest_s": round(outbox.oldest_s, 1)},
            "cameras": [h.model_dump(mode="json") for h in self.recordings.health(now_mono)],
        }

    def _enforce_retention(self) -> None:
        current = self.uploader.current
        busy = frozenset({current.segment.segment_id} if current else set())

        def report(eviction: Eviction) -> None:
            self.events.emit("storage.evicted", StorageEvicted(
                segment_id=eviction.segment.segment_id, uploaded=False, reason=eviction.reason))

        self.local.enforce(time.time(), busy, report)

    def _publish_heartbeat(self, now_mono: float) -> None:
        facts = NodeFacts(session=self.link.session, uptime_s=now_mono - self._started,
                          version=self.version,
                          schedules_revision=self.desired.schedules.revision,
                          cameras_revision=self.desired.cameras.revision)
        heartbeat = build_heartbeat(utc_now(), facts, self.settings.data_dir,
                                    backlog=self.uploader.backlog(), outbox=self.outbox.stats(),
                                    cameras=self.recordings.health(now_mono))
        self.link.publish(self.topics.topic(self.node_id, Channel.HEARTBEAT), encode(heartbeat))
