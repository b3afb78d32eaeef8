"""The cloud service's MQTT connection (gmqtt, asyncio, MQTT 5).

Holds a persistent session so QoS 1 messages published while the service is
down wait in the broker. Incoming messages are handed to one async handler
whose return value becomes the PUBACK reason code: with
`optimistic_acknowledgement=False` the broker is only acknowledged after the
handler (and so the database commit) finished. Never parses payloads.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from gmqtt import Client, Subscription
from gmqtt.mqtt.constants import MQTTv50, MQTTv311

from schemas.addresses import MqttProtocol, MqttUrl

logger = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], Awaitable[int]]
# The broker keeps the session (and queued QoS 1 messages) this long offline.
SESSION_EXPIRY_S = 7 * 24 * 3600


class LinkError(RuntimeError):
    """The broker could not be reached or refused us."""


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class CloudLink:
    def __init__(self, url: MqttUrl, *, client_id: str, handler: MessageHandler,
                 subscriptions: Callable[[bool], Sequence[str]],
                 ca_file: Path | None = None, keepalive: int = 30,
                 connect_timeout_s: float = 30.0, protocol: MqttProtocol = "5",
                 persistent: bool = True) -> None:
        self._url = url
        self._client_id = client_id
        self._handler = handler
        self._subscriptions = subscriptions  # mqtt5 -> topic filters
        self._ca_file = ca_file
        self._keepalive = keepalive
        self._connect_timeout_s = connect_timeout_s
        # A throwaway run must not leave a session behind: Mosquitto keeps
        # handing an offline shared-subscription member its share of events.
        self._persistent = persistent
        self._version = MQTTv50 if protocol == "5" else MQTTv311
        if protocol != "5":
            logger.warning("mqtt.protocol_3_1_1 consequence=messages acknowledged before commit")
        self._client: Client | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        client = Client(self._client_id, clean_session=not self._persistent,
                        optimistic_acknowledgement=False,
                        session_expiry_interval=SESSION_EXPIRY_S if self._persistent else 0)
        client.set_auth_credentials(self._url.username or "", self._url.password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        try:
            await asyncio.wait_for(client.connect(
                self._url.host, self._url.port,
                ssl=tls_context(self._ca_file) if self._url.tls else False,
                keepalive=self._keepalive, version=self._version), self._connect_timeout_s)
        except (OSError, TimeoutError, Exception) as exc:  # gmqtt raises bare Exceptions
            raise LinkError(f"cannot connect to {self._url.redacted()}: {exc}") from exc

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.disconnect()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        if self._client is None:
            raise LinkError("not started")
        self._client.publish(topic, payload, qos=1, retain=retain)

    def _on_connect(self, client: Client, _flags: Any, rc: int, _properties: Any) -> None:
        # gmqtt falls back to 3.1.1 for a broker that refuses MQTT 5 (the embedded
        # amqtt); shared subscriptions and acknowledge-after-commit need 5.
        mqtt5 = client._connection_state.protocol_version == MQTTv50
        filters = self._subscriptions(mqtt5)
        client.subscribe([Subscription(f, qos=1) for f in filters])
        logger.info("mqtt.connected broker=%s rc=%s mqtt5=%s subscriptions=%d",
                    self._url.redacted(), rc, mqtt5, len(filters))
        self.connected.set()

    def _on_disconnect(self, _client: Client, _packet: Any, exc: Any = None) -> None:
        self.connected.clear()
        logger.warning("mqtt.disconnected broker=%s error=%s", self._url.redacted(), exc)

    async def _on_message(self, _client: Client, topic: str, payload: bytes, _qos: int,
                          _properties: Any) -> int:
        return await self._handler(topic, payload)

    async def reconnect(self) -> None:
        """A new connection of the same session: the broker then sends again
        every QoS 1 message not yet acknowledged."""
        if self._client is not None:
            logger.warning("mqtt.reconnect reason=redelivery")
            await self._client.reconnect(delay=True)
