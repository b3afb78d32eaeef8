"""The broker contract on a real Mosquitto started from the project's mosquitto.conf.

Accounts, the per-node ACL, TLS, runtime account changes and the limits the
production config sets, seen by paho-mqtt 2.x clients speaking MQTT 5 (so a
denied publish shows as PUBACK reason code 135 instead of passing silently).
Absence of a message is shown by waiting for a later, allowed message from
the same flow rather than by sleeping, except where Mosquitto gives nothing to
wait for.
"""

from __future__ import annotations

import os
import secrets
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker import passwords
from broker.certs import generate_dev_certs
from broker.dev_broker import BrokerStartError
from broker.launcher import MosquittoBroker, free_port, project_config_path
from broker.runtime_config import RuntimePaths, render_acl, render_runtime_config
from tests.fixtures.broker import Account, RunningMosquitto, connack_code
from tests.integration.mqtt_peer import SUCCESS, TIMEOUT, RecordingPeer, connected_peers

P = "cctv/v1"
ACCEPTED = (0, 16)  # PUBACK Success, or No matching subscribers (still accepted)
NOT_AUTHORIZED = 135
QUIET = 0.3  # how long "nothing arrives" is watched where no later message can prove it


class Peer(RecordingPeer):
    """A ``RecordingPeer`` speaking MQTT 5 to the session Mosquitto, plain or over TLS."""

    def __init__(
        self,
        mosquitto: RunningMosquitto,
        username: str | None,
        password: str | None,
        *,
        client_id: str | None = None,
        tls_ca: Path | None = None,
        trust_system_only: bool = False,
    ) -> None:
        use_tls = tls_ca is not None or trust_system_only
        super().__init__(
            mosquitto.host,
            mosquitto.tls_port if use_tls else mosquitto.port,
            username,
            password,
            client_id=client_id or f"{username or 'anon'}-{secrets.token_hex(3)}",
            protocol=mqtt.MQTTv5,
        )
        if use_tls:
            self.client.tls_set(ca_certs=str(tls_ca) if tls_ca else None)

    def connect(self, *, clean_start: bool = True, session_expiry: int = 0) -> int:
        """Connect and return the CONNACK reason code (refusals are returned, not raised)."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: untyped
        props.SessionExpiryInterval = session_expiry
        self.client.connect(
            self.host, self.port, keepalive=10, clean_start=clean_start, properties=props
        )
        return int(self._await_connack().value)


PeerFactory = Callable[..., Peer]


@pytest.fixture
def peer(mosquitto: RunningMosquitto) -> Iterator[PeerFactory]:
    """Make connected clients: ``peer(username)`` logs in with that account's password."""

    def new(username: str, **kwargs: Any) -> Peer:
        password = kwargs.pop("password", None) or mosquitto.account(username)
        return Peer(mosquitto, username, password, client_id=username, **kwargs)

    yield from connected_peers(new)


@pytest.fixture
def other_node(mosquitto: RunningMosquitto) -> Account:
    node_id = f"node-{secrets.token_hex(4)}"
    return Account(node_id, mosquitto.account(node_id))


# --- authentication -------------------------------------------------------------


def test_anonymous_connection_is_refused(mosquitto: RunningMosquitto) -> None:
    client = Peer(mosquitto, None, None)
    try:
        assert client.connect() == NOT_AUTHORIZED
    finally:
        client.close()


def test_wrong_password_is_refused(mosquitto: RunningMosquitto, node_account: Account) -> None:
    client = Peer(mosquitto, node_account.username, node_account.password + "x")
    try:
        # 134 Bad user name or password, or 135 Not authorized: either way, refused.
        assert client.connect() in (134, NOT_AUTHORIZED)
    finally:
        client.close()
    assert connack_code(mosquitto.host, mosquitto.port, node_account.username, "") != 0


