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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from broker import passwords
from broker.dev_broker import BrokerStartError
from broker.embedded import EmbeddedBroker
from broker.launcher import free_port
from tests.fixtures.broker import connack_code, connect_packet, send_connect
from tests.integration.mqtt_peer import SUCCESS, TIMEOUT, RecordingPeer, connected_peers

pytestmark = pytest.mark.timeout(30)

P = "cctv/v1"
A, B = "node-a", "node-b"
CLOUD, OPERATOR = passwords.RESERVED_ACCOUNTS
NOT_AUTHORIZED = 135  # paho's reason code for a 3.1.1 CONNACK 5
BAD_CREDENTIALS = 134  # ... and for CONNACK 4
QUIET = 0.3  # how long "nothing else arrives" is watched after the proof message


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


class Peer(RecordingPeer):
    """A ``RecordingPeer`` speaking MQTT 3.1.1 to the embedded broker."""

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
        super().__init__(
            broker.host,
            broker.port,
            username,
            password,
            client_id=client_id or default_id,
            protocol=mqtt.MQTTv311,
            clean_session=clean_session,
        )

    def connect(self) -> int:
        """Connect and return the CONNACK reason code; a refused client stops retrying."""
        self.client.connect(self.host, self.port, keepalive=10)
        connack = self._await_connack()
        if connack.is_failure:
            # paho would reconnect forever, and amqtt lets even a refused
            # CONNECT take over the client id: stop before it can.
            self.client.loop_stop()
        return int(connack.value)


PeerFactory = Callable[..., Peer]


@pytest.fixture
def peer(embedded: Running) -> Iterator[PeerFactory]:
    """Make connected clients: ``peer(username)`` logs in with that account's password."""

    def new(username: str) -> Peer:
        return Peer(embedded.broker, username, embedded.passwords[username])

    yield from connected_peers(new)


def connect_with_will_then_vanish(
    broker: EmbeddedBroker, username: str, password: str, will_topic: str, will: bytes
) -> int:
    """CONNECT (3.1.1) with a retained QoS 1 Will, then drop the socket without DISCONNECT.

    A bare socket: paho cannot be made to vanish without trying to reconnect.
    Returns the CONNACK return code.
    """
    client_id = f"{username}-will-{secrets.token_hex(3)}"
    packet = connect_packet(client_id, username, password, will=(will_topic, will))
    with socket.create_connection((broker.host, broker.port), timeout=TIMEOUT) as sock:
        return send_connect(sock, packet)


def assert_receives_only(subscriber: Peer, topic: str, payload: bytes) -> None:
    """The proof message arrives on ``topic``, and in the quiet after it nothing else has."""
    assert subscriber.expect(topic).payload == payload
    time.sleep(QUIET)
    assert subscriber.topics() == [topic]


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


@dataclass(frozen=True)
class LiveFlow:
    """Who subscribes to what, who publishes, and which one message the reader may read."""

    reader: str
    filters: tuple[str, ...]
    writer: str
    unreadable: tuple[tuple[str, bytes], ...]
    readable: tuple[str, bytes]


@pytest.mark.parametrize(
    "flow",
    [
        pytest.param(
            LiveFlow(
                reader=A,
                filters=(f"{P}/#", f"{P}/{B}/commands"),
                writer=OPERATOR,
                unreadable=((f"{P}/{B}/commands", b"for-b"),),
                readable=(f"{P}/{A}/commands", b"for-a"),
            ),
            id="node-not-another-nodes-commands",
        ),
        pytest.param(
            LiveFlow(
                reader=OPERATOR,
                filters=(f"{P}/#",),
                writer=A,
                unreadable=(
                    (f"{P}/{A}/events/recording", b"event"),
                    (f"{P}/{A}/heartbeat", b"heartbeat"),
                ),
                readable=(f"{P}/{A}/replies", b"reply"),
            ),
            id="operator-replies-not-events",
        ),
    ],
)
def test_live_messages_reach_only_subscribers_that_may_read_them(
    peer: PeerFactory, flow: LiveFlow
) -> None:
    subscriber = peer(flow.reader)
    subscriber.subscribe(*flow.filters)
    publisher = peer(flow.writer)
    for topic, payload in (*flow.unreadable, flow.readable):
        publisher.publish(topic, payload)
    assert_receives_only(subscriber, *flow.readable)


def test_a_will_on_another_nodes_topic_is_never_published(
    embedded: Running, peer: PeerFactory
) -> None:
    cloud = peer(CLOUD)
    cloud.subscribe(f"{P}/+/status")
    broker, password = embedded.broker, embedded.passwords[A]
    assert connect_with_will_then_vanish(broker, A, password, f"{P}/{B}/status", b"forged") == 0
    assert connect_with_will_then_vanish(broker, A, password, f"{P}/{A}/status", b"offline") == 0
    assert_receives_only(cloud, f"{P}/{A}/status", b"offline")


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
        assert_receives_only(second, f"{P}/{B}/commands", b"for-b")
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
