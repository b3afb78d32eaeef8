"""Coverage: how much of what a camera should have recorded it did. Pure.

Scheduled time is the union of its schedules' intervals in the period;
recorded time is the union of its segments; a gap is scheduled time with no
segment, ignoring slivers shorter than the tolerance (the moment between
two segments, a recorder starting).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.schedule_windows import Interval, merge, schedule_intervals
from schemas.schedules import Schedule

GAP_TOLERANCE = timedelta(seconds=3)


@dataclass(frozen=True)
class Coverage:
    camera_id: str
    scheduled_s: float
    recorded_s: float
    gaps: list[Interval]

    @property
    def ratio(self) -> float | None:
        return min(1.0, self.recorded_s / self.scheduled_s) if self.scheduled_s else None


def _seconds(intervals: Iterable[Interval]) -> float:
    return sum((end - start).total_seconds() for start, end in intervals)


def _subtract(base: list[Interval], cut: list[Interval]) -> list[Interval]:
    left: list[Interval] = []
    for start, end in base:
        cursor = start
        for cut_start, cut_end in cut:
            if cut_end <= cursor or cut_start >= end:
                continue
            if cut_start > cursor:
                left.append((cursor, cut_start))
            cursor = max(cursor, cut_end)
        if cursor < end:
            left.append((cursor, end))
    return left


def _intersect(base: list[Interval], within: list[Interval]) -> list[Interval]:
    return [(max(s, ws), min(e, we)) for s, e in base for ws, we in within
            if max(s, ws) < min(e, we)]


def camera_coverage(camera_id: str, schedules: Iterable[Schedule],
                    segments: Iterable[Interval], *, since: datetime, until: datetime,
                    tolerance: timedelta = GAP_TOLERANCE) -> Coverage:
    scheduled = merge([i for s in schedules if camera_id in s.camera_ids
                       for i in schedule_intervals(s, since, until)])
    recorded = merge([(max(s, since), min(e, until)) for s, e in segments
                      if max(s, since) < min(e, until)])
    gaps = [g for g in _subtract(scheduled, recorded) if g[1] - g[0] >= tolerance]
    return Coverage(camera_id, _seconds(scheduled),
                    _seconds(_intersect(recorded, scheduled)), gaps)