def test_production_limits_reach_clients(
    mosquitto: RunningMosquitto, node_account: Account, peer: PeerFactory
) -> None:
    node = peer(node_account.username)
    assert node.connack_properties["MaximumPacketSize"] == 256 * 1024
    assert node.connack_properties["ReceiveMaximum"] == 100  # max_inflight_messages
    runtime = mosquitto.broker.runtime_config.read_text()
    assert "max_queued_messages 1000000" in runtime
    assert "/etc/cctv" not in runtime  # every production path was rewritten


def test_oversized_payload_is_refused(
    mosquitto: RunningMosquitto, node_account: Account, peer: PeerFactory
) -> None:
    cloud = peer("cctv-cloud")
    assert cloud.subscribe(f"{P}/{node_account.username}/#") == [1]
    node = peer(node_account.username)
    node.client.publish(f"{P}/{node_account.username}/heartbeat", b"x" * 300_000, qos=1)
    node.wait_for(lambda: node.disconnect_reason is not None, "disconnect")
    assert node.disconnect_reason is not None
    assert node.disconnect_reason.value == 149  # Packet too large
    assert cloud.topics() == []


# --- node confinement -----------------------------------------------------------------


def test_node_cannot_publish_into_another_nodes_subtree(
    node_account: Account, other_node: Account, peer: PeerFactory
) -> None:
    a, b = node_account.username, other_node.username
    cloud = peer("cctv-cloud")
    cloud.subscribe(f"{P}/{b}/#")
    node_b = peer(b)
    node_b.subscribe(f"{P}/{b}/commands")
    node_a = peer(a)

    assert node_a.publish(f"{P}/{b}/events/recording", b"forged") == NOT_AUTHORIZED
    assert node_a.publish(f"{P}/{b}/commands", b"forged") == NOT_AUTHORIZED

    # Later, allowed messages on the same topics: had the forged ones been let
    # through, they would have arrived before these.
    assert node_b.publish(f"{P}/{b}/events/recording", b"real") in ACCEPTED
    assert cloud.publish(f"{P}/{b}/commands", b"real") in ACCEPTED
    assert cloud.expect(f"{P}/{b}/events/recording").payload == b"real"
    assert node_b.expect(f"{P}/{b}/commands").payload == b"real"
    assert b"forged" not in [m.payload for m in cloud.messages + node_b.messages]


@pytest.mark.parametrize("suffix", ["schedules", "cameras", "commands", "acks", "other"])
def test_node_cannot_write_its_own_desired_state_or_unknown_topics(
    node_account: Account, peer: PeerFactory, suffix: str
) -> None:
    node = peer(node_account.username)
    assert node.publish(f"{P}/{node_account.username}/{suffix}") == NOT_AUTHORIZED


def test_node_cannot_publish_outside_the_prefix(node_account: Account, peer: PeerFactory) -> None:
    node = peer(node_account.username)
    assert node.publish(f"cctv/v2/{node_account.username}/heartbeat") == NOT_AUTHORIZED
    assert node.publish("$SYS/broker/forged") == NOT_AUTHORIZED


def test_node_reads_only_its_own_retained_schedules(
    node_account: Account, other_node: Account, peer: PeerFactory
) -> None:
    a, b = node_account.username, other_node.username
    cloud = peer("cctv-cloud")
    assert cloud.publish(f"{P}/{b}/schedules", b"b-schedules", retain=True) in ACCEPTED
    assert cloud.publish(f"{P}/{b}/cameras", b"b-cameras", retain=True) in ACCEPTED
    assert cloud.publish(f"{P}/{a}/schedules", b"a-schedules", retain=True) in ACCEPTED

    node_a = peer(a)
    # Direct and wildcard attempts at B's topics first; then A's own, whose
    # arrival shows the broker has finished delivering retained messages.
    node_a.subscribe(f"{P}/{b}/schedules", f"{P}/{b}/cameras", f"{P}/+/schedules", f"{P}/#")
    node_a.subscribe(f"{P}/{a}/schedules")
    assert node_a.expect(f"{P}/{a}/schedules").payload == b"a-schedules"
    time.sleep(QUIET)
    assert {topic.split("/")[2] for topic in node_a.topics()} == {a}


