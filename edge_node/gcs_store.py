"""Google Cloud Storage: resumable uploads checked by the service's crc32c.

Each segment is one resumable session created with `ifGenerationMatch=0`
(never overwrite) and the segment's crc32c in the object's metadata, so
Cloud Storage itself refuses an object whose bytes differ. The session URL
is handed to the caller to keep on disk: after a crash the upload asks the
session how much it holds and continues from there, not from byte zero.
Chunks are read from the file one at a time, so memory stays flat whatever
the file size. Third-party errors leave this module as StoreError.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests
from google.api_core import exceptions as gexc
from google.cloud import storage

from edge_node.segments import SealedSegment
from edge_node.store_base import NO_CONTROL, StoreError, UploadControl

logger = logging.getLogger(__name__)

CHUNK_BYTES = 8 * 1024 * 1024  # a multiple of 256 KiB, as the protocol requires
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
REQUEST_TIMEOUT_S = 60.0


def parse_gs_url(url: str) -> tuple[str, str]:
    """`gs://bucket/prefix` -> (bucket, prefix)."""
    if not url.startswith("gs://"):
        raise ValueError(f"not a gs:// URL: {url!r}")
    bucket, _, prefix = url.removeprefix("gs://").partition("/")
    if not bucket:
        raise ValueError("gs:// URL has no bucket")
    return bucket, prefix.strip("/")


def _committed(response: requests.Response) -> int:
    """Bytes the session holds, from a 308's Range header (`bytes=0-N`)."""
    header = response.headers.get("Range")
    return int(header.rpartition("-")[2]) + 1 if header else 0


