"""Linux's own counters, read from /proc: a process's CPU time and context
switches, the whole box's busy time, and UDP datagrams the kernel dropped on a
process's sockets.

Only reads; never signals or changes a process. A process that is gone reads
as zero rather than raising, since benchmark children may exit at any time.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu_clock(pid: int) -> int:
    """The clock id of another process's CPU clock, as glibc's clock_getcpuclockid
    builds it (Linux: MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED))."""
    return ((~pid) << 3) | 2


def cpu_seconds(pid: int) -> float:
    """CPU time of all threads of `pid` so far, ended threads included (0.0 once
    it is reaped). The process CPU clock counts in nanoseconds where
    /proc/<pid>/stat counts 10 ms ticks, too coarse for a second of ffmpeg."""
    try:
        return time.clock_gettime(_process_cpu_clock(pid))
    except OSError:
        pass  # not a process we may read the clock of: fall back to the tick count
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def cpu_seconds_of(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def voluntary_context_switches(pid: int) -> int:
    """Times the threads of `pid` now alive went to sleep (waiting for data, a lock,
    a timer): each is one wakeup later. Ended threads are not counted."""
    switches = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for task in tasks:
        try:
            status = (task / "status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended while we looked
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                switches += int(line.split()[1])
    return switches


def voluntary_context_switches_of(pids: list[int]) -> int:
    return sum(voluntary_context_switches(pid) for pid in pids)


@dataclass(frozen=True)
class BoxTimes:
    busy_s: float
    total_s: float


def box_times() -> BoxTimes:
    """The whole machine's CPU time since boot, busy and total (all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user
    return BoxTimes((total - idle) / _CLOCK_TICKS, total / _CLOCK_TICKS)


def busy_fraction(before: BoxTimes, after: BoxTimes) -> float:
    """Share of all cores busy between two readings (1.0 = every core saturated)."""
    total = after.total_s - before.total_s
    return (after.busy_s - before.busy_s) / total if total > 0 else 0.0


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except (FileNotFoundError, PermissionError):
        return inodes
    for fd in fds:
        try:
            target = str(fd.readlink())
        except OSError:
            continue  # closed while we looked
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def udp_socket_drops() -> dict[int, int]:
    """Datagrams dropped by the kernel (receive buffer full) per UDP socket inode."""
    drops: dict[int, int] = {}
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            drops[int(fields[9])] = int(fields[12])
    return drops


def udp_drops_by_socket(pids: list[int]) -> dict[int, int]:
    """Dropped datagrams on each UDP socket currently held by any of `pids`."""
    table = udp_socket_drops()
    held: set[int] = set()
    for pid in pids:
        held |= _socket_inodes(pid)
    return {inode: count for inode, count in table.items() if inode in held}


def drops_since(before: dict[int, int], after: dict[int, int]) -> int:
    """Drops between two readings of the same sockets; a socket opened in between
    counts from zero, one closed in between is lost (read before closing)."""
    return sum(count - before.get(inode, 0) for inode, count in after.items())


def _udp_counter(name: str) -> int:
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index(name)])


def udp_receive_buffer_errors() -> int:
    """Box-wide count of datagrams dropped for a full receive buffer (any socket)."""
    return _udp_counter("RcvbufErrors")


def udp_send_buffer_errors() -> int:
    """Box-wide count of datagrams a sender could not send for a full send buffer
    (rtsp-server-perl's non-blocking sends drop them silently)."""
    return _udp_counter("SndbufErrors")


def softnet_dropped() -> int:
    """Box-wide packets dropped because a CPU's input backlog was full (loopback too)."""
    return sum(int(line.split()[1], 16)
               for line in Path("/proc/net/softnet_stat").read_text().splitlines())
