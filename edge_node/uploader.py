"""Moves sealed segments to storage in a background thread.

A segment's local file is deleted only after the store verified it. Results
go back to the service loop as messages; this thread decides nothing else.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from edge_node.file_store import FileStore, StoreError
from edge_node.segments import SealedSegment, object_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadDone:
    segment: SealedSegment
    uri: str


@dataclass(frozen=True)
class UploadFailedResult:
    segment: SealedSegment
    attempt: int
    error: str
    will_retry: bool


class Uploader:
    def __init__(self, store: FileStore, node_id: str, prefix: str,
                 report: Callable[[UploadDone | UploadFailedResult], None]) -> None:
        self._store = store
        self._node_id = node_id
        self._prefix = prefix
        self._report = report
        self._queue: queue.Queue[SealedSegment | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def submit(self, segment: SealedSegment) -> None:
        self._queue.put(segment)

    @property
    def backlog(self) -> list[SealedSegment]:
        return [s for s in list(self._queue.queue) if s is not None]

    def _run(self) -> None:
        while (segment := self._queue.get()) is not None:
            name = object_name(self._prefix, self._node_id, segment.camera_id, segment.start,
                               segment.segment_id)
            try:
                uri = self._store.upload(segment, name)
            except StoreError as exc:
                logger.warning("upload.failed segment_id=%s error=%s", segment.segment_id, exc)
                self._report(UploadFailedResult(segment, 1, str(exc), will_retry=False))
                continue
            except Exception as exc:  # thread edge: reported, never raised
                logger.exception("upload.crashed segment_id=%s", segment.segment_id)
                self._report(UploadFailedResult(segment, 1, str(exc), will_retry=False))
                continue
            segment.path.unlink(missing_ok=True)
            logger.info("upload.completed segment_id=%s uri=%s", segment.segment_id, uri)
            self._report(UploadDone(segment, uri))
