"""The development broker for ``cctv up`` when Mosquitto is not installed: amqtt, locked down.

``EmbeddedBroker`` runs amqtt 0.12 on loopback in a background thread with its
own event loop, behind the same interface as ``broker.launcher.MosquittoBroker``
(``host``, ``port``, ``password_file``, ``start``, ``reload``, ``stop``, context
manager) and with the same security: accounts are the Mosquitto password file
in the run dir (``broker.passwords`` writes it the same way for both brokers),
anonymous clients are refused, and the project's ``broker/acl``, rendered with
the topic prefix, is enforced with Mosquitto's semantics (``broker.acl_rules``):

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
  *every* client's subscriptions; ``_AclEnforcingBroker`` replaces that step.
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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from broker import passwords
from broker.acl_rules import AclRules, topic_matches
from broker.launcher import DEFAULT_TOPIC_PREFIX, BrokerStartError, render_acl

logger = logging.getLogger(__name__)

_ACL_TEMPLATE: Final = Path(__file__).with_name("acl")
_SUPPORTED_AMQTT: Final = (0, 12)
# mosquitto.conf: persistent_client_expiration 7d.
_SESSION_EXPIRY_S: Final = 7 * 24 * 3600
# Loggers of amqtt and of the state machine library it drives: at INFO they
# report every connection and state change (amqtt's DEBUG output even holds
# CONNECT packets, passwords included).
_QUIET_LOGGERS: Final = ("amqtt", "transitions")


# --- what is enforced: one immutable snapshot of accounts and ACL -------------------------


@dataclass(frozen=True)
class BrokerSecurity:
    """The accounts (username → Mosquitto hash) and the ACL in force, read together."""

    credentials: Mapping[str, str]
    acl: AclRules

    @classmethod
    def load(cls, password_file: Path, acl_file: Path) -> BrokerSecurity:
        """Read both files; raise PasswordFileError, AclParseError or OSError if either is bad."""
        credentials = passwords.read_password_file(password_file)
        acl = AclRules.parse(acl_file.read_text(encoding="utf-8"))
        return cls(credentials=MappingProxyType(dict(credentials)), acl=acl)

    def authenticates(self, username: str | None, password: str | None) -> bool:
        """True only for a username in the file with the matching password."""
        if not username or password is None:
            return False
        encoded = self.credentials.get(username)
        return encoded is not None and passwords.verify_password(password, encoded)


def _drop_forbidden_will(session: Session, acl: AclRules) -> None:
    # Mosquitto checks the Will against the ACL and silently skips a denied
    # one; amqtt would publish (and retain) it unchecked.
    topic = session.will_topic
    if not session.will_flag or (
        topic and acl.allows(session.username, session.client_id, topic, "write")
    ):
        return
    session.will_flag = False
    session.will_topic = None
    session.will_message = None
    session.will_retain = False
    logger.info(
        "broker.embedded.will_dropped client_id=%s username=%s topic=%s",
        session.client_id,
        session.username,
        topic,
    )


def _drop_unreadable_queued(session: Session, acl: AclRules) -> None:
    # Mosquitto re-checks a session's queued and in-flight messages on every
    # connect (the username, or the ACL, may have changed since they were
    # queued). amqtt keeps messages for an offline session in
    # `retained_messages` and unacknowledged ones in `inflight_out`.
    def readable(topic: str) -> bool:
        return acl.allows(session.username, session.client_id, topic, "read")

    queue = session.retained_messages
    kept = []
    dropped = 0
    while not queue.empty():
        message = queue.get_nowait()
        if readable(message.topic):
            kept.append(message)
        else:
            dropped += 1
    for message in kept:
        queue.put_nowait(message)
    for packet_id, message in list(session.inflight_out.items()):
        if not readable(message.topic):
            del session.inflight_out[packet_id]
            dropped += 1
    if dropped:
        logger.info(
            "broker.embedded.queued_dropped client_id=%s username=%s count=%d",
            session.client_id,
            session.username,
            dropped,
        )


# --- amqtt plugins (loaded by class path from the broker config) ------------------------------


class PasswordFileAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no type hints
    """Authenticates against a Mosquitto password file; refuses anonymous clients."""

    @dataclass
    class Config:
        password_file: str
        acl_file: str

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.security = BrokerSecurity.load(
            Path(self.config.password_file), Path(self.config.acl_file)
        )

    def install(self, security: BrokerSecurity) -> None:
        """Use these accounts and ACL from now on (called on the broker's loop)."""
        self.security = security

    async def authenticate(self, *, session: Session) -> bool:
        security = self.security
        if not security.authenticates(session.username, session.password):
            logger.info(
                "broker.embedded.connect_refused client_id=%s username=%s reason=%s",
                session.client_id,
                session.username,
                "bad_credentials" if session.username else "anonymous",
            )
            return False
        _drop_forbidden_will(session, security.acl)
        _drop_unreadable_queued(session, security.acl)
        return True


class AclTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]  # amqtt ships no type hints
    """Applies a Mosquitto ACL file to publishes, subscriptions and deliveries."""

    @dataclass
    class Config:
        acl_file: str

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.acl = AclRules.parse(Path(self.config.acl_file).read_text(encoding="utf-8"))

    def install(self, security: BrokerSecurity) -> None:
        """Use this ACL from now on (called on the broker's loop)."""
        self.acl = security.acl

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        if session is None or not topic:
            return False
        acl = self.acl
        if action == Action.SUBSCRIBE:
            return acl.may_subscribe(session.username, session.client_id, topic)
        if action == Action.PUBLISH:
            return acl.allows(session.username, session.client_id, topic, "write")
        if action == Action.RECEIVE:
            return acl.allows(session.username, session.client_id, topic, "read")
        return False  # an action this plugin does not know is not allowed


