"""`cctv trigger` against a real edge node through the real broker: the
three exit codes an operator's script relies on."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.cameras import Camera, CameraSet
from schemas.codec import encode
from schemas.schedules import ScheduleSet
from schemas.topics import Channel
from tests.e2e.edge_harness import CloudObserver, EdgeProcess
from tests.fixtures.broker import Account, RunningMosquitto
from tests.fixtures.media import MjpegCameraFactory


def cctv_trigger(mosquitto: RunningMosquitto, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CCTV_MQTT_URL": mosquitto.url("cctv-operator")}
    return subprocess.run([sys.executable, "-m", "cctv", "trigger", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def running_node(mosquitto: RunningMosquitto, node_account: Account,
                 mjpeg_camera: MjpegCameraFactory, tmp_path: Path) -> Iterator[str]:
    node_id = node_account.username
    cloud = CloudObserver(mosquitto.host, mosquitto.port, mosquitto.account("cctv-cloud"),
                          node_id)
    cloud.publish(Channel.CAMERAS, encode(CameraSet(revision=1, cameras=[
        Camera(camera_id="door", node_id=node_id, url=mjpeg_camera().url)])))
    cloud.publish(Channel.SCHEDULES, encode(ScheduleSet(revision=1, schedules=[])))
    node = EdgeProcess(tmp_path / "edge", node_id, mosquitto.url(node_id), tmp_path / "store")
    node.start()
    try:
        cloud.wait_for(lambda t, b: t.endswith("/state") and b["cameras_revision"] == 1, 30)
        yield node_id
    finally:
        node.stop()
        cloud.close()


@pytest.mark.timeout(120)
def test_trigger_exit_codes(mosquitto: RunningMosquitto, running_node: str) -> None:
    accepted = cctv_trigger(mosquitto, running_node, "door", "--duration", "5")
    assert accepted.returncode == 0, accepted.stderr
    assert "recording door" in accepted.stdout

    refused = cctv_trigger(mosquitto, running_node, "no-such-camera", "--duration", "5")
    assert refused.returncode == 1, refused.stderr
    assert "unknown camera" in refused.stderr

    silent = cctv_trigger(mosquitto, "node-nobody-runs", "door", "--timeout", "2")
    assert silent.returncode == 2
    assert "no reply" in silent.stderr
