"""The cloud service as it runs: real `cctv cloud` processes against a real
Mosquitto (from mosquitto.conf), SQLite or PostgreSQL, and real `cctv edge`
nodes or simulated ones publishing with a node's own account.

Each test has a broker of its own (a stopped cloud's persistent session would
otherwise keep taking a share of the events); only provisioning, which must
write the session broker's password file, uses the session `mosquitto`."""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import google_crc32c
import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.engine import make_url

from broker.passwords import add_accounts
from schemas.addresses import MqttUrl
from schemas.codec import encode
from schemas.events import (
    Event,
    RecordingSegment,
    RecordingStarted,
    RecordingStopped,
    UploadCompleted,
    make_event,
)
from schemas.ids import new_id, utc_now
from schemas.status import (
    Heartbeat,
    NodeStatus,
    OutboxInfo,
    ReportedState,
    SystemInfo,
    UploadBacklog,
)
from schemas.topics import Channel
from tests.e2e.cloud_harness import (
    TOKEN,
    TOPICS,
    CloudProcess,
    OwnBroker,
    SimulatedNode,
    StatusWatcher,
    forget_session,
    wait_until,
)
from tests.e2e.edge_harness import EdgeProcess
from tests.fixtures.broker import RunningMosquitto
from tests.fixtures.gcs import GcsEmulator
from tests.fixtures.media import MjpegCameraFactory

KEEPALIVE_S = 5


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def broker() -> Iterator[OwnBroker]:
    """A Mosquitto for this test only."""
    own = OwnBroker()
    own.start()
    try:
        yield own
    finally:
        own.stop()


CloudFactory = Callable[..., CloudProcess]


@pytest.fixture
def clouds(broker: OwnBroker, tmp_path: Path) -> Iterator[CloudFactory]:
    """Factory: `clouds(name="cloud", **CloudProcess kwargs)` -> a started cloud process
    that already receives the fleet's events; all are stopped at the end."""
    started: list[CloudProcess] = []

    def make(name: str = "cloud", **kwargs: Any) -> CloudProcess:
        process = CloudProcess(tmp_path / name, broker.url("cctv-cloud"), **kwargs)
        started.append(process)
        process.start()
        process.wait_subscribed(broker)
        return process

    try:
        yield make
    finally:
        for process in started:
            process.stop()


@pytest.fixture
def cloud(clouds: CloudFactory) -> CloudProcess:
    """One cloud process on SQLite."""
    return clouds()


EdgeFactory = Callable[..., EdgeProcess]


@pytest.fixture
def edges(broker: OwnBroker, tmp_path: Path) -> Iterator[EdgeFactory]:
    """Factory: `edges(node_id, storage=None)` -> a real `cctv edge` (not started yet);
    every one is stopped at the end."""
    made: list[EdgeProcess] = []

    def make(node_id: str, storage: Path | None = None) -> EdgeProcess:
        edge = EdgeProcess(tmp_path / f"edge-{node_id}", node_id, broker.url(node_id),
                           storage or tmp_path / "storage")
        made.append(edge)
        return edge

    try:
        yield make
    finally:
        for edge in made:
            if edge.process is not None:
                edge.stop()


def register(cloud: CloudProcess, node_id: str, cameras: dict[str, str]) -> None:
    cloud.post("/api/nodes", {"node_id": node_id})
    for camera_id, url in cameras.items():
        cloud.post("/api/cameras", {"camera_id": camera_id, "node_id": node_id, "url": url})


def record_continuously(cloud: CloudProcess, camera_id: str, segment_seconds: int = 2) -> None:
    cloud.post("/api/schedules", {"schedule_id": f"always-{camera_id}",
                                  "camera_ids": [camera_id], "kind": "continuous",
                                  "segment_seconds": segment_seconds})


def wait_online(cloud: CloudProcess, node_id: str, timeout: float = 30,
                session: int | None = None) -> dict[str, Any]:
    def online() -> dict[str, Any] | None:
        node = cloud.node_if_known(node_id)
        if node and node["online"] and (session is None or node["session"] == session):
            return node
        return None

    found: dict[str, Any] = wait_until(online, timeout, f"{node_id} online")
    return found


def wait_applied(cloud: CloudProcess, node_id: str, timeout: float = 30) -> dict[str, Any]:
    """The node row once the node applied every desired revision."""
    def applied() -> dict[str, Any] | None:
        node = cloud.node(node_id)
        ok = (node["schedules_revision_applied"] == node["schedules_revision_desired"]
              and node["cameras_revision_applied"] == node["cameras_revision_desired"])
        return node if ok else None

    found: dict[str, Any] = wait_until(applied, timeout, f"{node_id} to apply its revisions")
    return found


def uploaded_segment(cloud: CloudProcess, camera_id: str,
                     newest: bool = False) -> dict[str, Any] | None:
    """An uploaded segment of the camera: the first found, or the newest."""
    found = [segment
             for recording in cloud.get("/api/recordings", camera_id=camera_id)["items"]
             for segment in recording["segments"]
             if segment["upload_state"] == "uploaded" and segment["uri"]]
    if not found:
        return None
    chosen: dict[str, Any] = max(found, key=lambda s: s["start"]) if newest else found[0]
    return chosen


