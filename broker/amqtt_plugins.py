"""The amqtt 0.12 plugins that give the embedded broker Mosquitto's accounts and ACL.

Loaded by ``broker.embedded`` by class path. ``PasswordFileAuthPlugin``
admits only accounts of the Mosquitto password file (never an anonymous
client), drops a Will the client may not write and queued messages it may
no longer read; ``AclTopicPlugin`` applies the rendered ``broker/acl`` to
publishes, subscriptions and deliveries with ``broker.acl_rules``;
``AclEnforcingBroker`` sends retained messages only where a subscription may
read them; ``install_security`` swaps in new accounts and ACL at runtime and
disconnects the clients they no longer admit.

This module must never admit a client it cannot authenticate, never let a
message through that the ACL does not allow, and never log a password or a
password hash. It depends on amqtt 0.12's internals.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from broker import passwords
from broker.acl_rules import AclRules, topic_matches

logger = logging.getLogger(__name__)

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


class AclEnforcingBroker(Broker):  # type: ignore[misc]  # amqtt ships no type hints
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


# --- runtime changes: what reload() applies ----------------------------------------------------


async def install_security(amqtt_broker: Any, security: BrokerSecurity) -> int:
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
