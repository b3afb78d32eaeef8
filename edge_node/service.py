"""The edge node's service loop: desired state in, recorders and events out.

One thread owns all state. MQTT callbacks, recorder threads and the uploader
only put messages into `inbox`; the loop handles them, reconciles recorders
with `cameras_to_record` once a second, sends the outbox and heartbeats.
"""

from __future__ import annotations

import logging
import platform
import queue
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

from edge_node.backoff import backoff_delay
from edge_node.desired_state import DesiredStateStore
from edge_node.events import EventEmitter
from edge_node.file_store import FileStore, file_root
from edge_node.mqtt_link import Connected, Inbound, NodeLink, SessionCounter
from edge_node.open_recordings import OpenRecordings
from edge_node.outbox import Outbox
from edge_node.recorder_thread import (
    CameraProbe,
    RecorderCallbacks,
    RecorderThread,
    RecordingRequest,
)
from edge_node.recorders import make_recorder
from edge_node.recovery import LostSegment, recover_segments
from edge_node.scheduling import ManualRecording, Want, cameras_to_record
from edge_node.segments import SealedSegment, sidecar_path
from edge_node.settings import EdgeSettings
from edge_node.uploader import UploadDone, Uploader, UploadFailedResult
from schemas.addresses import MqttUrl
from schemas.cameras import Camera, CameraSet
from schemas.codec import PayloadError, decode_channel, encode
from schemas.commands import (
    Command,
    CommandReply,
    RecordCommand,
    ResyncCommand,
    SnapshotCommand,
    StopCommand,
)
from schemas.events import (
    CameraPresence,
    RecordingFailed,
    RecordingSegment,
    RecordingStarted,
    RecordingStopped,
    StopReason,
    UploadCompleted,
    UploadFailed,
)
from schemas.ids import is_valid_id, new_id, utc_now
from schemas.schedules import ScheduleSet
from schemas.status import (
    CameraHealth,
    EventAck,
    Heartbeat,
    OutboxInfo,
    ReportedState,
    SystemInfo,
    UploadBacklog,
)
from schemas.topics import Channel, TopicError, TopicTable

logger = logging.getLogger(__name__)

TICK_S = 1.0
ACK_WAIT_ON_SHUTDOWN_S = 3.0


def package_version() -> str:
    try:
        return version("cctv-fleet")
    except PackageNotFoundError:
        return "0.0.0"


@dataclass(frozen=True)
class SegmentReady:
    segment: SealedSegment


@dataclass(frozen=True)
class CameraOnline:
    camera_id: str
    probe: CameraProbe


@dataclass(frozen=True)
class RecorderExited:
    camera_id: str
    recording_id: str


@dataclass
class _Active:
    recorder: RecorderThread
    want: Want
    stop_reason: StopReason | None = None


@dataclass
class _Retry:
    attempts: int = 0
    not_before: float = 0.0