def crc32c_of(data: bytes) -> str:
    """Cloud Storage's encoding: base64 of the big-endian 4 bytes."""
    return base64.b64encode(int(google_crc32c.value(data)).to_bytes(4, "big")).decode()


def heartbeat_payload(ts: datetime, session: int = 1) -> bytes:
    return encode(Heartbeat(
        ts=ts, session=session, uptime_s=1.0, version="0.1.0",
        system=SystemInfo(hostname="box", os="linux", ip="10.0.0.2"),
        disk_free_bytes=10, disk_total_bytes=100,
        upload_backlog=UploadBacklog(count=0, bytes=0, oldest_s=0.0),
        outbox=OutboxInfo(depth=0, oldest_s=0.0), schedules_revision=0, cameras_revision=0,
        cameras=[]))


def psycopg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


def stored_event_ids(database_url: str, node_ids: list[str]) -> list[tuple[str, int, str]]:
    """(node_id, seq, event_id) of every stored event of these nodes."""
    with psycopg.connect(psycopg_dsn(database_url)) as db:
        rows = db.execute("SELECT node_id, seq, event_id FROM event WHERE node_id = ANY(%s) "
                          "ORDER BY node_id, seq", (node_ids,)).fetchall()
    return [(str(n), int(s), str(e)) for n, s, e in rows]


# --- idempotent ingest ------------------------------------------------------------------


def recording_events(node: SimulatedNode, camera_id: str, segments: int) -> list[Event]:
    """A whole recording as a node reports it: started, segments, uploads, stopped."""
    recording_id = new_id()
    t0 = utc_now() - timedelta(minutes=5)

    def event(type_: str, data: Any) -> Event:
        node.seq += 1
        return make_event(type_, event_id=new_id(), node_id=node.node_id, seq=node.seq,
                          ts=t0 + timedelta(seconds=node.seq), data=data)

    events = [event("recording.started", RecordingStarted(
        recording_id=recording_id, camera_id=camera_id, trigger="schedule",
        schedule_id="always"))]
    segment_ids = [new_id() for _ in range(segments)]
    for n, segment_id in enumerate(segment_ids):
        events.append(event("recording.segment", RecordingSegment(
            recording_id=recording_id, segment_id=segment_id, camera_id=camera_id,
            start=t0 + timedelta(seconds=2 * n), end=t0 + timedelta(seconds=2 * n + 2),
            bytes=1000 + n, crc32c="AAAAAA==", container="mp4", codec="mjpeg", width=640,
            height=360, frames=20, lost_packets=0)))
    for n, segment_id in enumerate(segment_ids):
        events.append(event("upload.completed", UploadCompleted(
            segment_id=segment_id, uri=f"file:///srv/cctv/{segment_id}.mp4", bytes=1000 + n,
            crc32c="AAAAAA==")))
    events.append(event("recording.stopped", RecordingStopped(
        recording_id=recording_id, camera_id=camera_id, reason="schedule_ended",
        segments=segments)))
    return events


@pytest.mark.timeout(60)
def test_a_replayed_outbox_changes_nothing_and_is_acked_up_to_the_gapless_seq(
        broker: OwnBroker, cloud: CloudProcess) -> None:
    """Events sent again by the node (its outbox after a reconnect) store nothing
    twice and change no recording; the node still gets an EventAck for the highest
    seq stored without a gap, never for one beyond a hole."""
    node = SimulatedNode(broker, "site-replay")
    try:
        events = recording_events(node, "cam-1", segments=3)
        recording_id = events[0].data.recording_id  # type: ignore[union-attr]
        last = len(events)
        node.publish(events)
        assert node.wait_ack(last) == last
        stored_events = cloud.get("/api/events", node_id=node.node_id, limit=1000)
        recording = cloud.get(f"/api/recordings/{recording_id}")
        assert stored_events["total"] == last
        assert [s["upload_state"] for s in recording["segments"]] == ["uploaded"] * 3
        duplicates = cloud.metric("cctv_ingest_events_duplicate_total")

        node.clear_acks()
        node.publish(events)
        assert node.wait_ack(last) == last, "a replay is acknowledged again"
        wait_until(lambda: cloud.metric("cctv_ingest_events_duplicate_total")
                   >= duplicates + last, 10, "the replay to be counted as duplicates")
        assert cloud.get("/api/events", node_id=node.node_id, limit=1000) == stored_events
        assert cloud.get(f"/api/recordings/{recording_id}") == recording
        assert cloud.node(node.node_id)["seq_gaps"] == 0

        # A hole: seq last+1 is missing, last+2 arrives. The ack must stay at `last`.
        missing, beyond = node.next_event(), node.next_event()
        node.clear_acks()
        node.publish([beyond])
        assert node.wait_ack(last) == last
        time.sleep(0.5)
        assert max(node.acks) == last, "never acked beyond a hole"
        assert cloud.node(node.node_id)["seq_gaps"] == 1
        # The replay once more, with the hole still open: still `last`.
        node.clear_acks()
        node.publish([*events, beyond])
        assert node.wait_ack(last) == last
        time.sleep(0.5)
        assert max(node.acks) == last
        # The hole filled: acked up to the end, no gap left.
        node.publish([missing])
        assert node.wait_ack(beyond.seq) == beyond.seq
        assert cloud.node(node.node_id)["seq_gaps"] == 0
        assert cloud.get("/api/events", node_id=node.node_id)["total"] == last + 2
    finally:
        node.close()


