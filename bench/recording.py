"""Recording benchmark: what it costs this node to record N live cameras, and how
many it records at once without losing a packet.

    cd /work/main && .venv/bin/python bench/recording.py [--cameras 8] [--seconds 30]
        [--scale 25,50,100,120] [--skip-opencv] [--quick]

The cameras are one busy 720p15 H.264 clip (~1.5 Mbit/s), each looped in real
time by its own `ffmpeg -re ... -c copy -f rtsp` pusher into rtsp-server-perl
(16 streams per server) and read over RTP/UDP. Three recorders take turns on
the same streams: edge_node's CopyRecorder (every camera in one process, as the
node runs them), one `ffmpeg -c copy -f segment` per camera, and OpenCV decode +
MP4V re-encode; then ours and ffmpeg once more side by side, so that both see
the same noise. Each arm's CPU is its own processes' only (never the sources'),
per camera-second actually written (read back from its files with PyAV), and
also over a steady window after the cameras have opened. Ratios come from the
same run: the machine is shared, absolute figures drift. Then a sweep records
ever more cameras with our recorder alone and reports the most it kept up with,
telling losses at the source (server sockets, a control ffmpeg reader) from the
recorder's own (its sockets, its lag behind real time).

Everything it starts is ended on exit, Ctrl-C included; outputs live in a
temporary directory removed at the end (`--keep` leaves it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.child_processes import run_in_work_dir
from bench.recording_arms import ArmRun, run_ffmpeg_arm, run_paired_arms, run_worker_arm
from bench.recording_scale import BEHIND_LAG_S, ScaleStep, run_scale_step
from bench.rtsp_fleet import ClipInfo, RtspFleet, describe_clip, encode_busy_clip


def _positive_ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers, e.g. 25,50,100")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="CPU per camera-second of our recorder vs ffmpeg -c copy vs OpenCV "
                    "re-encode on the same live RTSP cameras, then the most cameras recorded "
                    "at once with no lost packets.")
    parser.add_argument("--cameras", type=int, default=None,
                        help="live cameras in the CPU comparison (default 8; quick 4)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds each arm and each sweep step runs (default 30; quick 12)")
    parser.add_argument("--segment-seconds", type=int, default=None,
                        help="segment length for every recorder (default 10; quick 4)")
    parser.add_argument("--scale", type=_positive_ints, default=None,
                        help="camera counts for the concurrency sweep, comma-separated "
                             "(default 25,50,100,120; quick 8,16)")
    parser.add_argument("--skip-scale", action="store_true", help="no concurrency sweep")
    parser.add_argument("--skip-opencv", action="store_true", help="no decode + re-encode arm")
    parser.add_argument("--opencv-cameras", type=int, default=2,
                        help="cameras for the OpenCV arm, which cannot keep up with many on "
                             "2 cores (default 2)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run ours then ffmpeg this many times, alternating which goes "
                             "first (default 1; 0 skips the CPU comparison)")
    parser.add_argument("--skip-paired", action="store_true",
                        help="no extra arm with ours and ffmpeg recording at the same time")
    parser.add_argument("--control", type=int, default=2,
                        help="plain ffmpeg copy readers recording alongside each sweep step, "
                             "as a control for losses at the source (default 2)")
    parser.add_argument("--streams-per-server", type=int, default=16,
                        help="cameras per rtsp-server-perl instance (default 16)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    quick = args.quick
    args.cameras = args.cameras or (4 if quick else 8)
    args.seconds = args.seconds or (12.0 if quick else 30.0)
    args.segment_seconds = args.segment_seconds or (4 if quick else 10)
    args.scale = sorted(args.scale or ([8, 16] if quick else [25, 50, 100, 120]))
    return args


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_clip(clip: ClipInfo) -> None:
    print(f"clip: {clip.width}x{clip.height} {clip.fps:g} fps H.264, {clip.seconds:.1f} s looped, "
          f"{clip.bitrate_bps / 1e6:.2f} Mbit/s, key frames <= {clip.key_frame_max_bytes / 1e3:.1f}"
          f" kB, other frames <= {clip.other_frame_max_bytes / 1e3:.1f} kB", flush=True)


def print_arm(arm: ArmRun, seconds: float) -> None:
    rec = arm.recorded
    print(f"  {arm.name:<34} cams {arm.cameras:>3}  procs {arm.processes:>3}  "
          f"recorded {rec.seconds:7.1f} cam-s of {arm.cameras * seconds:5.0f}  "
          f"missing frames {rec.missing_frames:>4}  failed {arm.failed}  "
          f"CPU {arm.life_cpu_s:6.2f} s  per cam-s {arm.cpu_per_recorded_camera_s:.5f} "
          f"(steady {arm.steady_cpu_per_camera_s:.5f}, {arm.sleeps_per_camera_s:.0f} thread "
          f"sleeps per cam-s)",
          flush=True)


def _pooled(arms: list[ArmRun]) -> tuple[float, float]:
    life = sum(a.life_cpu_s for a in arms) / sum(a.recorded.seconds for a in arms)
    steady = sum(a.window.cpu_s for a in arms) / sum(a.window.wall_s * a.cameras for a in arms)
    return life, steady


def print_comparison(ours: list[ArmRun], ffmpeg: list[ArmRun], opencv: ArmRun | None,
                     paired: tuple[ArmRun, ArmRun] | None) -> None:
    ours_life, ours_steady = _pooled(ours)
    ff_life, ff_steady = _pooled(ffmpeg)
    print("\nCPU-seconds per camera-second (rounds pooled):")
    print(f"  {'arm':<38} {'per recorded cam-s':>19} {'steady window':>14}")
    rows = [("ours: CopyRecorder, one process", ours_life, ours_steady),
            ("ffmpeg -c copy -f segment", ff_life, ff_steady)]
    if opencv is not None:
        rows.append((f"OpenCV decode + MP4V ({opencv.cameras} cams)",
                     opencv.cpu_per_recorded_camera_s, opencv.steady_cpu_per_camera_s))
    for name, life, steady in rows:
        print(f"  {name:<38} {life:19.5f} {steady:14.5f}")
    print(f"  ratio ours/ffmpeg: {ours_life / ff_life:.2f} per recorded cam-s, "
          f"{ours_steady / ff_steady:.2f} steady")
    if paired is not None:
        both_ours, both_ffmpeg = paired
        print(f"  ratio ours/ffmpeg, paired (same streams, same time): "
              f"{both_ours.cpu_per_recorded_camera_s / both_ffmpeg.cpu_per_recorded_camera_s:.2f}"
              f" per recorded cam-s, "
              f"{both_ours.steady_cpu_per_camera_s / both_ffmpeg.steady_cpu_per_camera_s:.2f} "
              f"steady")
    for arm in ours:
        startup = arm.report.get("cpu_startup_s")
        recording = arm.report.get("cpu_recording_s")
        if startup is not None and recording is not None:
            print(f"  (ours, one round: {startup:.2f} CPU-s interpreter start-up and imports, "
                  f"{recording:.2f} CPU-s recording = "
                  f"{recording / arm.recorded.seconds:.5f} per recorded cam-s)")
    if opencv is not None:
        print(f"  ratio opencv/ours: {opencv.cpu_per_recorded_camera_s / ours_life:.1f} per "
              f"recorded cam-s, {opencv.steady_cpu_per_camera_s / ours_steady:.1f} steady")
        print(f"  ratio opencv/ffmpeg: {opencv.cpu_per_recorded_camera_s / ff_life:.1f} per "
              f"recorded cam-s, {opencv.steady_cpu_per_camera_s / ff_steady:.1f} steady",
              flush=True)


def print_step(step: ScaleStep) -> None:
    recorded = step.recorded_s
    print(f"  {step.cameras:>4} cams: segments {step.segments}, lost packets {step.lost_packets} "
          f"({step.lost_after_first_segment} after each camera's first segment; gaps in files "
          f"{step.missing_in_files}), failed {step.failed}; recorded per camera "
          f"min {min(recorded, default=0):.1f} / median {statistics.median(recorded or [0]):.1f} "
          f"s of {step.seconds:g} (opening took {_fmt(step.open_s, '.1f')} s); lag at end "
          f"{_fmt(step.end_lag_s)} s, growth {_fmt(step.lag_growth_s)} s, worst "
          f"{_fmt(step.max_lag_s)} s ({step.cameras_once_behind} cameras over "
          f"{BEHIND_LAG_S:g} s behind at some point); recorder CPU "
          f"{100 * step.recorder_cpu:.0f}% of a core, recorder socket drops "
          f"{step.recorder_socket_drops}")
    print(f"        sources: pushers {100 * step.pushers_cpu:.0f}%, servers "
          f"{100 * step.servers_cpu:.0f}% of a core, slowest pusher "
          f"{_fmt(step.slowest_pusher, '.3f')}x real time, server socket drops "
          f"{step.server_drops}; control ({step.control_cameras} ffmpeg copy readers): missing "
          f"{step.control_missing}, RTP missed {step.control_rtp_missed}, socket drops "
          f"{step.control_socket_drops}, recorded min "
          f"{_fmt(min(step.control_recorded_s, default=None), '.1f')} s")
    print(f"        box: {100 * step.box_busy:.0f}% of all cores busy, "
          f"{100 * step.others_cpu:.0f}% of a core used by processes this run did not start; "
          f"box-wide UDP receive-buffer errors {step.box_rcvbuf_errors}, send-buffer errors "
          f"{step.box_sndbuf_errors}, backlog drops {step.box_backlog_drops}")
    if step.clean:
        verdict = "clean"
    elif step.recorder_kept_up and step.source_suspect:
        verdict = "NOT clean, but the recorder kept up: frames were lost upstream of it"
    elif step.recorder_kept_up:
        verdict = ("NOT clean: the recorder kept real time and no socket we watch dropped a "
                   "datagram, yet frames are missing")
    else:
        verdict = "NOT clean" + (" (the source lost or lagged too)" if step.source_suspect
                                 else " (source clean: the recorder's doing)")
    print(f"        -> {verdict}", flush=True)


def run(args: argparse.Namespace, work: Path) -> None:
    clip_path = encode_busy_clip(work / "busy-720p15.mp4")
    clip = describe_clip(clip_path)
    print_clip(clip)
    warmup = min(8.0, args.seconds / 3)
    timing = {"seconds": args.seconds, "warmup_s": warmup,
              "segment_seconds": args.segment_seconds, "fps": clip.fps}
    with RtspFleet(work / "rtsp", clip_path, args.streams_per_server) as fleet:
        fleet.grow(args.cameras)
        urls = fleet.urls[:args.cameras]
        print(f"\n{args.cameras} live cameras on {len(fleet.servers)} server(s); "
              f"{args.seconds:g} s per arm, steady window from {warmup:.1f} s:", flush=True)
        ours: list[ArmRun] = []
        ffmpeg: list[ArmRun] = []
        for round_ in range(args.rounds):
            order = ("ours", "ffmpeg") if round_ % 2 == 0 else ("ffmpeg", "ours")
            for arm in order:
                directory = work / f"round{round_}-{arm}"
                if arm == "ours":
                    ours.append(run_worker_arm("ours: CopyRecorder, one process", "copy", urls,
                                               directory, **timing))
                    print_arm(ours[-1], args.seconds)
                else:
                    ffmpeg.append(run_ffmpeg_arm("ffmpeg -c copy -f segment", urls, directory,
                                                 **timing))
                    print_arm(ffmpeg[-1], args.seconds)
        paired = None
        if args.rounds and not args.skip_paired:
            paired = run_paired_arms(urls, work / "paired", **timing)
            for paired_arm in paired:
                print_arm(paired_arm, args.seconds)
        opencv = None
        if args.rounds and not args.skip_opencv:
            opencv = run_worker_arm("OpenCV decode + MP4V, one process", "opencv",
                                    urls[:args.opencv_cameras], work / "opencv", **timing)
            print_arm(opencv, args.seconds)
        if args.rounds:
            print_comparison(ours, ffmpeg, opencv, paired)
        if args.skip_scale:
            return
        print(f"\nConcurrency sweep, our recorder alone, {args.seconds:g} s per step:", flush=True)
        steps: list[ScaleStep] = []
        for cameras in args.scale:
            started = time.monotonic()
            fleet.grow(cameras)
            print(f"  ({cameras} cameras live on {len(fleet.servers)} servers after "
                  f"{time.monotonic() - started:.0f} s)", flush=True)
            steps.append(run_scale_step(fleet, cameras, work / f"scale{cameras}",
                                        control_cameras=min(args.control, cameras), **timing))
            print_step(steps[-1])
        best = max((s.cameras for s in steps if s.clean), default=0)
        kept_up = max((s.cameras for s in steps if s.recorder_kept_up), default=0)
        print(f"\nmax cameras with no lost packets: {best}")
        print(f"max cameras where the recorder itself lost nothing and kept real time: {kept_up}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def body(work: Path) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} CPUs, work dir {work}")
        run(args, work)

    return run_in_work_dir("bench-recording-", body, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
