"""Recording a benchmarked process with py-spy, and where its samples went.

py-spy (`.venv/bin/pip install py-spy`) samples another process's Python stacks
from outside; `--nonblocking` keeps it from pausing the target, at the price of
an occasional torn stack. Idle threads are not sampled, so shares are of CPU.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path


def start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """Sample `pid` (all threads, 200 Hz, without pausing it) into `out`.txt."""
    binary = Path(sys.executable).with_name("py-spy")
    if not binary.exists():
        raise RuntimeError(f"--profile needs py-spy: {Path(sys.executable).parent}/pip "
                           "install py-spy")
    return subprocess.Popen(
        [str(binary), "record", "--pid", str(pid), "--rate", "200", "--nonblocking",
         "--threads", "--format", "raw", "--output", f"{out}.txt"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=(out.parent / f"{out.name}.py-spy.log").open("wb"), start_new_session=True)


def stop_py_spy(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()


# Frames a sample is charged to: the innermost one of these in its stack.
CHARGED_PATHS = ("cloud_service/", "schemas/", "gmqtt/")
CHARGED_NAMES = ("validate_json", "model_dump", "Session.commit", "create_task",
                 "_SelectorSocketTransport.write", "_read_ready", "EpollSelector.select")


def profile_summary(raw: Path, top: int = 22, *,
                    charged_names: Sequence[str] = CHARGED_NAMES) -> list[str]:
    """Share of samples per thread, then per frame charged: each sample goes to the
    innermost frame of the project, gmqtt or one of `charged_names` in its stack
    (so `store_events` holds its own SQL but not the seq-tracking query it calls)."""
    threads: Counter[str] = Counter()
    charged: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0].partition(": ")[2] or frames[0]
        thread = "commit thread" if thread.startswith("asyncio_") else thread
        total += count
        threads[thread] += count
        charge = next((f for f in reversed(frames[1:]) if _is_charged(f, charged_names)),
                      "(other)")
        charged[f"{thread[:13]:<13} {_short(charge)}"] += count
    if not total:
        return ["(no samples)"]
    lines = [f"{total} samples; by thread: " + ", ".join(
        f"{name} {100 * n / total:.0f}%" for name, n in threads.most_common(4))]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in charged.most_common(top)]
    return lines


def _is_charged(frame: str, names: Sequence[str]) -> bool:
    name, _, where = frame.partition(" (")
    return where.startswith(CHARGED_PATHS) or any(n in name for n in names)


def _short(frame: str) -> str:
    """`func (pkg/mod.py:12)` -> `func (pkg/mod.py)`."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rstrip(')').rsplit(':', 1)[0]})" if where else name
