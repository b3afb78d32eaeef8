"""Coverage, the pure function: scheduled seconds against recorded seconds for
one camera over a period, and the gaps an operator has to look at."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from cloud_service.coverage import GAP_TOLERANCE, camera_coverage
from schemas.schedule_windows import Interval
from schemas.schedules import (
    ContinuousSchedule,
    DailySchedule,
    OnceSchedule,
    Schedule,
)

T0 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
DAY_START = datetime(2025, 3, 4, tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)


def at(minutes: float) -> datetime:
    """T0 plus some minutes."""
    return T0 + timedelta(minutes=minutes)


def once(schedule_id: str, start: datetime, end: datetime, cameras: tuple[str, ...] = ("cam-1",),
         *, enabled: bool = True) -> OnceSchedule:
    return OnceSchedule(schedule_id=schedule_id, camera_ids=list(cameras), kind="once",
                        start=start, end=end, enabled=enabled)


def back_to_back(start: datetime, end: datetime, seconds: float,
                 pause: timedelta = timedelta(0)) -> list[Interval]:
    """Segments of `seconds` from start to end, each `pause` after the previous one."""
    segments: list[Interval] = []
    cursor = start
    while cursor < end:
        segment_end = min(cursor + timedelta(seconds=seconds), end)
        segments.append((cursor, segment_end))
        cursor = segment_end + pause
    return segments


def test_everything_scheduled_was_recorded() -> None:
    schedules: list[Schedule] = [once("morning", at(0), at(10))]
    coverage = camera_coverage("cam-1", schedules, back_to_back(at(0), at(10), 2),
                               since=DAY_START, until=DAY_END)
    assert coverage.scheduled_s == 600
    assert coverage.recorded_s == 600
    assert coverage.ratio == 1
    assert coverage.gaps == []


def test_a_hole_longer_than_the_tolerance_is_a_gap_with_exact_bounds() -> None:
    hole_start, hole_end = at(4) + timedelta(seconds=1), at(6) + timedelta(seconds=30)
    segments = back_to_back(at(0), hole_start, 2) + back_to_back(hole_end, at(10), 2)
    coverage = camera_coverage("cam-1", [once("morning", at(0), at(10))], segments,
                               since=DAY_START, until=DAY_END)
    hole_s = (hole_end - hole_start).total_seconds()
    assert coverage.gaps == [(hole_start, hole_end)]
    assert coverage.scheduled_s == 600
    assert coverage.recorded_s == 600 - hole_s
    assert coverage.ratio == (600 - hole_s) / 600


def test_slivers_shorter_than_the_tolerance_are_not_gaps_but_are_not_recorded_either() -> None:
    pause = GAP_TOLERANCE - timedelta(milliseconds=500)
    segments = back_to_back(at(0), at(10), 60, pause=pause)
    coverage = camera_coverage("cam-1", [once("morning", at(0), at(10))], segments,
                               since=DAY_START, until=DAY_END)
    assert coverage.gaps == []
    assert len(segments) > 5
    missing = (len(segments) - 1) * pause.total_seconds()
    assert coverage.recorded_s == 600 - missing
    assert coverage.ratio is not None
    assert coverage.ratio < 1


def test_a_missing_start_and_end_of_the_window_are_gaps_too() -> None:
    segments = back_to_back(at(1), at(9), 2)
    coverage = camera_coverage("cam-1", [once("morning", at(0), at(10))], segments,
                               since=DAY_START, until=DAY_END)
    assert coverage.gaps == [(at(0), at(1)), (at(9), at(10))]
    assert coverage.recorded_s == 480


def test_recording_outside_the_schedule_does_not_count_as_recorded() -> None:
    segments = [(at(-10), at(2)), (at(8), at(20)), (at(30), at(40))]
    coverage = camera_coverage("cam-1", [once("morning", at(0), at(10))], segments,
                               since=DAY_START, until=DAY_END)
    assert coverage.scheduled_s == 600
    assert coverage.recorded_s == 240  # 10:00-10:02 and 10:08-10:10 only
    assert coverage.gaps == [(at(2), at(8))]
    assert coverage.ratio == 0.4


def test_overlapping_schedules_count_their_union_once() -> None:
    schedules: list[Schedule] = [
        once("early", at(0), at(10)),
        once("late", at(5), at(15)),
        # Inside both: changes nothing.
        once("inner", at(6), at(7), ("cam-1", "cam-2")),
        # Other camera's schedule, and a disabled one: not this camera's time.
        once("other", at(20), at(30), ("cam-2",)),
        once("off", at(40), at(50), enabled=False),
    ]
    coverage = camera_coverage("cam-1", schedules, back_to_back(at(0), at(12), 2),
                               since=DAY_START, until=DAY_END)
    assert coverage.scheduled_s == 900
    assert coverage.recorded_s == 720
    assert coverage.gaps == [(at(12), at(15))]
    assert coverage.ratio == 0.8


def test_daily_and_continuous_schedules_are_clipped_to_the_period() -> None:
    night = DailySchedule(schedule_id="night", camera_ids=["cam-1"], kind="daily", tz="UTC",
                          start_time=time(22), end_time=time(6))
    coverage = camera_coverage("cam-1", [night], [], since=DAY_START, until=DAY_END)
    # 00:00-06:00 (the window from the night before) and 22:00-24:00.
    assert coverage.scheduled_s == 8 * 3600
    assert coverage.gaps == [(DAY_START, DAY_START + timedelta(hours=6)),
                             (DAY_END - timedelta(hours=2), DAY_END)]
    assert coverage.ratio == 0

    always = ContinuousSchedule(schedule_id="always", camera_ids=["cam-1"], kind="continuous")
    since, until = at(0), at(1)
    full = camera_coverage("cam-1", [always], [(at(-5), at(5))], since=since, until=until)
    assert full.scheduled_s == 60
    assert full.recorded_s == 60
    assert full.gaps == []


def test_no_schedule_means_no_ratio_even_with_recordings() -> None:
    segments = back_to_back(at(0), at(10), 2)
    others: list[Schedule] = [once("other", at(0), at(10), ("cam-2",))]
    for schedules in ([], others):
        coverage = camera_coverage("cam-1", schedules, segments, since=DAY_START, until=DAY_END)
        assert coverage.scheduled_s == 0
        assert coverage.recorded_s == 0
        assert coverage.ratio is None
        assert coverage.gaps == []