@pytest.mark.timeout(60)
def test_a_database_error_mid_stream_leads_to_redelivery_not_loss(
        broker: OwnBroker, clouds: CloudFactory, postgres_database_url: str) -> None:
    """With the event table gone for a few seconds (renamed from another
    connection), the failed batches are not acknowledged to the broker; the
    cloud reconnects, gets them again and in the end every event published is
    stored exactly once, and the node acked up to its last seq."""
    cloud = clouds(database_url=postgres_database_url)
    node = SimulatedNode(broker, "site-dberror")
    published: list[Event] = []

    def send(count: int) -> None:
        batch = [node.next_event() for _ in range(count)]
        published.extend(batch)
        node.publish(batch)

    try:
        send(100)
        assert node.wait_ack(100) == 100
        with psycopg.connect(psycopg_dsn(postgres_database_url), autocommit=True) as db:
            db.execute("SET lock_timeout = '5s'")
            db.execute("ALTER TABLE event RENAME TO event_broken")
            try:
                send(100)
                wait_until(lambda: cloud.metric("cctv_ingest_batches_failed_total") > 0, 15,
                           "a batch to fail while the table is gone")
                send(50)
                time.sleep(1)
            finally:
                db.execute("ALTER TABLE event_broken RENAME TO event")
        send(50)
        assert node.wait_ack(300, timeout=40) == 300, cloud.log_tail()
        stored = stored_event_ids(postgres_database_url, [node.node_id])
    finally:
        node.close()
    assert [seq for _, seq, _ in stored] == list(range(1, 301))
    assert sorted(e for _, _, e in stored) == sorted(e.event_id for e in published)
    assert cloud.metric("cctv_ingest_batches_failed_total") > 0
    assert cloud.node(node.node_id)["seq_gaps"] == 0


FAIL_FIRST_SEGMENT_INSERT = """
CREATE SEQUENCE injected_failures;
CREATE FUNCTION fail_first_segment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- nextval is not rolled back with the transaction: only the first insert fails,
    -- slowly enough for the node's next message to reach the cloud meanwhile.
    IF nextval('injected_failures') = 1 THEN
        PERFORM pg_sleep(0.7);
        RAISE EXCEPTION 'injected failure';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fail_first_segment BEFORE INSERT ON segment
    FOR EACH ROW EXECUTE FUNCTION fail_first_segment();
"""


@pytest.mark.timeout(90)
def test_an_upload_committed_before_its_redelivered_segment_is_not_lost(
        broker: OwnBroker, clouds: CloudFactory, postgres_database_url: str) -> None:
    """The batch holding `recording.segment` fails once; the `upload.completed`
    published right after it is committed first. When the segment comes again,
    the upload that arrived before it applies: the segment ends up uploaded."""
    cloud = clouds(database_url=postgres_database_url)
    with psycopg.connect(psycopg_dsn(postgres_database_url), autocommit=True) as db:
        db.execute(FAIL_FIRST_SEGMENT_INSERT)
    node = SimulatedNode(broker, "site-reorder")
    try:
        events = recording_events(node, "cam-1", segments=1)
        started, segment, upload, stopped = events
        recording_id = started.data.recording_id  # type: ignore[union-attr]
        node.publish([started, segment])
        time.sleep(0.2)  # inside the failing insert's sleep: a batch of its own
        node.publish([upload, stopped])
        assert node.wait_ack(len(events), timeout=40) == len(events), cloud.log_tail()
    finally:
        node.close()
    assert cloud.metric("cctv_ingest_batches_failed_total") > 0, "the failure was injected"
    [stored] = cloud.get(f"/api/recordings/{recording_id}")["segments"]
    assert stored["upload_state"] == "uploaded"
    assert stored["uri"] == upload.data.uri  # type: ignore[union-attr]