def test_node_publishes_its_own_reports_and_cloud_sees_them(
    node_account: Account, peer: PeerFactory
) -> None:
    a = node_account.username
    cloud = peer("cctv-cloud")
    assert cloud.subscribe(f"{P}/#") == [1]
    node = peer(a)
    reports = ["events/recording", "events/upload", "heartbeat", "status", "state", "replies"]
    for suffix in reports:
        assert node.publish(f"{P}/{a}/{suffix}", suffix.encode()) in ACCEPTED, suffix
    for suffix in reports:
        assert cloud.expect(f"{P}/{a}/{suffix}").payload == suffix.encode()


def test_cloud_publishes_retained_desired_state_to_the_node(
    node_account: Account, peer: PeerFactory
) -> None:
    a = node_account.username
    cloud = peer("cctv-cloud")
    for suffix in ("schedules", "cameras"):
        assert cloud.publish(f"{P}/{a}/{suffix}", suffix.encode(), retain=True) in ACCEPTED
    assert cloud.publish(f"{P}/{a}/acks", b'{"upto_seq":1}') in ACCEPTED  # not retained: lost
    node = peer(a)
    node.subscribe(f"{P}/{a}/schedules", f"{P}/{a}/cameras", f"{P}/{a}/acks")
    assert node.expect(f"{P}/{a}/schedules").retain
    assert node.expect(f"{P}/{a}/cameras").payload == b"cameras"
    assert cloud.publish(f"{P}/{a}/acks", b'{"upto_seq":2}') in ACCEPTED
    assert node.expect(f"{P}/{a}/acks").payload == b'{"upto_seq":2}'


# --- operator ---------------------------------------------------------------------


def test_operator_commands_and_reads_replies_and_status_only(
    node_account: Account, peer: PeerFactory
) -> None:
    a = node_account.username
    node = peer(a)
    node.subscribe(f"{P}/{a}/commands", f"{P}/{a}/schedules")
    operator = peer("cctv-operator")
    operator.subscribe(f"{P}/+/replies", f"{P}/+/status", f"{P}/+/events/#", f"{P}/+/heartbeat")

    assert operator.publish(f"{P}/{a}/commands", b"record") in ACCEPTED
    assert node.expect(f"{P}/{a}/commands").payload == b"record"

    assert node.publish(f"{P}/{a}/events/recording", b"event") in ACCEPTED
    assert node.publish(f"{P}/{a}/heartbeat", b"heartbeat") in ACCEPTED
    assert node.publish(f"{P}/{a}/status", b"online", retain=True) in ACCEPTED
    assert node.publish(f"{P}/{a}/replies", b"ok") in ACCEPTED
    assert operator.expect(f"{P}/{a}/status").payload == b"online"
    assert operator.expect(f"{P}/{a}/replies").payload == b"ok"
    # Other tests' nodes leave retained status behind; only this node's flow counts.
    mine = [topic for topic in operator.topics() if topic.split("/")[2] == a]
    assert mine == [f"{P}/{a}/status", f"{P}/{a}/replies"]

    assert operator.publish(f"{P}/{a}/schedules", b"forged", retain=True) == NOT_AUTHORIZED
    assert operator.publish(f"{P}/{a}/events/recording", b"forged") == NOT_AUTHORIZED
    assert operator.publish(f"{P}/{a}/commands", b"after") in ACCEPTED
    node.expect(f"{P}/{a}/commands", b"after")
    assert [m.payload for m in node.messages] == [b"record", b"after"]


# --- TLS ---------------------------------------------------------------------------


