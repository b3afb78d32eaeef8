"""The recorder under test, as its own process: N RTSP cameras recorded at once
in one Python process, the way the edge node runs them (a thread per camera).

    python -m bench.recording_worker copy   --out DIR --report FILE URL...
    python -m bench.recording_worker opencv --out DIR --report FILE URL...

`copy` is edge_node's CopyRecorder (stream copy, fragmented MP4 segments);
`opencv` decodes with cv2.VideoCapture and re-encodes with cv2.VideoWriter
(MP4V), the decode + re-encode baseline. For comparing variants of the copy
recorder (bench/recording_variants.py), `--set NAME=NUMBER` overrides a constant
of edge_node.copy_recorder and `--pyav-read-timeout` reads as the recorder did
before it used FFmpeg's own RTSP timeout. Records until SIGINT, SIGTERM or EOF
on stdin (the benchmark holds the other end, so the worker also ends if the
benchmark dies), then writes a JSON report. Never prints camera URLs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import av

from edge_node import copy_recorder
from edge_node.copy_recorder import CopyRecorder
from edge_node.recorder_thread import CameraProbe, RecorderCallbacks, RecordingRequest
from edge_node.segments import SealedSegment

logger = logging.getLogger("bench.recording_worker")

SAMPLE_PERIOD_S = 1.0
STOP_TIMEOUT_S = 20.0
OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 5_000


def _process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class LagTrackingCopyRecorder(CopyRecorder):
    """CopyRecorder that also notes how late its newest packet is handled.

    Lateness is `handled - media time`, less the smallest such value seen so far
    (the stream's own latency): a recorder that keeps up stays near zero, one
    that falls behind grows without bound. Costs one subtraction per packet.
    """

    lag_s = 0.0

    def _packets(self, container: Any, stream: Any, frame_s: float | None) -> Iterator[Any]:
        time_base = float(stream.time_base)
        least = math.inf
        for packet in super()._packets(container, stream, frame_s):
            late = time.monotonic() - packet.pts * time_base
            least = min(least, late)
            self.lag_s = late - least
            yield packet


class PyAvReadTimeout(CopyRecorder):
    """CopyRecorder opened as it was before FFmpeg's own RTSP read timeout was used:
    PyAV's read timeout, whose interrupt callback takes the GIL on every poll of
    the demuxer. RTP over UDP only, as rtsp-server-perl serves."""

    def _open(self) -> Any:
        return av.open(self.request.url, options={
            "rtsp_transport": "udp",
            "analyzeduration": str(round(copy_recorder.PROBE_S * 1e6)),
            "buffer_size": str(copy_recorder.UDP_RECEIVE_BUFFER_BYTES)},
            timeout=(copy_recorder.OPEN_TIMEOUT_S, copy_recorder.READ_TIMEOUT_S))


def recorder_class(track_lag: bool, pyav_read_timeout: bool) -> type[CopyRecorder]:
    bases = ((LagTrackingCopyRecorder,) if track_lag else ()) + (
        (PyAvReadTimeout,) if pyav_read_timeout else ())
    return type("BenchCopyRecorder", bases, {}) if bases else CopyRecorder


def override_constants(settings: list[str]) -> None:
    """`NAME=NUMBER`: replace a numeric constant of edge_node.copy_recorder."""
    for setting in settings:
        name, _, text = setting.partition("=")
        current = getattr(copy_recorder, name, None)
        if not name.isupper() or not isinstance(current, int | float):
            raise SystemExit(f"--set {setting}: not a numeric constant of copy_recorder")
        setattr(copy_recorder, name, type(current)(float(text)))


class CameraLog:
    """What one camera's recorder reported through its callbacks."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.sealed: list[SealedSegment] = []
        self.online_after_s: float | None = None
        self.lag: list[tuple[float, float]] = []
        self.max_stale_s = 0.0

    def on_segment(self, segment: SealedSegment) -> None:
        self.sealed.append(segment)

    def on_exit(self) -> None:
        pass

    def on_online(self, _probe: CameraProbe) -> None:
        self.online_after_s = time.monotonic() - self.started


def _record_copy(urls: list[str], out: Path, segment_seconds: int,
                 cls: type[CopyRecorder], stop: threading.Event) -> dict[str, Any]:
    started = time.monotonic()
    logs: list[CameraLog] = []
    recorders: list[CopyRecorder] = []
    for index, url in enumerate(urls):
        log = CameraLog(started)
        request = RecordingRequest(f"bench-{index}", f"cam{index}", url, segment_seconds,
                                   out / f"cam{index}")
        recorder = cls(request, RecorderCallbacks(log.on_segment, log.on_exit, log.on_online),
                       transport="udp")  # rtsp-server-perl refuses RTP over TCP
        logs.append(log)
        recorders.append(recorder)
        recorder.start()
    while not stop.wait(SAMPLE_PERIOD_S):
        now = time.monotonic()
        for recorder, log in zip(recorders, logs, strict=True):
            if recorder.packets:
                log.max_stale_s = max(log.max_stale_s, now - recorder.last_packet_at)
            if isinstance(recorder, LagTrackingCopyRecorder) and recorder.packets:
                log.lag.append((round(now - started, 2), round(recorder.lag_s, 3)))
    stop_requested = time.monotonic()
    for recorder in recorders:
        recorder.stop(timeout=0)  # every recorder told first, so they seal in parallel
    for recorder in recorders:
        recorder.stop(timeout=STOP_TIMEOUT_S)
    return {
        "stop_requested_after_s": stop_requested - started,
        "stopped_after_s": time.monotonic() - started,
        "cameras": [{
            "failed": recorder.failed, "packets": recorder.packets,
            "lost_packets": recorder.lost_packets, "still_running": recorder.running,
            "online_after_s": log.online_after_s, "max_stale_s": log.max_stale_s,
            "lag": log.lag,
            "segments": [{"path": str(s.path), "frames": s.frames,
                          "lost_packets": s.lost_packets, "bytes": s.bytes,
                          "media_s": (s.end - s.start).total_seconds()} for s in log.sealed],
        } for recorder, log in zip(recorders, logs, strict=True)],
    }


class OpenCvRecording(threading.Thread):
    """Decode one RTSP camera with OpenCV and re-encode it as MP4V segments."""

    def __init__(self, url: str, directory: Path, segment_seconds: int,
                 stop: threading.Event, started: float) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.directory = directory
        self.segment_seconds = segment_seconds
        self.stop_event = stop
        self.started = started
        self.frames = 0
        self.files: list[str] = []
        self.failed: str | None = None
        self.online_after_s: float | None = None

    def run(self) -> None:
        try:
            self._record()
        except Exception as exc:  # thread edge: reported in the JSON, never raised
            self.failed = f"{type(exc).__name__}: {exc}"
            logger.exception("opencv.failed")

    def _record(self) -> None:
        import cv2  # noqa: PLC0415  only this mode needs OpenCV

        self.directory.mkdir(parents=True, exist_ok=True)
        capture = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS])
        if not capture.isOpened():
            raise RuntimeError("camera did not open")
        writer: Any = None
        try:
            fps = capture.get(cv2.CAP_PROP_FPS) or 15.0
            per_segment = round(self.segment_seconds * fps)
            in_segment = 0
            while not self.stop_event.is_set():
                ok, frame = capture.read()
                if not ok:
                    raise RuntimeError("camera stopped delivering frames")
                if self.online_after_s is None:
                    self.online_after_s = time.monotonic() - self.started
                if writer is None or in_segment >= per_segment:
                    if writer is not None:
                        writer.release()
                    path = self.directory / f"{len(self.files):03d}.mp4"
                    height, width = frame.shape[:2]
                    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps,
                                             (width, height))
                    self.files.append(str(path))
                    in_segment = 0
                writer.write(frame)
                in_segment += 1
                self.frames += 1
        finally:
            if writer is not None:
                writer.release()
            capture.release()