@pytest.mark.timeout(90)
def test_two_cloud_processes_on_one_database_split_the_event_stream(
        broker: OwnBroker, clouds: CloudFactory, postgres_database_url: str) -> None:
    """Two `cctv cloud` processes (own client ids and HTTP ports, one PostgreSQL)
    share the event subscription: 2,000 events from four nodes are all stored
    once, both processes stored some, and every node is acked to its last seq.
    Both get every heartbeat, and each is logged once."""
    first = clouds("cloud-a", database_url=postgres_database_url, client_id="cctv-cloud-a")
    second = clouds("cloud-b", database_url=postgres_database_url, client_id="cctv-cloud-b")
    nodes = [SimulatedNode(broker, f"site-split-{n}") for n in range(4)]
    per_node, beats = 500, 5
    try:
        published = {node.node_id: [node.next_event() for _ in range(per_node)]
                     for node in nodes}
        infos = [info for node in nodes for info in node.publish(published[node.node_id],
                                                                  wait=False)]
        for node in nodes:
            for n in range(beats):
                node.publish_raw(TOPICS.topic(node.node_id, Channel.HEARTBEAT),
                                 heartbeat_payload(utc_now() + timedelta(seconds=n)))
        for info in infos:
            info.wait_for_publish(30)
        node_ids = [node.node_id for node in nodes]
        wait_until(lambda: len(stored_event_ids(postgres_database_url, node_ids))
                   >= 4 * per_node, 45, "every event stored", interval=0.5)
        acks = {node.node_id: node.wait_ack(per_node, timeout=10) for node in nodes}
        stored = stored_event_ids(postgres_database_url, node_ids)
        for cloud in (first, second):
            wait_until(lambda c=cloud: c.metric("cctv_ingest_messages_total",  # type: ignore[misc]
                                                channel="heartbeat") >= 4 * beats,
                       15, "every heartbeat to reach both processes")
    finally:
        for node in nodes:
            node.close()
    # Heartbeats go to both processes (presence must not hang on one of them)
    # and are logged once.
    with psycopg.connect(psycopg_dsn(postgres_database_url)) as db:
        logged = db.execute("SELECT node_id, count(*) FROM heartbeat_log "
                            "WHERE node_id = ANY(%s) GROUP BY node_id",
                            ([node.node_id for node in nodes],)).fetchall()
    assert dict(logged) == {node.node_id: beats for node in nodes}
    assert len(stored) == 4 * per_node
    assert sorted(e for _, _, e in stored) == sorted(
        e.event_id for events in published.values() for e in events)
    for node_id in node_ids:
        assert [s for n, s, _ in stored if n == node_id] == list(range(1, per_node + 1))
    by_first = first.metric("cctv_ingest_events_stored_total")
    by_second = second.metric("cctv_ingest_events_stored_total")
    assert by_first > 0
    assert by_second > 0
    assert by_first + by_second == 4 * per_node
    assert acks == dict.fromkeys(node_ids, per_node), "each node acked to its last seq"
    for node_id in node_ids:
        assert first.node(node_id)["seq_gaps"] == 0


@pytest.mark.timeout(60)
def test_a_throwaway_cloud_run_leaves_no_share_of_the_events_behind(
        broker: OwnBroker, clouds: CloudFactory) -> None:
    """A cloud run with CCTV_EPHEMERAL_SESSION (a random client id, for tests and
    throwaway runs) must not stay a member of the shared event subscription once
    it has stopped: the cloud that runs next gets every event, at once."""
    clouds("throwaway", CCTV_EPHEMERAL_SESSION="true").stop()
    cloud = clouds("cloud")
    node = SimulatedNode(broker, "site-after-throwaway")
    try:
        node.publish([node.next_event() for _ in range(20)])
        acked = node.wait_ack(20, timeout=10)
    finally:
        node.close()
    stored = cloud.get("/api/events", node_id=node.node_id)["total"]
    assert (acked, stored) == (20, 20), "events queued for a stopped throwaway session"


# --- presence -----------------------------------------------------------------------------


def vanish(cloud: CloudProcess, edge: EdgeProcess, node_id: str,
           how: signal.Signals) -> float:
    """Send `how` to the running edge node; returns the seconds until the API
    showed it offline."""
    assert edge.process is not None
    time.sleep(1)  # a steady connection: past the first heartbeats
    edge.process.send_signal(how)
    gone = time.monotonic()
    wait_until(lambda: not cloud.node(node_id)["online"], 1.5 * KEEPALIVE_S + 10,
               f"the node to show offline after {how.name}", interval=0.05)
    return time.monotonic() - gone


