"""Starting and ending the benchmark's child processes, with the CPU each used.

Every child gets its own process group, so Ctrl-C reaches only the benchmark,
which then ends its children in order (readers first, sources last) from
`finally` blocks. Not its own session: with the kernel's autogroup scheduling
(sched_autogroup_enabled=1, as here) every session is one scheduling group, so
100 pushers in 100 sessions would each get as much CPU as the one recorder
process under contention. In the benchmark's session, CPU is shared per thread.
A child's CPU comes from `wait4`: the kernel's own account of its whole life,
threads included, taken as it is reaped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

GRACE_S = 15.0  # long enough for a recorder to seal a segment or ffmpeg to write a trailer


def spawn(cmd: list[str], log_path: Path, *, cwd: Path | None = None,
          env: dict[str, str] | None = None, stdin_pipe: bool = False) -> subprocess.Popen[bytes]:
    """Start `cmd` in a process group of its own, stdout and stderr appended to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            cmd, stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, cwd=cwd, env=env, process_group=0)


def signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send `sig` to the child's whole process group unless it has been reaped.

    Never `poll()`: reaping here would lose the CPU account `reap` returns.
    """
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # it exited just now
            os.killpg(proc.pid, sig)


def reap(proc: subprocess.Popen[bytes], grace_s: float = GRACE_S) -> float:
    """Wait for the child (SIGKILL after `grace_s`), reap it and return its CPU seconds.

    Returns 0.0 if something else already reaped it (its CPU is then unknown).
    """
    if proc.stdin is not None:
        proc.stdin.close()
    deadline = time.monotonic() + grace_s
    while True:
        try:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:
            proc.wait()
            return 0.0
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return float(usage.ru_utime + usage.ru_stime)
        if time.monotonic() > deadline:
            signal_group(proc, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.02)


def end_all(procs: list[subprocess.Popen[bytes]], sig: int = signal.SIGINT) -> list[float]:
    """Signal every child first (so they wind down in parallel), then reap each;
    returns their CPU seconds in the same order."""
    for proc in procs:
        signal_group(proc, sig)
    return [reap(proc) for proc in procs]


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: every finally block runs


def run_in_work_dir(prefix: str, body: Callable[[Path], None], *, keep: bool = False) -> int:
    """Run `body` in a fresh temporary directory, removed afterwards unless `keep`.
    Ctrl-C and SIGTERM unwind through every `finally` that ends a child; the exit
    code is 0, or 130 when interrupted."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        body(work)
    except KeyboardInterrupt:
        print("\ninterrupted: every process started has been ended", file=sys.stderr)
        return 130
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0
