"""A process that uploads one queued segment slowly, to be killed mid-upload.

argv: data_dir segment_path bucket; STORAGE_EMULATOR_HOST set by the caller.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from edge_node.gcs_store import GcsStore
from edge_node.segments import SealedSegment, crc32c_of_file
from edge_node.upload_queue import SCHEDULED, UploadQueue
from edge_node.uploader import UploadDone, Uploader, UploadFailedResult


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    data_dir, path, bucket = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    queue = UploadQueue(data_dir / "uploads.db")
    queue.open()
    if not queue.jobs():
        start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        queue.add(SealedSegment("rec-1", "seg-1", "cam-1", path, start, start,
                                path.stat().st_size, crc32c_of_file(path), "h264", 1280, 720,
                                10, 0), SCHEDULED)
    client = storage.Client(project="test", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    store = GcsStore(client, bucket, "fleet", chunk_bytes=1024 * 1024,
                     max_bytes_per_s=2 * 1024 * 1024)
    results: list[UploadDone | UploadFailedResult] = []
    uploader = Uploader(store, queue, "node-1", results.append)
    uploader.start()
    while not results:
        time.sleep(0.1)
    uploader.stop()
    print(json.dumps({"result": type(results[0]).__name__}), flush=True)


if __name__ == "__main__":
    main()
