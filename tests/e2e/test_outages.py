"""Nothing lost when the broker goes away: the whole system (edge node, broker,
cloud service on SQLite) recording while the broker is stopped for 30 s, twice.
Every event reaches the database exactly once, with seq contiguous."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from broker.launcher import MosquittoBroker, free_port
from broker.passwords import add_accounts
from broker.provisioning import node_mqtt_url
from tests.e2e.edge_harness import EdgeProcess
from tests.fixtures.media import MjpegCameraFactory

OUTAGE_S = 30
NODE = "site-outage"


def stored_events(database: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT seq, event_id FROM event WHERE node_id = ? ORDER BY seq",
                          (NODE,)).fetchall()


def outbox_state(outbox: Path) -> tuple[int, list[int]]:
    with sqlite3.connect(outbox) as db:
        (last_seq,) = db.execute("SELECT value FROM counters WHERE name='last_seq'").fetchone()
        unacked = [seq for (seq,) in db.execute("SELECT seq FROM outbox")]
    return last_seq, unacked


def wait_until_stored_without_gaps(database: Path, outbox: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seqs = [seq for seq, _ in stored_events(database)]
        last_seq, _ = outbox_state(outbox)
        if seqs and seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= last_seq - 2:
            return True
        time.sleep(1)
    return False


@pytest.fixture
def own_broker() -> Iterator[tuple[MosquittoBroker, dict[str, str]]]:
    """A broker of this test's own, so stopping it disturbs no other test."""
    run_dir = Path(tempfile.mkdtemp(prefix="cctv-outage-"))
    broker = MosquittoBroker(run_dir, port=free_port())
    passwords = add_accounts(broker.password_file, ["cctv-cloud", NODE])
    broker.start()
    yield broker, passwords
    broker.stop()
    shutil.rmtree(run_dir, ignore_errors=True)


def restart(broker: MosquittoBroker, outage_s: float) -> None:
    """Stop the broker (its persistence file keeps sessions and queues) and
    start it again on the same port after `outage_s`."""
    broker.stop()
    time.sleep(outage_s)
    broker.start()


@pytest.mark.timeout(300)
def test_broker_stopped_twice_while_recording_loses_and_doubles_nothing(
        own_broker: tuple[MosquittoBroker, dict[str, str]], mjpeg_camera: MjpegCameraFactory,
        tmp_path: Path) -> None:
    broker, passwords = own_broker
    url = f"mqtt://127.0.0.1:{broker.port}"
    http_port = free_port()
    token = "outage-test-token"
    database = tmp_path / "cloud" / "cloud.db"
    cloud_env = {**os.environ, "CCTV_MQTT_URL": node_mqtt_url(url, "cctv-cloud",
                                                              passwords["cctv-cloud"]),
                 "CCTV_DATA_DIR": str(tmp_path / "cloud"), "CCTV_API_TOKENS": token,
                 "CCTV_HTTP_ADDR": f"127.0.0.1:{http_port}",
                 "CCTV_MQTT_CLIENT_ID": "cctv-cloud-outage"}
    cloud_log = (tmp_path / "cloud.log").open("wb")
    cloud = subprocess.Popen([sys.executable, "-m", "cctv", "cloud"], env=cloud_env,
                             stdout=cloud_log, stderr=subprocess.STDOUT)
    node = EdgeProcess(tmp_path / "edge", NODE, node_mqtt_url(url, NODE, passwords[NODE]),
                       tmp_path / "storage")
    api = httpx.Client(base_url=f"http://127.0.0.1:{http_port}",
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if api.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert api.post("/api/nodes", json={"node_id": NODE}).status_code == 201
        assert api.post("/api/cameras", json={
            "camera_id": "cam-1", "node_id": NODE, "url": mjpeg_camera().url}).status_code == 201
        now = datetime.now(UTC)
        assert api.post("/api/schedules", json={
            "schedule_id": "always", "camera_ids": ["cam-1"], "kind": "once",
            "start": now.isoformat(), "end": (now + timedelta(hours=1)).isoformat(),
            "segment_seconds": 2}).status_code == 201
        node.start(CCTV_RESEND_AFTER_S="5")
        time.sleep(8)
        restart(broker, OUTAGE_S)
        time.sleep(10)
        restart(broker, OUTAGE_S)
        caught_up = wait_until_stored_without_gaps(database, tmp_path / "edge" / "outbox.db",
                                                   timeout=60)
        assert node.stop() == 0
        time.sleep(2)
        stored = stored_events(database)
        last_seq, unacked = outbox_state(tmp_path / "edge" / "outbox.db")
        node_row = api.get(f"/api/nodes/{NODE}").json()
    finally:
        api.close()
        cloud.send_signal(signal.SIGTERM)
        cloud.wait(30)
        node.stop()
    assert caught_up, "the cloud caught up with the node after the outages"
    seqs = [seq for seq, _ in stored]
    assert seqs == list(range(1, len(seqs) + 1)), "stored in a gapless run"
    # Nothing lost: what is not stored yet is still in the node's outbox.
    assert set(seqs) | set(unacked) == set(range(1, last_seq + 1))
    assert len({event_id for _, event_id in stored}) == len(stored), "none stored twice"
    assert node_row["seq_gaps"] == 0
    types = {row[0] for row in sqlite3.connect(database).execute("SELECT type FROM event")}
    assert {"recording.started", "recording.segment", "upload.completed"} <= types
    assert last_seq > 20, "the node kept recording and reporting through both outages"
