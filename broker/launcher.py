"""Run a real Mosquitto from the project's own ``mosquitto.conf``, for tests and ``cctv up``.

The production config is the single source of truth for broker behaviour
(auth, ACL, persistence, queue limits, packet size). ``MosquittoBroker`` keeps
every setting in it and rewrites only what depends on where the broker runs:
listener ports and bind address, persistence_location, password_file,
acl_file, pid_file, log_dest, the TLS file paths and the ``user`` to run as.
All of those point into one run dir, which also holds the ACL rendered with
the configured topic prefix and a copy of the TLS files (the rewriting itself
is ``broker.runtime_config``; this module runs and signals the process).

Run as root, Mosquitto drops to the ``mosquitto`` user before it reads the
password and ACL files (and again on every SIGHUP), so the run dir is handed
to that user; if that user cannot even reach the run dir (an ancestor without
o+x, such as /root or pytest's 0700 basetemp), the runtime config says
``user root`` instead and a warning says why.

This module must never be used to run the production broker (that is the
system service reading ``mosquitto.conf`` directly), never bind anything but
loopback unless asked to, and never log passwords.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import random
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import IO

from broker.certs import TlsFiles
from broker.dev_broker import BrokerStartError, DevBroker
from broker.runtime_config import (
    ACL_TEMPLATE,
    DEFAULT_TOPIC_PREFIX,
    RuntimePaths,
    render_runtime_config,
)

logger = logging.getLogger(__name__)

_BROKER_USER = "mosquitto"


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None. /usr/sbin is often not on a user's PATH."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


LOWEST_CHOSEN_PORT = 20_000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host``, below the kernel's ephemeral range:
    a port from that range, once released, is soon handed to the next socket
    bound to port 0 or connecting out (a camera, a client), which then takes it
    before the server it was chosen for starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    candidates = range(LOWEST_CHOSEN_PORT, _ephemeral_low())
    for port in random.sample(candidates, min(100, len(candidates))):
        with socket.socket(family) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(family) as sock:  # no room below the ephemeral range
        sock.bind((host, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def project_config_path() -> Path:
    """The project's mosquitto.conf: the repository's top level, else a copy inside the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "mosquitto.conf", here / "mosquitto.conf"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"mosquitto.conf not found next to {here}")


