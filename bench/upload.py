"""Upload benchmark: this node's uploader against a bare google-cloud-storage
upload of the same files to the same emulator, in the same run.

    cd /work/main && .venv/bin/python bench/upload.py [--sizes 100M,1G] [--repeat 3]
        [--quick] [--keep]

Two arms upload the same random file to the same gcp-storage-emulator (started
here, in memory, on a free loopback port), both as resumable uploads in 8 MiB
chunks:

- bare: `blob.upload_from_filename(path, checksum="crc32c")` with
  `blob.chunk_size = 8 MiB` (google-cloud-storage alone);
- ours: the whole path a segment takes: `Uploader` over a durable
  `UploadQueue` (SQLite) and `GcsStore`, timed from `submit` to `UploadDone`
  (the local file is kept: `uploaded=lambda s: None`). The segment's crc32c is
  computed beforehand, as sealing does on the node.

Each upload runs in a fresh child process, so its peak RSS is its own (taken
from `wait4` as it is reaped); the arms alternate from round to round and the
median time is kept. CPU is counted too, less disturbed by a busy machine than
wall time: the child's own from submit to done (every thread), and the
emulator's while the child ran (/proc), i.e. what the server spent on the arm.
Every object's crc32c is checked against the file's and the object is deleted
right after (the emulator holds objects in memory). Throughput is in MB/s
(10^6 bytes); sizes take K/M/G (10^3..) or Ki/Mi/Gi. The ratio ours/bare comes
from the same run: the machine is shared, absolute figures drift. The target
(DESIGN.md) is ours/bare >= 0.9, with memory flat in file size.

Everything it starts is ended on exit, Ctrl-C included; files live in a
temporary directory removed at the end (`--keep` leaves it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

MB = 1_000_000
CHUNK_BYTES = 8 * 1024 * 1024
PROJECT = "test"
TARGET_RATIO = 0.9
ARMS = ("bare", "ours")
EMULATOR_START_S = 20.0
CHILD_TIMEOUT_S = 1800.0
WARMUP_BYTES = 2 * 1024 * 1024
VERSIONED = ("google-cloud-storage", "google-resumable-media", "gcp-storage-emulator")

# The emulator runs in this interpreter behind a thread that exits the process
# once its stdin reaches EOF, i.e. once this benchmark is gone, however it went.
_EXIT_WITH_OWNER = """\
import os, runpy, sys, threading
def exit_on_eof():
    sys.stdin.buffer.read()
    os._exit(0)
threading.Thread(target=exit_on_eof, daemon=True).start()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9,
          "KI": 2**10, "MI": 2**20, "GI": 2**30}


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]I?)?B?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 100M, 1G, 64Mi)")
    value = int(float(match.group(1)) * _UNITS[(match.group(2) or "").upper()])
    if value < 1:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return value


def parse_sizes(text: str) -> list[int]:
    sizes = [parse_size(part) for part in text.split(",") if part.strip()]
    if not sizes:
        raise argparse.ArgumentTypeError("expected sizes, e.g. 100M,1G")
    return sizes


