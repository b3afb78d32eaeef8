"""Stream-copy recording of H.264/H.265 cameras with PyAV: no decoding.

Compressed packets are remuxed as they arrive into fragmented MP4 segments
(a fragment per key frame, so a file cut short by a power loss plays up to
its last fragment), each cut at the first key frame after
`segment_seconds`. Timestamps are rebased per segment by one offset for pts
and dts alike (the first packet's dts), which keeps B-frame streams valid.
Copying costs a few percent of a decode + re-encode. Runs in its own thread
per camera, which sleeps whenever it has caught up with the camera and then reads
what arrived meanwhile in one go; never logs the camera's URL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import av
import av.error

from edge_node.media_clock import LiveEdge, MediaClock, frames_missing
from edge_node.recorder_thread import (
    CameraError,
    CameraProbe,
    RecorderCallbacks,
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

OPEN_TIMEOUT_S = 10.0
# FFmpeg's own RTSP read timeout (its `timeout` option, in microseconds), checked in C
# on every 100 ms poll that finds nothing. PyAV's read timeout is not used: its
# interrupt callback takes the GIL on every poll of the demuxer (hundreds a second
# per camera). A camera that goes silent ends the recording after two timeouts
# (the first only flushes the parser's last frame); one that keeps sending RTCP but
# no video is left to the service's watchdog (edge_node/recordings.py).
READ_TIMEOUT_S = 5.0
# Probe only what the SDP does not say: with FFmpeg's default (5 s) opening buffered
# ~3.5 s of video, and when 100 cameras opened at once the open timeout cut some
# probes short, which flushed the H.264 parser mid-frame and lost a frame. Half a
# second is enough for the frame rate (lost-frame counting needs it).
PROBE_S = 0.5
# When the recorder has caught up with the camera (the packet it just read had waited
# less than a frame interval), it sleeps this long before reading again, so the
# datagrams of several frames wait in the socket buffer and are read in one go
# rather than waking the thread (and taking the GIL) for each. Footage reaches the
# file up to this much later; a recorder that is behind never sleeps. CPU against
# ffmpeg -c copy on the same 720p15 cameras (bench/recording_variants.py): no pause
# 1.29, 0.05 s 1.49, 0.1 s 0.96, 0.2 s 0.71, 0.4 s 0.58.
CATCH_UP_PAUSE_S = 0.2
LIVE_EDGE_DEFAULT_S = 1 / 30  # frame interval assumed when the camera's is unknown
# Every RTP datagram waits in this socket buffer until the camera's thread reads
# it. FFmpeg's default (384 KiB) holds about 2 s of a 1.5 Mbit/s camera; with
# 50+ cameras in one process on a busy 2-core node a thread can be kept off the
# CPU (or the GIL) longer than that, and the kernel dropped tens of thousands of
# datagrams (bench/recording.py). The kernel caps the request at
# net.core.rmem_max; memory is only used while a thread lags.
UDP_RECEIVE_BUFFER_BYTES = 4 << 20


def _rmem_max() -> int:
    try:
        return int(Path("/proc/sys/net/core/rmem_max").read_text())
    except (OSError, ValueError):
        return 212_992  # Linux's usual default


# What a pause may let queue in the socket buffer: half of what it holds. The kernel
# caps SO_RCVBUF at net.core.rmem_max (208 KiB on a stock Debian box), and charges
# each datagram's buffers against it (2.3 kB per 1.4 kB datagram on loopback, more
# from some NICs), so the buffer holds about its requested size in payload. With a
# 208 KiB buffer, 8 Mbit/s cameras (250 kB key frames) lost 74 frames a minute to
# unbounded 0.2 s pauses, and none with this bound (which then forbids pausing).
PAUSE_QUEUE_BYTES = min(UDP_RECEIVE_BUFFER_BYTES, _rmem_max()) // 2
COPYABLE: tuple[str, ...] = ("h264", "hevc")


def catch_up_pause_s(bytes_per_s: float, largest_frame_bytes: int, queue_bytes: int,
                     frame_s: float) -> float:
    """How long to sleep once caught up with a camera: CATCH_UP_PAUSE_S, or less if
    what the camera sends meanwhile might not fit in `queue_bytes` of socket buffer
    (counting a whole frame, which arrives in one burst). 0 if that leaves less than
    a frame interval: such a pause gathers no frame, and cost more CPU than none."""
    if bytes_per_s <= 0:
        return 0.0
    pause_s = min(CATCH_UP_PAUSE_S, (queue_bytes - largest_frame_bytes) / bytes_per_s)
    return pause_s if pause_s >= frame_s else 0.0


def transports(setting: str) -> list[str]:
    """RTSP transports to try in order; `auto` is TCP first, then UDP."""
    return ["tcp", "udp"] if setting == "auto" else [setting]


class _CopySegment:
    def __init__(self, request: RecordingRequest, template: Any, codec: Codec,
                 opened_at: float) -> None:
        self.request = request
        self.opened_at = opened_at
        self.segment_id = new_id()
        self.path = request.directory / f"{self.segment_id}.mp4"
        self.codec = codec
        self.width = int(template.codec_context.width)
        self.height = int(template.codec_context.height)
        self.first_s: float | None = None  # media time of the earliest frame
        self.last_s = 0.0
        self.frames = 0
        self.lost_packets = 0
        self._offset: int | None = None
        self._output = av.open(str(self.path), "w", format="mp4", options=FRAGMENTED_MP4)
        self._stream = self._output.add_stream_from_template(template)

    def due(self, media_s: float, arrived: float) -> bool:
        """Time to cut: `segment_seconds` of media behind us, or twice that of
        wall clock should the camera's timestamps be broken."""
        length = self.request.segment_seconds
        return (self.first_s is not None and media_s - self.first_s >= length) or (
            arrived - self.opened_at >= 2 * length)

    def mux(self, packet: Any, media_s: float) -> None:
        if self._offset is None:
            self._offset = packet.dts
            write_sidecar(self.path, recording_id=self.request.recording_id,
                          camera_id=self.request.camera_id, start=utc_now(), codec=self.codec,
                          width=self.width, height=self.height)
        self.first_s = media_s if self.first_s is None else min(self.first_s, media_s)
        self.last_s = max(self.last_s, media_s)
        packet.pts -= self._offset
        packet.dts -= self._offset
        packet.stream = self._stream
        self._output.mux(packet)
        self.frames += 1

    def seal(self, clock: MediaClock) -> SealedSegment | None:
        self._output.close()  # writes the last fragment
        if self.frames == 0 or self.first_s is None:
            self.path.unlink(missing_ok=True)
            return None
        fsync_file(self.path)
        return SealedSegment(
            recording_id=self.request.recording_id, segment_id=self.segment_id,
            camera_id=self.request.camera_id, path=self.path, start=clock.wall(self.first_s),
            end=clock.wall(self.last_s), bytes=self.path.stat().st_size,
            crc32c=crc32c_of_file(self.path), codec=self.codec,
            width=self.width, height=self.height, frames=self.frames,
            lost_packets=self.lost_packets)