def _blocking_ancestor(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The first ancestor of ``path`` that ``user`` may not traverse, or None if all are fine."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for ancestor in reversed(path.resolve().parents):
        st = ancestor.stat()
        if st.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return ancestor
    return None


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.chown(Path(dirpath) / name, uid, gid, follow_symlinks=False)


class MosquittoBroker(DevBroker):
    """One Mosquitto process on loopback, configured from the project's mosquitto.conf."""

    def __init__(
        self,
        run_dir: Path,
        *,
        port: int,
        tls_port: int | None = None,
        tls: TlsFiles | None = None,
        bind: str = "127.0.0.1",
        topic_prefix: str = DEFAULT_TOPIC_PREFIX,
        config_file: Path | None = None,
        acl_template: Path = ACL_TEMPLATE,
        binary: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        if (tls_port is None) != (tls is None):
            raise ValueError("tls_port and tls must be given together")
        super().__init__(
            run_dir,
            port=port,
            bind=bind,
            topic_prefix=topic_prefix,
            acl_template=acl_template,
        )
        self._start_timeout = start_timeout
        self._tls_port = tls_port
        self._tls_source = tls
        self._config_file = config_file
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self.runs_as: str | None = None
        """The ``user`` written into the runtime config (None when not started as root)."""

    # --- where things are (pure) ---------------------------------------------

    @property
    def tls_port(self) -> int | None:
        return self._tls_port

    @property
    def paths(self) -> RuntimePaths:
        tls_dir = self._run_dir / "tls"
        tls = (
            TlsFiles(tls_dir / "ca.crt", tls_dir / "server.crt", tls_dir / "server.key")
            if self._tls_source is not None
            else None
        )
        return RuntimePaths(
            run_dir=self._run_dir,
            password_file=self.password_file,
            acl_file=self.acl_file,
            pid_file=self._run_dir / "mosquitto.pid",
            log_file=self._run_dir / "mosquitto.log",
            tls=tls,
        )

    @property
    def runtime_config(self) -> Path:
        return self._run_dir / "mosquitto.conf"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # --- lifecycle -----------------------------------------------------------------

    def _choose_user(self) -> pwd.struct_passwd | None:
        """The account Mosquitto will run as when started as root; None when not root.

        A ``struct_passwd`` for root means "stay root": the broker user is
        missing or could not reach the run dir.
        """
        if os.geteuid() != 0:
            return None  # mosquitto ignores `user` unless started as root
        try:
            account = pwd.getpwnam(_BROKER_USER)
        except KeyError:
            logger.warning("broker.runs_as_root reason=no_%s_user", _BROKER_USER)
            return pwd.getpwuid(0)
        blocked = _blocking_ancestor(self._run_dir, account)
        if blocked is not None:
            logger.warning(
                "broker.runs_as_root reason=run_dir_unreachable user=%s run_dir=%s blocked_at=%s",
                _BROKER_USER,
                self._run_dir,
                blocked,
            )
            return pwd.getpwuid(0)
        return account

    def _prepare(self) -> None:
        paths = self.paths
        self._write_access_files()
        account = self._choose_user()
        self.runs_as = account.pw_name if account is not None else None
        if self._tls_source is not None and paths.tls is not None:
            paths.tls.ca_file.parent.mkdir(exist_ok=True)
            for src, dst in (
                (self._tls_source.ca_file, paths.tls.ca_file),
                (self._tls_source.cert_file, paths.tls.cert_file),
                (self._tls_source.key_file, paths.tls.key_file),
            ):
                shutil.copyfile(src, dst)
                dst.chmod(0o600 if dst == paths.tls.key_file else 0o644)
        config = self._config_file or project_config_path()
        self.runtime_config.write_text(
            render_runtime_config(
                config.read_text(encoding="utf-8"),
                paths,
                port=self._port,
                tls_port=self._tls_port,
                bind=self._bind,
                run_as=self.runs_as,
            ),
            encoding="utf-8",
        )
        if account is not None and account.pw_uid != 0:
            # Mosquitto reads these files after dropping privileges, and again
            # on every SIGHUP; it also writes its database and log here.
            _chown_tree(self._run_dir, account.pw_uid, account.pw_gid)

    def start(self) -> None:
        """Start Mosquitto and return once every listener accepts connections."""
        if self._process is not None:
            raise RuntimeError("broker already started")
        binary = self._binary or find_mosquitto()
        if binary is None:
            raise BrokerStartError("mosquitto not found (install the mosquitto package)")
        self._prepare()
        self._output = (self._run_dir / "mosquitto.out").open("wb")
        self._process = subprocess.Popen(
            [binary, "-c", str(self.runtime_config)],
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        logger.info(
            "broker.started pid=%d host=%s port=%d tls_port=%s run_dir=%s user=%s",
            self._process.pid,
            self.host,
            self._port,
            self._tls_port,
            self._run_dir,
            self.runs_as,
        )

    def _wait_listening(self) -> None:
        assert self._process is not None
        ports = [self._port] + ([self._tls_port] if self._tls_port is not None else [])
        deadline = time.monotonic() + self._start_timeout
        while ports:
            code = self._process.poll()
            if code is not None:
                raise BrokerStartError(
                    f"mosquitto exited with code {code} during start; "
                    f"its output:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise BrokerStartError(
                    f"mosquitto not listening on {self.host}:{ports[0]} after "
                    f"{self._start_timeout:.0f}s; its output:\n{self.log_tail()}"
                )
            try:
                with socket.create_connection((self.host, ports[0]), timeout=0.5):
                    ports.pop(0)
            except OSError:
                time.sleep(0.02)
        # A port that answered may belong to another process while ours fails
        # to bind it and is about to exit: give that exit a moment to show.
        time.sleep(0.05)
        if self._process.poll() is not None:
            raise BrokerStartError(
                f"mosquitto exited with code {self._process.returncode} during start; "
                f"its output:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        """Last lines of Mosquitto's own log and of its stdout/stderr (early errors go there)."""
        chunks = []
        for path in (self._run_dir / "mosquitto.out", self.paths.log_file):
            with contextlib.suppress(OSError):
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()
                if text:
                    chunks.append("\n".join(text[-lines:]))
        return "\n".join(chunks) or "(no output)"

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads the password and ACL files; connections stay up.

        Asynchronous: the broker applies it on its next loop iteration.
        """
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError("broker is not running")
        self._process.send_signal(signal.SIGHUP)
        logger.info("broker.reload_signalled pid=%d", self._process.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate Mosquitto (it saves its persistence database on the way out) and wait."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    logger.warning("broker.stop_timeout pid=%d action=kill", process.pid)
                    process.kill()
                    process.wait()
            logger.info("broker.stopped pid=%d returncode=%s", process.pid, process.returncode)
        if self._output is not None:
            self._output.close()
            self._output = None
