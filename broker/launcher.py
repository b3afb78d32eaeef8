"""Run a real Mosquitto from the project's own ``mosquitto.conf``, for tests and ``cctv up``.

The production config is the single source of truth for broker behaviour
(auth, ACL, persistence, queue limits, packet size). ``MosquittoBroker`` keeps
every setting in it and rewrites only what depends on where the broker runs:
listener ports and bind address, persistence_location, password_file,
acl_file, pid_file, log_dest, the TLS file paths and the ``user`` to run as.
All of those point into one run dir, which also holds the ACL rendered with
the configured topic prefix and a copy of the TLS files.

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
import ipaddress
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from broker.certs import TlsFiles

logger = logging.getLogger(__name__)

DEFAULT_TOPIC_PREFIX = "cctv/v1"
_BROKER_USER = "mosquitto"
_ACL_TEMPLATE = Path(__file__).with_name("acl")

# Directives naming a place on this machine; replaced, never copied. include_dir
# would pull in the host's own /etc/mosquitto/conf.d; port/bind_* configure the
# legacy default listener, which would be a second, unplanned one.
_LOCATION_DIRECTIVES = frozenset(
    {
        "acl_file",
        "bind_address",
        "bind_interface",
        "include_dir",
        "log_dest",
        "password_file",
        "persistence_location",
        "pid_file",
        "port",
        "psk_file",
        "user",
    }
)
_TLS_PATH_DIRECTIVES = frozenset(
    {"cafile", "capath", "certfile", "keyfile", "crlfile", "dhparamfile"}
)
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class BrokerStartError(RuntimeError):
    """Mosquitto could not be started, or exited / never listened within the timeout."""


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None. /usr/sbin is often not on a user's PATH."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (another process may still take it before use)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def project_config_path() -> Path:
    """The project's mosquitto.conf: the repository's top level, else a copy inside the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "mosquitto.conf", here / "mosquitto.conf"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"mosquitto.conf not found next to {here}")


