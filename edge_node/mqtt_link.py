"""The edge node's MQTT connection (paho-mqtt 2, threaded).

Persistent session, a Last Will `NodeStatus offline` carrying the session
counter (kept on disk, one more on every connect), retained `online` on
connect and a resubscribe on every connect. Callbacks only hand work over to
the service's queue and can never raise: an exception in a paho callback
would kill its network thread.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_node.desired_state import write_atomically
from schemas.addresses import MqttProtocol, MqttUrl
from schemas.codec import encode
from schemas.ids import utc_now
from schemas.status import NodeStatus
from schemas.topics import Channel, TopicTable

logger = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600
SUBSCRIBED = (Channel.SCHEDULES, Channel.CAMERAS, Channel.COMMANDS, Channel.ACKS)


@dataclass(frozen=True)
class Inbound:
    topic: str
    payload: bytes


@dataclass(frozen=True)
class Connected:
    session: int


SESSION_EPOCH = 1_577_836_800  # 2020-01-01T00:00:00Z


class SessionCounter:
    """A number that grows by one on every connect, kept on disk. A new data
    dir starts from the seconds since 2020 (an int32 until 2088), above any
    session the node's previous disk can have reached (one connect a second for
    all its life), so the cloud takes a replaced or wiped node's `online` for
    the newest rather than for a late one."""

    def __init__(self, path: Path, now: Callable[[], float] = time.time) -> None:
        self._path = path
        self._now = now

    def next(self) -> int:
        try:
            current = int(self._path.read_text().strip() or 0)
        except FileNotFoundError:
            current = max(0, int(self._now()) - SESSION_EPOCH)
        value = current + 1
        write_atomically(self._path, str(value).encode())
        return value


class NodeLink:
    def __init__(self, url: MqttUrl, node_id: str, topics: TopicTable, *,
                 sessions: SessionCounter, deliver: Callable[[Inbound | Connected], None],
                 version: str, ca_file: Path | None = None, keepalive: int = 30,
                 protocol: MqttProtocol = "5") -> None:
        self._url = url
        self._node_id = node_id
        self._topics = topics
        self._sessions = sessions
        self._deliver = deliver
        self._version = version
        self._ca_file = ca_file
        self._keepalive = keepalive
        self._mqtt5 = protocol == "5"
        self._client: mqtt.Client | None = None
        self._lock = threading.Lock()
        self.session = 0
        self.connected = threading.Event()

    def _status(self, state: Literal["online", "offline"]) -> bytes:
        return encode(NodeStatus(state=state, session=self.session, ts=utc_now(),
                                 version=self._version, keepalive_s=self._keepalive))

    def _arm_will(self, client: mqtt.Client) -> None:
        self.session = self._sessions.next()
        client.will_set(self._topics.topic(self._node_id, Channel.STATUS),
                        self._status("offline"), qos=1, retain=True)

    def start(self) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self._node_id,
                             protocol=mqtt.MQTTv5 if self._mqtt5 else mqtt.MQTTv311,
                             clean_session=None if self._mqtt5 else False)
        client.username_pw_set(self._url.username or self._node_id, self._url.password)
        if self._url.tls:
            client.tls_set(ca_certs=str(self._ca_file) if self._ca_file else None,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._arm_will(client)
        self._client = client
        # connect_async + loop_start: the node records with no broker at all and
        # paho keeps retrying in the background.
        if self._mqtt5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
            client.connect_async(self._url.host, self._url.port, keepalive=self._keepalive,
                                 clean_start=False, properties=properties)
        else:
            client.connect_async(self._url.host, self._url.port, keepalive=self._keepalive)
        client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        client = self._client
        if client is None:
            return
        if self.connected.is_set():
            info = client.publish(self._topics.topic(self._node_id, Channel.STATUS),
                                  self._status("offline"), qos=1, retain=True)
            info.wait_for_publish(timeout)
        client.disconnect()
        client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Queue a QoS 1 publish; False when the client has no connection."""
        client = self._client
        if client is None or not self.connected.is_set():
            return False
        info = client.publish(topic, payload, qos=1, retain=retain)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any,
                    reason: ReasonCode, _properties: Any) -> None:
        try:
            if reason.is_failure:
                logger.error("mqtt.refused broker=%s reason=%s", self._url.redacted(), reason)
                return
            client.subscribe([(self._topics.topic(self._node_id, c), 1) for c in SUBSCRIBED])
            client.publish(self._topics.topic(self._node_id, Channel.STATUS),
                           self._status("online"), qos=1, retain=True)
            self.connected.set()
            self._deliver(Connected(self.session))
            logger.info("mqtt.connected broker=%s session=%d", self._url.redacted(), self.session)
        except Exception:
            logger.exception("mqtt.on_connect_failed")

    def _on_disconnect(self, client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason: ReasonCode, _properties: Any) -> None:
        try:
            self.connected.clear()
            logger.warning("mqtt.disconnected broker=%s reason=%s", self._url.redacted(), reason)
            # The next connect is a new session: its Will must say so.
            self._arm_will(client)
        except Exception:
            logger.exception("mqtt.on_disconnect_failed")

    def _on_message(self, _client: mqtt.Client, _userdata: Any,
                    message: mqtt.MQTTMessage) -> None:
        try:
            self._deliver(Inbound(message.topic, bytes(message.payload)))
        except Exception:
            logger.exception("mqtt.on_message_failed")
