"""A real edge node process against the real broker and a live RTSP camera:
crash recovery and recording with no broker at all."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.launcher import free_port
from schemas.cameras import Camera, CameraSet
from schemas.codec import encode
from schemas.schedules import ContinuousSchedule, ScheduleSet
from schemas.status import EventAck
from schemas.topics import Channel
from tests.e2e.edge_harness import CloudObserver, EdgeProcess
from tests.fixtures.broker import Account, RunningMosquitto
from tests.fixtures.media import RtspCameraFactory


@pytest.fixture
def observer(mosquitto: RunningMosquitto, node_account: Account) -> Iterator[CloudObserver]:
    watcher = CloudObserver(mosquitto.host, mosquitto.port, mosquitto.account("cctv-cloud"),
                            node_account.username)
    yield watcher
    watcher.close()


def desired_state(observer: CloudObserver, camera_url: str, segment_seconds: int) -> None:
    node_id = observer.node_id
    observer.publish(Channel.CAMERAS, encode(CameraSet(revision=1, cameras=[
        Camera(camera_id="cam-1", node_id=node_id, url=camera_url, transport="udp")])))
    observer.publish(Channel.SCHEDULES, encode(ScheduleSet(revision=1, schedules=[
        ContinuousSchedule(schedule_id="always", camera_ids=["cam-1"], kind="continuous",
                           segment_seconds=segment_seconds)])))


@pytest.mark.timeout(120)
def test_kill_9_mid_segment_leaves_a_playable_file_sealed_and_reported_after_restart(
        mosquitto: RunningMosquitto, node_account: Account, observer: CloudObserver,
        rtsp_camera: RtspCameraFactory, tmp_path: Path) -> None:
    camera = rtsp_camera()
    desired_state(observer, camera.url, segment_seconds=60)
    node = EdgeProcess(tmp_path / "edge", node_account.username,
                       mosquitto.url(node_account.username), tmp_path / "storage")
    node.start()
    try:
        started = observer.wait_event("recording.started", 30)
        deadline = time.monotonic() + 30
        partial: list[Path] = []
        while not partial and time.monotonic() < deadline:
            partial = [p for p in (tmp_path / "edge" / "segments" / "cam-1").glob("*.mp4")
                       if p.stat().st_size > 50_000]
            time.sleep(0.5)
        assert partial, "a segment file should be growing"
        time.sleep(2)
        node.kill()
        segment_path = partial[0]
        assert segment_path.with_suffix(".json").exists(), "unreported: its sidecar remains"

        node.start()
        segment = observer.wait_event(
            "recording.segment", 60, lambda e: e["data"]["segment_id"] == segment_path.stem)
        stopped = observer.wait_event(
            "recording.stopped", 30,
            lambda e: e["data"]["recording_id"] == started["data"]["recording_id"])
    finally:
        node.stop()
    assert segment["data"]["recording_id"] == started["data"]["recording_id"]
    assert segment["data"]["frames"] > 10
    assert stopped["data"]["reason"] == "shutdown"
    assert stopped["data"]["segments"] >= 1
    assert not segment_path.with_suffix(".json").exists()
    seqs = [e["seq"] for e in observer.events]
    assert sorted(set(seqs)) == list(range(1, max(seqs) + 1)), "seq has no gaps across restarts"


@pytest.mark.timeout(120)
def test_a_node_booted_with_the_broker_down_records_from_its_stored_schedules(
        mosquitto: RunningMosquitto, node_account: Account, observer: CloudObserver,
        rtsp_camera: RtspCameraFactory, tmp_path: Path) -> None:
    camera = rtsp_camera()
    desired_state(observer, camera.url, segment_seconds=2)
    node = EdgeProcess(tmp_path / "edge", node_account.username,
                       mosquitto.url(node_account.username), tmp_path / "storage")
    node.start()
    observer.wait_for(lambda t, b: t.endswith("/state") and b["schedules_revision"] == 1, 30)
    assert node.stop() == 0

    nowhere = f"mqtt://{node_account.username}:x@127.0.0.1:{free_port()}"
    node.start(CCTV_MQTT_URL=nowhere)
    try:
        storage = tmp_path / "storage" / node_account.username / "cam-1"
        deadline = time.monotonic() + 40
        stored: list[Path] = []
        while len(stored) < 2 and time.monotonic() < deadline:
            stored = list(storage.rglob("*.mp4"))
            time.sleep(0.5)
    finally:
        node.stop()
    assert len(stored) >= 2, f"recorded with no broker: {node.log()[-2000:]}"


def outbox_depth(data_dir: Path, upto_seq: int | None = None) -> int:
    """Events in the node's outbox (up to `upto_seq` only, if given)."""
    with sqlite3.connect(data_dir / "outbox.db") as db:
        (depth,) = db.execute("SELECT count(*) FROM outbox WHERE seq <= ?",
                              (upto_seq if upto_seq is not None else 2**62,)).fetchone()
    return int(depth)


@pytest.mark.timeout(90)
def test_an_ack_for_another_outbox_never_drops_the_nodes_events(
        mosquitto: RunningMosquitto, node_account: Account, observer: CloudObserver,
        tmp_path: Path) -> None:
    """An EventAck meant for the outbox of a disk the node no longer has (a cloud
    that has not yet seen the new one) leaves the node's events in its outbox;
    the ack for its own outbox drops them."""
    observer.ack_events = False
    # A camera nobody serves: the node reports it failing, event after event.
    desired_state(observer, f"rtsp://127.0.0.1:{free_port()}/none", segment_seconds=10)
    node = EdgeProcess(tmp_path / "edge", node_account.username,
                       mosquitto.url(node_account.username), tmp_path / "storage")
    node.start()
    try:
        first = observer.wait_for(lambda t, _b: "/events/" in t, 30)
        outbox_id = first["outbox_id"]
        assert outbox_id
        time.sleep(1)
        depth = outbox_depth(node.data_dir)
        assert depth >= 1
        observer.publish(Channel.ACKS, encode(EventAck(upto_seq=1000, outbox_id="old-disk")),
                         retain=False)
        time.sleep(2)
        assert outbox_depth(node.data_dir) >= depth, "nothing dropped for another outbox"
        assert "ack.other_outbox" in node.log()
        observer.publish(Channel.ACKS, encode(EventAck(upto_seq=depth, outbox_id=outbox_id)),
                         retain=False)
        deadline = time.monotonic() + 10
        while outbox_depth(node.data_dir, depth) > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert outbox_depth(node.data_dir, depth) == 0, "its own ack drops them"
    finally:
        node.stop()
