"""A real edge node process against the real broker and a live RTSP camera:
crash recovery and recording with no broker at all."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.launcher import free_port
from schemas.cameras import Camera, CameraSet
from schemas.codec import encode
from schemas.schedules import ContinuousSchedule, ScheduleSet
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