def _record_opencv(urls: list[str], out: Path, segment_seconds: int,
                   stop: threading.Event) -> dict[str, Any]:
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;udp")
    started = time.monotonic()
    threads = [OpenCvRecording(url, out / f"cam{index}", segment_seconds, stop, started)
               for index, url in enumerate(urls)]
    for thread in threads:
        thread.start()
    while not stop.wait(SAMPLE_PERIOD_S):
        pass
    stop_requested = time.monotonic()
    for thread in threads:
        thread.join(STOP_TIMEOUT_S)
    return {
        "stop_requested_after_s": stop_requested - started,
        "stopped_after_s": time.monotonic() - started,
        "cameras": [{"failed": t.failed, "frames": t.frames, "files": t.files,
                     "still_running": t.is_alive(), "online_after_s": t.online_after_s}
                    for t in threads],
    }


def _stop_on_signals_and_stdin_eof(stop: threading.Event) -> None:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)

    def watch_stdin() -> None:
        sys.stdin.buffer.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["copy", "opencv"])
    parser.add_argument("urls", nargs="+", metavar="URL")
    parser.add_argument("--out", type=Path, required=True, help="directory for the segments")
    parser.add_argument("--report", type=Path, required=True, help="JSON report to write")
    parser.add_argument("--segment-seconds", type=int, default=10)
    parser.add_argument("--track-lag", action="store_true",
                        help="copy mode: sample each camera's lag behind real time")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=NUMBER",
                        help="copy mode: override a constant of edge_node.copy_recorder")
    parser.add_argument("--pyav-read-timeout", action="store_true",
                        help="copy mode: PyAV's read timeout instead of FFmpeg's own")
    args = parser.parse_args(argv)
    override_constants(args.set)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    _stop_on_signals_and_stdin_eof(stop)
    cpu_before = _process_cpu_s()
    if args.mode == "copy":
        cls = recorder_class(args.track_lag, args.pyav_read_timeout)
        report = _record_copy(args.urls, args.out, args.segment_seconds, cls, stop)
    else:
        report = _record_opencv(args.urls, args.out, args.segment_seconds, stop)
    report["mode"] = args.mode
    report["cpu_recording_s"] = _process_cpu_s() - cpu_before
    report["cpu_startup_s"] = cpu_before
    args.report.write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
