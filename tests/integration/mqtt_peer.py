"""The paho-mqtt 2.x client the broker tests talk through: callbacks record, tests wait.

``RecordingPeer`` holds everything ``test_broker`` (Mosquitto, MQTT 5) and
``test_embedded_broker`` (amqtt, MQTT 3.1.1) do alike: it records CONNACK,
disconnect, messages, PUBACKs and SUBACKs, and waits on them with a timeout.
Each test module subclasses it with its own ``connect``, the one step where the
two protocol versions differ. ``connected_peers`` is the body of their ``peer``
fixtures.

Nothing here may raise in a paho callback (that would kill paho's network
thread and turn a failure into a timeout), and nothing here sleeps to prove
absence: the tests decide that.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

TIMEOUT = 5.0
SUCCESS = 0


class RecordingPeer:
    """A paho MQTT client whose callbacks only record, and waits on what they recorded."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        *,
        client_id: str,
        protocol: MQTTProtocolVersion,
        clean_session: bool | None = None,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=clean_session,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.host = host
        self.port = port
        self._cond = threading.Condition()
        self.connack: ReasonCode | None = None
        self.connack_properties: dict[str, Any] = {}
        self.disconnect_reason: ReasonCode | None = None
        self.messages: list[mqtt.MQTTMessage] = []
        self.pubacks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe

    # Callbacks run on paho's network thread: record and notify, nothing that can raise.
    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, props: Any) -> None:
        with self._cond:
            # paho's Properties keeps each received property as an attribute
            # (none under MQTT 3.1.1).
            self.connack, self.connack_properties = rc, dict(vars(props))
            self._cond.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        with self._cond:
            self.disconnect_reason = rc
            self._cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        with self._cond:
            self.pubacks[mid] = rc.value
            self._cond.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, rcs: list[ReasonCode], _p: Any) -> None:
        with self._cond:
            self.subacks[mid] = [rc.value for rc in rcs]
            self._cond.notify_all()

    @property
    def disconnected(self) -> bool:
        return self.disconnect_reason is not None

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError(f"no {what} within {timeout}s")

    def connect(self) -> int:
        """Connect and return the CONNACK reason code (refusals are returned, not raised)."""
        raise NotImplementedError

    def _await_connack(self) -> ReasonCode:
        """Run paho's network loop and return the CONNACK once it arrives."""
        self.client.loop_start()
        self.wait_for(lambda: self.connack is not None, "CONNACK")
        assert self.connack is not None
        return self.connack

    def subscribe(self, *topics: str) -> list[int]:
        """Subscribe at QoS 1 and return the SUBACK's granted QoS (or reason codes)."""
        _, mid = self.client.subscribe([(topic, 1) for topic in topics])
        assert mid is not None
        self.wait_for(lambda: mid in self.subacks, "SUBACK")
        return self.subacks[mid]

    def publish(self, topic: str, payload: bytes = b"{}", *, retain: bool = False) -> int:
        """Publish at QoS 1 and return the PUBACK reason code (always 0 under MQTT 3.1.1)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self.wait_for(lambda: info.mid in self.pubacks, f"PUBACK for {topic}")
        return self.pubacks[info.mid]

    def expect(self, topic: str, payload: bytes | None = None) -> mqtt.MQTTMessage:
        """Wait for a message on ``topic`` (with ``payload``, if given) and return it."""

        def found() -> mqtt.MQTTMessage | None:
            for message in self.messages:
                if message.topic == topic and payload in (None, message.payload):
                    return message
            return None

        self.wait_for(lambda: found() is not None, f"message on {topic}")
        message = found()
        assert message is not None
        return message

    def topics(self) -> list[str]:
        with self._cond:
            return [message.topic for message in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


PeerT = TypeVar("PeerT", bound=RecordingPeer)


def connected_peers(new: Callable[..., PeerT]) -> Iterator[Callable[..., PeerT]]:
    """A ``peer`` fixture's body: yield a maker of connected peers, then close them all.

    ``new`` builds an unconnected peer from the maker's arguments; the maker
    connects it and fails the test unless the broker accepts it.
    """
    made: list[PeerT] = []

    def make(*args: Any, **kwargs: Any) -> PeerT:
        client = new(*args, **kwargs)
        made.append(client)
        assert client.connect() == SUCCESS
        return client

    yield make
    for client in made:
        client.close()