def human(size: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.4g} {unit}"
    return f"{size} B"


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _reap(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[int, Any]:
    """Wait for `proc` (SIGKILL to its group after `timeout_s`) and reap it with
    wait4: (exit code, its own rusage: ru_maxrss in KiB, CPU seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.01)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """End a child that may still be running (used while unwinding)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            _reap(proc, 5.0)


class Emulator:
    """gcp-storage-emulator, in memory, on a free loopback port, for this run only."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = _free_tcp_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self.peak_rss_kib = 0
        self.cpu_s = 0.0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        script = Path(sys.executable).parent / "gcp-storage-emulator"
        if not script.exists():
            raise SystemExit(f"{script} not found: .venv/bin/pip install -e '.[dev]'")
        cmd = [sys.executable, "-c", _EXIT_WITH_OWNER, str(script), "start",
               "--host=127.0.0.1", f"--port={self.port}", "--in-memory"]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + EMULATOR_START_S
        while not self._answers():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"emulator not answering at {self.endpoint}:\n"
                                   + self.log_path.read_text(errors="replace")[-2000:])
            time.sleep(0.1)

    def cpu_now(self) -> float:
        """The emulator's CPU seconds so far (all its threads), from /proc."""
        if self._proc is None:
            return 0.0
        fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/", timeout=1) as response:  # noqa: S310 - fixed loopback URL
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()  # its watchdog thread exits the process
        _code, usage = _reap(proc, 10.0)
        self.peak_rss_kib = usage.ru_maxrss
        self.cpu_s = usage.ru_utime + usage.ru_stime


# --- the child: one upload, in a fresh process ---------------------------------------------

def _vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _cpu_s() -> float:
    """This process's CPU seconds so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_main(spec: dict[str, Any]) -> None:
    """Upload spec["file"] with one arm and print one JSON line with the timing."""
    os.environ["STORAGE_EMULATOR_HOST"] = spec["endpoint"]
    from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415 - child only
    from google.cloud import storage  # noqa: PLC0415

    client = storage.Client(project=PROJECT,
                            credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    path = Path(spec["file"])
    if spec["arm"] == "bare":
        blob = client.bucket(spec["bucket"]).blob(spec["name"])
        blob.chunk_size = CHUNK_BYTES
        before_kib = _vm_hwm_kib()
        cpu_before = _cpu_s()
        started = time.perf_counter()
        blob.upload_from_filename(str(path), checksum="crc32c")
        seconds = time.perf_counter() - started
        upload_cpu_s = _cpu_s() - cpu_before
        name = spec["name"]
    else:
        seconds, upload_cpu_s, name, before_kib = _upload_ours(client, spec, path)
    print(json.dumps({"seconds": seconds, "upload_cpu_s": upload_cpu_s, "name": name,
                      "hwm_before_kib": before_kib, "hwm_after_kib": _vm_hwm_kib()}),
          flush=True)


def _upload_ours(client: Any, spec: dict[str, Any],
                 path: Path) -> tuple[float, float, str, int]:
    from datetime import UTC, datetime  # noqa: PLC0415 - child only

    from edge_node.gcs_store import GcsStore  # noqa: PLC0415
    from edge_node.segments import SealedSegment  # noqa: PLC0415
    from edge_node.upload_queue import SCHEDULED, UploadQueue  # noqa: PLC0415
    from edge_node.uploader import UploadDone, Uploader, UploadFailedResult  # noqa: PLC0415

    store = GcsStore(client, spec["bucket"], "bench", chunk_bytes=CHUNK_BYTES)
    queue = UploadQueue(Path(spec["work"]) / "uploads.db")
    queue.open()
    results: list[tuple[float, UploadDone | UploadFailedResult]] = []
    done = threading.Event()

    def report(result: UploadDone | UploadFailedResult) -> None:
        results.append((time.perf_counter(), result))
        if isinstance(result, UploadDone) or not result.will_retry:
            done.set()

    uploader = Uploader(store, queue, "bench-node", report, uploaded=lambda _s: None)
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    segment = SealedSegment("rec-bench", spec["name"], "cam-1", path, start, start,
                            spec["bytes"], spec["crc32c"], "h264", 1280, 720, 0, 0)
    uploader.start()
    try:
        before_kib = _vm_hwm_kib()
        cpu_before = _cpu_s()
        started = time.perf_counter()
        uploader.submit(segment, SCHEDULED)
        if not done.wait(CHILD_TIMEOUT_S):
            raise RuntimeError("upload did not finish")
        upload_cpu_s = _cpu_s() - cpu_before
    finally:
        uploader.stop()
        queue.close()
    finished, result = results[-1]
    if isinstance(result, UploadFailedResult):
        raise RuntimeError(f"upload failed: {result}")  # noqa: TRY004 - a result, not a type
    retries = [r for _, r in results if isinstance(r, UploadFailedResult)]
    if retries:
        print(f"note: {len(retries)} held-back attempt(s) before success", file=sys.stderr)
    name = result.uri.removeprefix(f"gs://{spec['bucket']}/")
    return finished - started, upload_cpu_s, name, before_kib


# --- the parent -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TestFile:
    path: Path
    size: int
    crc32c: str


@dataclass(frozen=True)
class ArmRun:
    arm: str
    size: int
    seconds: float
    peak_rss_kib: int  # the child's whole life (wait4)
    hwm_before_kib: int  # the child's high-water mark just before the upload began
    cpu_s: float  # the child's whole life, imports included (wait4)
    upload_cpu_s: float  # the child's CPU from submit to done, every thread
    emulator_cpu_s: float  # the emulator's CPU while the child ran: the server's share

    @property
    def mb_s(self) -> float:
        return self.size / MB / self.seconds

    @property
    def growth_kib(self) -> int:
        return self.peak_rss_kib - self.hwm_before_kib


def make_file(directory: Path, size: int) -> TestFile:
    """Random bytes (incompressible, like video), fsynced so no writeback overlaps a run."""
    import google_crc32c  # noqa: PLC0415 - keeps `--help` fast

    from edge_node.segments import encode_crc32c  # noqa: PLC0415

    path = directory / f"random-{size}.bin"
    crc = 0
    with path.open("wb") as handle:
        left = size
        while left:
            block = os.urandom(min(left, CHUNK_BYTES))
            crc = google_crc32c.extend(crc, block)
            handle.write(block)
            left -= len(block)
        handle.flush()
        os.fsync(handle.fileno())
    return TestFile(path, size, encode_crc32c(crc))


def run_arm(arm: str, file: TestFile, bucket: Any, emulator: Emulator, work: Path) -> ArmRun:
    """One upload in a fresh child; the object is verified and deleted afterwards."""
    child_dir = Path(tempfile.mkdtemp(prefix=f"{arm}-", dir=work))
    name = f"{arm}-{secrets.token_hex(4)}"
    spec = {"arm": arm, "file": str(file.path), "bytes": file.size, "crc32c": file.crc32c,
            "bucket": bucket.name, "name": name, "endpoint": emulator.endpoint,
            "work": str(child_dir)}
    log_path = child_dir / "child.log"
    emulator_cpu = emulator.cpu_now()
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()),
                                 "--child", json.dumps(spec)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                cwd=ROOT, start_new_session=True)
    try:
        assert proc.stdout is not None
        output = proc.stdout.read()
        code, usage = _reap(proc, CHILD_TIMEOUT_S)
        emulator_cpu = emulator.cpu_now() - emulator_cpu
    finally:
        _kill(proc)
    if code != 0:
        raise RuntimeError(f"{arm} child exited {code}:\n"
                           + log_path.read_text(errors="replace")[-3000:])
    result = json.loads(output.decode().strip().splitlines()[-1])
    stored = bucket.get_blob(result["name"])
    if stored is None or stored.size != file.size or stored.crc32c != file.crc32c:
        got = None if stored is None else (stored.size, stored.crc32c)
        raise RuntimeError(f"{arm}: stored object {result['name']} is {got}, "
                           f"expected {(file.size, file.crc32c)}")
    stored.delete()  # the emulator keeps objects in RAM: free it before the next run
    shutil.rmtree(child_dir, ignore_errors=True)
    return ArmRun(arm, file.size, result["seconds"], usage.ru_maxrss,
                  result["hwm_before_kib"], usage.ru_utime + usage.ru_stime,
                  result["upload_cpu_s"], emulator_cpu)


def make_bucket(emulator: Emulator) -> Any:
    from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415
    from google.cloud import storage  # noqa: PLC0415

    os.environ["STORAGE_EMULATOR_HOST"] = emulator.endpoint
    client = storage.Client(project=PROJECT,
                            credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    bucket = client.create_bucket(f"bench-{secrets.token_hex(4)}")
    # Without this the emulator soft-deletes (7 days, as GCS does), keeping every
    # deleted object in RAM. It ignores the policy at creation, so it is patched in.
    bucket.soft_delete_policy.retention_duration_seconds = 0
    bucket.patch()
    bucket.reload()
    if bucket.soft_delete_policy.retention_duration_seconds != 0:
        raise RuntimeError("could not turn soft delete off: deleted objects would stay in RAM")
    return bucket


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _load() -> str:
    """The machine is shared: the load average, to judge the wall-clock figures by."""
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _mib(kib: float) -> str:
    return f"{kib / 1024:.0f}"


def print_run(run: ArmRun, label: str) -> None:
    print(f"  {label:<10} {human(run.size):>8}  {run.arm:<4}  {run.seconds:7.2f} s  "
          f"{run.mb_s:7.1f} MB/s  peak RSS {_mib(run.peak_rss_kib):>4} MiB "
          f"(+{_mib(run.growth_kib)} during upload)  CPU {run.upload_cpu_s:.2f} s in upload "
          f"({run.cpu_s:.2f} s in all), emulator {run.emulator_cpu_s:.2f} s", flush=True)


def summarise(runs: list[ArmRun], sizes: list[int]) -> bool:
    """Print the table, ratios and memory growth; True if every ratio meets the
    target and our peak RSS does not grow with file size (given two sizes or more)."""
    print("\n| size | arm | seconds (median) | MB/s | peak RSS MiB (max) "
          "| RSS growth during upload MiB | client CPU in upload s (median) "
          "| emulator CPU s (median) "
          "| ours/bare MB/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    medians: dict[tuple[int, str], float] = {}
    peaks: dict[tuple[int, str], int] = {}
    all_ok = True
    for size in sizes:
        for arm in ARMS:
            mine = [r for r in runs if r.size == size and r.arm == arm]
            medians[size, arm] = statistics.median(r.seconds for r in mine)
            peaks[size, arm] = max(r.peak_rss_kib for r in mine)
        ratio = medians[size, "bare"] / medians[size, "ours"]
        all_ok &= ratio >= TARGET_RATIO
        for arm in ARMS:
            mine = [r for r in runs if r.size == size and r.arm == arm]
            seconds = medians[size, arm]
            cell = f"**{ratio:.2f}**" if arm == "ours" else ""
            print(f"| {human(size)} | {arm} | {seconds:.2f} | {size / MB / seconds:.1f} "
                  f"| {_mib(peaks[size, arm])} | {_mib(max(r.growth_kib for r in mine))} "
                  f"| {statistics.median(r.upload_cpu_s for r in mine):.2f} "
                  f"| {statistics.median(r.emulator_cpu_s for r in mine):.2f} | {cell} |")
    print()
    for size in sizes:
        bare = [r for r in runs if r.size == size and r.arm == "bare"]
        ours = [r for r in runs if r.size == size and r.arm == "ours"]
        pairs = [b.seconds / o.seconds for b, o in zip(bare, ours, strict=True)]
        ratio = medians[size, "bare"] / medians[size, "ours"]
        per_round = ", ".join(f"{p:.2f}" for p in pairs)
        cpu = (statistics.median(r.upload_cpu_s for r in ours)
               / statistics.median(r.upload_cpu_s for r in bare))
        server = (statistics.median(r.emulator_cpu_s for r in ours)
                  / statistics.median(r.emulator_cpu_s for r in bare))
        print(f"{human(size)}: ours/bare throughput {ratio:.2f} (ratio of medians; "
              f"per round {per_round}, median {statistics.median(pairs):.2f}; "
              f"target >= {TARGET_RATIO}); CPU ours/bare: client in upload {cpu:.2f}, "
              f"emulator {server:.2f}")
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        for arm in ARMS:
            growth = (peaks[large, arm] - peaks[small, arm]) / 1024
            flat = growth * 2**20 <= CHUNK_BYTES
            if arm == "ours":
                all_ok &= flat
            print(f"{arm}: peak RSS {_mib(peaks[small, arm])} MiB at {human(small)} -> "
                  f"{_mib(peaks[large, arm])} MiB at {human(large)}: {growth:+.1f} MiB for "
                  f"{(large - small) / 2**20:.0f} MiB more file "
                  f"({'flat: within one chunk' if flat else 'NOT flat'})")
    return all_ok


def run(args: argparse.Namespace, work: Path) -> bool:
    emulator = Emulator(work / "emulator.log")
    emulator.start()
    try:
        bucket = make_bucket(emulator)
        print(f"emulator {emulator.endpoint}, bucket {bucket.name}, "
              f"{CHUNK_BYTES // 2**20} MiB chunks, {args.repeat} round(s) per size", flush=True)
        print(f"python {platform.python_version()}, "
              + ", ".join(f"{dist} {_version(dist)}" for dist in VERSIONED)
              + f"; {os.cpu_count()} CPUs, {_load()}", flush=True)
        warm = make_file(work, WARMUP_BYTES)
        for arm in ARMS:  # first-request costs (imports cached, emulator warm), not counted
            print_run(run_arm(arm, warm, bucket, emulator, work), "warm-up")
        warm.path.unlink()
        runs: list[ArmRun] = []
        for size in args.sizes:
            file = make_file(work, size)
            for round_ in range(args.repeat):
                order = ARMS if round_ % 2 == 0 else ARMS[::-1]
                for arm in order:
                    runs.append(run_arm(arm, file, bucket, emulator, work))
                    print_run(runs[-1], f"round {round_ + 1}")
            file.path.unlink()
    finally:
        emulator.stop()
    ok = summarise(runs, args.sizes)
    print(f"emulator: peak RSS {_mib(emulator.peak_rss_kib)} MiB, CPU {emulator.cpu_s:.1f} s "
          f"over the whole run; at the end {_load()}")
    return ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Upload throughput and peak memory: edge_node's Uploader + UploadQueue + "
                    "GcsStore against a bare google-cloud-storage resumable upload of the "
                    "same files to the same gcp-storage-emulator, in the same run.")
    parser.add_argument("--sizes", type=parse_sizes, default=None,
                        help="comma-separated file sizes, K/M/G = 10^3.., Ki/Mi/Gi = 2^10.. "
                             "(default 100M,1G; --quick: 20M,100M)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="rounds per size, arms alternating; the median is kept "
                             "(default 3; --quick: 1)")
    parser.add_argument("--quick", action="store_true",
                        help="small files, one round: a smoke test, not a measurement")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (emulator and child logs)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one upload, JSON spec
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = parse_sizes("20M,100M" if args.quick else "100M,1G")
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: every finally block runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return 0
    signal.signal(signal.SIGTERM, _raise_interrupt)
    work = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    try:
        ok = run(args, work)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'meets' if ok else 'DOES NOT MEET'} the targets: ours/bare >= {TARGET_RATIO} "
          "at every size, our peak RSS flat in file size")
    return 0


if __name__ == "__main__":
    sys.exit(main())
