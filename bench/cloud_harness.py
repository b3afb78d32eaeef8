"""What the cloud benchmarks run against: their own Mosquitto with accounts, a
throwaway PostgreSQL database, `cctv cloud` as a subprocess, and the /proc
figures (RSS, CPU) of each.

Every process started here gets its own session (Ctrl-C reaches only the
benchmark, which ends them from `finally` blocks) and is told by the kernel to
exit if the benchmark dies (PR_SET_PDEATHSIG), so nothing outlives a run.
Databases are named `cctv_bench_<hex>` and dropped by their owner; nothing
here touches a database it did not create.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import re
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL

from bench.mqtt_wire import connect_packet, open_connection
from broker.launcher import MosquittoBroker, free_port
from broker.passwords import add_accounts

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DSN = "host=127.0.0.1 user=postgres password=postgres dbname=test"
CLOUD_ACCOUNT = "cctv-cloud"
_PR_SET_PDEATHSIG = 1


def raise_open_files(wanted: int) -> int:
    """Raise this process's open-files limit (children inherit it); returns the limit got."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (wanted, hard):
        try:
            new_hard = max(hard, target) if hard != resource.RLIM_INFINITY else hard
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, new_hard))
        except (ValueError, OSError):
            continue
        return target
    return soft


def make_work_dir(prefix: str) -> Path:
    """A temporary directory Mosquitto can enter after dropping to its own user,
    as it does in production (mkdtemp's 0700 would keep it root)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    work.chmod(0o755)
    return work


def die_with_parent() -> None:
    """Called first thing in a benchmark child: SIGTERM when the benchmark goes away."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


# `cctv` itself, in a process that first asks for SIGTERM when the benchmark dies.
_RUN_CCTV = """\
import ctypes, runpy, signal, sys
ctypes.CDLL(None).prctl(1, signal.SIGTERM)
sys.argv = ["cctv", *sys.argv[1:]]
runpy.run_module("cctv", run_name="__main__", alter_sys=True)
"""


class Worker:
    """A benchmark child speaking one JSON object a line: commands on its stdin,
    reports on its stdout; its stderr goes to `log_path`. It exits when its
    stdin closes."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    @classmethod
    async def start(cls, args: Sequence[str], log_path: Path) -> Worker:
        with log_path.open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *args, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log, start_new_session=True,
                limit=1 << 24)
        return cls(proc, log_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        await self.proc.stdin.drain()

    async def receive(self, timeout_s: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        except TimeoutError:
            raise RuntimeError(f"worker {self.pid}: no report in {timeout_s:.0f}s; "
                               f"log {self.log_path}:\n{tail(self.log_path)}") from None
        if not line:
            raise RuntimeError(f"worker {self.pid} exited; log {self.log_path}:\n"
                               f"{tail(self.log_path)}")
        report: dict[str, Any] = json.loads(line)
        return report

    async def stop(self, grace_s: float = 10.0) -> None:
        if self.proc.returncode is not None:
            return
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), grace_s if sig is None else 5.0)
            if self.proc.returncode is not None:
                return


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- broker -------------------------------------------------------------------


class Broker:
    """Mosquitto from the project's mosquitto.conf on a free port, with accounts."""

    def __init__(self, run_dir: Path, accounts: Sequence[str]) -> None:
        self.mosquitto = MosquittoBroker(run_dir, port=free_port(), start_timeout=30.0)
        self._accounts = list(accounts)
        self.passwords: dict[str, str] = {}

    @property
    def host(self) -> str:
        return self.mosquitto.host

    @property
    def port(self) -> int:
        return self.mosquitto.port

    @property
    def pid(self) -> int | None:
        return self.mosquitto.pid

    def url(self, account: str) -> str:
        return f"mqtt://{account}:{self.passwords[account]}@{self.host}:{self.port}"

    def start(self) -> None:
        self.mosquitto.run_dir.mkdir(parents=True, exist_ok=True)
        self.passwords = add_accounts(self.mosquitto.password_file, self._accounts)
        self.mosquitto.start()

    def stop(self) -> None:
        self.mosquitto.stop()


async def purge_session(broker: Broker, client_id: str, account: str = CLOUD_ACCOUNT) -> None:
    """End a persistent session the broker keeps for `client_id`.

    A stopped ingest's session stays a member of the shared subscription and
    keeps getting its round-robin share (mosquitto issue 1747): the next arm
    would lose those messages to it. Clean start discards it, expiry 0 ends ours.
    """
    connection = await open_connection(
        broker.host, broker.port,
        connect_packet(client_id, account, broker.passwords[account], keepalive=30,
                       clean_start=True, session_expiry_s=0))
    connection.disconnect()