class Throttle:
    """Keeps the average upload rate under `bytes_per_s` (0: no cap)."""

    def __init__(self, bytes_per_s: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._rate = bytes_per_s
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self._sent = 0

    def sent(self, count: int) -> None:
        if self._rate <= 0:
            return
        self._sent += count
        ahead = self._sent / self._rate - (self._clock() - self._start)
        if ahead > 0:
            self._sleep(ahead)


class GcsStore:
    def __init__(self, client: storage.Client, bucket: str, prefix: str,
                 chunk_bytes: int = CHUNK_BYTES, max_bytes_per_s: int = 0) -> None:
        self._client = client
        self._bucket = client.bucket(bucket)
        self.prefix = prefix
        self._chunk = chunk_bytes
        self._max_bps = max_bytes_per_s
        self._http: Any = client._http  # the client's authorised session

    def uri(self, name: str) -> str:
        return f"gs://{self._bucket.name}/{name}"

    def _check(self, response: requests.Response, name: str) -> None:
        if response.status_code in RETRYABLE_STATUS:
            raise StoreError(f"{name}: HTTP {response.status_code}", retryable=True)
        if response.status_code >= 400:
            raise StoreError(f"{name}: HTTP {response.status_code} {response.text[:200]}",
                             retryable=False)

    def _request(self, method: str, url: str, name: str, **kwargs: Any) -> requests.Response:
        try:
            response: requests.Response = self._http.request(
                method, url, timeout=REQUEST_TIMEOUT_S, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise StoreError(f"{name}: {type(exc).__name__}", retryable=True) from exc
        return response

    def _start_session(self, segment: SealedSegment, name: str) -> str:
        blob = self._bucket.blob(name)
        blob.crc32c = segment.crc32c  # the service verifies the bytes against it
        try:
            url: str = blob.create_resumable_upload_session(
                content_type="video/mp4", size=segment.bytes, if_generation_match=0,
                checksum=None, timeout=REQUEST_TIMEOUT_S, retry=None)
        except gexc.PreconditionFailed:
            raise  # the caller decides what an existing object means
        except (gexc.TooManyRequests, gexc.ServerError, gexc.RequestRangeNotSatisfiable,
                requests.ConnectionError, requests.Timeout) as exc:
            raise StoreError(f"{name}: {type(exc).__name__}", retryable=True) from exc
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"{name}: {exc}", retryable=False) from exc
        return url

    def _already_stored(self, segment: SealedSegment, name: str) -> str:
        """After a 412: the object exists. The same bytes count as done."""
        try:
            blob = self._bucket.get_blob(name, timeout=REQUEST_TIMEOUT_S, retry=None)
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"{name}: {exc}", retryable=True) from exc
        if blob is not None and blob.crc32c == segment.crc32c:
            logger.info("upload.already_stored name=%s", name)
            return self.uri(name)
        raise StoreError(f"{name}: another object with different content exists",
                         retryable=False)

    def upload(self, segment: SealedSegment, name: str, session_url: str | None,
               control: UploadControl = NO_CONTROL) -> str:
        """Upload (or finish uploading) `segment` as `name`; return its gs:// URI."""
        offset = 0
        if session_url is not None:
            resumed = self._resume(segment, name, session_url)
            if isinstance(resumed, str):
                return resumed  # the session had already finished
            offset = resumed if resumed is not None else 0
            session_url = session_url if resumed is not None else None
        if session_url is None:
            try:
                session_url = self._start_session(segment, name)
            except gexc.PreconditionFailed:
                return self._already_stored(segment, name)
            control.remember_session(session_url)
        return self._send(segment, name, session_url, offset=offset, control=control)

    def _resume(self, segment: SealedSegment, name: str, session_url: str) -> int | str | None:
        """Ask a kept session how far it got: the offset to go on from, the URI
        if it already finished, or None if it expired."""
        response = self._request("PUT", session_url, name,
                                 headers={"Content-Range": f"bytes */{segment.bytes}"})
        if response.status_code in (200, 201):
            return self._finished(response, segment, name)
        if response.status_code in (404, 410):
            return None
        if response.status_code != 308:
            self._check(response, name)
        offset = _committed(response)
        logger.info("upload.resumed name=%s offset=%d", name, offset)
        return offset

    def _send(self, segment: SealedSegment, name: str, session_url: str, *, offset: int,
              control: UploadControl) -> str:
        total = segment.bytes
        throttle = Throttle(self._max_bps)
        with segment.path.open("rb") as source:
            while True:
                if control.stopping():
                    raise StoreError(f"{name}: stopped at {offset}/{total}", retryable=True)
                source.seek(offset)
                chunk = source.read(self._chunk)
                content_range = (f"bytes {offset}-{offset + len(chunk) - 1}/{total}" if chunk
                                 else f"bytes */{total}")
                response = self._request("PUT", session_url, name, data=chunk,
                                         headers={"Content-Range": content_range})
                throttle.sent(len(chunk))
                if response.status_code in (200, 201):
                    return self._finished(response, segment, name)
                if response.status_code == 412:
                    control.remember_session(None)
                    return self._already_stored(segment, name)
                if response.status_code in (404, 410):
                    control.remember_session(None)
                    raise StoreError(f"{name}: upload session expired", retryable=True)
                if response.status_code == 400 and "Content-Range" in response.text:
                    # The session disagrees with the offset it reported (the
                    # emulator answers an empty session with "bytes=0-0"): start over.
                    control.remember_session(None)
                    raise StoreError(f"{name}: session offset mismatch", retryable=True)
                if response.status_code != 308:
                    self._check(response, name)
                sent_all = offset + len(chunk) >= total
                offset = _committed(response)
                control.progress(offset)
                if sent_all and offset >= total:
                    raise StoreError(f"{name}: all bytes sent but not finalised",
                                     retryable=True)

    def _finished(self, response: requests.Response, segment: SealedSegment, name: str) -> str:
        stored = response.json()
        if stored.get("crc32c") != segment.crc32c:
            raise StoreError(f"{name}: stored crc32c {stored.get('crc32c')} != "
                             f"{segment.crc32c}", retryable=False)
        return self.uri(name)

    def put(self, name: str, data: bytes) -> str:
        try:
            self._bucket.blob(name).upload_from_string(data, content_type="image/jpeg",
                                                       timeout=REQUEST_TIMEOUT_S)
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"{name}: {exc}", retryable=True) from exc
        return self.uri(name)
