"""`cctv up` as a new user runs it: one command, then the skeleton flow.

A schedule created through the REST API reaches the edge node over the
retained topic, segment files appear in file storage, and GET
/api/recordings lists them with their upload state; Ctrl-C stops it all.
Port 1883 is held busy during the test so the "already taken" path is the
one exercised (a system Mosquitto usually holds it anyway).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from broker.launcher import free_port
from edge_node.segments import crc32c_of_file

START_TIMEOUT_S = 90
FLOW_TIMEOUT_S = 60


@contextlib.contextmanager
def port_1883_taken() -> Iterator[None]:
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", 1883))
            holder.listen()
        except OSError:
            pass  # already taken by someone else: just as good
        yield


@contextlib.contextmanager
def cctv_up(data_dir: Path, broker: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    http_port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cctv", "up", "--data-dir", str(data_dir),
         "--http-port", str(http_port), "--broker", broker],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "CCTV_LOG_LEVEL": "INFO"})
    try:
        summary_file = data_dir / "up.json"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not summary_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = process.communicate()[0]
                pytest.fail(f"cctv up did not start:\n{output[-3000:]}")
            time.sleep(0.2)
        yield process, json.loads(summary_file.read_text())
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(45)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_uploaded_segments(client: httpx.Client, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + FLOW_TIMEOUT_S
    segments: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        recordings = client.get("/api/recordings").raise_for_status().json()["items"]
        segments = [s for r in recordings for s in r["segments"]
                    if s["upload_state"] == "uploaded"]
        if len(segments) >= count:
            return segments
        time.sleep(1)
    pytest.fail(f"only {len(segments)} uploaded segments after {FLOW_TIMEOUT_S} s")


def check_skeleton_flow(summary: dict[str, Any], data_dir: Path) -> None:
    headers = {"Authorization": f"Bearer {summary['token']}"}
    base = summary["dashboard"].rstrip("/")
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        assert httpx.get(f"{base}/api/recordings", timeout=5).status_code == 401
        schedule = {"schedule_id": "e2e", "camera_ids": [summary["camera_id"]],
                    "kind": "continuous", "segment_seconds": 2}
        assert client.post("/api/schedules", json=schedule).status_code == 201
        segments = wait_for_uploaded_segments(client, 2)
        node = client.get(f"/api/nodes/{summary['node_id']}").json()
    assert node["online"] is True
    assert node["schedules_revision_applied"] == node["schedules_revision_desired"] >= 1
    for segment in segments:
        path = Path(urlsplit(segment["uri"]).path)
        assert path.is_relative_to(data_dir / "storage")
        assert path.stat().st_size == segment["bytes"] > 0
        assert crc32c_of_file(path) == segment["crc32c"]


@pytest.mark.timeout(240)
def test_cctv_up_with_mosquitto_records_a_schedule_end_to_end(tmp_path: Path) -> None:
    with port_1883_taken(), cctv_up(tmp_path, "mosquitto") as (process, summary):
        assert summary["broker_kind"] == "mosquitto"
        assert not summary["broker"].endswith(":1883")
        check_skeleton_flow(summary, tmp_path)
    assert process.returncode == 0
    output = process.stdout.read() if process.stdout else ""
    assert "stopping" in output


@pytest.mark.timeout(240)
def test_cctv_up_with_the_embedded_broker_records_end_to_end(tmp_path: Path) -> None:
    with port_1883_taken(), cctv_up(tmp_path, "embedded") as (process, summary):
        assert summary["broker_kind"] == "embedded amqtt"
        check_skeleton_flow(summary, tmp_path)
    assert process.returncode == 0