# --- PostgreSQL ---------------------------------------------------------------


class ThrowawayDatabase:
    """A PostgreSQL database of this run's own, created empty and dropped at the end."""

    def __init__(self, dsn: str = DEFAULT_DSN) -> None:
        self._dsn = dsn
        self._params = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
        self.name = f"cctv_bench_{secrets.token_hex(4)}"
        self.created = False

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)

    @property
    def url(self) -> str:
        port = self._params.get("port")
        return URL.create(
            "postgresql+psycopg", username=self._params.get("user"),
            password=self._params.get("password"), host=self._params.get("host"),
            port=int(port) if port else None, database=self.name,
        ).render_as_string(hide_password=False)

    def create(self) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'")
                         .format(sql.Identifier(self.name)))
        self.created = True

    def backend_pids(self) -> list[int]:
        """The server processes serving connections to this database (their CPU is
        the database's share of the work)."""
        with self._admin() as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                                (self.name,)).fetchall()
        return [int(str(row[0])) for row in rows]

    def drop(self) -> None:
        if not self.created:
            return
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(self.name)))
        self.created = False


# --- the cloud service --------------------------------------------------------


class CloudProcess:
    """`cctv cloud` in a subprocess, configured only through CCTV_* variables."""

    def __init__(self, work_dir: Path, broker: Broker, *, database_url: str | None,
                 client_id: str, token: str) -> None:
        self.work_dir = work_dir
        self.http_port = free_port()
        self.token = token
        self.client_id = client_id
        self.log_path = work_dir / "cloud.log"
        self._broker = broker
        self._database_url = database_url
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def sqlite_path(self) -> Path:
        return self.work_dir / "data" / "cloud.db"

    @property
    def database_url(self) -> str:
        return self._database_url or f"sqlite:///{self.sqlite_path}"

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCTV_")}
        env.update({
            "CCTV_MQTT_URL": self._broker.url(CLOUD_ACCOUNT),
            "CCTV_DATA_DIR": str(self.work_dir / "data"),
            "CCTV_DATABASE_URL": self._database_url or "",
            "CCTV_API_TOKENS": self.token,
            "CCTV_HTTP_ADDR": f"127.0.0.1:{self.http_port}",
            "CCTV_MQTT_CLIENT_ID": self.client_id,
            "PYTHONPATH": str(ROOT),
        })
        with self.log_path.open("ab") as log:
            # cwd: its own dir, so no stray .env is read.
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _RUN_CCTV, "cloud"], cwd=self.work_dir, env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

    async def wait_healthy(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._proc is not None and self._proc.poll() is not None:
                    raise RuntimeError(f"cctv cloud exited with {self._proc.returncode}; "
                                       f"log {self.log_path}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/health")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"cctv cloud not healthy after {timeout_s:.0f}s; "
                           f"log {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        return tail(self.log_path, lines)

    def api(self, timeout_s: float = 60.0) -> httpx.AsyncClient:
        """A client of its REST API with its bearer token."""
        return httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s,
                                 headers={"Authorization": f"Bearer {self.token}"})

    async def ingest_counters(self) -> dict[str, float]:
        """Its own ingest counters from /metrics: heartbeats received, batches
        committed and the seconds they took (their differences over a phase give
        events per commit and the time per commit)."""
        async with self.api() as api:
            text = (await api.get("/metrics")).text
        figures = {}
        for key, pattern in (
                ("heartbeats", r'cctv_ingest_messages_total\{channel="heartbeat"\}'),
                ("events", r'cctv_ingest_messages_total\{channel="events"\}'),
                ("batches", "cctv_ingest_batch_seconds_count"),
                ("batch_s", "cctv_ingest_batch_seconds_sum")):
            match = re.search(pattern + r" ([0-9.e+]+)", text)
            figures[key] = float(match.group(1)) if match else 0.0
        return figures

    def stop(self, timeout_s: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- /proc figures ------------------------------------------------------------


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def rss_mib(pid: int | None) -> float:
    return _status_kib(pid, "VmRSS") / 1024 if pid else 0.0


def peak_rss_mib(pid: int | None) -> float:
    return _status_kib(pid, "VmHWM") / 1024 if pid else 0.0


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"
