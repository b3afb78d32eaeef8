"""Running one arm of the recording benchmark on live cameras and measuring it.

An arm is a set of recorder processes started together, left to record for a
fixed time and then ended with SIGINT (so files are finished properly). Its CPU
is counted two ways, both per process so the sources' own CPU never enters:
over the whole life of its processes (wait4), and over a steady window after
the cameras have opened (the kernel's per-process CPU clock), where the times
its threads went to sleep are counted too. What it recorded is read back from
the files it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.child_processes import end_all, spawn
from bench.linux_counters import cpu_seconds_of, voluntary_context_switches_of
from bench.segment_files import FileStats, file_stats, total, video_files

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Window:
    """CPU of the arm's processes between two instants of steady recording, and how
    often their threads went to sleep meanwhile (each sleep is a wakeup later)."""

    cpu_s: float
    wall_s: float
    sleeps: int = 0


@dataclass
class ArmRun:
    """One arm, measured: what it cost and what it wrote."""

    name: str
    cameras: int
    processes: int
    life_cpu_s: float  # whole process lives: start-up, opening, recording, finishing
    window: Window
    per_camera: list[FileStats]
    report: dict[str, Any] = field(default_factory=dict)  # the worker's, if any
    exit_codes: list[int | None] = field(default_factory=list)

    @property
    def recorded(self) -> FileStats:
        return total(self.per_camera)

    @property
    def cpu_per_recorded_camera_s(self) -> float:
        seconds = self.recorded.seconds
        return self.life_cpu_s / seconds if seconds else float("inf")

    @property
    def steady_cpu_per_camera_s(self) -> float:
        return self.window.cpu_s / (self.window.wall_s * self.cameras)

    @property
    def sleeps_per_camera_s(self) -> float:
        return self.window.sleeps / (self.window.wall_s * self.cameras)

    @property
    def failed(self) -> int:
        cameras = self.report.get("cameras", [])
        return sum(1 for camera in cameras if camera.get("failed")) + sum(
            1 for code in self.exit_codes if code not in (0, 255, None))


def ffmpeg_segmenter_cmd(url: str, directory: Path, segment_seconds: int) -> list[str]:
    """The baseline: ffmpeg stream-copying one camera into segment files."""
    directory.mkdir(parents=True, exist_ok=True)
    # fmt: off
    return ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
            "-rtsp_transport", "udp", "-i", url,
            "-c", "copy", "-f", "segment", "-segment_time", str(segment_seconds),
            "-reset_timestamps", "1", str(directory / "out%03d.mp4")]
    # fmt: on


def worker_cmd(mode: str, urls: list[str], directory: Path, report: Path,
               segment_seconds: int, *, track_lag: bool = False,
               extra: Sequence[str] = ()) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    return [sys.executable, "-m", "bench.recording_worker", mode, "--out", str(directory),
            "--report", str(report), "--segment-seconds", str(segment_seconds),
            *(["--track-lag"] if track_lag else []), *extra, *urls]


def spawn_worker(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPENCV_FFMPEG_CAPTURE_OPTIONS": "rtsp_transport;udp"}
    return spawn(cmd, log, cwd=REPO_ROOT, env=env, stdin_pipe=True)


def sleep_until(instant: float) -> None:
    time.sleep(max(0.0, instant - time.monotonic()))


def run_groups(groups: list[list[subprocess.Popen[bytes]]], seconds: float, warmup_s: float,
               *, at_window_start: Callable[[], None] | None = None,
               at_window_end: Callable[[], None] | None = None,
               ) -> tuple[list[float], list[Window]]:
    """Let freshly started processes run `seconds`, then end them all; the lifetime
    CPU of each process (in order), and each group's CPU between `warmup_s` and
    the end."""
    launched = time.monotonic()
    procs = [proc for group in groups for proc in group]
    ended = False
    try:
        sleep_until(launched + warmup_s)
        cpu_start = [cpu_seconds_of([p.pid for p in group]) for group in groups]
        sleeps_start = [voluntary_context_switches_of([p.pid for p in group]) for group in groups]
        wall_start = time.monotonic()
        if at_window_start:
            at_window_start()
        sleep_until(launched + seconds)
        cpu_end = [cpu_seconds_of([p.pid for p in group]) for group in groups]
        sleeps_end = [voluntary_context_switches_of([p.pid for p in group]) for group in groups]
        wall = time.monotonic() - wall_start
        if at_window_end:
            at_window_end()  # while the processes still hold their sockets
        lives = end_all(procs)
        ended = True
    finally:
        if not ended:
            end_all(procs)
    return lives, [Window(cpu_end[i] - cpu_start[i], wall, sleeps_end[i] - sleeps_start[i])
                   for i in range(len(groups))]


def run_processes(procs: list[subprocess.Popen[bytes]], seconds: float, warmup_s: float,
                  *, at_window_start: Callable[[], None] | None = None,
                  at_window_end: Callable[[], None] | None = None,
                  ) -> tuple[list[float], Window]:
    lives, windows = run_groups([procs], seconds, warmup_s, at_window_start=at_window_start,
                                at_window_end=at_window_end)
    return lives, windows[0]


def camera_files(directory: Path, cameras: int, fps: float) -> list[FileStats]:
    return [total([file_stats(path, fps) for path in video_files(directory / f"cam{index}")])
            for index in range(cameras)]


def run_worker_arm(name: str, mode: str, urls: list[str], workdir: Path, *, seconds: float,
                   warmup_s: float, segment_seconds: int, fps: float) -> ArmRun:
    """Our recorder (or the OpenCV baseline): all cameras in one worker process."""
    workdir.mkdir(parents=True)
    report_path = workdir / "report.json"
    cmd = worker_cmd(mode, urls, workdir / "out", report_path, segment_seconds)
    proc = spawn_worker(cmd, workdir / "worker.log")
    lives, window = run_processes([proc], seconds, warmup_s)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return ArmRun(name, len(urls), 1, sum(lives), window,
                  camera_files(workdir / "out", len(urls), fps), report, [proc.returncode])


def spawn_ffmpeg_segmenters(urls: list[str], workdir: Path, segment_seconds: int,
                             ) -> list[subprocess.Popen[bytes]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for index, url in enumerate(urls):
            cmd = ffmpeg_segmenter_cmd(url, workdir / "out" / f"cam{index}", segment_seconds)
            procs.append(spawn(cmd, workdir / f"ffmpeg{index}.log"))
    except BaseException:
        end_all(procs)
        raise
    return procs


def run_ffmpeg_arm(name: str, urls: list[str], workdir: Path, *, seconds: float,
                   warmup_s: float, segment_seconds: int, fps: float) -> ArmRun:
    """The baseline: one `ffmpeg -c copy -f segment` process per camera."""
    workdir.mkdir(parents=True)
    procs = spawn_ffmpeg_segmenters(urls, workdir, segment_seconds)
    lives, window = run_processes(procs, seconds, warmup_s)
    return ArmRun(name, len(urls), len(procs), sum(lives), window,
                  camera_files(workdir / "out", len(urls), fps),
                  exit_codes=[proc.returncode for proc in procs])


def run_paired_arms(urls: list[str], workdir: Path, *, seconds: float, warmup_s: float,
                    segment_seconds: int, fps: float) -> tuple[ArmRun, ArmRun]:
    """Ours and the ffmpeg baseline recording the same streams at the same time, so
    both see the same noise from the rest of the machine."""
    ours_dir, ffmpeg_dir = workdir / "ours", workdir / "ffmpeg"
    ours_dir.mkdir(parents=True)
    ffmpeg_dir.mkdir(parents=True)
    report_path = ours_dir / "report.json"
    worker = spawn_worker(worker_cmd("copy", urls, ours_dir / "out", report_path,
                                     segment_seconds), ours_dir / "worker.log")
    try:
        ffmpeg = spawn_ffmpeg_segmenters(urls, ffmpeg_dir, segment_seconds)
    except BaseException:
        end_all([worker])
        raise
    lives, (ours_window, ffmpeg_window) = run_groups([[worker], ffmpeg], seconds, warmup_s)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    ours = ArmRun("ours, paired with ffmpeg", len(urls), 1, lives[0], ours_window,
                  camera_files(ours_dir / "out", len(urls), fps), report, [worker.returncode])
    baseline = ArmRun("ffmpeg, paired with ours", len(urls), len(ffmpeg), sum(lives[1:]),
                      ffmpeg_window, camera_files(ffmpeg_dir / "out", len(urls), fps),
                      exit_codes=[proc.returncode for proc in ffmpeg])
    return ours, baseline
