"""One step of the concurrency sweep: our recorder on N live cameras at once,
with enough around it to say who lost what.

Besides the recorder (one worker process, lag tracked per camera) a few plain
`ffmpeg -c copy` readers record the first cameras as a control, and the
sources are watched: pusher pacing (media seconds pushed per wall second),
datagrams the kernel dropped on the servers' sockets (lost before any reader),
on the recorder's sockets (the recorder fell behind) and in the box-wide
backlog. A frame lost to the source is not the recorder's fault.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.child_processes import end_all, spawn
from bench.linux_counters import (
    BoxTimes,
    box_times,
    busy_fraction,
    cpu_seconds_of,
    drops_since,
    softnet_dropped,
    udp_drops_by_socket,
    udp_receive_buffer_errors,
    udp_send_buffer_errors,
)
from bench.recording_arms import (
    camera_files,
    ffmpeg_segmenter_cmd,
    run_processes,
    spawn_worker,
    worker_cmd,
)
from bench.rtsp_fleet import RtspFleet
from bench.segment_files import FileStats, total

BEHIND_LAG_S = 1.0  # a camera handled this late at the end has fallen behind
SLOW_PUSHER = 0.95  # media seconds pushed per wall second below this: the source lagged


@dataclass(frozen=True)
class Snapshot:
    wall_s: float
    box: BoxTimes
    recorder_cpu_s: float
    control_cpu_s: float
    pushers_cpu_s: float
    servers_cpu_s: float
    pushed: list[tuple[float, float] | None]  # per pusher: (media s, when)


@dataclass
class ScaleStep:
    cameras: int
    seconds: float
    segments: int
    lost_packets: int  # from the SealedSegments
    lost_after_first_segment: int  # the same, leaving out each camera's opening segment
    missing_in_files: int  # timestamp gaps in what was written
    failed: int
    recorded_s: list[float]  # per camera, read back from the files
    open_s: float | None  # median time to the first packet
    end_lag_s: float | None  # worst camera, mean of its last samples
    lag_growth_s: float | None  # worst camera, end minus mid-run
    max_lag_s: float | None  # worst sample of any camera after the warm-up
    cameras_once_behind: int  # cameras more than BEHIND_LAG_S late at some sample
    recorder_cpu: float  # cores used by the recorder process, steady window
    box_busy: float  # share of all cores busy (everything on the box)
    pushers_cpu: float
    servers_cpu: float
    control_cpu: float
    others_cpu: float  # cores busy with anything not started by this step (other users)
    slowest_pusher: float | None
    server_drops: int
    recorder_socket_drops: int
    control_socket_drops: int
    box_rcvbuf_errors: int
    box_backlog_drops: int
    box_sndbuf_errors: int
    control_cameras: int
    control_missing: int
    control_rtp_missed: int  # "RTP: missed N packets" in the control readers' logs
    control_recorded_s: list[float]

    @property
    def falling_behind(self) -> bool:
        return self.end_lag_s is None or self.end_lag_s > BEHIND_LAG_S

    @property
    def clean(self) -> bool:
        """Every camera recorded, nothing lost, nobody behind."""
        return (self.lost_packets == 0 and self.failed == 0 and not self.falling_behind
                and self.segments >= self.cameras)

    @property
    def recorder_kept_up(self) -> bool:
        """The recorder itself lost nothing and stayed in real time; any frames
        missing were lost upstream of it (see `source_suspect`)."""
        return (self.recorder_socket_drops == 0 and self.failed == 0
                and not self.falling_behind and self.segments >= self.cameras)

    @property
    def source_suspect(self) -> bool:
        """Loss or lateness upstream of the readers during this step."""
        return (self.server_drops > 0 or self.control_missing > 0 or self.control_rtp_missed > 0
                or self.box_sndbuf_errors > 0 or self.box_backlog_drops > 0
                or (self.slowest_pusher is not None and self.slowest_pusher < SLOW_PUSHER))


def _snapshot(fleet: RtspFleet, cameras: int, recorder: int, controls: list[int]) -> Snapshot:
    return Snapshot(time.monotonic(), box_times(), cpu_seconds_of([recorder]),
                    cpu_seconds_of(controls), cpu_seconds_of(fleet.pusher_pids()),
                    cpu_seconds_of(fleet.server_pids()),
                    [p.media_seconds_sent() for p in fleet.pushers[:cameras]])


def _lag(cameras: list[dict[str, Any]], warmup_s: float,
         ) -> tuple[float | None, float | None, float | None, int]:
    """Worst camera's lag at the end, its growth since mid-run, the worst sample,
    and how many cameras were ever more than BEHIND_LAG_S late."""
    ends: list[float] = []
    growths: list[float] = []
    peaks: list[float] = []
    for camera in cameras:
        samples = [lag for at, lag in camera.get("lag", []) if at >= warmup_s]
        if len(samples) < 4:
            continue
        end = statistics.fmean(samples[-3:])
        ends.append(end)
        growths.append(end - samples[len(samples) // 2])
        peaks.append(max(samples))
    if not ends:
        return None, None, None, 0
    return max(ends), max(growths), max(peaks), sum(1 for peak in peaks if peak > BEHIND_LAG_S)


def _rtp_missed(log: Path) -> int:
    total_missed = 0
    for line in log.read_text(errors="replace").splitlines():
        if "RTP: missed" in line:
            words = line.split("missed", 1)[1].split()
            total_missed += int(words[0]) if words and words[0].isdigit() else 1
    return total_missed


def run_scale_step(fleet: RtspFleet, cameras: int, workdir: Path, *, seconds: float,
                   warmup_s: float, segment_seconds: int, fps: float,
                   control_cameras: int) -> ScaleStep:
    urls = fleet.urls[:cameras]
    controls = urls[:control_cameras]
    workdir.mkdir(parents=True)
    report_path = workdir / "report.json"
    servers_before = udp_drops_by_socket(fleet.server_pids())
    rcvbuf_before, backlog_before = udp_receive_buffer_errors(), softnet_dropped()
    sndbuf_before = udp_send_buffer_errors()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(spawn_worker(worker_cmd("copy", urls, workdir / "out", report_path,
                                             segment_seconds, track_lag=True),
                                  workdir / "worker.log"))
        for index, url in enumerate(controls):
            cmd = ffmpeg_segmenter_cmd(url, workdir / "control" / f"cam{index}", segment_seconds)
            procs.append(spawn(cmd, workdir / f"control{index}.log"))
    except BaseException:
        end_all(procs)
        raise
    recorder_pid, control_pids = procs[0].pid, [p.pid for p in procs[1:]]
    snapshots: list[Snapshot] = []
    drops: dict[str, int] = {}

    def window_start() -> None:
        snapshots.append(_snapshot(fleet, cameras, recorder_pid, control_pids))

    def window_end() -> None:
        snapshots.append(_snapshot(fleet, cameras, recorder_pid, control_pids))
        drops["recorder"] = sum(udp_drops_by_socket([recorder_pid]).values())
        drops["control"] = sum(udp_drops_by_socket(control_pids).values())
        drops["server"] = drops_since(servers_before, udp_drops_by_socket(fleet.server_pids()))
        drops["rcvbuf"] = udp_receive_buffer_errors() - rcvbuf_before
        drops["backlog"] = softnet_dropped() - backlog_before
        drops["sndbuf"] = udp_send_buffer_errors() - sndbuf_before

    run_processes(procs, seconds, warmup_s, at_window_start=window_start,
                  at_window_end=window_end)
    report: dict[str, Any] = (json.loads(report_path.read_text()) if report_path.exists()
                              else {"cameras": []})
    begin, end = snapshots
    wall = end.wall_s - begin.wall_s
    paces = [(b[0] - a[0]) / (b[1] - a[1]) for a, b in zip(begin.pushed, end.pushed, strict=True)
             if a is not None and b is not None and b[1] > a[1]]
    files = camera_files(workdir / "out", cameras, fps)
    control_files: list[FileStats] = camera_files(workdir / "control", len(controls), fps)
    cams = report["cameras"]
    opened = [c["online_after_s"] for c in cams if c.get("online_after_s") is not None]
    end_lag, growth, peak, once_behind = _lag(cams, warmup_s)
    ours_cpu = ((end.recorder_cpu_s + end.control_cpu_s + end.pushers_cpu_s + end.servers_cpu_s)
                - (begin.recorder_cpu_s + begin.control_cpu_s + begin.pushers_cpu_s
                   + begin.servers_cpu_s)) / wall
    cores = os.cpu_count() or 1
    return ScaleStep(
        cameras=cameras, seconds=seconds,
        segments=sum(len(c["segments"]) for c in cams),
        lost_packets=sum(s["lost_packets"] for c in cams for s in c["segments"]),
        lost_after_first_segment=sum(s["lost_packets"] for c in cams for s in c["segments"][1:]),
        missing_in_files=total(files).missing_frames,
        failed=sum(1 for c in cams if c["failed"]) + (cameras - len(cams)),
        recorded_s=[f.seconds for f in files],
        open_s=statistics.median(opened) if opened else None,
        end_lag_s=end_lag, lag_growth_s=growth, max_lag_s=peak, cameras_once_behind=once_behind,
        recorder_cpu=(end.recorder_cpu_s - begin.recorder_cpu_s) / wall,
        box_busy=busy_fraction(begin.box, end.box),
        pushers_cpu=(end.pushers_cpu_s - begin.pushers_cpu_s) / wall,
        servers_cpu=(end.servers_cpu_s - begin.servers_cpu_s) / wall,
        control_cpu=(end.control_cpu_s - begin.control_cpu_s) / wall,
        others_cpu=max(0.0, busy_fraction(begin.box, end.box) * cores - ours_cpu),
        slowest_pusher=min(paces) if paces else None,
        server_drops=drops["server"], recorder_socket_drops=drops["recorder"],
        control_socket_drops=drops["control"], box_rcvbuf_errors=drops["rcvbuf"],
        box_backlog_drops=drops["backlog"], box_sndbuf_errors=drops["sndbuf"],
        control_cameras=len(controls),
        control_missing=total(control_files).missing_frames,
        control_rtp_missed=sum(_rtp_missed(workdir / f"control{i}.log")
                               for i in range(len(controls))),
        control_recorded_s=[f.seconds for f in control_files])