_SECURITY_PLUGINS: Final = (PasswordFileAuthPlugin, AclTopicPlugin)


class _AclEnforcingBroker(Broker):  # type: ignore[misc]  # amqtt ships no type hints
    """amqtt's broker with retained messages sent only where a subscription may read them."""

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        # amqtt calls this after a SUBSCRIBE, and on every CONNECT once per
        # filter any client holds. Only the session's own filters count, and
        # only topics it may read are sent, at the QoS it was granted.
        topic_filter, _ = subscription
        granted = next(
            (
                qos
                for subscriber, qos in self.subscriptions.get(topic_filter, ())
                if subscriber.client_id == session.client_id
            ),
            None,
        )
        entry = self.sessions.get(session.client_id)
        if granted is None or entry is None:
            return
        handler = entry[1]
        sends = []
        for topic, retained in list(self.retained_messages.items()):
            if not topic_matches(topic_filter, topic):
                continue
            if not await self._topic_filtering(session, topic=topic, action=Action.RECEIVE):
                continue
            qos = granted if retained.qos is None else min(granted, retained.qos)
            sends.append(
                asyncio.ensure_future(
                    handler.mqtt_publish(retained.topic, retained.data, qos, retain=True)
                )
            )
        if sends:
            await asyncio.wait(sends)


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


class EmbeddedBroker:
    """amqtt on loopback with the project's accounts and ACL, mirroring ``MosquittoBroker``.

    Accounts go into ``password_file`` (with ``broker.passwords``) before
    ``start()``, or at any time followed by ``reload()``.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        port: int,
        bind: str = "127.0.0.1",
        topic_prefix: str = DEFAULT_TOPIC_PREFIX,
        acl_template: Path = _ACL_TEMPLATE,
        start_timeout: float = 10.0,
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"invalid port {port}: must be 1-65535 (0 would hide the real one)")
        render_acl("", topic_prefix)  # pure: rejects a bad prefix now rather than at start
        self._run_dir = run_dir
        self._port = port
        self._bind = bind.strip("[]")  # amqtt wants "::1:1883", not "[::1]:1883"
        self._topic_prefix = topic_prefix
        self._acl_template = acl_template
        self._start_timeout = start_timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None  # the amqtt broker, while it serves
        self._stop_requested = threading.Event()
        self._stop_event: asyncio.Event | None = None

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
        """Always None: the embedded broker has no TLS listener."""
        return None

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

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._broker is not None

    def _on_loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self._bind).is_loopback
        except ValueError:
            return self._bind == "localhost"

    # --- lifecycle -------------------------------------------------------------

    def _prepare(self) -> BrokerSecurity:
        self._run_dir.mkdir(parents=True, exist_ok=True)
        if not self.password_file.exists():
            # Same as for Mosquitto: an empty file means no accounts yet.
            self.password_file.touch(mode=passwords.FILE_MODE)
        acl_text = self._acl_template.read_text(encoding="utf-8")
        self.acl_file.write_text(render_acl(acl_text, self._topic_prefix), encoding="utf-8")
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
            amqtt_broker = _AclEnforcingBroker(self._amqtt_config(), loop=loop)
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
        applied = asyncio.run_coroutine_threadsafe(_apply(amqtt_broker, security), loop)
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


async def _apply(amqtt_broker: Any, security: BrokerSecurity) -> int:
    """Install ``security`` in the plugins and disconnect clients it no longer admits.

    Runs on the broker's loop, so no connection is handled half-way through.
    Returns how many clients were disconnected.
    """
    for plugin in amqtt_broker.plugins_manager.plugins:
        if isinstance(plugin, _SECURITY_PLUGINS):
            plugin.install(security)
    revoked = 0
    for session, handler in list(amqtt_broker.sessions.values()):
        if not session.transitions.is_connected():
            continue
        if security.authenticates(session.username, session.password):
            _drop_forbidden_will(session, security.acl)
            continue
        revoked += 1
        logger.info(
            "broker.embedded.session_revoked client_id=%s username=%s",
            session.client_id,
            session.username,
        )
        # amqtt's own path for a dropped connection: the Will, then the close.
        await handler.handle_connection_closed()
    return revoked
