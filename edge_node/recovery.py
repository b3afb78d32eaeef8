"""After a crash: seal what the recorders left behind, and say what was lost.

A segment being written has a sidecar (edge_node.segments.write_sidecar)
that is removed only once the segment is reported. On start-up every
sidecar still present is a segment the node never reported: a fragmented
MP4 cut short plays up to its last fragment, so it is sealed (fsynced,
checksummed) with its real duration and reported like any other; a file
that cannot be read is reported as lost, never dropped quietly. Touches
only files under the segments directory.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av
import av.error
from pydantic import TypeAdapter, ValidationError

from edge_node.segments import SealedSegment, crc32c_of_file, fsync_file
from schemas.events import Codec

logger = logging.getLogger(__name__)
_CODEC: TypeAdapter[Codec] = TypeAdapter(Codec)


@dataclass(frozen=True)
class LostSegment:
    segment_id: str
    camera_id: str
    recording_id: str
    error: str


def _probe(path: Path) -> tuple[float, int]:
    """Seconds of video and frames a (possibly truncated) file holds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.time_base is None:
            raise ValueError("no time base")
        spans = [(p.pts, p.pts + (p.duration or 0)) for p in container.demux(stream)
                 if p.pts is not None]
        if not spans:
            raise ValueError("no frames")
        first = min(start for start, _ in spans)
        last = max(end for _, end in spans)
        return float((last - first) * stream.time_base), len(spans)


def _recover(sidecar: Path, meta: dict[str, Any]) -> SealedSegment:
    path = sidecar.with_suffix(".mp4")
    seconds, frames = _probe(path)
    start = datetime.fromisoformat(meta["start"])
    fsync_file(path)
    return SealedSegment(
        recording_id=meta["recording_id"], segment_id=path.stem, camera_id=meta["camera_id"],
        path=path, start=start, end=start + timedelta(seconds=seconds),
        bytes=path.stat().st_size, crc32c=crc32c_of_file(path),
        codec=_CODEC.validate_python(meta["codec"]), width=int(meta["width"]),
        height=int(meta["height"]), frames=frames, lost_packets=0)


def recover_segments(segments_dir: Path) -> list[SealedSegment | LostSegment]:
    """Every unreported segment under `segments_dir`, sealed or declared lost.
    The caller reports each one and then removes its sidecar."""
    found: list[SealedSegment | LostSegment] = []
    for sidecar in sorted(segments_dir.glob("*/*.json")):
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as exc:
            logger.error("recovery.unreadable_sidecar path=%s error=%s", sidecar, exc)  # noqa: TRY400
            continue
        try:
            segment = _recover(sidecar, meta)
        except (av.error.FFmpegError, OSError, ValueError, KeyError, ValidationError) as exc:
            lost = LostSegment(sidecar.stem, str(meta.get("camera_id", sidecar.parent.name)),
                               str(meta.get("recording_id", "")), f"unreadable after crash: {exc}")
            logger.warning("recovery.lost segment_id=%s error=%s", lost.segment_id, lost.error)
            found.append(lost)
            continue
        logger.info("recovery.sealed segment_id=%s seconds=%.1f frames=%d", segment.segment_id,
                    (segment.end - segment.start).total_seconds(), segment.frames)
        found.append(segment)
    return found
