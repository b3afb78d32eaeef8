"""The uploader against the GCS emulator: verified uploads, outages, 503s,
412s, and a process killed mid-upload resuming from its session."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from edge_node.gcs_store import GcsStore
from edge_node.segments import SealedSegment, crc32c_of_file
from edge_node.upload_queue import MANUAL, SCHEDULED, UploadQueue
from edge_node.uploader import UploadDone, Uploader, UploadFailedResult
from tests.fixtures.gcs import GcsEmulator
from tests.integration.faulty_proxy import FaultyProxy

Result = UploadDone | UploadFailedResult


def segment_file(directory: Path, segment_id: str, size: int) -> SealedSegment:
    path = directory / f"{segment_id}.mp4"
    path.write_bytes(os.urandom(size))
    start = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    return SealedSegment("rec-1", segment_id, "cam-1", path, start, start, size,
                         crc32c_of_file(path), "h264", 1280, 720, 10, 0)


def client_for(endpoint: str) -> storage.Client:
    os.environ["STORAGE_EMULATOR_HOST"] = endpoint
    return storage.Client(project="test", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]


def run_uploads(store: GcsStore, queue: UploadQueue, count: int,
                timeout: float = 60) -> list[Result]:
    results: list[Result] = []
    uploader = Uploader(store, queue, "node-1", results.append, wait_max_s=0.5)
    uploader.start()
    deadline = time.monotonic() + timeout
    try:
        while sum(isinstance(r, UploadDone) for r in results) < count:
            assert time.monotonic() < deadline, f"uploads did not finish: {results}"
            time.sleep(0.1)
    finally:
        uploader.stop()
    return results


@pytest.fixture
def queue(tmp_path: Path) -> UploadQueue:
    upload_queue = UploadQueue(tmp_path / "uploads.db")
    upload_queue.open()
    return upload_queue


@pytest.mark.timeout(60)
def test_uploads_are_verified_named_by_contract_and_the_local_file_goes_after(
        gcs_env: GcsEmulator, queue: UploadQueue, tmp_path: Path) -> None:
    bucket = gcs_env.bucket()
    store = GcsStore(client_for(gcs_env.endpoint), bucket.name, "fleet", chunk_bytes=1 << 20)
    scheduled = segment_file(tmp_path, "seg-a", 3_000_000)
    manual = segment_file(tmp_path, "seg-b", 1000)
    queue.add(scheduled, SCHEDULED)
    queue.add(manual, MANUAL)
    results = run_uploads(store, queue, 2)
    done = [r for r in results if isinstance(r, UploadDone)]
    assert [d.segment.segment_id for d in done] == ["seg-b", "seg-a"], "manual first"
    name = "fleet/node-1/cam-1/2026/03/04/20260304T050607Z_seg-a.mp4"
    assert done[1].uri == f"gs://{bucket.name}/{name}"
    blob = bucket.get_blob(name)
    assert blob is not None
    assert blob.crc32c == scheduled.crc32c
    assert not scheduled.path.exists()
    assert queue.backlog().count == 0


@pytest.mark.timeout(90)
def test_503s_and_an_outage_are_retried_until_the_upload_lands(
        gcs_env: GcsEmulator, queue: UploadQueue, tmp_path: Path) -> None:
    bucket = gcs_env.bucket()
    failures = {"left": 6}

    def flaky(method: str, _path: str) -> int | None:
        if method == "PUT" and failures["left"] > 0:
            failures["left"] -= 1
            return 503
        return None

    with FaultyProxy(gcs_env.endpoint, flaky) as proxy:
        store = GcsStore(client_for(proxy.url), bucket.name, "", chunk_bytes=1 << 20)
        segment = segment_file(tmp_path, "seg-c", 2_500_000)
        queue.add(segment, SCHEDULED)
        results = run_uploads(store, queue, 1)
    assert any(status == 503 for _, _, status in proxy.requests)
    retries = [r for r in results if isinstance(r, UploadFailedResult)]
    assert all(r.will_retry for r in retries)
    assert bucket.get_blob("node-1/cam-1/2026/03/04/20260304T050607Z_seg-c.mp4") is not None
    assert not segment.path.exists()


@pytest.mark.timeout(60)
def test_a_412_for_the_same_bytes_is_done_and_for_other_bytes_is_refused(
        gcs_env: GcsEmulator, queue: UploadQueue, tmp_path: Path) -> None:
    bucket = gcs_env.bucket()
    same = segment_file(tmp_path, "seg-d", 5000)
    name = "node-1/cam-1/2026/03/04/20260304T050607Z_seg-d.mp4"
    bucket.blob(name).upload_from_filename(str(same.path))
    other = segment_file(tmp_path, "seg-e", 5000)
    bucket.blob("node-1/cam-1/2026/03/04/20260304T050607Z_seg-e.mp4").upload_from_string(
        b"different bytes")

    def exists(method: str, path: str) -> int | None:
        return 412 if method == "POST" and "uploadType=resumable" in path else None

    results: list[Result] = []
    with FaultyProxy(gcs_env.endpoint, exists) as proxy:
        store = GcsStore(client_for(proxy.url), bucket.name, "", chunk_bytes=1 << 20)
        queue.add(same, SCHEDULED)
        queue.add(other, SCHEDULED)
        uploader = Uploader(store, queue, "node-1", results.append, wait_max_s=0.5)
        uploader.start()
        deadline = time.monotonic() + 30
        while len(results) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        uploader.stop()
    by_id = {r.segment.segment_id: r for r in results}
    assert isinstance(by_id["seg-d"], UploadDone)
    assert not same.path.exists()
    refused = by_id["seg-e"]
    assert isinstance(refused, UploadFailedResult)
    assert refused.will_retry is False
    assert other.path.exists(), "an unverified segment is never deleted"


@pytest.mark.timeout(120)
def test_a_killed_upload_resumes_from_its_session_without_a_duplicate(
        gcs_env: GcsEmulator, tmp_path: Path) -> None:
    bucket = gcs_env.bucket()
    path = tmp_path / "big.mp4"
    path.write_bytes(os.urandom(12 * 1024 * 1024))
    env = {**os.environ, "STORAGE_EMULATOR_HOST": gcs_env.endpoint,
           "PYTHONPATH": str(Path.cwd())}
    argv = [sys.executable, "-m", "tests.integration.upload_child", str(tmp_path), str(path),
            bucket.name]
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    deadline = time.monotonic() + 30
    session = None
    while session is None and time.monotonic() < deadline:
        time.sleep(0.2)
        if (tmp_path / "uploads.db").exists():
            with sqlite3.connect(tmp_path / "uploads.db") as db:
                row = db.execute("SELECT session_url FROM uploads").fetchone()
            session = row[0] if row else None
    time.sleep(2)  # a few chunks in, at 2 MiB/s
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert session is not None

    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                            check=False)
    assert second.returncode == 0, second.stdout[-2000:]
    assert '"result": "UploadDone"' in second.stdout
    resumed = [line for line in second.stdout.splitlines() if "upload.resumed" in line]
    assert resumed, second.stdout[-2000:]
    offset = int(resumed[0].rpartition("offset=")[2])
    assert 0 < offset < 12 * 1024 * 1024, "resumed mid-file, not from byte zero"
    objects = list(bucket.list_blobs())
    assert [o.name for o in objects] == [
        "fleet/node-1/cam-1/2026/01/02/20260102T030405Z_seg-1.mp4"]
    assert objects[0].size == 12 * 1024 * 1024