@pytest.mark.timeout(120)
def test_a_vanished_node_is_offline_within_1_5_keepalives_and_a_late_will_is_ignored(
        broker: OwnBroker, cloud: CloudProcess, edges: EdgeFactory) -> None:
    """A real edge node (keepalive 5 s) killed with -9, or frozen (SIGSTOP: not
    even a FIN, as when power or network is cut), shows offline in the API within
    1.5 x keepalive. Killed, the broker's Will says so at once; frozen, the
    cloud notices the silence itself, since Mosquitto 2.0.11 checks keepalives
    only every 5 s (7-13 s measured for 1.5 x 5 s). Once the node is back with a
    newer session, a stale offline status from an older session leaves it online."""
    node_id = "site-vanish"
    watcher = StatusWatcher(broker, node_id)
    edge = edges(node_id)
    try:
        edge.start(CCTV_KEEPALIVE_S=str(KEEPALIVE_S))
        first = wait_online(cloud, node_id)
        killed_s = vanish(cloud, edge, node_id, signal.SIGKILL)
        edge.kill()
        # On one host the kernel closes a killed process's socket: the Will is immediate.
        assert killed_s < 1, f"the cloud took {killed_s:.2f} s to show a killed node offline"
        offline = cloud.get("/api/nodes", online="false")["items"]
        assert node_id in [n["node_id"] for n in offline]

        edge.start(CCTV_KEEPALIVE_S=str(KEEPALIVE_S))
        wait_online(cloud, node_id, session=first["session"] + 1)
        frozen_at = time.monotonic()
        frozen_s = vanish(cloud, edge, node_id, signal.SIGSTOP)
        # The last message came at most one keepalive before the freeze, and the
        # cloud looks every 0.5 s: shown within 1.5 x keepalive of it, with the
        # API poll's and this box's latency on top. (The broker's Will counts from
        # the same last message and sometimes wins the race; it alone took 7-13 s.)
        assert frozen_s <= 1.5 * KEEPALIVE_S + 1, \
            f"a frozen node showed offline only after {frozen_s:.1f} s"
        # The broker's Will comes later and changes nothing.
        watcher.wait_offline(frozen_at, 1.5 * KEEPALIVE_S + 10)
        assert cloud.node(node_id)["online"] is False
        edge.kill()

        edge.start(CCTV_KEEPALIVE_S=str(KEEPALIVE_S))
        current = wait_online(cloud, node_id, session=first["session"] + 2)
    finally:
        watcher.close()
    statuses = cloud.metric("cctv_ingest_messages_total", channel="status")
    late_will = NodeStatus(state="offline", session=current["session"] - 1, ts=utc_now(),
                           version="0.0.0")
    impostor = SimulatedNode(broker, node_id, client_id=f"{node_id}-late-will")
    try:
        impostor.publish_raw(TOPICS.topic(node_id, Channel.STATUS), encode(late_will),
                             retain=True)
    finally:
        impostor.close()
    wait_until(lambda: cloud.metric("cctv_ingest_messages_total", channel="status")
               > statuses, 10, "the late Will to be ingested")
    after = cloud.node(node_id)
    assert after["online"] is True, "a Will from an older session must not win"
    assert after["session"] == current["session"]


@pytest.mark.timeout(90)
def test_a_deleted_node_is_not_listed_again_from_its_retained_status(
        broker: OwnBroker, clouds: CloudFactory) -> None:
    """Deleting a node clears its retained status and state too: neither the
    cloud that deleted it nor one subscribing afterwards lists it again, and
    the empty retained messages are no bad input."""
    cloud = clouds()
    node = SimulatedNode(broker, "site-gone")
    try:
        node.publish_raw(TOPICS.topic(node.node_id, Channel.STATUS), encode(NodeStatus(
            state="online", session=1, ts=utc_now(), version="0.1.0", keepalive_s=60)),
            retain=True)
        node.publish_raw(TOPICS.topic(node.node_id, Channel.STATE), encode(ReportedState(
            schedules_revision=0, cameras_revision=0, ts=utc_now())), retain=True)
        wait_online(cloud, node.node_id)
    finally:
        node.close()
    rejected = cloud.metric("cctv_ingest_rejected_total", reason="payload")
    assert cloud.api.delete(f"/api/nodes/{node.node_id}").status_code == 204
    wait_until(lambda: cloud.metric("cctv_ingest_cleared_total") >= 2, 10,
               "the cleared status and state to come back to ingest")
    assert cloud.metric("cctv_ingest_rejected_total", reason="payload") == rejected
    later = clouds("later")  # its own database; subscribes after the delete
    time.sleep(1)  # retained messages come right after the subscription
    assert later.metric("cctv_ingest_messages_total", channel="status") == 0
    for each in (cloud, later):
        assert each.node_if_known(node.node_id) is None


@pytest.mark.timeout(150)
def test_a_node_whose_data_dir_was_wiped_is_online_and_loses_no_event(
        cloud: CloudProcess, edges: EdgeFactory, mjpeg_camera: MjpegCameraFactory) -> None:
    """A node's disk replaced (data dir wiped, same node id) numbers its events
    from 1 again under a new outbox and starts a session above the old ones: the
    cloud shows it online, stores every one of its new events (none taken for a
    duplicate of the old seqs) and acks them, so its outbox empties."""
    node_id = "site-wiped"
    register(cloud, node_id, {"cam-1": mjpeg_camera().url})
    record_continuously(cloud, "cam-1")
    edge = edges(node_id)
    edge.start()
    before = wait_until(lambda: uploaded_segment(cloud, "cam-1"), 45, "a first segment")
    assert edge.stop() == 0
    old = cloud.node(node_id)
    old_events = cloud.get("/api/events", node_id=node_id, limit=1000)["total"]

    def online_again() -> bool:
        node = cloud.node(node_id)
        return bool(node["online"] and node["session"] > old["session"])

    def new_segment() -> bool:
        newest = uploaded_segment(cloud, "cam-1", newest=True)
        return newest is not None and newest["segment_id"] != before["segment_id"]

    shutil.rmtree(edge.data_dir)
    edge.start()
    wait_until(online_again, 30, "the wiped node to show online")
    wait_until(new_segment, 45, "a segment from the new disk")
    assert edge.stop() == 0
    with sqlite3.connect(edge.data_dir / "outbox.db") as db:
        (last_seq,) = db.execute("SELECT value FROM counters WHERE name='last_seq'").fetchone()
        (outbox_id,) = db.execute("SELECT value FROM meta WHERE name='outbox_id'").fetchone()
        (left,) = db.execute("SELECT count(*) FROM outbox").fetchone()
    events = cloud.get("/api/events", node_id=node_id, limit=1000)
    fresh = sorted(e["seq"] for e in events["items"] if e.get("outbox_id") == outbox_id)
    assert fresh == list(range(1, last_seq + 1)), "every event of the new disk stored"
    assert events["total"] == old_events + last_seq
    assert left == 0, "every event acked, for the node's own outbox"
    assert cloud.node(node_id)["seq_gaps"] == 0
    assert "ack.other_outbox" not in edge.log()


