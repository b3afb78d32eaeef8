"""The edge node's recording behaviour seen from the cloud's side of the broker:
window edges, a camera that dies and comes back, commands, and credentials."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import cv2
import httpx
import numpy as np
import pytest

from broker.launcher import free_port
from schemas.cameras import Camera, CameraSet
from schemas.codec import encode
from schemas.commands import RecordCommand, SnapshotCommand
from schemas.schedules import OnceSchedule, ScheduleSet
from schemas.topics import Channel
from tests.e2e.edge_harness import CloudObserver, EdgeProcess
from tests.fixtures.broker import Account, RunningMosquitto
from tests.fixtures.media import MjpegCameraFactory, RtspCameraFactory


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
def cloud(mosquitto: RunningMosquitto, node_account: Account) -> Iterator[CloudObserver]:
    watcher = CloudObserver(mosquitto.host, mosquitto.port, mosquitto.account("cctv-cloud"),
                            node_account.username)
    yield watcher
    watcher.close()


@pytest.fixture
def node(mosquitto: RunningMosquitto, node_account: Account,
         tmp_path: Path) -> Iterator[EdgeProcess]:
    process = EdgeProcess(tmp_path / "edge", node_account.username,
                          mosquitto.url(node_account.username), tmp_path / "storage")
    yield process
    process.stop()


def cameras(cloud: CloudObserver, *urls: str,
            transport: Literal["auto", "tcp", "udp"] = "auto") -> None:
    cloud.publish(Channel.CAMERAS, encode(CameraSet(revision=1, cameras=[
        Camera(camera_id=f"cam-{i}", node_id=cloud.node_id, url=url, transport=transport)
        for i, url in enumerate(urls, 1)])))


@pytest.mark.timeout(90)
def test_recording_starts_and_stops_within_2_s_of_the_window_edges(
        cloud: CloudObserver, node: EdgeProcess, mjpeg_camera: MjpegCameraFactory) -> None:
    cameras(cloud, mjpeg_camera().url)
    node.start()
    cloud.wait_for(lambda t, b: t.endswith("/state") and b["cameras_revision"] == 1, 30)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
    end = start + timedelta(seconds=6)
    cloud.publish(Channel.SCHEDULES, encode(ScheduleSet(revision=1, schedules=[
        OnceSchedule(schedule_id="window", camera_ids=["cam-1"], kind="once", start=start,
                     end=end, segment_seconds=2)])))
    started = cloud.wait_event("recording.started", 30)
    stopped = cloud.wait_event("recording.stopped", 30)
    segments = [e["data"] for e in cloud.events if e["type"] == "recording.segment"]
    assert abs((at(started["ts"]) - start).total_seconds()) <= 2
    assert abs((at(stopped["ts"]) - end).total_seconds()) <= 2
    assert stopped["data"]["reason"] == "schedule_ended"
    assert at(segments[0]["start"]) - start <= timedelta(seconds=2)
    assert abs((at(segments[-1]["end"]) - end).total_seconds()) <= 2


@pytest.mark.timeout(150)
def test_a_camera_killed_mid_recording_comes_back_and_recording_resumes(
        cloud: CloudObserver, node: EdgeProcess, rtsp_camera: RtspCameraFactory) -> None:
    camera = rtsp_camera()
    cameras(cloud, camera.url, transport="udp")
    cloud.publish(Channel.SCHEDULES, encode(ScheduleSet(revision=1, schedules=[
        OnceSchedule(schedule_id="long", camera_ids=["cam-1"], kind="once",
                     start=datetime.now(UTC), end=datetime.now(UTC) + timedelta(hours=1),
                     segment_seconds=3)])))
    node.start()
    first = cloud.wait_event("recording.started", 30)
    cloud.wait_event("camera.online", 30)
    cloud.wait_event("recording.segment", 30)
    camera.kill()
    offline = cloud.wait_event("camera.offline", 40)
    lost = cloud.wait_event("recording.stopped", 10)
    camera.start()
    # Retries may fail while the camera comes back; any later recording counts.
    resumed = cloud.wait_event(
        "recording.segment", 90,
        lambda e: e["data"]["recording_id"] != first["data"]["recording_id"])
    assert offline["data"]["error"]
    assert lost["data"]["reason"] == "camera_lost"
    assert lost["data"]["segments"] >= 1, "the segment cut short by the failure is kept"
    assert resumed["data"]["codec"] == "h264"


def is_reply(command_id: str) -> Callable[[str, dict[str, Any]], bool]:
    return lambda topic, body: topic.endswith("/replies") and body["command_id"] == command_id


@pytest.mark.timeout(90)
def test_commands_run_once_expired_ones_are_refused_and_snapshots_are_stored(
        cloud: CloudObserver, node: EdgeProcess, mjpeg_camera: MjpegCameraFactory) -> None:
    cameras(cloud, mjpeg_camera().url)
    cloud.publish(Channel.SCHEDULES, encode(ScheduleSet(revision=1, schedules=[])))
    node.start()
    cloud.wait_for(lambda t, b: t.endswith("/state") and b["cameras_revision"] == 1, 30)

    record = encode(RecordCommand(command_id="rec-1", command="record", camera_id="cam-1",
                                  duration_s=4))
    cloud.publish(Channel.COMMANDS, record, retain=False)
    first = cloud.wait_for(is_reply("rec-1"), 20)
    cloud.publish(Channel.COMMANDS, record, retain=False)
    again = cloud.wait_for(is_reply("rec-1"), 20)
    assert first == again
    assert first["ok"] is True
    stopped = cloud.wait_event("recording.stopped", 30)
    assert stopped["data"]["reason"] == "manual_ended"
    started = [e for e in cloud.events if e["type"] == "recording.started"]
    assert len(started) == 1, "the repeated command id did not record again"
    assert started[0]["data"]["command_id"] == "rec-1"

    expired = RecordCommand(command_id="rec-old", command="record", camera_id="cam-1",
                            duration_s=5, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    cloud.publish(Channel.COMMANDS, encode(expired), retain=False)
    refused = cloud.wait_for(is_reply("rec-old"), 20)
    assert refused["ok"] is False
    assert refused["error"] == "expired"

    cloud.publish(Channel.COMMANDS, encode(SnapshotCommand(
        command_id="snap-1", command="snapshot", camera_id="cam-1")), retain=False)
    snapshot = cloud.wait_for(is_reply("snap-1"), 30)
    assert snapshot["ok"] is True, snapshot
    path = Path(urlsplit(snapshot["result"]["uri"]).path)
    image = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape[:2] == (360, 640)
    assert snapshot["result"]["bytes"] == path.stat().st_size


@pytest.mark.timeout(90)
def test_camera_credentials_never_reach_logs_or_events(
        cloud: CloudObserver, node: EdgeProcess, rtsp_camera: RtspCameraFactory) -> None:
    secret = "s3cret-Passw0rd"
    camera = rtsp_camera()
    parts = urlsplit(camera.url)
    with_password = f"rtsp://admin:{secret}@{parts.netloc}{parts.path}"
    dead = f"rtsp://admin:{secret}@127.0.0.1:9/nothing"
    cameras(cloud, with_password, dead, transport="udp")
    cloud.publish(Channel.SCHEDULES, encode(ScheduleSet(revision=1, schedules=[
        OnceSchedule(schedule_id="both", camera_ids=["cam-1", "cam-2"], kind="once",
                     start=datetime.now(UTC), end=datetime.now(UTC) + timedelta(hours=1),
                     segment_seconds=2)])))
    node.start()
    cloud.wait_event("recording.segment", 40, lambda e: e["data"]["camera_id"] == "cam-1")
    cloud.wait_event("recording.failed", 40, lambda e: e["data"]["camera_id"] == "cam-2")
    cloud.wait_for(lambda t, b: t.endswith("/heartbeat"), 20)
    node.stop()
    assert secret not in node.log()
    assert secret not in json.dumps(cloud.events)


@pytest.mark.timeout(120)
def test_a_full_disk_evicts_unuploaded_segments_with_an_event_each_and_recording_goes_on(
        cloud: CloudObserver, node: EdgeProcess, mjpeg_camera: MjpegCameraFactory) -> None:
    cameras(cloud, mjpeg_camera().url)
    cloud.publish(Channel.SCHEDULES, encode(ScheduleSet(revision=1, schedules=[
        OnceSchedule(schedule_id="fill", camera_ids=["cam-1"], kind="once",
                     start=datetime.now(UTC), end=datetime.now(UTC) + timedelta(hours=1),
                     segment_seconds=2)])))
    unreachable = f"http://127.0.0.1:{free_port()}"
    node.start(CCTV_STORAGE_URL="gs://bucket-down/fleet", STORAGE_EMULATOR_HOST=unreachable,
               CCTV_MAX_LOCAL_BYTES="250000")
    first = cloud.wait_event("storage.evicted", 60)
    backlog = cloud.wait_for(lambda t, b: t.endswith("/heartbeat")
                             and b["upload_backlog"]["count"] > 0, 30)
    evicted_seq = first["seq"]
    later = cloud.wait_event("recording.segment", 30, lambda e: e["seq"] > evicted_seq)
    assert first["data"]["uploaded"] is False
    assert first["data"]["reason"] == "quota"
    segments = [e["data"]["segment_id"] for e in cloud.events
                if e["type"] == "recording.segment"]
    # The oldest goes first, unless it is the one the uploader is retrying.
    assert segments.index(first["data"]["segment_id"]) <= 1
    assert later["data"]["segment_id"] not in {first["data"]["segment_id"]}
    assert backlog["upload_backlog"]["bytes"] <= 250_000 + 200_000
    failures = [e for e in cloud.events if e["type"] == "upload.failed"]
    assert failures
    assert all(f["data"]["will_retry"] for f in failures)


@pytest.mark.timeout(90)
def test_the_local_api_shows_status_schedules_and_records_by_hand(
        cloud: CloudObserver, node: EdgeProcess, mjpeg_camera: MjpegCameraFactory) -> None:
    cameras(cloud, mjpeg_camera().url)
    cloud.publish(Channel.SCHEDULES, encode(ScheduleSet(revision=3, schedules=[])))
    node.start()
    cloud.wait_for(lambda t, b: t.endswith("/state") and b["schedules_revision"] == 3, 30)
    with httpx.Client(base_url=node.api, timeout=15) as api:
        assert api.get("/health").json() == {"status": "ok"}
        assert api.get("/schedules").json() == {"revision": 3, "schedules": []}
        assert api.post("/manual-record", json={"camera_id": "cam-1",
                                                "duration_s": "5"}).status_code == 422
        assert api.post("/manual-record", json={"camera_id": "../etc",
                                                "duration_s": 5}).status_code == 422
        assert api.post("/manual-record", json={"camera_id": "nope",
                                                "duration_s": 5}).status_code == 409
        accepted = api.post("/manual-record", json={"camera_id": "cam-1", "duration_s": 30})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["ok"] is True
        started = cloud.wait_event("recording.started", 20)
        assert started["data"]["trigger"] == "manual"
        deadline = time.monotonic() + 10
        status: dict[str, Any] = {}
        while time.monotonic() < deadline and not status.get("recordings"):
            status = api.get("/status").json()
            time.sleep(0.5)
    assert status["recordings"][0]["camera_id"] == "cam-1"
    assert status["connected"] is True
    assert {"current", "backlog"} <= set(status["uploads"])