Message = (Inbound | Connected | SegmentReady | CameraOnline | RecorderExited | UploadDone
           | UploadFailedResult)


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
        self.segments_dir = data / "segments"
        self.open_recordings = OpenRecordings(data / "recordings")
        self.outbox = Outbox(data / "outbox.db")
        self.events = EventEmitter(self.node_id, self.topics, self.outbox, self._send_outbox)
        self.link = NodeLink(
            MqttUrl.parse(self.settings.mqtt_url.get_secret_value()), self.node_id, self.topics,
            sessions=SessionCounter(data / "session"), deliver=self.inbox.put,
            version=self.version, ca_file=self.settings.mqtt_ca_file,
            keepalive=self.settings.keepalive_s, protocol=self.settings.mqtt_protocol)
        self.uploader = Uploader(FileStore(file_root(self.settings.resolved_storage_url)),
                                 self.node_id, "", self.inbox.put)
        self.active: dict[str, _Active] = {}
        self.retries: dict[str, _Retry] = {}
        self.manual: dict[str, ManualRecording] = {}
        self.replies: dict[str, CommandReply] = {}
        self._sent_upto = 0
        self._started = time.monotonic()
        self._next_heartbeat = 0.0
        self._stopping = threading.Event()
        self._last_segment_at: dict[str, datetime] = {}
        self.camera_online: dict[str, bool] = {}

    # -- lifecycle ---------------------------------------------------------

    def run(self) -> None:
        """Run until `stop()`; then seal what is recording and say goodbye."""
        self.desired.load()
        self.outbox.open()
        self._sent_upto = self.outbox.acked_seq
        self.uploader.start()
        self._recover()
        self.link.start()
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

    def _recover(self) -> None:
        """Report what a crash left behind before recording anything new."""
        recovered: dict[str, int] = {}
        for item in recover_segments(self.segments_dir):
            if isinstance(item, LostSegment):
                self.events.emit("recording.failed", RecordingFailed(
                    camera_id=item.camera_id, recording_id=item.recording_id or None,
                    error=f"segment {item.segment_id} {item.error}", will_retry=False))
                sidecar_path(self.segments_dir / item.camera_id / f"{item.segment_id}.mp4"
                             ).unlink(missing_ok=True)
            else:
                self._on_segment(item)
                recovered[item.recording_id] = recovered.get(item.recording_id, 0) + 1
        for left in self.open_recordings.leftovers():
            if is_valid_id(left.camera_id):
                self.events.emit("recording.stopped", RecordingStopped(
                    recording_id=left.recording_id, camera_id=left.camera_id,
                    reason="shutdown", segments=left.segments + recovered.get(
                        left.recording_id, 0)))
            self.open_recordings.closed(left.recording_id)

    def stop(self) -> None:
        self._stopping.set()

    def _shutdown(self) -> None:
        for active in self.active.values():
            active.stop_reason = "shutdown"
            active.recorder.stop()
        deadline = time.monotonic() + 20
        while self.active and time.monotonic() < deadline:
            try:
                self._handle(self.inbox.get(timeout=0.5))
            except queue.Empty:
                continue
        self.uploader.stop()
        self._drain_inbox()
        self._await_acks(ACK_WAIT_ON_SHUTDOWN_S)
        self.link.stop()
        self.outbox.close()
        logger.info("edge.stopped node_id=%s", self.node_id)

    def _await_acks(self, timeout: float) -> None:
        """Give the cloud a moment to acknowledge the last events; whatever it
        has not acked by then stays in the outbox for the next start."""
        self._send_outbox()
        deadline = time.monotonic() + timeout
        while self.link.connected.is_set() and self.outbox.stats().depth:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                self._handle(self.inbox.get(timeout=min(remaining, 0.2)))
            except queue.Empty:
                continue

    def _drain_inbox(self) -> None:
        while True:
            try:
                self._handle(self.inbox.get_nowait())
            except queue.Empty:
                return

    # -- messages ------------------------------------------------------------

    def _handle(self, message: Message) -> None:
        match message:
            case Inbound():
                self._on_inbound(message)
            case Connected():
                self._sent_upto = self.outbox.acked_seq  # resend all that is unacked
                self._report_state()
                self._send_outbox()
            case SegmentReady(segment=segment):
                self._on_segment(segment)
            case RecorderExited():
                self._on_recorder_exit(message)
            case CameraOnline(camera_id=camera_id, probe=probe):
                self._on_camera_online(camera_id, probe)
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
            case EventAck(upto_seq=upto):
                self.outbox.acknowledge(upto)
            case RecordCommand() | StopCommand() | SnapshotCommand() | ResyncCommand():
                self._on_command(model)

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

    def _report_state(self) -> None:
        state = ReportedState(schedules_revision=self.desired.schedules.revision,
                              cameras_revision=self.desired.cameras.revision, ts=utc_now())
        self.link.publish(self.topics.topic(self.node_id, Channel.STATE), encode(state),
                          retain=True)

    # -- commands ------------------------------------------------------------

    def _on_command(self, command: Command) -> None:
        reply = self.replies.get(command.command_id)
        if reply is None:
            reply = self._run_command(command)
            self.replies[command.command_id] = reply
        self.link.publish(self.topics.topic(self.node_id, Channel.REPLIES), encode(reply))

    def _run_command(self, command: Command) -> CommandReply:
        now = utc_now()
        if command.expires_at is not None and command.expires_at <= now:
            return CommandReply(command_id=command.command_id, ok=False, error="expired")
        match command:
            case RecordCommand():
                if self._camera(command.camera_id) is None:
                    return CommandReply(command_id=command.command_id, ok=False,
                                        error=f"unknown camera {command.camera_id}")
                until = now + timedelta(seconds=command.duration_s)
                held = self.manual.get(command.camera_id)
                if held is not None and held.until > until:
                    until = held.until
                self.manual[command.camera_id] = ManualRecording(
                    command.camera_id, until, held.command_id if held else command.command_id)
                self._reconcile()
                return CommandReply(command_id=command.command_id, ok=True,
                                    result={"until": until.isoformat()})
            case StopCommand():
                stopped = self.manual.pop(command.camera_id, None) is not None
                self._reconcile()
                return CommandReply(command_id=command.command_id, ok=True,
                                    result={"stopped": stopped})
            case ResyncCommand():
                self._sent_upto = self.outbox.acked_seq
                self._report_state()
                self._send_outbox()
                return CommandReply(command_id=command.command_id, ok=True)
            case SnapshotCommand():
                return CommandReply(command_id=command.command_id, ok=False,
                                    error="snapshot is not available on this node yet")

    # -- recording -----------------------------------------------------------

    def _camera(self, camera_id: str) -> Camera | None:
        for camera in self.desired.cameras.cameras:
            if camera.camera_id == camera_id and camera.enabled:
                return camera
        return None

    def _tick(self) -> None:
        self._reconcile()
        self._send_outbox()
        if time.monotonic() >= self._next_heartbeat:
            self._next_heartbeat = time.monotonic() + self.settings.heartbeat_s
            self._publish_heartbeat()

    def _reconcile(self) -> None:
        now = utc_now()
        self.manual = {c: m for c, m in self.manual.items() if m.until > now}
        wants = cameras_to_record(self.desired.schedules.schedules, self.manual, now)
        for camera_id, active in self.active.items():
            if active.stop_reason is None and (camera_id not in wants
                                               or self._camera(camera_id) is None):
                active.stop_reason = ("manual_ended" if active.want.trigger == "manual"
                                      else "schedule_ended")
                active.recorder.stop(timeout=0)
        for camera_id, want in wants.items():
            camera = self._camera(camera_id)
            retry = self.retries.get(camera_id)
            if camera is None or camera_id in self.active or (
                    retry is not None and time.monotonic() < retry.not_before):
                continue
            self._start_recording(camera, want)

    def _start_recording(self, camera: Camera, want: Want) -> None:
        recording_id = new_id()
        request = RecordingRequest(recording_id, camera.camera_id, camera.url,
                                   want.segment_seconds,
                                   self.segments_dir / camera.camera_id)
        camera_id = camera.camera_id
        recorder = make_recorder(request, camera.transport, RecorderCallbacks(
            on_segment=lambda s: self.inbox.put(SegmentReady(s)),
            on_exit=lambda: self.inbox.put(RecorderExited(camera_id, recording_id)),
            on_online=lambda p: self.inbox.put(CameraOnline(camera_id, p))))
        self.active[camera.camera_id] = _Active(recorder, want)
        self.open_recordings.opened(recording_id, camera.camera_id)
        self.events.emit("recording.started", RecordingStarted(
            recording_id=recording_id, camera_id=camera.camera_id, trigger=want.trigger,
            schedule_id=want.schedule_id, command_id=want.command_id))
        logger.info("recording.started camera_id=%s recording_id=%s trigger=%s",
                    camera.camera_id, recording_id, want.trigger)
        recorder.start()

    def _on_segment(self, segment: SealedSegment) -> None:
        self._last_segment_at[segment.camera_id] = segment.end
        self.events.emit("recording.segment", RecordingSegment(
            recording_id=segment.recording_id, segment_id=segment.segment_id,
            camera_id=segment.camera_id, start=segment.start, end=segment.end,
            bytes=segment.bytes, crc32c=segment.crc32c, container="mp4",
            codec=segment.codec, width=segment.width, height=segment.height,
            frames=segment.frames, lost_packets=segment.lost_packets))
        # Reported (in the outbox): no longer a crash's leftover.
        sidecar_path(segment.path).unlink(missing_ok=True)
        active = self.active.get(segment.camera_id)
        if active is not None and active.recorder.request.recording_id == segment.recording_id:
            self.open_recordings.segment_reported(segment.recording_id, segment.camera_id,
                                                  active.recorder.segments)
        self.uploader.submit(segment)

    def _on_camera_online(self, camera_id: str, probe: CameraProbe) -> None:
        self.retries.pop(camera_id, None)
        if self.camera_online.get(camera_id) is True:
            return
        self.camera_online[camera_id] = True
        self.events.emit("camera.online", CameraPresence(
            camera_id=camera_id, fps=probe.fps, width=probe.width, height=probe.height,
            codec=probe.codec))

    def _on_camera_offline(self, camera_id: str, error: str) -> None:
        # Once per outage: a camera that stays down is not re-reported each retry.
        if self.camera_online.get(camera_id) is False:
            return
        self.camera_online[camera_id] = False
        self.events.emit("camera.offline", CameraPresence(camera_id=camera_id, error=error))

    def _on_recorder_exit(self, message: RecorderExited) -> None:
        active = self.active.pop(message.camera_id, None)
        if active is None:
            return
        recorder = active.recorder
        if recorder.failed is not None:
            retry = self.retries.setdefault(message.camera_id, _Retry())
            retry.attempts += 1
            retry.not_before = time.monotonic() + backoff_delay(retry.attempts)
            self.events.emit("recording.failed", RecordingFailed(
                camera_id=message.camera_id, recording_id=message.recording_id,
                error=recorder.failed, will_retry=True))
            self._on_camera_offline(message.camera_id, recorder.failed)
        else:
            self.retries.pop(message.camera_id, None)
        reason = active.stop_reason or "camera_lost"
        self.events.emit("recording.stopped", RecordingStopped(
            recording_id=message.recording_id, camera_id=message.camera_id,
            reason=reason, segments=recorder.segments))
        self.open_recordings.closed(message.recording_id)
        logger.info("recording.stopped camera_id=%s reason=%s segments=%d",
                    message.camera_id, reason, recorder.segments)

    # -- outbound ------------------------------------------------------------

    def _send_outbox(self) -> None:
        if not self.link.connected.is_set():
            return
        for item in self.outbox.pending(self._sent_upto):
            if not self.link.publish(item.topic, item.payload):
                return
            self._sent_upto = item.seq

    def _publish_heartbeat(self) -> None:
        disk = shutil.disk_usage(self.settings.data_dir)
        backlog = self.uploader.backlog
        now = utc_now()
        oldest = min((s.end for s in backlog), default=now)
        stats = self.outbox.stats()
        heartbeat = Heartbeat(
            ts=now, session=max(self.link.session, 1),
            uptime_s=time.monotonic() - self._started, version=self.version,
            system=SystemInfo(hostname=socket.gethostname(), os=platform.platform()[:200],
                              ip=_local_ip()),
            disk_free_bytes=disk.free, disk_total_bytes=disk.total,
            upload_backlog=UploadBacklog(count=len(backlog), bytes=sum(s.bytes for s in backlog),
                                         oldest_s=(now - oldest).total_seconds()),
            outbox=OutboxInfo(depth=stats.depth, oldest_s=stats.oldest_s),
            schedules_revision=self.desired.schedules.revision,
            cameras_revision=self.desired.cameras.revision,
            cameras=[self._camera_health(c) for c in self.desired.cameras.cameras])
        self.link.publish(self.topics.topic(self.node_id, Channel.HEARTBEAT), encode(heartbeat))

    def _camera_health(self, camera: Camera) -> CameraHealth:
        state: Literal["recording", "idle", "error"]
        if camera.camera_id in self.active:
            state = "recording"
        elif camera.camera_id in self.retries:
            state = "error"
        else:
            state = "idle"
        return CameraHealth(camera_id=camera.camera_id, state=state,
                            reconnects_1h=self.retries.get(camera.camera_id, _Retry()).attempts,
                            last_segment_at=self._last_segment_at.get(camera.camera_id))


def _local_ip() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "unknown"
