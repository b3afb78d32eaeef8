"""The development broker for ``cctv up`` when Mosquitto is not installed: amqtt, locked down.

``EmbeddedBroker`` runs amqtt 0.12 on loopback in a background thread with its
own event loop, behind the same interface as ``broker.launcher.MosquittoBroker``
(``broker.dev_broker.DevBroker``: ``host``, ``port``, ``password_file``,
``start``, ``reload``, ``stop``, context manager) and with the same security:
accounts are the Mosquitto password file in the run dir (``broker.passwords``
writes it the same way for both brokers), anonymous clients are refused, and
the project's ``broker/acl``, rendered with the topic prefix, is enforced with
Mosquitto's semantics (``broker.acl_rules``) by the plugins of
``broker.amqtt_plugins``; this module runs amqtt with them:

* CONNECT: unknown user, wrong or missing password, no username: refused
  (CONNACK 5, not authorised). A Will the client may not write is dropped,
  as Mosquitto never publishes one; queued messages the client may no longer
  read are dropped, as Mosquitto re-checks them on every connect.
* PUBLISH the client may not write: acknowledged and dropped (what Mosquitto
  does under MQTT 3.1.1).
* SUBSCRIBE: every valid filter is granted, as by Mosquitto's ACL file; every
  message is then delivered only if the subscriber may read its topic: live
  messages (amqtt's RECEIVE check), messages queued for an offline session,
  and retained messages. amqtt 0.12 sends retained messages without any
  check, and on every CONNECT sends the new client the retained messages of
  *every* client's subscriptions; ``AclEnforcingBroker`` replaces that step.
* ``reload()`` re-reads the password file and the run dir's ACL and
  disconnects clients whose account is gone or whose password changed, as
  Mosquitto does on SIGHUP; it returns once that is applied.

Known differences from the production Mosquitto, acceptable for a demo and
never to be relied on: MQTT 3.1.1 only (MQTT 5 clients are refused, so no
reason codes and no shared subscriptions); about 1,500 msg/s; nothing is
persisted (retained desired state, status and queued messages are lost when
it stops); no TLS listener; no packet size or queue limits; a publish to a
``$`` topic closes the connection instead of being dropped; a resumed
persistent session is sent its subscriptions' readable retained messages
again; and amqtt applies a CONNECT's clean-session flag and session takeover
before authentication, so a client that then fails to authenticate can still
end another client's connection or discard its offline session by reusing its
client id (it never receives anything).

This module must never run the production broker, never start amqtt with any
plugin that could admit an anonymous client, never bind anything but loopback
unless asked to, and never log a password or a password hash. It depends on
amqtt 0.12's internals, so it refuses to start on any other amqtt version
rather than run with an ACL that might not hold.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.metadata
import ipaddress
import logging
import socket
import threading
from pathlib import Path
from typing import Any, Final

from broker.amqtt_plugins import (
    AclEnforcingBroker,
    AclTopicPlugin,
    BrokerSecurity,
    PasswordFileAuthPlugin,
    install_security,
)
from broker.dev_broker import BrokerStartError, DevBroker
from broker.runtime_config import ACL_TEMPLATE, DEFAULT_TOPIC_PREFIX, render_acl

logger = logging.getLogger(__name__)

_SUPPORTED_AMQTT: Final = (0, 12)
# mosquitto.conf: persistent_client_expiration 7d.
_SESSION_EXPIRY_S: Final = 7 * 24 * 3600
# Loggers of amqtt and of the state machine library it drives: at INFO they
# report every connection and state change (amqtt's DEBUG output even holds
# CONNECT packets, passwords included).
_QUIET_LOGGERS: Final = ("amqtt", "transitions")


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_amqtt_version() -> None:
    version = importlib.metadata.version("amqtt")
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        major_minor = ()
    if major_minor != _SUPPORTED_AMQTT:
        supported = ".".join(str(part) for part in _SUPPORTED_AMQTT)
        raise BrokerStartError(
            f"amqtt {version} is installed but the embedded broker enforces the ACL through "
            f"amqtt {supported}'s internals; install amqtt {supported}.x (or Mosquitto)"
        )


def _quiet_amqtt_logging() -> None:
    for name in _QUIET_LOGGERS:
        library_logger = logging.getLogger(name)
        if library_logger.level == logging.NOTSET:  # a level set on purpose is kept
            library_logger.setLevel(logging.WARNING)


# --- the broker ---------------------------------------------------------------------------------


class EmbeddedBroker(DevBroker):
    """amqtt on loopback with the project's accounts and ACL, mirroring ``MosquittoBroker``."""

    def __init__(
        self,
        run_dir: Path,
        *,
        port: int,
        bind: str = "127.0.0.1",
        topic_prefix: str = DEFAULT_TOPIC_PREFIX,
        acl_template: Path = ACL_TEMPLATE,
        start_timeout: float = 10.0,
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"invalid port {port}: must be 1-65535 (0 would hide the real one)")
        render_acl("", topic_prefix)  # pure: rejects a bad prefix now rather than at start
        super().__init__(
            run_dir,
            port=port,
            bind=bind.strip("[]"),  # amqtt wants "::1:1883", not "[::1]:1883"
            topic_prefix=topic_prefix,
            acl_template=acl_template,
        )
        self._start_timeout = start_timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None  # the amqtt broker, while it serves
        self._stop_requested = threading.Event()
        self._stop_event: asyncio.Event | None = None

    # --- where things are (pure) ---------------------------------------------

    @property
    def tls_port(self) -> int | None:
        """Always None: the embedded broker has no TLS listener."""
        return None

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._broker is not None

    def _on_loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self._bind).is_loopback
        except ValueError:
            return self._bind == "localhost"

    # --- lifecycle -------------------------------------------------------------

    def _prepare(self) -> BrokerSecurity:
        self._write_access_files()
        return BrokerSecurity.load(self.password_file, self.acl_file)

    def _check_port_free(self) -> None:
        # amqtt would log its own traceback for a busy port; this says it in one
        # line. Same socket options as amqtt's listener, so the answer agrees.
        family = socket.AF_INET6 if ":" in self._bind else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self._bind, self._port))
            except OSError as exc:
                raise BrokerStartError(
                    f"embedded broker cannot listen on {self._bind}:{self._port}: "
                    f"{exc.strerror or exc}"
                ) from exc

    def _amqtt_config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self._bind}:{self._port}"}},
            "session_expiry_interval": _SESSION_EXPIRY_S,
            # Exactly these plugins: amqtt's defaults include one that admits
            # anonymous clients, a $SYS publisher and a packet logger.
            "plugins": {
                _class_path(PasswordFileAuthPlugin): {
                    "password_file": str(self.password_file),
                    "acl_file": str(self.acl_file),
                },
                _class_path(AclTopicPlugin): {"acl_file": str(self.acl_file)},
            },
        }

    def start(self) -> None:
        """Start amqtt in a background thread; return once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("broker already started")
        _check_amqtt_version()
        try:
            security = self._prepare()
        except (OSError, ValueError) as exc:  # PasswordFileError and AclParseError are ValueErrors
            raise BrokerStartError(f"embedded broker configuration: {exc}") from exc
        self._check_port_free()
        if not self._on_loopback():
            # No TLS listener here: passwords would cross the network in clear.
            logger.warning(
                "broker.embedded.cleartext_listener bind=%s port=%d", self._bind, self._port
            )
        _quiet_amqtt_logging()
        self._stop_requested.clear()
        self._stop_event = asyncio.Event()  # bound to the broker's loop when first awaited there
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=f"embedded-broker-{self._port}", daemon=True
        )
        self._thread.start()
        try:
            ready.result(timeout=self._start_timeout)
        except concurrent.futures.TimeoutError as exc:
            self.stop()
            raise BrokerStartError(
                f"embedded broker not listening on {self.host}:{self._port} "
                f"after {self._start_timeout:.0f}s"
            ) from exc
        except BrokerStartError:
            self.stop()
            raise
        logger.info(
            "broker.started kind=embedded host=%s port=%d run_dir=%s accounts=%d",
            self.host,
            self._port,
            self._run_dir,
            len(security.credentials),
        )

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(loop, ready))
        except Exception:  # the thread's edge: nothing above it would report this
            logger.exception("broker.embedded.crashed port=%d", self._port)
        finally:
            self._loop = None
            loop.close()
            if not ready.done():
                ready.set_exception(BrokerStartError("embedded broker stopped while starting"))

    async def _serve(
        self, loop: asyncio.AbstractEventLoop, ready: concurrent.futures.Future[None]
    ) -> None:
        self._loop = loop
        stop_event = self._stop_event
        assert stop_event is not None  # set by start() before the thread exists
        try:
            amqtt_broker = AclEnforcingBroker(self._amqtt_config(), loop=loop)
            await amqtt_broker.start()
        except Exception as exc:  # noqa: BLE001  # any start failure goes to start()'s caller
            error = BrokerStartError(
                f"embedded broker failed to start on {self._bind}:{self._port}: {exc}"
            )
            error.__cause__ = exc
            ready.set_exception(error)
            return
        self._broker = amqtt_broker
        ready.set_result(None)
        try:
            # stop() may have run before this loop was known to it.
            if not self._stop_requested.is_set():
                await stop_event.wait()
        finally:
            self._broker = None
            await amqtt_broker.shutdown()

    def reload(self) -> None:
        """Re-read the password file and ACL; drop clients whose account no longer holds.

        Unlike Mosquitto's SIGHUP this is synchronous: the new accounts and ACL
        are in force when it returns. A file that cannot be parsed raises
        (PasswordFileError, AclParseError, OSError) and the broker keeps the
        accounts and ACL it had.
        """
        loop, amqtt_broker = self._loop, self._broker
        if loop is None or amqtt_broker is None or not self.running():
            raise RuntimeError("broker is not running")
        security = BrokerSecurity.load(self.password_file, self.acl_file)
        applied = asyncio.run_coroutine_threadsafe(install_security(amqtt_broker, security), loop)
        revoked = applied.result(timeout=self._start_timeout)
        logger.info(
            "broker.reloaded kind=embedded accounts=%d revoked=%d",
            len(security.credentials),
            revoked,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection and stop amqtt; retained messages and sessions are lost."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop_requested.set()
        loop, stop_event = self._loop, self._stop_event
        if loop is not None and stop_event is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed: the thread is ending
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("broker.stop_timeout kind=embedded port=%d", self._port)
        else:
            logger.info("broker.stopped kind=embedded port=%d", self._port)
