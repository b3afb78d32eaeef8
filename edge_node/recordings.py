"""The node's recorders: started and stopped to match what should record now.

Owns the recorder per camera, its retries (exponential backoff with jitter),
a watchdog for recorders that stop delivering packets, camera presence and
per-camera health. Runs on the service thread only; recorders report through
messages the service hands back here. Never blocks on a recorder: one camera
that hangs never delays the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from edge_node.backoff import backoff_delay
from edge_node.camera_stats import CameraStats
from edge_node.desired_state import DesiredStateStore
from edge_node.events import EventEmitter
from edge_node.open_recordings import OpenRecordings
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
from edge_node.upload_queue import MANUAL, SCHEDULED
from schemas.cameras import Camera
from schemas.events import (
    CameraPresence,
    RecordingFailed,
    RecordingSegment,
    RecordingStarted,
    RecordingStopped,
    StopReason,
)
from schemas.ids import is_valid_id, new_id, utc_now
from schemas.status import CameraHealth

logger = logging.getLogger(__name__)

# A recorder silent this long is hung (its own read timeout should have fired
# well before): it is abandoned and the camera recorded afresh.
WATCHDOG_S = 20.0


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


RecorderMessage = SegmentReady | CameraOnline | RecorderExited


@dataclass
class _Active:
    recorder: RecorderThread
    want: Want
    stop_reason: StopReason | None = None


@dataclass
class _Retry:
    attempts: int = 0
    not_before: float = 0.0


@dataclass
class Recordings:
    desired: DesiredStateStore
    events: EventEmitter
    open_recordings: OpenRecordings
    segments_dir: Path
    deliver: Callable[[RecorderMessage], None]
    submit_upload: Callable[[SealedSegment, int], None]
    manual: dict[str, ManualRecording] = field(default_factory=dict)
    active: dict[str, _Active] = field(default_factory=dict)
    retries: dict[str, _Retry] = field(default_factory=dict)
    online: dict[str, bool] = field(default_factory=dict)
    stats: dict[str, CameraStats] = field(default_factory=dict)
    last_segment_at: dict[str, datetime] = field(default_factory=dict)

    def camera(self, camera_id: str) -> Camera | None:
        for camera in self.desired.cameras.cameras:
            if camera.camera_id == camera_id and camera.enabled:
                return camera
        return None

    # -- matching what should record -------------------------------------------

    def reconcile(self, now_mono: float) -> None:
        now = utc_now()
        self.manual = {c: m for c, m in self.manual.items() if m.until > now}
        wants = cameras_to_record(self.desired.schedules.schedules, self.manual, now)
        for camera_id, active in list(self.active.items()):
            if active.stop_reason is None and (camera_id not in wants
                                               or self.camera(camera_id) is None):
                active.stop_reason = ("manual_ended" if active.want.trigger == "manual"
                                      else "schedule_ended")
                active.recorder.stop(timeout=0)
            elif now_mono - active.recorder.last_packet_at > WATCHDOG_S:
                self._abandon(camera_id, active)
        for camera_id, want in wants.items():
            camera = self.camera(camera_id)
            retry = self.retries.get(camera_id)
            if camera is None or camera_id in self.active or (
                    retry is not None and now_mono < retry.not_before):
                continue
            self._start(camera, want)

    def stop_manual(self, camera_id: str) -> bool:
        """End a recording by hand now; a schedule in force keeps recording."""
        if self.manual.pop(camera_id, None) is None:
            return False
        active = self.active.get(camera_id)
        if active is not None and active.want.trigger == "manual":
            wants = cameras_to_record(self.desired.schedules.schedules, self.manual, utc_now())
            if camera_id not in wants:
                active.stop_reason = "stopped"
                active.recorder.stop(timeout=0)
        return True

    def stop_all(self, reason: StopReason) -> None:
        for active in self.active.values():
            active.stop_reason = active.stop_reason or reason
            active.recorder.stop(timeout=0)

    def _start(self, camera: Camera, want: Want) -> None:
        recording_id, camera_id = new_id(), camera.camera_id
        request = RecordingRequest(recording_id, camera_id, camera.url, want.segment_seconds,
                                   self.segments_dir / camera_id)
        recorder = make_recorder(request, camera.transport, RecorderCallbacks(
            on_segment=lambda s: self.deliver(SegmentReady(s)),
            on_exit=lambda: self.deliver(RecorderExited(camera_id, recording_id)),
            on_online=lambda p: self.deliver(CameraOnline(camera_id, p))))
        self.active[camera_id] = _Active(recorder, want)
        self.open_recordings.opened(recording_id, camera_id)
        self.events.emit("recording.started", RecordingStarted(
            recording_id=recording_id, camera_id=camera_id, trigger=want.trigger,
            schedule_id=want.schedule_id, command_id=want.command_id))
        logger.info("recording.started camera_id=%s recording_id=%s trigger=%s",
                    camera_id, recording_id, want.trigger)
        recorder.start()

    def _abandon(self, camera_id: str, active: _Active) -> None:
        """A hung recorder's thread cannot be killed; it is told to stop and
        forgotten, and whatever it reports later is ignored as stale."""
        logger.warning("recorder.watchdog camera_id=%s silent_s=%.0f", camera_id, WATCHDOG_S)
        active.recorder.stop(timeout=0)
        active.recorder.failed = f"no packets for {WATCHDOG_S:.0f} s"
        active.stop_reason = "camera_lost"
        self._ended(camera_id, active)

    # -- what recorders report -----------------------------------------------

    def handle(self, message: RecorderMessage) -> None:
        match message:
            case SegmentReady(segment=segment):
                self._segment(segment)
            case CameraOnline(camera_id=camera_id, probe=probe):
                self._camera_online(camera_id, probe)
            case RecorderExited(camera_id=camera_id, recording_id=recording_id):
                active = self.active.get(camera_id)
                if active is not None and active.recorder.request.recording_id == recording_id:
                    self._ended(camera_id, active)

    def _segment(self, segment: SealedSegment) -> None:
        self.last_segment_at[segment.camera_id] = segment.end
        active = self.active.get(segment.camera_id)
        mine = active is not None and active.recorder.request.recording_id == segment.recording_id
        manual = mine and active is not None and active.want.trigger == "manual"
        # Queued before it is reported: a crash in between re-reports it (same
        # id, harmless) rather than leave a file nothing will upload.
        self.submit_upload(segment, MANUAL if manual else SCHEDULED)
        self.events.emit("recording.segment", RecordingSegment(
            recording_id=segment.recording_id, segment_id=segment.segment_id,
            camera_id=segment.camera_id, start=segment.start, end=segment.end,
            bytes=segment.bytes, crc32c=segment.crc32c, container="mp4",
            codec=segment.codec, width=segment.width, height=segment.height,
            frames=segment.frames, lost_packets=segment.lost_packets))
        # Reported (in the outbox): no longer a crash's leftover.
        sidecar_path(segment.path).unlink(missing_ok=True)
        if mine and active is not None:
            self.open_recordings.segment_reported(segment.recording_id, segment.camera_id,
                                                  active.recorder.segments)

    def _camera_online(self, camera_id: str, probe: CameraProbe) -> None:
        self.retries.pop(camera_id, None)
        if self.online.get(camera_id) is True:
            return
        self.online[camera_id] = True
        self.events.emit("camera.online", CameraPresence(
            camera_id=camera_id, fps=probe.fps, width=probe.width, height=probe.height,
            codec=probe.codec))

    def _camera_offline(self, camera_id: str, error: str) -> None:
        # Once per outage: a camera that stays down is not re-reported each retry.
        if self.online.get(camera_id) is False:
            return
        self.online[camera_id] = False
        self.events.emit("camera.offline", CameraPresence(camera_id=camera_id, error=error))

    def _ended(self, camera_id: str, active: _Active) -> None:
        del self.active[camera_id]
        recorder = active.recorder
        recording_id = recorder.request.recording_id
        if recorder.failed is not None:
            retry = self.retries.setdefault(camera_id, _Retry())
            retry.attempts += 1
            now = time.monotonic()
            retry.not_before = now + backoff_delay(retry.attempts)
            self.stats.setdefault(camera_id, CameraStats()).reconnected(now)
            self.events.emit("recording.failed", RecordingFailed(
                camera_id=camera_id, recording_id=recording_id, error=recorder.failed,
                will_retry=True))
            self._camera_offline(camera_id, recorder.failed)
        reason = active.stop_reason or "camera_lost"
        self.events.emit("recording.stopped", RecordingStopped(
            recording_id=recording_id, camera_id=camera_id, reason=reason,
            segments=recorder.segments))
        self.open_recordings.closed(recording_id)
        logger.info("recording.stopped camera_id=%s reason=%s segments=%d",
                    camera_id, reason, recorder.segments)

    # -- after a crash ---------------------------------------------------------

    def recover(self) -> None:
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
                self._segment(item)
                recovered[item.recording_id] = recovered.get(item.recording_id, 0) + 1
        for left in self.open_recordings.leftovers():
            if is_valid_id(left.camera_id):
                self.events.emit("recording.stopped", RecordingStopped(
                    recording_id=left.recording_id, camera_id=left.camera_id,
                    reason="shutdown",
                    segments=left.segments + recovered.get(left.recording_id, 0)))
            self.open_recordings.closed(left.recording_id)

    def in_progress(self) -> list[dict[str, Any]]:
        return [{"camera_id": camera_id, "recording_id": a.recorder.request.recording_id,
                 "trigger": a.want.trigger, "schedule_id": a.want.schedule_id,
                 "command_id": a.want.command_id, "segments": a.recorder.segments,
                 "packets": a.recorder.packets, "lost_packets": a.recorder.lost_packets}
                for camera_id, a in sorted(self.active.items())]

    # -- health ----------------------------------------------------------------

    def health(self, now_mono: float) -> list[CameraHealth]:
        figures = []
        for camera in self.desired.cameras.cameras:
            camera_id = camera.camera_id
            stats = self.stats.setdefault(camera_id, CameraStats())
            active = self.active.get(camera_id)
            probe = active.recorder.probe if active else None
            state: Literal["recording", "idle", "offline", "error"]
            if active is not None:
                state = "recording"
                stats.sample(active.recorder.bytes, now_mono)
            else:
                stats.idle()
                state = "offline" if self.online.get(camera_id) is False else "idle"
            figures.append(CameraHealth(
                camera_id=camera_id, state=state, fps=probe.fps if probe else None,
                width=probe.width if probe else None, height=probe.height if probe else None,
                codec=probe.codec if probe else None,
                reconnects_1h=stats.reconnects_last_hour(now_mono),
                last_segment_at=self.last_segment_at.get(camera_id),
                bitrate_bps=stats.bitrate_bps))
        return figures
