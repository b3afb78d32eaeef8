"""Segment files: where they live, what their object is called, their checksum.

crc32c is encoded as Cloud Storage encodes it (base64 of the big-endian 4
bytes) so it compares directly with an object's metadata.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import google_crc32c

from schemas.events import Codec

CHUNK = 1 << 20
# How every recorder writes MP4: a fragment per key frame, so a file cut short
# by a crash or a power loss plays up to its last fragment.
FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}


@dataclass(frozen=True)
class SealedSegment:
    """A segment file flushed, fsynced and checksummed: safe to report."""

    recording_id: str
    segment_id: str
    camera_id: str
    path: Path
    start: datetime
    end: datetime
    bytes: int
    crc32c: str
    codec: Codec
    width: int
    height: int
    frames: int
    lost_packets: int


def crc32c_of_file(path: Path) -> str:
    crc = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            crc = google_crc32c.extend(crc, chunk)
    return encode_crc32c(crc)


def encode_crc32c(crc: int) -> str:
    return base64.b64encode(crc.to_bytes(4, "big")).decode()


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def object_name(prefix: str, node_id: str, camera_id: str, start: datetime,
                segment_id: str) -> str:
    """`{prefix}/{node}/{camera}/YYYY/MM/DD/{start %Y%m%dT%H%M%SZ}_{segment}.mp4`."""
    utc = start.astimezone(UTC)
    name = (f"{node_id}/{camera_id}/{utc:%Y/%m/%d}/{utc:%Y%m%dT%H%M%SZ}_{segment_id}.mp4")
    return f"{prefix.strip('/')}/{name}" if prefix.strip("/") else name


def sidecar_path(segment_path: Path) -> Path:
    return segment_path.with_suffix(".json")


def write_sidecar(segment_path: Path, *, recording_id: str, camera_id: str, start: datetime,
                  codec: str, width: int, height: int) -> None:
    """What a segment is, written when it opens and removed once it is reported,
    so a segment left behind by a crash can be sealed and reported on restart."""
    sidecar_path(segment_path).write_text(json.dumps({
        "recording_id": recording_id, "camera_id": camera_id, "start": start.isoformat(),
        "codec": codec, "width": width, "height": height}))
