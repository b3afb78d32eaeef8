"""What the two development brokers share: where they listen and the run dir they serve from.

``MosquittoBroker`` (``broker.launcher``) and ``EmbeddedBroker``
(``broker.embedded``) are interchangeable for tests and ``cctv up``: both
listen on ``bind:port``, both read their accounts from the Mosquitto password
file in their run dir and the project's ACL rendered there with the topic
prefix, and both start and stop as a context manager. ``DevBroker`` is that
common part; how a broker is started, reloaded and stopped is its own.

This module must never do I/O in a constructor, and never write anything into
the password file (``broker.passwords`` does).
"""

from __future__ import annotations

import abc
import ipaddress
from pathlib import Path
from typing import Self

from broker import passwords
from broker.runtime_config import render_acl


class BrokerStartError(RuntimeError):
    """A broker could not be started, or exited / never listened within the timeout."""


class DevBroker(abc.ABC):
    """A broker run for tests or ``cctv up`` from a run dir holding its accounts and ACL.

    Accounts go into ``password_file`` (with ``broker.passwords``) before
    ``start()``, or at any time followed by ``reload()``.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        port: int,
        bind: str,
        topic_prefix: str,
        acl_template: Path,
    ) -> None:
        self._run_dir = run_dir
        self._port = port
        self._bind = bind
        self._topic_prefix = topic_prefix
        self._acl_template = acl_template

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
    def run_dir(self) -> Path:
        return self._run_dir

    @property
    def password_file(self) -> Path:
        return self._run_dir / "passwd"

    @property
    def acl_file(self) -> Path:
        """The ACL rendered with the topic prefix at start; ``reload()`` re-reads it."""
        return self._run_dir / "acl"

    # --- lifecycle -------------------------------------------------------------

    def _write_access_files(self) -> None:
        """Create the run dir, an empty password file if there is none, and the rendered ACL."""
        self._run_dir.mkdir(parents=True, exist_ok=True)
        if not self.password_file.exists():
            # Mosquitto refuses to start on a missing password file; an empty
            # one just means no accounts yet.
            self.password_file.touch(mode=passwords.FILE_MODE)
        acl_text = self._acl_template.read_text(encoding="utf-8")
        self.acl_file.write_text(render_acl(acl_text, self._topic_prefix), encoding="utf-8")

    @abc.abstractmethod
    def running(self) -> bool: ...

    @abc.abstractmethod
    def start(self) -> None:
        """Start the broker; return once it accepts connections, else raise BrokerStartError."""

    @abc.abstractmethod
    def reload(self) -> None:
        """Make the broker re-read the password file and the run dir's ACL."""

    @abc.abstractmethod
    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker and wait for it; a broker not started is left alone."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.stop()