# --- desired state ------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_a_schedule_changed_twice_while_the_node_is_offline_converges_to_the_latest(
        cloud: CloudProcess, edges: EdgeFactory, mjpeg_camera: MjpegCameraFactory) -> None:
    """The node is stopped, its schedule replaced twice through the API; after
    it starts again it applies the latest revision and holds the latest content."""
    node_id = "site-offline-edit"
    register(cloud, node_id, {"cam-1": mjpeg_camera().url})
    start = utc_now() + timedelta(days=1)

    def schedule(hours: int) -> dict[str, Any]:
        return {"schedule_id": "tomorrow", "camera_ids": ["cam-1"], "kind": "once",
                "start": start.isoformat(), "end": (start + timedelta(hours=hours)).isoformat()}

    cloud.post("/api/schedules", schedule(1))
    edge = edges(node_id)
    edge.start()
    before = wait_applied(cloud, node_id)
    assert edge.stop() == 0
    wait_until(lambda: not cloud.node(node_id)["online"], 10, "a clean goodbye")

    cloud.put("/api/schedules/tomorrow", schedule(2))
    cloud.put("/api/schedules/tomorrow", schedule(3))
    desired = cloud.node(node_id)["schedules_revision_desired"]
    assert desired == before["schedules_revision_desired"] + 2
    assert cloud.node(node_id)["schedules_revision_applied"] < desired

    edge.start()
    after = wait_applied(cloud, node_id)
    assert after["schedules_revision_applied"] == desired
    with httpx.Client(base_url=edge.api, timeout=5) as local:
        # The status snapshot is rebuilt once a tick: it may lag the applied document.
        status = wait_until(lambda: (s := _get_json(local, "/status"))
                            and s["schedules_revision"] == desired and s, 10,
                            f"the node's local status to show revision {desired}")
        applied = local.get("/schedules").json()
    assert status["schedules_revision"] == desired
    assert applied["revision"] == desired
    (held,) = applied["schedules"]
    assert datetime.fromisoformat(held["end"]) == start + timedelta(hours=3)


def _get_json(client: httpx.Client, path: str) -> Any:
    try:
        response = client.get(path)
    except httpx.HTTPError:
        return None
    if response.status_code != 200 or response.json().get("starting"):
        return None
    return response.json()


# --- commands -----------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_commands_through_the_api_reach_a_real_node_and_every_outcome_is_an_answer(
        cloud: CloudProcess, edges: EdgeFactory, mjpeg_camera: MjpegCameraFactory) -> None:
    """POST /api/commands: an accepted `record` answers ok with its end time; a
    refused one (unknown camera) is still a 200 reply with ok false; the same
    command id is answered again without running twice; a node that never
    answers is a 504 after timeout_s."""
    node_id = "site-commands"
    register(cloud, node_id, {"door": mjpeg_camera().url})
    cloud.post("/api/nodes", {"node_id": "site-silent"})
    edge = edges(node_id)
    edge.start()
    wait_applied(cloud, node_id)

    sent = utc_now()
    command_id = new_id()
    record = {"node_id": node_id, "command": "record", "command_id": command_id,
              "camera_id": "door", "duration_s": 30, "timeout_s": 10}
    response = cloud.api.post("/api/commands", json=record)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["command_id"] == command_id
    assert reply["ok"] is True
    until = datetime.fromisoformat(reply["result"]["until"])
    assert sent + timedelta(seconds=29) <= until <= utc_now() + timedelta(seconds=31)

    again = cloud.api.post("/api/commands", json=record)
    assert again.status_code == 200
    assert again.json() == reply, "a command id seen before gets the same reply"

    refused = cloud.api.post("/api/commands", json={
        "node_id": node_id, "command": "record", "camera_id": "no-such-camera",
        "duration_s": 5, "timeout_s": 10})
    assert refused.status_code == 200, refused.text
    assert refused.json()["ok"] is False
    assert "unknown camera" in refused.json()["error"]

    began = time.monotonic()
    silent = cloud.api.post("/api/commands", json={
        "node_id": "site-silent", "command": "resync", "timeout_s": 2})
    waited = time.monotonic() - began
    assert silent.status_code == 504, silent.text
    assert 2 <= waited < 4, f"answered after {waited:.1f} s"

    unknown = cloud.api.post("/api/commands", json={
        "node_id": "site-nobody", "command": "resync", "timeout_s": 2})
    assert unknown.status_code == 404

    # The manual recording the command asked for is actually running.
    started = wait_until(lambda: [r for r in cloud.get("/api/recordings", camera_id="door")
                                  ["items"] if r["trigger"] == "manual"],
                         20, "the manual recording to be reported")
    assert started[0]["command_id"] == command_id


