"""Moves sealed segments from the durable queue to storage, in one thread.

Transient failures (408, 429, 5xx, connection errors) are retried with
jittered exponential backoff (tenacity) within an attempt, and the job is
held back and tried again later when they persist; the local file is
deleted only after the store verified the upload. Results go back to the
service loop as messages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_when_event_set,
    wait_random_exponential,
)

from edge_node.backoff import backoff_delay
from edge_node.segments import SealedSegment, object_name
from edge_node.store_base import StoreError, UploadControl
from edge_node.stores import SegmentStore
from edge_node.upload_queue import Backlog, UploadJob, UploadQueue

logger = logging.getLogger(__name__)

TRIES_PER_ATTEMPT = 5
HOLD_BACK_CAP_S = 300.0


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


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, StoreError) and exc.retryable


class Uploader:
    def __init__(self, store: SegmentStore, queue: UploadQueue, node_id: str,
                 report: Callable[[UploadDone | UploadFailedResult], None], *,
                 wait_max_s: float = 10.0,
                 uploaded: Callable[[SealedSegment], None] | None = None) -> None:
        self._store = store
        self._queue = queue
        self._node_id = node_id
        self._report = report
        self._wait_max_s = wait_max_s
        self._uploaded = uploaded or (lambda segment: segment.path.unlink(missing_ok=True))
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)
        self.current: UploadJob | None = None
        self.current_sent = 0  # bytes the store holds of the current job

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop between chunks; an upload in progress resumes at the next start."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def submit(self, segment: SealedSegment, priority: int) -> None:
        self._queue.add(segment, priority)
        self._wake.set()

    def backlog(self) -> Backlog:
        return self._queue.backlog()

    def _run(self) -> None:
        while not self._stopping.is_set():
            job = self._queue.next_ready()
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self.current, self.current_sent = job, 0
            try:
                self._attempt(job)
            except Exception:  # thread edge: the job stays queued, the loop goes on
                logger.exception("upload.crashed segment_id=%s", job.segment.segment_id)
                self._queue.retry_later(job.segment.segment_id, HOLD_BACK_CAP_S)
            finally:
                self.current = None

    def _attempt(self, job: UploadJob) -> None:
        segment = job.segment
        name = object_name(self._store.prefix, self._node_id, segment.camera_id,
                           segment.start, segment.segment_id)
        session = job.session_url

        def remember(url: str | None) -> None:
            nonlocal session
            session = url
            self._queue.remember_session(segment.segment_id, url)

        retrying = Retrying(
            retry=retry_if_exception(_transient), reraise=True,
            wait=wait_random_exponential(multiplier=0.5, max=self._wait_max_s),
            stop=stop_after_attempt(TRIES_PER_ATTEMPT) | stop_when_event_set(self._stopping))
        try:
            control = UploadControl(remember, self._stopping.is_set, self._sent)
            uri = retrying(lambda: self._store.upload(segment, name, session, control))
        except StoreError as exc:
            if self._stopping.is_set() and exc.retryable:
                return  # resumed at the next start; not a failure
            self._failed(job, exc)
            return
        # Verified by the store: only now may the local copy go (or be kept aside).
        self._uploaded(segment)
        self._queue.remove(segment.segment_id)
        logger.info("upload.completed segment_id=%s uri=%s", segment.segment_id, uri)
        self._report(UploadDone(segment, uri))

    def _sent(self, count: int) -> None:
        self.current_sent = count

    def _failed(self, job: UploadJob, exc: StoreError) -> None:
        segment = job.segment
        if exc.retryable:
            attempts = self._queue.retry_later(
                segment.segment_id, backoff_delay(job.attempts + 1, cap_s=HOLD_BACK_CAP_S))
        else:
            # Kept on disk (retention may still evict it, reported), never retried.
            self._queue.remove(segment.segment_id)
            attempts = job.attempts + 1
        logger.warning("upload.failed segment_id=%s attempt=%d will_retry=%s error=%s",
                       segment.segment_id, attempts, exc.retryable, exc)
        self._report(UploadFailedResult(segment, attempts, str(exc), exc.retryable))
