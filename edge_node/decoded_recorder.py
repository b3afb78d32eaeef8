"""Recording for sources that must be decoded: MJPEG over HTTP and USB devices.

OpenCV reads and decodes the frames; PyAV's libx264 encodes them into
fragmented MP4 (H.264 plays in every browser, where OpenCV's own MP4V writer
makes files no browser plays, and a fragmented file cut short by a crash
still plays up to its last fragment, where MP4V's lost its index). Frames go
into one segment file until `segment_seconds` of wall-clock time have passed;
a segment is sealed (flushed, fsynced, checksummed) before it is reported.
Runs in its own thread per camera and never lets an exception escape it; the
camera's URL is never logged.
"""

from __future__ import annotations

import itertools
import logging
from datetime import datetime
from fractions import Fraction
from typing import cast

import av
import av.error
import cv2
import numpy as np
from av.video.stream import VideoStream
from cv2.typing import MatLike

from edge_node.recorder_thread import (
    CameraError,
    CameraProbe,
    RecorderThread,
    RecordingRequest,
)
from edge_node.segments import (
    FRAGMENTED_MP4,
    SealedSegment,
    crc32c_of_file,
    fsync_file,
    write_sidecar,
)
from schemas.events import Codec
from schemas.ids import new_id, utc_now

logger = logging.getLogger(__name__)

ENCODER = "libx264"
CODEC: Codec = "h264"
# Cheap on a small box, no frame held back; a key frame (so a fragment) every 2 s.
ENCODER_OPTIONS: dict[str, object] = {"preset": "veryfast", "tune": "zerolatency", "crf": "26"}
KEY_FRAME_EVERY_S = 2.0
# Each fragment goes to the file when complete, not when 32 KiB have gathered in
# the muxer's buffer: a small camera's fragments are smaller than that.
OUTPUT_OPTIONS = {**FRAGMENTED_MP4, "flush_packets": "1"}
DEFAULT_FPS = 10.0
FPS_PROBE_FRAMES = 8
OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 5000


def capture_source(url: str) -> str | int:
    return int(url.removeprefix("device://")) if url.startswith("device://") else url


def estimate_fps(arrivals: list[float]) -> float:
    """Frames per second from frame arrival times (monotonic seconds).

    A network MJPEG source announces no rate (OpenCV reports a default 25), so
    the rate is measured: the median interval resists one late frame.
    """
    intervals = sorted(b - a for a, b in itertools.pairwise(arrivals) if b > a)
    if not intervals:
        return DEFAULT_FPS
    fps = 1.0 / intervals[len(intervals) // 2]
    return min(max(round(fps * 2) / 2, 1.0), 60.0)


def frames_due(elapsed_s: float, fps: float) -> int:
    """How many frames a constant-rate file should hold `elapsed_s` after its
    first frame, so its duration follows the wall clock."""
    return int(elapsed_s * fps) + 1


class _SegmentWriter:
    """One segment file at a constant frame rate: frames are repeated or
    dropped so the file's duration matches the wall-clock span it covers."""

    def __init__(self, request: RecordingRequest, fps: float, size: tuple[int, int]) -> None:
        self.segment_id = new_id()
        self.request = request
        self.fps = fps
        self.opened_at: float | None = None
        self.path = request.directory / f"{self.segment_id}.mp4"
        self.start: datetime | None = None
        self.end: datetime | None = None
        self.frames = 0
        # 4:2:0 needs even dimensions: an odd last row or column is cropped.
        self.size = (size[0] - size[0] % 2, size[1] - size[1] % 2)
        try:
            self._output = av.open(str(self.path), "w", format="mp4", options=OUTPUT_OPTIONS)
            self._stream = cast(VideoStream, self._output.add_stream(
                ENCODER, rate=Fraction(fps).limit_denominator(1001)))
        except (av.error.FFmpegError, OSError) as exc:
            raise CameraError(f"cannot open a {ENCODER} writer for {self.path.name}: "
                              f"{type(exc).__name__}") from None
        self._stream.width, self._stream.height = self.size
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = dict(ENCODER_OPTIONS)
        self._stream.codec_context.gop_size = max(1, round(KEY_FRAME_EVERY_S * fps))

    def write(self, frame: MatLike, arrived: float, at: datetime) -> None:
        if self.opened_at is None:
            self.opened_at = arrived
            write_sidecar(self.path, recording_id=self.request.recording_id,
                          camera_id=self.request.camera_id, start=at, codec=CODEC,
                          width=self.size[0], height=self.size[1])
        due = frames_due(arrived - self.opened_at, self.fps)
        width, height = self.size
        picture = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(frame[:height, :width], dtype=np.uint8), format="bgr24")
        # After a stall, repeat at most a second's worth; the gap stays visible.
        for _ in range(min(due - self.frames, int(self.fps) + 1)):
            picture.pts = self.frames
            self._output.mux(self._stream.encode(picture))
            self.frames += 1
        self.start = self.start or at
        self.end = at

    def seal(self, request: RecordingRequest) -> SealedSegment | None:
        self._output.mux(self._stream.encode(None))  # what the encoder still holds
        self._output.close()
        if self.frames == 0 or self.start is None or self.end is None:
            self.path.unlink(missing_ok=True)
            return None
        fsync_file(self.path)
        return SealedSegment(
            recording_id=request.recording_id, segment_id=self.segment_id,
            camera_id=request.camera_id, path=self.path, start=self.start, end=self.end,
            bytes=self.path.stat().st_size, crc32c=crc32c_of_file(self.path), codec=CODEC,
            width=self.size[0], height=self.size[1], frames=self.frames, lost_packets=0)


class DecodedRecorder(RecorderThread):
    """One recording of one MJPEG or USB camera, in a thread, until `stop()`."""

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(capture_source(self.request.url), cv2.CAP_ANY, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS])
        if not capture.isOpened():
            raise CameraError("camera did not open")
        return capture

    def _read(self, capture: cv2.VideoCapture) -> tuple[MatLike, float, datetime]:
        ok, frame = capture.read()
        if not ok:
            raise CameraError("camera stopped delivering frames")
        # Decoded frames say nothing of the stream's bitrate; sealed segments do.
        self._received(0)
        return frame, self.last_packet_at, utc_now()

    def _record(self) -> None:
        capture = self._open()
        try:
            probe = [self._read(capture) for _ in range(FPS_PROBE_FRAMES)]
            fps = estimate_fps([arrived for _, arrived, _ in probe])
            height, width = probe[0][0].shape[:2]
            self._online(CameraProbe(CODEC, width, height, fps))
            writer: _SegmentWriter | None = None
            cut_at = 0.0
            pending = iter(probe)
            while not self._stopping.is_set():
                frame, arrived, at = next(pending, None) or self._read(capture)
                if writer is not None and arrived >= cut_at:
                    self._seal(writer)
                    writer = None
                if writer is None:
                    height, width = frame.shape[:2]
                    writer = _SegmentWriter(self.request, fps, (width, height))
                    cut_at = arrived + self.request.segment_seconds
                writer.write(frame, arrived, at)
            if writer is not None:
                self._seal(writer)
        finally:
            capture.release()

    def _seal(self, writer: _SegmentWriter) -> None:
        segment = writer.seal(self.request)
        if segment is not None:
            self.bytes += segment.bytes
        self._emit(segment)