def test_tls_with_the_dev_ca_succeeds(mosquitto: RunningMosquitto, node_account: Account) -> None:
    client = Peer(mosquitto, node_account.username, node_account.password, tls_ca=mosquitto.ca_file)
    try:
        assert client.port == mosquitto.tls_port
        assert client.connect() == SUCCESS
        assert client.publish(f"{P}/{node_account.username}/heartbeat") in ACCEPTED
    finally:
        client.close()


def test_tls_without_trusting_the_dev_ca_fails(
    mosquitto: RunningMosquitto, node_account: Account
) -> None:
    client = Peer(mosquitto, node_account.username, node_account.password, trust_system_only=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        client.connect()


# --- password files and runtime accounts ------------------------------------------


def test_password_file_written_by_us_is_what_the_broker_reads(
    mosquitto: RunningMosquitto, node_account: Account
) -> None:
    stored = passwords.read_password_file(mosquitto.password_file)
    assert stored[node_account.username].startswith("$7$101$")
    assert passwords.verify_password(node_account.password, stored[node_account.username])
    assert (
        connack_code(mosquitto.host, mosquitto.port, node_account.username, node_account.password)
        == 0
    )
    # Still readable by the broker's user after our atomic rewrite.
    run_dir = mosquitto.broker.run_dir.stat()
    assert (mosquitto.password_file.stat().st_uid, mosquitto.password_file.stat().st_gid) == (
        run_dir.st_uid,
        run_dir.st_gid,
    )
    assert mosquitto.password_file.stat().st_mode & 0o777 == 0o640


def test_mosquitto_passwd_file_is_read_and_kept_by_us(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(path), "legacy-node", "s3cret-pw"],
        check=True,
        capture_output=True,
    )
    stored = passwords.read_password_file(path)
    assert passwords.verify_password("s3cret-pw", stored["legacy-node"])
    assert not passwords.verify_password("wrong", stored["legacy-node"])

    passwords.add_accounts(path, ["new-node"])
    assert passwords.list_accounts(path) == ["legacy-node", "new-node"]
    assert passwords.read_password_file(path)["legacy-node"] == stored["legacy-node"]


def test_account_added_at_runtime_connects_after_reload_and_removed_one_does_not(
    mosquitto: RunningMosquitto,
) -> None:
    name = f"node-{secrets.token_hex(4)}"
    password = passwords.add_accounts(mosquitto.password_file, [name])[name]
    # The broker reads the file only at start and on SIGHUP.
    assert connack_code(mosquitto.host, mosquitto.port, name, password) != 0
    mosquitto.broker.reload()
    mosquitto.wait_accepts(name, password)

    assert passwords.remove_accounts(mosquitto.password_file, [name]) == [name]
    mosquitto.broker.reload()
    deadline = time.monotonic() + TIMEOUT
    while connack_code(mosquitto.host, mosquitto.port, name, password) == 0:
        assert time.monotonic() < deadline, "removed account still accepted after reload"
        time.sleep(0.02)


def test_signal_reload_uses_the_pid_file(mosquitto: RunningMosquitto) -> None:
    name = f"node-{secrets.token_hex(4)}"
    password = passwords.add_accounts(mosquitto.password_file, [name])[name]
    pid_file = mosquitto.broker.paths.pid_file
    assert passwords.signal_reload(pid_file) == mosquitto.broker.pid
    mosquitto.wait_accepts(name, password)


# --- queues -------------------------------------------------------------------------


