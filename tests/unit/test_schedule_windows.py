"""schedule_intervals agrees with schedule_active at every instant."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.schedule_windows import merge, schedule_active, schedule_intervals
from schemas.schedules import (
    ContinuousSchedule,
    CronSchedule,
    DailySchedule,
    OnceSchedule,
    Schedule,
    WeeklySchedule,
)

BASE = datetime(2026, 3, 27, tzinfo=UTC)  # spans the London spring-forward on the 29th

schedules = st.sampled_from([
    DailySchedule(schedule_id="d", camera_ids=["c"], kind="daily", tz="Europe/London",
                  start_time=time(22, 0), end_time=time(6, 0)),
    DailySchedule(schedule_id="g", camera_ids=["c"], kind="daily", tz="Europe/London",
                  start_time=time(1, 30), end_time=time(2, 30)),
    WeeklySchedule(schedule_id="w", camera_ids=["c"], kind="weekly", tz="America/New_York",
                   days=["sat", "mon"], start_time=time(23, 0), end_time=time(1, 0)),
    CronSchedule(schedule_id="k", camera_ids=["c"], kind="cron", tz="Asia/Tokyo",
                 expression="*/20 8-10 * * *", duration_s=300),
    OnceSchedule(schedule_id="o", camera_ids=["c"], kind="once",
                 start=BASE + timedelta(hours=5), end=BASE + timedelta(hours=30)),
    ContinuousSchedule(schedule_id="a", camera_ids=["c"], kind="continuous"),
])


@settings(max_examples=60, deadline=None)
@given(schedules, st.integers(0, 4 * 24 * 3600 - 1))
def test_an_instant_is_active_exactly_when_an_interval_holds_it(
        schedule: Schedule, offset_s: int) -> None:
    since, until = BASE, BASE + timedelta(days=4)
    instant = BASE + timedelta(seconds=offset_s)
    inside = any(start <= instant < end for start, end in schedule_intervals(
        schedule, since, until))
    assert inside == schedule_active(schedule, instant)


def test_a_daily_window_across_midnight_gives_one_interval_a_night() -> None:
    schedule = DailySchedule(schedule_id="n", camera_ids=["c"], kind="daily", tz="UTC",
                             start_time=time(22, 0), end_time=time(6, 0))
    day = datetime(2026, 6, 1, tzinfo=UTC)
    intervals = schedule_intervals(schedule, day, day + timedelta(days=2))
    assert intervals == [(day, day + timedelta(hours=6)),
                         (day + timedelta(hours=22), day + timedelta(hours=30)),
                         (day + timedelta(hours=46), day + timedelta(hours=48))]


def test_merge_joins_overlapping_and_touching_intervals() -> None:
    a = datetime(2026, 1, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert merge([(a + 2 * hour, a + 3 * hour), (a, a + hour), (a + hour, a + 2 * hour),
                  (a + 5 * hour, a + 6 * hour)]) == [(a, a + 3 * hour),
                                                     (a + 5 * hour, a + 6 * hour)]
