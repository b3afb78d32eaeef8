"""Downloading segments and proving each one is the bytes the node recorded.

Every file is written beside its final name and only renamed into place once
its crc32c (Cloud Storage's encoding: base64 of the big-endian 4 bytes) equals
the one the node computed when it sealed the segment. A mismatch deletes the
partial file and raises: a corrupt copy is never left looking like evidence.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import google_crc32c

if TYPE_CHECKING:
    from cctv.api_client import ApiClient

READ_CHUNK = 1 << 20


class SegmentUnavailableError(LookupError):
    """The segment has no stored copy to download (not uploaded, failed, evicted)."""


class CrcMismatchError(ValueError):
    """The downloaded bytes are not the segment the node sealed."""


@dataclass(frozen=True)
class SegmentRef:
    """What a download needs to know of a segment, from its recording's JSON."""

    segment_id: str
    recording_id: str
    camera_id: str
    start: datetime | None
    bytes: int
    crc32c: str
    upload_state: str

    @classmethod
    def of(cls, recording: dict[str, Any], segment: dict[str, Any]) -> SegmentRef:
        start = datetime.fromisoformat(segment["start"]) if segment.get("start") else None
        return cls(segment_id=segment["segment_id"], recording_id=recording["recording_id"],
                   camera_id=recording["camera_id"], start=start, bytes=segment["bytes"],
                   crc32c=segment["crc32c"], upload_state=segment["upload_state"])

    @property
    def file_name(self) -> str:
        """`{camera}_{start UTC}_{segment_id}.mp4`: sorts by camera, then time."""
        when = f"{self.start:%Y%m%dT%H%M%SZ}_" if self.start else ""
        return f"{self.camera_id}_{when}{self.segment_id}.mp4"


def segments_of(recording: dict[str, Any]) -> list[SegmentRef]:
    return [SegmentRef.of(recording, s) for s in recording["segments"]]


class RunningCrc32c:
    """crc32c over bytes as they arrive, in Cloud Storage's text form."""

    def __init__(self) -> None:
        self._crc = 0

    def update(self, chunk: bytes) -> None:
        self._crc = google_crc32c.extend(self._crc, chunk)

    @property
    def text(self) -> str:
        return base64.b64encode(self._crc.to_bytes(4, "big")).decode("ascii")


def crc32c_text(chunks: Iterable[bytes]) -> str:
    checksum = RunningCrc32c()
    for chunk in chunks:
        checksum.update(chunk)
    return checksum.text


def file_crc32c(path: Path) -> str:
    with path.open("rb") as handle:
        return crc32c_text(iter(lambda: handle.read(READ_CHUNK), b""))


@dataclass(frozen=True)
class Downloaded:
    path: Path
    bytes: int
    already_there: bool


def download_segment(client: ApiClient, ref: SegmentRef, out_dir: Path,
                     advance: Callable[[int], None]) -> Downloaded:
    """Fetch one segment into `out_dir`, verified; a verified copy already
    there is kept and not fetched again."""
    if ref.upload_state != "uploaded":
        raise SegmentUnavailableError(
            f"segment {ref.segment_id} of recording {ref.recording_id} is not in storage "
            f"({ref.upload_state})")
    target = out_dir / ref.file_name
    if target.is_file() and file_crc32c(target) == ref.crc32c:
        advance(ref.bytes)
        return Downloaded(target, target.stat().st_size, already_there=True)
    partial = target.with_name(f"{target.name}.part")
    checksum = RunningCrc32c()
    try:
        with partial.open("wb") as handle:
            def sink(chunk: bytes) -> None:
                handle.write(chunk)
                checksum.update(chunk)
                advance(len(chunk))

            received = client.download(ref.segment_id, sink)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    actual = checksum.text
    if actual != ref.crc32c:
        partial.unlink()
        sizes = f", {received} bytes where {ref.bytes} were recorded" \
            if received != ref.bytes else ""
        raise CrcMismatchError(
            f"crc32c mismatch for segment {ref.segment_id}: expected {ref.crc32c}, "
            f"got {actual}{sizes}; nothing was kept")
    partial.replace(target)
    return Downloaded(target, received, already_there=False)