def test_offline_cloud_session_keeps_more_than_the_default_1000_messages(
    mosquitto: RunningMosquitto, node_account: Account, peer: PeerFactory
) -> None:
    a = node_account.username
    password = mosquitto.account("cctv-cloud")
    session_id = f"cctv-cloud-{secrets.token_hex(3)}"
    cloud = Peer(mosquitto, "cctv-cloud", password, client_id=session_id)
    assert cloud.connect(clean_start=True, session_expiry=300) == SUCCESS
    assert cloud.subscribe(f"{P}/{a}/heartbeat") == [1]
    cloud.close()

    count = 1500  # over Mosquitto's default max_queued_messages of 1000
    node = peer(a)
    infos = [node.client.publish(f"{P}/{a}/heartbeat", str(i), qos=1) for i in range(count)]
    for info in infos:
        info.wait_for_publish(TIMEOUT)

    cloud = Peer(mosquitto, "cctv-cloud", password, client_id=session_id)
    try:
        assert cloud.connect(clean_start=False, session_expiry=0) == SUCCESS
        cloud.expect(f"{P}/{a}/heartbeat", str(count - 1).encode())
        assert [int(m.payload) for m in cloud.messages] == list(range(count))
    finally:
        cloud.close()


# --- the launcher itself ------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="only root has a user to drop to")
def test_run_dir_the_broker_user_cannot_reach_falls_back_to_root(
    mosquitto: RunningMosquitto, tmp_path: Path
) -> None:
    # pytest's basetemp is 0700 root: the mosquitto user cannot traverse it.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    password = passwords.add_accounts(run_dir / "passwd", ["some-node"])["some-node"]
    with MosquittoBroker(run_dir, port=free_port()) as broker:
        assert broker.runs_as == "root"
        assert "user root" in broker.runtime_config.read_text()
        assert connack_code(broker.host, broker.port, "some-node", password) == 0


def test_start_failure_reports_the_brokers_own_error(
    mosquitto: RunningMosquitto, tmp_path: Path
) -> None:
    broker = MosquittoBroker(tmp_path / "run", port=mosquitto.port, start_timeout=3)
    with pytest.raises(BrokerStartError, match="Address already in use"):
        broker.start()
    assert not broker.running()


def test_acl_is_rendered_under_another_topic_prefix() -> None:
    template = (Path(passwords.__file__).with_name("acl")).read_text()
    rendered = render_acl(template, "acme/cctv")
    assert "topic readwrite acme/cctv/#" in rendered
    assert "pattern write acme/cctv/%u/events/#" in rendered
    assert "user cctv-operator" in rendered
    assert "cctv/v1/" not in "\n".join(
        line for line in rendered.splitlines() if not line.startswith("#")
    )
    for bad in ("", "a/+/b", "a/#", "/lead", "trail/", "%u", "a b"):
        with pytest.raises(ValueError, match="invalid topic prefix"):
            render_acl(template, bad)


def test_runtime_config_without_tls_drops_the_tls_listener(tmp_path: Path) -> None:
    paths = RuntimePaths(
        run_dir=tmp_path,
        password_file=tmp_path / "passwd",
        acl_file=tmp_path / "acl",
        pid_file=tmp_path / "pid",
        log_file=tmp_path / "log",
        tls=None,
    )
    rendered = render_runtime_config(
        project_config_path().read_text(), paths, port=1234, tls_port=None, bind="::1", run_as=None
    )
    directives = [line.split()[0] for line in rendered.splitlines() if not line.startswith("#")]
    assert [line for line in rendered.splitlines() if line.startswith("listener")] == [
        "listener 1234 ::1"
    ]
    assert "certfile" not in directives
    assert "user" not in directives
    assert directives.count("password_file") == 1
    assert f"password_file {tmp_path / 'passwd'}" in rendered


def test_dev_server_cert_names_loopback_and_extra_hostnames(tmp_path: Path) -> None:
    first = generate_dev_certs(tmp_path, ["broker.example", "10.0.0.7"])
    ca_before = first.ca_file.read_bytes()
    cert = x509.load_pem_x509_certificate(first.cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "broker.example"}
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "::1",
        "10.0.0.7",
    }
    assert first.key_file.stat().st_mode & 0o077 == 0  # private key not readable by others
    generate_dev_certs(tmp_path)
    assert first.ca_file.read_bytes() == ca_before  # clients keep trusting the same CA