def render_acl(template: str, topic_prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
    """The ACL with its ``cctv/v1`` topics moved under ``topic_prefix``."""
    if not _PREFIX_RE.fullmatch(topic_prefix):
        raise ValueError(
            f"invalid topic prefix {topic_prefix!r}: '/'-separated non-empty levels "
            "without wildcards, '%' or spaces"
        )
    out = []
    for line in template.splitlines():
        words = line.split()
        if words and words[0] in ("topic", "pattern"):
            topic = words[-1]
            if topic == DEFAULT_TOPIC_PREFIX or topic.startswith(f"{DEFAULT_TOPIC_PREFIX}/"):
                words[-1] = topic_prefix + topic[len(DEFAULT_TOPIC_PREFIX) :]
            out.append(" ".join(words))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class RuntimePaths:
    """Where the runtime config points every location-specific directive."""

    run_dir: Path
    password_file: Path
    acl_file: Path
    pid_file: Path
    log_file: Path
    tls: TlsFiles | None


def _directive(line: str) -> str:
    return line.split(maxsplit=1)[0]


def _split_blocks(source: str) -> tuple[list[str], list[list[str]]]:
    preamble: list[str] = []
    listeners: list[list[str]] = []
    for raw in source.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if _directive(line) == "listener":
            listeners.append([line])
        elif listeners:
            listeners[-1].append(line)
        else:
            preamble.append(line)
    return preamble, listeners


def render_runtime_config(
    source: str,
    paths: RuntimePaths,
    *,
    port: int,
    tls_port: int | None,
    bind: str,
    run_as: str | None,
) -> str:
    """Rewrite the location-specific directives of ``source``; keep every other setting.

    The first plain listener moves to ``bind:port`` and the first TLS listener
    (one with a certfile) to ``bind:tls_port`` with the run dir's TLS files; it
    is dropped when ``tls_port`` is None, and so are any other listeners.
    """
    preamble, listeners = _split_blocks(source)
    keep = [line for line in preamble if _directive(line) not in _LOCATION_DIRECTIVES]
    # Before the first listener, so they stay global even if the source ever
    # switches per_listener_settings on.
    keep += [
        f"persistence_location {paths.run_dir}/",
        f"password_file {paths.password_file}",
        f"acl_file {paths.acl_file}",
        f"pid_file {paths.pid_file}",
        f"log_dest file {paths.log_file}",
    ]
    if run_as is not None:
        keep.append(f"user {run_as}")
    plain_done = tls_done = False
    for block in listeners:
        is_tls = any(_directive(line) == "certfile" for line in block[1:])
        body = [line for line in block[1:] if _directive(line) not in _LOCATION_DIRECTIVES]
        if is_tls and not tls_done and tls_port is not None and paths.tls is not None:
            tls_done = True
            body = [line for line in body if _directive(line) not in _TLS_PATH_DIRECTIVES]
            keep.append(f"listener {tls_port} {bind}")
            keep += body
            keep += [
                f"cafile {paths.tls.ca_file}",
                f"certfile {paths.tls.cert_file}",
                f"keyfile {paths.tls.key_file}",
            ]
        elif not is_tls and not plain_done:
            plain_done = True
            keep.append(f"listener {port} {bind}")
            keep += body
        else:
            logger.debug("broker.runtime_config.listener_dropped line=%s", block[0])
    if not plain_done:
        raise ValueError("mosquitto.conf has no plain (non-TLS) listener to run on")
    if tls_port is not None and not tls_done:
        raise ValueError("a TLS port was asked for but mosquitto.conf has no TLS listener")
    header = "# Generated by broker/launcher.py from the project's mosquitto.conf; do not edit."
    return "\n".join([header, *keep]) + "\n"


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


class MosquittoBroker:
    """One Mosquitto process on loopback, configured from the project's mosquitto.conf.

    Accounts go into ``password_file`` (with ``broker.passwords``) before
    ``start()``, or at any time followed by ``reload()``.
    """

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
        acl_template: Path = _ACL_TEMPLATE,
        binary: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        if (tls_port is None) != (tls is None):
            raise ValueError("tls_port and tls must be given together")
        self._run_dir = run_dir
        self._port = port
        self._tls_port = tls_port
        self._tls_source = tls
        self._bind = bind
        self._topic_prefix = topic_prefix
        self._config_file = config_file
        self._acl_template = acl_template
        self._binary = binary
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self.runs_as: str | None = None
        """The ``user`` written into the runtime config (None when not started as root)."""

    # --- where things are (pure) ---------------------------------------------

    @property
    def host(self) -> str:
        """Address clients connect to: the bind address, or loopback for a wildcard bind."""
        try:
            address = ipaddress.ip_address(self._bind)
        except ValueError:
            return self._bind  # a hostname
        if address.is_unspecified:
            return "::1" if address.version == 6 else "127.0.0.1"
        return self._bind

    @property
    def port(self) -> int:
        return self._port

    @property
    def tls_port(self) -> int | None:
        return self._tls_port

    @property
    def run_dir(self) -> Path:
        return self._run_dir

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
            password_file=self._run_dir / "passwd",
            acl_file=self._run_dir / "acl",
            pid_file=self._run_dir / "mosquitto.pid",
            log_file=self._run_dir / "mosquitto.log",
            tls=tls,
        )

    @property
    def password_file(self) -> Path:
        return self.paths.password_file

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
        self._run_dir.mkdir(parents=True, exist_ok=True)
        account = self._choose_user()
        self.runs_as = account.pw_name if account is not None else None
        if not paths.password_file.exists():
            # Mosquitto refuses to start on a missing password file; an empty
            # one just means no accounts yet.
            paths.password_file.touch(mode=0o640)
        acl_text = self._acl_template.read_text(encoding="utf-8")
        paths.acl_file.write_text(render_acl(acl_text, self._topic_prefix), encoding="utf-8")
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

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
