"""Live RTSP cameras for benchmarks: a busy 720p15 H.264 clip looped in real time
by one ffmpeg pusher per camera into as many rtsp-server-perl servers as needed.

The server itself is the test fixture's (tests/fixtures/media.py: the patched
rtsp-server-perl). Pushers here differ from the fixture's `RtspCamera` only in
writing ffmpeg's `-progress` file, from which the benchmark tells whether each
source kept real time. Must never leave a process behind: `close()` (or leaving
the `with` block) ends every pusher, then every server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import av

from bench.child_processes import end_all, spawn
from tests.fixtures.media import (
    CLIP_FPS,
    CLIP_HEIGHT,
    CLIP_WIDTH,
    MediaFixtureError,
    RtspServer,
    read_video_packet,
)

# testsrc alone compresses to ~120 kbit/s, far below a real camera. Temporal noise
# makes every frame expensive, so the rate control, not the picture, sets the
# bitrate: ~1.5 Mbit/s, a typical 720p15 camera. The VBV cap (NOTES.md: Video)
# keeps key frames small enough for rtsp-server-perl's UDP buffer.
BUSY_SOURCE = f"testsrc2=size={CLIP_WIDTH}x{CLIP_HEIGHT}:rate={CLIP_FPS},noise=alls=20:allf=t"
# fmt: off
_X264 = ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast", "-bf", "0",
         "-g", "30", "-b:v", "1500k", "-maxrate", "2M", "-bufsize", "1M",
         "-x264-params", "keyint=30:min-keyint=30:scenecut=0"]
# fmt: on
# The servers share the box with everything else here; a bigger receive buffer on
# the sockets pushers send into lets a server that missed a few scheduler turns
# catch up rather than drop (the kernel caps it at net.core.rmem_max).
SERVER_RECEIVE_BUFFER_BYTES = 4 << 20
READY_TIMEOUT_S = 30.0
START_ATTEMPTS = 3
SERVER_START_TIMEOUT_S = 30.0
PROGRESS_PERIOD_S = 0.5


@dataclass(frozen=True)
class ClipInfo:
    seconds: float
    frames: int
    fps: float
    width: int
    height: int
    bitrate_bps: float
    key_frame_max_bytes: int
    other_frame_max_bytes: int


def encode_busy_clip(path: Path, seconds: int = 20) -> Path:
    """Write a 720p15 H.264 clip at ~1.5 Mbit/s, no B-frames, a key frame every 2 s."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
           "-f", "lavfi", "-i", BUSY_SOURCE, "-t", str(seconds), *_X264, str(path)]
    result = subprocess.run(cmd, capture_output=True, check=False, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not encode the clip: {result.stderr[-2000:]!r}")
    return path


def describe_clip(path: Path) -> ClipInfo:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        sizes = [(packet.size, packet.is_keyframe) for packet in container.demux(stream)
                 if packet.size]
        if stream.duration is None or stream.time_base is None:
            raise RuntimeError(f"{path.name} has no duration")
        seconds = float(stream.duration * stream.time_base)
        rate = float(stream.average_rate or CLIP_FPS)
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
    return ClipInfo(
        seconds=seconds, frames=len(sizes), fps=rate, width=width, height=height,
        bitrate_bps=8 * sum(size for size, _ in sizes) / seconds,
        key_frame_max_bytes=max(size for size, key in sizes if key),
        other_frame_max_bytes=max((size for size, key in sizes if not key), default=0))


class Pusher:
    """One camera: `ffmpeg -re -stream_loop -1 -i clip -c copy -f rtsp` into a server."""

    def __init__(self, server: RtspServer, name: str, clip: Path) -> None:
        self.server = server
        self.name = name
        self.url = server.client_url(name)
        self.progress_path = server.workdir / f"{name}.progress"
        self.log_path = server.workdir / f"{name}.ffmpeg.log"
        # fmt: off
        self._cmd = [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
            "-progress", str(self.progress_path), "-stats_period", str(PROGRESS_PERIOD_S),
            "-re", "-stream_loop", "-1", "-i", str(clip),
            "-c", "copy", "-f", "rtsp", "-rtsp_transport", "udp", server.source_url(name),
        ]
        # fmt: on
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = spawn(self._cmd, self.log_path)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            end_all([proc], signal.SIGINT)

    def media_seconds_sent(self) -> tuple[float, float] | None:
        """(media seconds pushed, wall time it was reported) from ffmpeg's last
        `-progress` block: `out_time_us`, and the file's mtime as its timestamp."""
        try:
            with self.progress_path.open("rb") as handle:
                written = os.fstat(handle.fileno()).st_mtime
                handle.seek(0, 2)
                handle.seek(max(0, handle.tell() - 1024))
                tail = handle.read().decode(errors="replace")
        except FileNotFoundError:
            return None
        values = [line.split("=", 1)[1] for line in tail.splitlines()
                  if line.startswith("out_time_us=")]
        try:
            return (int(values[-1]) / 1e6, written) if values else None
        except ValueError:
            return None  # "N/A" before the first packet


class RtspFleet:
    """`grow(n)` to have n live cameras; `urls` are what recorders open."""

    def __init__(self, workdir: Path, clip: Path, streams_per_server: int = 16) -> None:
        self.workdir = workdir
        self.clip = clip
        self.streams_per_server = streams_per_server
        self.servers: list[RtspServer] = []
        self.pushers: list[Pusher] = []

    def __enter__(self) -> RtspFleet:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    @property
    def urls(self) -> list[str]:
        return [pusher.url for pusher in self.pushers]

    def pusher_pids(self) -> list[int]:
        return [p.proc.pid for p in self.pushers if p.proc is not None]

    def server_pids(self) -> list[int]:
        return [s.pid for s in self.servers if s.pid is not None]

    def grow(self, cameras: int) -> None:
        """Start servers and pushers until `cameras` are live and readable."""
        fresh: list[Pusher] = []
        while len(self.pushers) < cameras:
            if len(self.pushers) >= len(self.servers) * self.streams_per_server:
                self.servers.append(self._start_server(self.workdir / f"server{len(self.servers)}"))
            server = self.servers[-1]
            pusher = Pusher(server, f"cam{len(self.pushers)}", self.clip)
            self.pushers.append(pusher)
            pusher.start()
            fresh.append(pusher)
        for _attempt in range(START_ATTEMPTS):
            with ThreadPoolExecutor(8) as pool:
                ready = list(pool.map(self._wait_readable, fresh))
            fresh = [pusher for pusher, ok in zip(fresh, ready, strict=True) if not ok]
            for pusher in fresh:
                # A loaded rtsp-server-perl now and then answers RECORD with 404 and
                # the pusher exits: push again.
                pusher.stop()
                pusher.start()
            if not fresh:
                return
        raise RuntimeError(f"cameras not readable after {START_ATTEMPTS} tries: "
                           f"{[pusher.name for pusher in fresh]}")

    @staticmethod
    def _start_server(directory: Path) -> RtspServer:
        directory.mkdir(parents=True)
        for attempt in range(1, START_ATTEMPTS + 1):
            server = RtspServer(directory, SERVER_RECEIVE_BUFFER_BYTES)
            try:
                server.start(timeout_s=SERVER_START_TIMEOUT_S)
            except MediaFixtureError:
                server.stop()
                if attempt == START_ATTEMPTS:
                    raise
                continue  # perl takes long to start on a saturated box: try again
            return server
        raise AssertionError("unreachable")

    @staticmethod
    def _wait_readable(pusher: Pusher) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if pusher.proc is None or pusher.proc.returncode is not None:
                return False
            if read_video_packet(pusher.url, timeout_s=1.0):
                return True
            time.sleep(0.2)
        return False

    def close(self) -> None:
        pushers, self.pushers = self.pushers, []
        servers, self.servers = self.servers, []
        try:
            # SIGINT: ffmpeg sends TEARDOWN, so the servers see their sources leave.
            end_all([p.proc for p in pushers if p.proc is not None], signal.SIGINT)
        finally:
            for server in servers:
                server.stop()
