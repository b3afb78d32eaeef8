"""The embedded (amqtt) broker enforces the same accounts and ACL as production Mosquitto.

Each test starts a real ``EmbeddedBroker`` on a free loopback port with the
project's own ``broker/acl`` and accounts written by ``broker.passwords``,
and talks to it with paho-mqtt 2.x clients over MQTT 3.1.1 (the only version
amqtt speaks). Under 3.1.1 a denied publish is acknowledged and dropped, as
Mosquitto does, so absence is shown by a later allowed message from the same
flow arriving first, then a short quiet period.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from broker import passwords
from broker.embedded import EmbeddedBroker
from broker.launcher import BrokerStartError, free_port
from tests.fixtures.broker import connack_code

pytestmark = pytest.mark.timeout(30)

P = "cctv/v1"
A, B = "node-a", "node-b"
CLOUD, OPERATOR = passwords.RESERVED_ACCOUNTS
SUCCESS = 0
NOT_AUTHORIZED = 135  # paho's reason code for a 3.1.1 CONNACK 5
BAD_CREDENTIALS = 134  # ... and for CONNACK 4
QUIET = 0.3  # how long "nothing else arrives" is watched after the proof message
TIMEOUT = 5.0


@dataclass
class Running:
    broker: EmbeddedBroker
    passwords: dict[str, str]


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Running]:
    broker = EmbeddedBroker(tmp_path / "broker", port=free_port())
    broker.run_dir.mkdir()
    accounts = passwords.add_accounts(broker.password_file, [CLOUD, OPERATOR, A, B])
    broker.start()
    try:
        yield Running(broker, accounts)
    finally:
        broker.stop()


class Peer:
    """A paho MQTT 3.1.1 client whose callbacks only record, and waits on what they recorded."""

    def __init__(
        self,
        broker: EmbeddedBroker,
        username: str | None,
        password: str | None,
        *,
        client_id: str | None = None,
        clean_session: bool = True,
    ) -> None:
        # A node's client id is its node_id (DESIGN.md); others get a unique one.
        default_id = username if username in (A, B) else f"{username}-{secrets.token_hex(3)}"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or default_id,
            protocol=mqtt.MQTTv311,
            clean_session=clean_session,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.broker = broker
        self._cond = threading.Condition()
        self.connack: ReasonCode | None = None
        self.disconnected = False
        self.messages: list[mqtt.MQTTMessage] = []
        self.acked: set[int] = set()
        self.subacks: dict[int, list[int]] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe

    # Callbacks run on paho's network thread: record and notify, nothing that can raise.
    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        with self._cond:
            self.connack = rc
            self._cond.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _rc: ReasonCode, _p: Any) -> None:
        with self._cond:
            self.disconnected = True
            self._cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: ReasonCode, _p: Any) -> None:
        with self._cond:
            self.acked.add(mid)
            self._cond.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, rcs: list[ReasonCode], _p: Any) -> None:
        with self._cond:
            self.subacks[mid] = [rc.value for rc in rcs]
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, TIMEOUT):
                raise TimeoutError(f"no {what} within {TIMEOUT}s")

    def connect(self) -> int:
        """Connect and return the CONNACK reason code; a refused client stops retrying."""
        self.client.connect(self.broker.host, self.broker.port, keepalive=10)
        self.client.loop_start()
        self.wait_for(lambda: self.connack is not None, "CONNACK")
        assert self.connack is not None
        if self.connack.is_failure:
            # paho would reconnect forever, and amqtt lets even a refused
            # CONNECT take over the client id: stop before it can.
            self.client.loop_stop()
        return int(self.connack.value)

    def subscribe(self, *topics: str) -> list[int]:
        _, mid = self.client.subscribe([(topic, 1) for topic in topics])
        assert mid is not None
        self.wait_for(lambda: mid in self.subacks, "SUBACK")
        return self.subacks[mid]

    def publish(self, topic: str, payload: bytes = b"{}", *, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self.wait_for(lambda: info.mid in self.acked, f"PUBACK for {topic}")

    def expect(self, topic: str, payload: bytes | None = None) -> mqtt.MQTTMessage:
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


PeerFactory = Callable[..., Peer]


@pytest.fixture
def peer(embedded: Running) -> Iterator[PeerFactory]:
    """Make connected clients: ``peer(username)`` logs in with that account's password."""
    made: list[Peer] = []

    def make(username: str) -> Peer:
        client = Peer(embedded.broker, username, embedded.passwords[username])
        made.append(client)
        assert client.connect() == SUCCESS
        return client

    yield make
    for client in made:
        client.close()