@pytest.mark.timeout(60)
def test_a_reply_to_an_api_command_is_recorded_against_the_command(
        broker: OwnBroker, cloud: CloudProcess) -> None:
    """The command row the API wrote when it sent a command gets the node's reply
    and when it came, so what was asked and what was answered stay together."""
    node = SimulatedNode(broker, "site-replier")
    try:
        node.answer_commands()
        cloud.post("/api/nodes", {"node_id": node.node_id})
        response = cloud.api.post("/api/commands", json={
            "node_id": node.node_id, "command": "resync", "timeout_s": 10})
    finally:
        node.close()
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["ok"] is True
    assert reply["result"] == {"answered": True}
    with sqlite3.connect(cloud.database) as db:
        row = db.execute("SELECT node_id, reply, replied_at FROM command WHERE command_id = ?",
                         (reply["command_id"],)).fetchone()
    assert row is not None, "the API stored the command it sent"
    node_id, stored_reply, replied_at = row
    assert node_id == node.node_id
    # A JSON column holds SQL NULL or the text 'null' for "no reply".
    assert json.loads(stored_reply or "null") == reply, "the reply is noted against its command"
    assert replied_at is not None


# --- live stream and playback ---------------------------------------------------------------


@pytest.mark.timeout(90)
def test_the_event_stream_delivers_segments_as_they_are_stored(
        cloud: CloudProcess, edges: EdgeFactory, mjpeg_camera: MjpegCameraFactory) -> None:
    """GET /api/stream with ?token= (as EventSource sends it) receives a
    `recording.segment` while a node records, and the segment it announces is
    already in the API; a wrong or missing token is 401."""
    wrong = httpx.get(f"{cloud.base_url}/api/stream", params={"token": "wrong"}, timeout=5)
    assert wrong.status_code == 401
    missing = httpx.get(f"{cloud.base_url}/api/stream", timeout=5)
    assert missing.status_code == 401

    node_id = "site-stream"
    register(cloud, node_id, {"cam-1": mjpeg_camera().url})
    received: list[dict[str, Any]] = []
    opened = threading.Event()
    failure: list[Exception] = []

    def listen() -> None:
        try:
            with httpx.stream("GET", f"{cloud.base_url}/api/stream",
                              params={"token": TOKEN, "node_id": node_id},
                              timeout=httpx.Timeout(45)) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                event_name = ""
                for line in response.iter_lines():
                    opened.set()
                    if line.startswith("event: "):
                        event_name = line.removeprefix("event: ")
                    elif line.startswith("data: ") and event_name == "recording.segment":
                        received.append(json.loads(line.removeprefix("data: ")))
                        return
        except (httpx.HTTPError, AssertionError, ValueError) as exc:  # for the test thread
            failure.append(exc)
        finally:
            opened.set()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert opened.wait(10), "the stream opened"
    record_continuously(cloud, "cam-1")
    edge = edges(node_id)
    edge.start()
    listener.join(45)
    assert not failure, failure
    assert received, "a recording.segment event arrived on the stream"
    (segment,) = received
    assert segment["node_id"] == node_id
    assert segment["type"] == "recording.segment"
    assert segment["data"]["camera_id"] == "cam-1"
    recording = cloud.get(f"/api/recordings/{segment['data']['recording_id']}")
    assert segment["data"]["segment_id"] in [s["segment_id"] for s in recording["segments"]]


@pytest.mark.timeout(90)
def test_segment_media_is_served_from_file_storage(
        broker: OwnBroker, clouds: CloudFactory, edges: EdgeFactory,
        mjpeg_camera: MjpegCameraFactory, tmp_path: Path) -> None:
    """GET /api/segments/{id}/media streams a file:// segment's MP4 (the bytes
    the node uploaded, crc32c as reported); no token is 401, an unknown id 404."""
    storage = tmp_path / "storage"
    cloud = clouds(CCTV_STORAGE_URL=storage.as_uri())
    node_id = "site-playback"
    register(cloud, node_id, {"cam-1": mjpeg_camera().url})
    record_continuously(cloud, "cam-1")
    edges(node_id, storage).start()
    segment = wait_until(lambda: uploaded_segment(cloud, "cam-1"), 40, "an uploaded segment")
    assert segment["uri"].startswith("file:///")
    on_disk = Path(unquote(urlsplit(segment["uri"]).path)).read_bytes()

    path = f"/api/segments/{segment['segment_id']}/media"
    by_query = httpx.get(f"{cloud.base_url}{path}", params={"token": TOKEN}, timeout=10)
    assert by_query.status_code == 200, by_query.text
    assert by_query.headers["content-type"] == "video/mp4"
    assert by_query.content[4:8] == b"ftyp"
    assert by_query.content == on_disk
    assert len(by_query.content) == segment["bytes"]
    assert crc32c_of(by_query.content) == segment["crc32c"]
    assert cloud.api.get(path).content == on_disk  # the header works too

    assert httpx.get(f"{cloud.base_url}{path}", timeout=10).status_code == 401
    assert httpx.get(f"{cloud.base_url}{path}", params={"token": "nope"},
                     timeout=10).status_code == 401
    assert cloud.api.get("/api/segments/no-such-segment/media").status_code == 404