class CopyRecorder(RecorderThread):
    """One recording of one RTSP camera, in a thread, until `stop()`."""

    def __init__(self, request: RecordingRequest, callbacks: RecorderCallbacks,
                 transport: str = "auto") -> None:
        super().__init__(request, callbacks)
        self._transport = transport

    def _open(self) -> Any:
        errors = []
        for transport in transports(self._transport):
            try:
                return av.open(self.request.url, options={
                    "rtsp_transport": transport,
                    "timeout": str(round(READ_TIMEOUT_S * 1e6)),
                    "analyzeduration": str(round(PROBE_S * 1e6)),
                    "buffer_size": str(UDP_RECEIVE_BUFFER_BYTES)},  # RTP over UDP only
                    timeout=(OPEN_TIMEOUT_S, None))
            except (av.error.FFmpegError, OSError) as exc:
                # The message may echo the URL; keep only the error's kind.
                errors.append(f"{transport}: {type(exc).__name__}")
        raise CameraError(f"camera did not open ({', '.join(errors)})")

    def _packets(self, container: Any, stream: Any, frame_s: float | None) -> Iterator[Any]:
        """The camera's packets as they come, with a pause whenever caught up with it."""
        time_base = float(stream.time_base)
        frame_s = frame_s or LIVE_EDGE_DEFAULT_S
        edge = LiveEdge(frame_s)
        began = time.monotonic()
        largest = 0  # bytes of the largest frame, once a key frame has come
        try:
            for packet in container.demux(stream):
                dts = packet.dts
                if dts is None or packet.pts is None:
                    continue  # the end-of-stream flush packet, or one from before probing
                size = packet.size
                self._received(size)
                if largest or packet.is_keyframe:
                    largest = max(largest, size)
                caught_up = edge.caught_up(dts * time_base, self.last_packet_at)
                yield packet
                if caught_up and largest:
                    # Over at least a second: what opening buffered comes out at once.
                    seconds = max(1.0, self.last_packet_at - began)
                    pause_s = catch_up_pause_s(self.bytes / seconds, largest, PAUSE_QUEUE_BYTES,
                                               frame_s)
                    if pause_s > 0:
                        # Not `_stopping.wait()`: its Python machinery cost 5% of the
                        # recorder's CPU. `stop()` waits out the pause at most.
                        time.sleep(pause_s)
        except (av.error.FFmpegError, OSError) as exc:
            raise CameraError(f"stream broke: {type(exc).__name__}") from None
        raise CameraError("stream ended")

    def _record(self) -> None:
        container = self._open()
        try:
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            if codec not in COPYABLE or codec not in get_args(Codec):
                raise CameraError(f"codec {codec} cannot be stream-copied")
            rate = stream.average_rate or stream.guessed_rate
            self._online(CameraProbe(codec, int(stream.codec_context.width),
                                     int(stream.codec_context.height),
                                     float(rate) if rate else None))
            self._copy(container, stream, codec)
        finally:
            container.close()

    def _copy(self, container: Any, stream: Any, codec: Codec) -> None:
        segment: _CopySegment | None = None
        clock = MediaClock()
        time_base = float(stream.time_base)
        rate = stream.average_rate or stream.guessed_rate
        frame_s = 1 / float(rate) if rate else None
        frame_ticks = frame_s / time_base if frame_s else None
        previous_dts: int | None = None
        epoch_minus_monotonic = time.time() - time.monotonic()
        try:
            for packet in self._packets(container, stream, frame_s):
                lost = frames_missing(previous_dts, packet.dts, frame_ticks) + int(
                    packet.is_corrupt)
                previous_dts = packet.dts
                self.lost_packets += lost
                arrived = self.last_packet_at
                media_s = packet.pts * time_base
                clock.observe(media_s, arrived + epoch_minus_monotonic)
                if segment is None or (packet.is_keyframe and segment.due(media_s, arrived)):
                    if not packet.is_keyframe:
                        continue  # a segment starts on a key frame
                    if segment is not None:
                        self._emit(segment.seal(clock))
                    segment = _CopySegment(self.request, stream, codec, arrived)
                segment.lost_packets += lost
                segment.mux(packet, media_s)
                if self._stopping.is_set():
                    break
        finally:
            # Also when the camera drops mid-segment: what was recorded is kept.
            if segment is not None:
                self._emit(segment.seal(clock))