def _mqtt_string(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return len(data).to_bytes(2, "big") + data


def connect_with_will_then_vanish(
    broker: EmbeddedBroker, username: str, password: str, will_topic: str, will: bytes
) -> int:
    """CONNECT (3.1.1) with a retained QoS 1 Will, then drop the socket without DISCONNECT.

    A bare socket: paho cannot be made to vanish without trying to reconnect.
    Returns the CONNACK return code.
    """
    flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02  # user, password, will retain/QoS 1/flag, clean
    payload = (
        _mqtt_string(f"{username}-will-{secrets.token_hex(3)}")
        + _mqtt_string(will_topic)
        + _mqtt_string(will)
        + _mqtt_string(username)
        + _mqtt_string(password)
    )
    body = _mqtt_string("MQTT") + bytes([4, flags]) + (10).to_bytes(2, "big") + payload
    assert len(body) < 128  # one-byte remaining length keeps this helper simple
    with socket.create_connection((broker.host, broker.port), timeout=TIMEOUT) as sock:
        sock.sendall(bytes([0x10, len(body)]) + body)
        reply = b""
        while len(reply) < 4:
            chunk = sock.recv(4 - len(reply))
            if not chunk:
                break
            reply += chunk
    return reply[3] if len(reply) == 4 else -1


# --- authentication -------------------------------------------------------------------


def test_anonymous_connection_is_refused(embedded: Running) -> None:
    client = Peer(embedded.broker, None, None)
    try:
        assert client.connect() == NOT_AUTHORIZED
    finally:
        client.close()
    assert connack_code(embedded.broker.host, embedded.broker.port, None, None) == 5


def test_wrong_password_and_unknown_user_are_refused(embedded: Running) -> None:
    broker = embedded.broker
    client = Peer(broker, CLOUD, embedded.passwords[CLOUD] + "x")
    try:
        assert client.connect() in (BAD_CREDENTIALS, NOT_AUTHORIZED)
    finally:
        client.close()
    assert connack_code(broker.host, broker.port, A, "") != 0
    assert connack_code(broker.host, broker.port, A, None) != 0
    assert connack_code(broker.host, broker.port, "node-unknown", embedded.passwords[A]) != 0
    # The right password for the right user is what works.
    assert connack_code(broker.host, broker.port, A, embedded.passwords[A]) == 0


# --- node confinement -----------------------------------------------------------------------


def test_node_message_into_another_nodes_subtree_is_not_delivered(
    embedded: Running, peer: PeerFactory
) -> None:
    cloud = peer(CLOUD)
    assert cloud.subscribe(f"{P}/#") == [1]
    node_a = peer(A)

    # Acknowledged (MQTT 3.1.1 has no way to say no), never delivered nor retained.
    node_a.publish(f"{P}/{B}/events/recording", b"forged")
    node_a.publish(f"{P}/{B}/status", b"forged", retain=True)
    node_a.publish(f"{P}/{B}/commands", b"forged")
    node_a.publish(f"{P}/{A}/schedules", b"forged")  # its own, but desired state is the cloud's
    node_a.publish(f"{P}/{A}/events/recording", b"own")
    node_a.publish(f"{P}/{A}/status", b"own", retain=True)

    assert cloud.expect(f"{P}/{A}/events/recording").payload == b"own"
    assert cloud.expect(f"{P}/{A}/status").payload == b"own"
    time.sleep(QUIET)
    assert sorted(cloud.topics()) == [f"{P}/{A}/events/recording", f"{P}/{A}/status"]

    later = peer(CLOUD)
    assert later.subscribe(f"{P}/+/status") == [1]
    assert later.expect(f"{P}/{A}/status").retain
    time.sleep(QUIET)
    assert later.topics() == [f"{P}/{A}/status"]


def test_node_gets_its_own_retained_schedules_and_not_another_nodes(
    embedded: Running, peer: PeerFactory
) -> None:
    # The cloud's own wildcard subscription matters: amqtt 0.12 sends a new
    # client the retained messages matching *any* client's subscriptions.
    cloud = peer(CLOUD)
    cloud.subscribe(f"{P}/#")
    cloud.publish(f"{P}/{B}/schedules", b"b-schedules", retain=True)
    cloud.publish(f"{P}/{B}/cameras", b"b-cameras", retain=True)
    cloud.publish(f"{P}/{A}/schedules", b"a-schedules", retain=True)
    cloud.expect(f"{P}/{A}/schedules")

    node_a = peer(A)
    # Granted, as Mosquitto grants them; they deliver only what A may read.
    assert node_a.subscribe(f"{P}/{B}/schedules", f"{P}/{B}/cameras", f"{P}/+/schedules") == [
        1,
        1,
        1,
    ]
    assert node_a.subscribe(f"{P}/#") == [1]
    assert node_a.subscribe(f"{P}/{A}/schedules") == [1]
    message = node_a.expect(f"{P}/{A}/schedules", b"a-schedules")
    assert message.retain
    time.sleep(QUIET)
    assert set(node_a.topics()) == {f"{P}/{A}/schedules"}


def test_live_messages_for_another_node_are_not_delivered(
    embedded: Running, peer: PeerFactory
) -> None:
    node_a = peer(A)
    node_a.subscribe(f"{P}/#", f"{P}/{B}/commands")
    operator = peer(OPERATOR)
    operator.publish(f"{P}/{B}/commands", b"for-b")
    operator.publish(f"{P}/{A}/commands", b"for-a")
    assert node_a.expect(f"{P}/{A}/commands").payload == b"for-a"
    time.sleep(QUIET)
    assert node_a.topics() == [f"{P}/{A}/commands"]


def test_operator_reads_status_and_replies_but_not_events(
    embedded: Running, peer: PeerFactory
) -> None:
    operator = peer(OPERATOR)
    operator.subscribe(f"{P}/#")
    node_a = peer(A)
    node_a.publish(f"{P}/{A}/events/recording", b"event")
    node_a.publish(f"{P}/{A}/heartbeat", b"heartbeat")
    node_a.publish(f"{P}/{A}/replies", b"reply")
    assert operator.expect(f"{P}/{A}/replies").payload == b"reply"
    time.sleep(QUIET)
    assert operator.topics() == [f"{P}/{A}/replies"]


def test_a_will_on_another_nodes_topic_is_never_published(
    embedded: Running, peer: PeerFactory
) -> None:
    cloud = peer(CLOUD)
    cloud.subscribe(f"{P}/+/status")
    broker, password = embedded.broker, embedded.passwords[A]
    assert connect_with_will_then_vanish(broker, A, password, f"{P}/{B}/status", b"forged") == 0
    assert connect_with_will_then_vanish(broker, A, password, f"{P}/{A}/status", b"offline") == 0
    assert cloud.expect(f"{P}/{A}/status").payload == b"offline"
    time.sleep(QUIET)
    assert cloud.topics() == [f"{P}/{A}/status"]


def test_messages_queued_for_a_session_are_rechecked_when_another_account_resumes_it(
    embedded: Running, peer: PeerFactory
) -> None:
    broker, shared_id = embedded.broker, f"shared-{secrets.token_hex(3)}"
    first = Peer(broker, A, embedded.passwords[A], client_id=shared_id, clean_session=False)
    assert first.connect() == SUCCESS
    first.subscribe(f"{P}/#")
    first.close()
    cloud = peer(CLOUD)
    cloud.publish(f"{P}/{A}/commands", b"for-a")  # queued for the offline session, A may read it

    # B resumes the same persistent session: A's queued command must not reach it.
    second = Peer(broker, B, embedded.passwords[B], client_id=shared_id, clean_session=False)
    try:
        assert second.connect() == SUCCESS
        cloud.publish(f"{P}/{B}/commands", b"for-b")
        assert second.expect(f"{P}/{B}/commands").payload == b"for-b"
        time.sleep(QUIET)
        assert second.topics() == [f"{P}/{B}/commands"]
    finally:
        second.close()


# --- runtime account changes -------------------------------------------------------------


def test_account_added_after_start_works_after_reload(embedded: Running, peer: PeerFactory) -> None:
    broker = embedded.broker
    late = "node-late"
    password = passwords.add_accounts(broker.password_file, [late])[late]
    assert connack_code(broker.host, broker.port, late, password) != 0  # not before reload

    broker.reload()

    assert connack_code(broker.host, broker.port, late, password) == 0
    cloud = peer(CLOUD)
    cloud.subscribe(f"{P}/{late}/heartbeat")
    node = Peer(broker, late, password)
    try:
        assert node.connect() == SUCCESS
        node.publish(f"{P}/{late}/heartbeat", b"alive")
        assert cloud.expect(f"{P}/{late}/heartbeat").payload == b"alive"
    finally:
        node.close()


def test_removed_account_is_disconnected_on_reload(embedded: Running, peer: PeerFactory) -> None:
    broker = embedded.broker
    node_b = peer(B)
    cloud = peer(CLOUD)
    passwords.remove_accounts(broker.password_file, [B])

    broker.reload()

    node_b.wait_for(lambda: node_b.disconnected, "disconnect of the removed account")
    assert connack_code(broker.host, broker.port, B, embedded.passwords[B]) != 0
    cloud.publish(f"{P}/{A}/commands", b"still-served")  # the others stay connected
    assert not cloud.disconnected


# --- lifecycle -------------------------------------------------------------------------------


def test_start_says_clearly_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(tmp_path / "broker", port=port)
        with pytest.raises(BrokerStartError, match=f"cannot listen on 127.0.0.1:{port}"):
            broker.start()
    assert not broker.running()


def test_start_refuses_an_amqtt_whose_internals_it_was_not_built_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("broker.embedded.importlib.metadata.version", lambda _name: "0.13.0")
    broker = EmbeddedBroker(tmp_path / "broker", port=free_port())
    with pytest.raises(BrokerStartError, match=r"amqtt 0\.13\.0 is installed"):
        broker.start()
    assert not broker.running()


def test_stop_closes_the_port_and_start_creates_the_files(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "fresh" / "run", port=free_port())
    assert not broker.run_dir.exists()  # the constructor touches nothing
    with broker:
        assert broker.running()
        assert broker.password_file.exists()
        assert f"pattern read {P}/%u/schedules" in broker.acl_file.read_text()
        with socket.create_connection((broker.host, broker.port), timeout=1.0):
            pass
    assert not broker.running()
    with pytest.raises(OSError):  # noqa: PT011  # refused, whatever errno the platform picks
        socket.create_connection((broker.host, broker.port), timeout=1.0).close()