@pytest.mark.timeout(90)
def test_segment_media_is_streamed_from_gcs_when_urls_cannot_be_signed(
        broker: OwnBroker, clouds: CloudFactory, edges: EdgeFactory,
        mjpeg_camera: MjpegCameraFactory, gcs_env: GcsEmulator) -> None:
    """The node uploads to Cloud Storage (the emulator, which cannot sign URLs):
    the cloud streams the object itself, byte for byte."""
    bucket = gcs_env.bucket()
    storage_url = f"gs://{bucket.name}/fleet"
    cloud = clouds(CCTV_STORAGE_URL=storage_url)
    node_id = "site-gcs-playback"
    register(cloud, node_id, {"cam-1": mjpeg_camera().url})
    record_continuously(cloud, "cam-1")
    edge = edges(node_id)
    edge.start(CCTV_STORAGE_URL=storage_url)
    segment = wait_until(lambda: uploaded_segment(cloud, "cam-1"), 45, "an uploaded segment")
    prefix = f"gs://{bucket.name}/fleet/{node_id}/cam-1/"
    assert segment["uri"].startswith(prefix)
    stored = bucket.blob(segment["uri"].removeprefix(f"gs://{bucket.name}/")).download_as_bytes()

    media = cloud.api.get(f"/api/segments/{segment['segment_id']}/media")
    assert media.status_code == 200, media.text
    assert media.headers["content-type"] == "video/mp4"
    assert media.content[4:8] == b"ftyp"
    assert media.content == stored
    assert crc32c_of(media.content) == segment["crc32c"]


# --- provisioning -------------------------------------------------------------------------


def connack(url: MqttUrl, client_id: str, timeout: float = 5.0) -> int:
    """The CONNACK reason code a paho MQTT 5 client gets with these credentials."""
    codes: list[int] = []
    done = threading.Event()

    def on_connect(_c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        codes.append(rc.value)
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(url.username, url.password)
    client.on_connect = on_connect
    client.connect(url.host, url.port, clean_start=True)
    client.loop_start()
    try:
        assert done.wait(timeout), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


@pytest.mark.timeout(60)
def test_registering_a_node_provisions_a_broker_account_shown_only_once(
        mosquitto: RunningMosquitto, tmp_path: Path) -> None:
    """POST /api/nodes with provisioning configured answers the node's mqtt_url
    with a password the broker accepts (after a reload); nothing shows that
    password again, and a second POST neither resets nor reveals it. A node
    whose account was made beforehand keeps it."""
    cloud = CloudProcess(
        tmp_path / "cloud", mosquitto.url("cctv-cloud"),
        client_id=f"cctv-cloud-provisioning-{secrets.token_hex(3)}",
        CCTV_BROKER_PASSWORD_FILE=str(mosquitto.password_file),
        CCTV_BROKER_PUBLIC_URL=f"mqtt://{mosquitto.host}:{mosquitto.port}")
    node_id = f"site-new-{secrets.token_hex(3)}"
    try:
        cloud.start()
        created = cloud.post("/api/nodes", {"node_id": node_id})
        assert created["node_id"] == node_id
        url = MqttUrl.parse(created["mqtt_url"])
        assert (url.host, url.port, url.username) == (mosquitto.host, mosquitto.port, node_id)
        assert url.password
        assert f"CCTV_NODE_ID={node_id}" in created["env"]
        mosquitto.broker.reload()
        code = wait_until(lambda: connack(url, node_id) == 0 or None, 5,
                          "the broker to accept the new account")
        assert code is True
        wrong = MqttUrl(host=url.host, port=url.port, tls=False, username=node_id,
                        password=url.password + "x")
        assert connack(wrong, node_id) != 0

        cloud.post("/api/nodes", {"node_id": node_id}, expect=409)
        shown = cloud.api.get(f"/api/nodes/{node_id}")
        listed = cloud.api.get("/api/nodes", params={"limit": 1000})
        assert shown.status_code == listed.status_code == 200
        assert "mqtt_url" not in shown.json()
        for text in (shown.text, listed.text):
            assert url.password not in text
        assert node_id in [n["node_id"] for n in listed.json()["items"]]
        assert connack(url, node_id) == 0, "the 409 did not reset the password"

        # A node provisioned earlier with `cctv node add`: registered, account untouched.
        older = f"site-old-{secrets.token_hex(3)}"
        password = add_accounts(mosquitto.password_file, [older])[older]
        mosquitto.broker.reload()
        registered = cloud.post("/api/nodes", {"node_id": older})
        assert (registered["mqtt_url"], registered["env"]) == (None, None)
        kept = MqttUrl(host=url.host, port=url.port, tls=False, username=older,
                       password=password)
        assert wait_until(lambda: connack(kept, older) == 0 or None, 5,
                          "the earlier password to still work") is True
    finally:
        cloud.stop()
        forget_session(mosquitto.host, mosquitto.port, "cctv-cloud",
                       mosquitto.account("cctv-cloud"), cloud.client_id)
