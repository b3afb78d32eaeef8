"""Variants of our copy recorder against ffmpeg, all recording the same live
cameras at the same time, so that the box's noise falls on every one alike.

    cd /work/main && .venv/bin/python bench/recording_variants.py \\
        before="--pyav-read-timeout --set PROBE_S=5 --set CATCH_UP_PAUSE_S=0" now=""

Each NAME=ARGS is one worker process (`bench/recording_worker.py copy ARGS`)
recording every camera, and one `ffmpeg -c copy -f segment` per camera records
them too. After a warm-up, each one's CPU per camera-second is taken over several
windows, with its ratio to ffmpeg's in the same window, how often its threads
slept, the datagrams its sockets dropped and the frames it counted lost. Every
stream has a reader per variant plus ffmpeg's, and each more reader changes how
rtsp-server-perl bunches datagrams: compare variants within one run only.
Everything started is ended on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.child_processes import end_all, run_in_work_dir
from bench.linux_counters import (
    cpu_seconds_of,
    udp_drops_by_socket,
    voluntary_context_switches_of,
)
from bench.recording_arms import spawn_ffmpeg_segmenters, spawn_worker, worker_cmd
from bench.rtsp_fleet import RtspFleet, encode_busy_clip

FFMPEG = "ffmpeg"


def _variant(text: str) -> tuple[str, list[str]]:
    name, sep, args = text.partition("=")
    if not sep or not name or name == FFMPEG:
        raise argparse.ArgumentTypeError(f"expected NAME=WORKER_ARGS, got {text!r}")
    return name, shlex.split(args)


def _sample(groups: dict[str, list[int]]) -> dict[str, tuple[float, int]]:
    return {name: (cpu_seconds_of(pids), voluntary_context_switches_of(pids))
            for name, pids in groups.items()}


def run(args: argparse.Namespace, work: Path) -> None:
    clip = args.clip or encode_busy_clip(work / "busy-720p15.mp4")
    with RtspFleet(work / "rtsp", clip) as fleet:
        fleet.grow(args.cameras)
        urls = fleet.urls
        procs: dict[str, list[subprocess.Popen[bytes]]] = {}
        try:
            for name, extra in args.variants:
                directory = work / name
                directory.mkdir()
                cmd = worker_cmd("copy", urls, directory / "out", directory / "report.json",
                                 args.segment_seconds, extra=extra)
                procs[name] = [spawn_worker(cmd, directory / "worker.log")]
            procs[FFMPEG] = spawn_ffmpeg_segmenters(urls, work / FFMPEG, args.segment_seconds)
            groups = {name: [p.pid for p in group] for name, group in procs.items()}
            time.sleep(args.warmup)
            per_window: dict[str, list[float]] = {name: [] for name in groups}
            sleeps = dict.fromkeys(groups, 0)
            wall_total = 0.0
            window_s = (args.seconds - args.warmup) / args.windows
            for window in range(args.windows):
                before, began = _sample(groups), time.monotonic()
                time.sleep(window_s)
                after, wall = _sample(groups), time.monotonic() - began
                wall_total += wall
                for name in groups:
                    per_window[name].append((after[name][0] - before[name][0])
                                            / (wall * args.cameras))
                    sleeps[name] += after[name][1] - before[name][1]
                print(f"window {window}: " + "  ".join(
                    f"{name} {1000 * cpu[-1]:.3f}"
                    + ("" if name == FFMPEG else f" ({cpu[-1] / per_window[FFMPEG][-1]:.2f})")
                    for name, cpu in per_window.items()) + "  mCPU-s per cam-s (ratio)",
                    flush=True)
            drops = {name: sum(udp_drops_by_socket(pids).values())
                     for name, pids in groups.items()}
        finally:
            for group in procs.values():
                end_all(group)
    ffmpeg = statistics.fmean(per_window[FFMPEG])
    print(f"\n{args.cameras} cameras, {args.windows} windows of {window_s:.0f} s after "
          f"{args.warmup:g} s; steady CPU per camera-second, mean of the windows:")
    for name, cpu in per_window.items():
        mean = statistics.fmean(cpu)
        ratios = [c / f for c, f in zip(cpu, per_window[FFMPEG], strict=True)]
        ratio = ("" if name == FFMPEG else
                 f"  ratio {mean / ffmpeg:.2f} (windows {min(ratios):.2f}-{max(ratios):.2f})")
        report_path = work / name / "report.json"
        lost = ""
        if report_path.exists():
            cameras = json.loads(report_path.read_text())["cameras"]
            lost = (f", lost frames {sum(c['lost_packets'] for c in cameras)}, failed "
                    f"{sum(1 for c in cameras if c['failed'])}")
        print(f"  {name:<16} {1000 * mean:.3f} mCPU-s{ratio}, thread sleeps per cam-s "
              f"{sleeps[name] / (wall_total * args.cameras):.0f}, socket drops "
              f"{drops[name]}{lost}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Variants of the copy recorder and ffmpeg -c copy -f segment recording "
                    "the same live cameras at the same time.")
    parser.add_argument("variants", nargs="+", type=_variant, metavar="NAME=WORKER_ARGS",
                        help="e.g. now=\"\" or pause0=\"--set CATCH_UP_PAUSE_S=0\"")
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=100.0, help="whole run (default 100)")
    parser.add_argument("--warmup", type=float, default=15.0, help="before the first window")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--segment-seconds", type=int, default=10)
    parser.add_argument("--clip", type=Path, default=None,
                        help="H.264 clip to loop (default: the busy 1.5 Mbit/s 720p15 clip)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    if len({name for name, _ in args.variants}) != len(args.variants):
        parser.error("variant names must differ")

    def body(work: Path) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load "
              f"{Path('/proc/loadavg').read_text().split()[:3]}, work dir {work}", flush=True)
        run(args, work)

    return run_in_work_dir("bench-recording-variants-", body, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
