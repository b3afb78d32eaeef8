"""Which local segments to delete, and why: pure.

Uploaded copies kept for local playback go first (past their maximum age,
then oldest first while space is short); a segment not yet uploaded goes
only when nothing else frees enough, oldest first, and every such loss is
reported by the caller as `storage.evicted`. Segments still being written
or uploaded are never chosen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class LocalSegment:
    segment_id: str
    camera_id: str
    bytes: int
    created: float  # epoch seconds
    uploaded: bool


@dataclass(frozen=True)
class RetentionPolicy:
    min_free_bytes: int  # keep at least this much of the disk free
    max_bytes: int  # all local segments together; 0: no quota
    max_uploaded_age_s: float  # uploaded copies kept this long at most


@dataclass(frozen=True)
class Eviction:
    segment: LocalSegment
    reason: str


def choose_evictions(segments: Iterable[LocalSegment], *, free_bytes: int,
                     policy: RetentionPolicy, now: float,
                     protected: frozenset[str] = frozenset()) -> list[Eviction]:
    candidates = sorted((s for s in segments if s.segment_id not in protected),
                        key=lambda s: (not s.uploaded, s.created))
    used = sum(s.bytes for s in candidates)
    chosen: list[Eviction] = []
    kept: list[LocalSegment] = []
    for segment in candidates:
        if segment.uploaded and now - segment.created > policy.max_uploaded_age_s:
            chosen.append(Eviction(segment, "max_age"))
            free_bytes += segment.bytes
            used -= segment.bytes
        else:
            kept.append(segment)
    for segment in kept:  # uploaded first, then the rest, oldest first in each
        short_of_disk = free_bytes < policy.min_free_bytes
        over_quota = policy.max_bytes > 0 and used > policy.max_bytes
        if not (short_of_disk or over_quota):
            break
        chosen.append(Eviction(segment, "disk_low" if short_of_disk else "quota"))
        free_bytes += segment.bytes
        used -= segment.bytes
    return chosen
