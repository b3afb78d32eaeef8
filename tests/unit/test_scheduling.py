"""Which cameras record at an instant: schedule windows of every kind, IANA zones and
DST, and manual recordings merged with schedules."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from edge_node.scheduling import (
    MANUAL_SEGMENT_SECONDS,
    ManualRecording,
    Want,
    cameras_to_record,
    schedule_active,
)
from schemas.schedules import Schedule

ADAPTER: TypeAdapter[Schedule] = TypeAdapter(Schedule)
# hypothesis takes naive bounds and attaches the zone itself.
NAIVE_2000 = datetime(2000, 1, 1)  # noqa: DTZ001
NAIVE_2099 = datetime(2099, 12, 31)  # noqa: DTZ001


def schedule(kind: str, schedule_id: str = "s1", camera_ids: list[str] | None = None,
             **fields: Any) -> Schedule:
    """A schedule parsed from its JSON shape, as a node receives it."""
    return ADAPTER.validate_python({
        "schedule_id": schedule_id, "camera_ids": camera_ids or ["cam-1"], "kind": kind,
        **fields})


def daily(start: str, end: str, tz: str = "UTC", **fields: Any) -> Schedule:
    return schedule("daily", start_time=start, end_time=end, tz=tz, **fields)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,  # noqa: PLR0917  # datetime()'s shape
        second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- once --------------------------------------------------------------------------------


def test_once_is_active_from_start_inclusive_to_end_exclusive() -> None:
    s = schedule("once", start="2026-05-01T10:00:00Z", end="2026-05-01T11:00:00Z")
    assert not schedule_active(s, utc(2026, 5, 1, 9, 59, 59))
    assert schedule_active(s, utc(2026, 5, 1, 10))
    assert schedule_active(s, utc(2026, 5, 1, 10, 59, 59))
    assert not schedule_active(s, utc(2026, 5, 1, 11))


def test_once_compares_instants_whatever_the_offset_of_now() -> None:
    s = schedule("once", start="2026-05-01T10:00:00+02:00", end="2026-05-01T11:00:00+02:00")
    assert schedule_active(s, utc(2026, 5, 1, 8, 30))
    assert not schedule_active(s, utc(2026, 5, 1, 10, 30))


# --- daily -------------------------------------------------------------------------------


def test_daily_within_a_day() -> None:
    s = daily("09:00", "17:00")
    assert not schedule_active(s, utc(2026, 5, 4, 8, 59, 59))
    assert schedule_active(s, utc(2026, 5, 4, 9))
    assert schedule_active(s, utc(2026, 5, 4, 16, 59, 59))
    assert not schedule_active(s, utc(2026, 5, 4, 17))
    # Every day, not just one.
    assert schedule_active(s, utc(2026, 12, 25, 12))


def test_daily_crossing_midnight() -> None:
    s = daily("22:00", "06:00")
    assert not schedule_active(s, utc(2026, 5, 4, 21, 59, 59))
    assert schedule_active(s, utc(2026, 5, 4, 22))
    assert schedule_active(s, utc(2026, 5, 4, 23))
    assert schedule_active(s, utc(2026, 5, 5, 0))
    assert schedule_active(s, utc(2026, 5, 5, 5, 59))
    assert schedule_active(s, utc(2026, 5, 5, 5, 59, 59))
    assert not schedule_active(s, utc(2026, 5, 5, 6))
    assert not schedule_active(s, utc(2026, 5, 5, 12))


def test_daily_in_new_york_follows_its_utc_offset_through_the_year() -> None:
    s = daily("09:00", "10:00", tz="America/New_York")
    # January: EST, UTC-5.
    assert schedule_active(s, utc(2026, 1, 15, 14, 30))
    assert not schedule_active(s, utc(2026, 1, 15, 13, 30))
    assert not schedule_active(s, utc(2026, 1, 15, 15))
    # July: EDT, UTC-4.
    assert schedule_active(s, utc(2026, 7, 15, 13, 30))
    assert not schedule_active(s, utc(2026, 7, 15, 14, 30))
    assert not schedule_active(s, utc(2026, 7, 15, 12, 59, 59))


def test_daily_crossing_midnight_in_a_zone_behind_utc() -> None:
    # 22:00-02:00 in New York (EDT) is 02:00-06:00 UTC on the next UTC day.
    s = daily("22:00", "02:00", tz="America/New_York")
    assert schedule_active(s, utc(2026, 7, 15, 2))
    assert schedule_active(s, utc(2026, 7, 15, 5, 59))
    assert not schedule_active(s, utc(2026, 7, 15, 6))
    assert not schedule_active(s, utc(2026, 7, 15, 1, 59))


# --- DST in Europe/London ----------------------------------------------------------------
# 2026-03-29: at 01:00 UTC the clock jumps from 01:00 GMT to 02:00 BST, so local
# 01:00-02:00 does not exist. 2026-10-25: at 01:00 UTC the clock goes back from 02:00 BST
# to 01:00 GMT, so local 01:00-02:00 happens twice.


def test_spring_forward_window_starting_in_the_gap_starts_when_the_clock_jumps_past() -> None:
    s = daily("01:30", "02:30", tz="Europe/London")
    # The module promises: a start inside a DST gap starts when the clock jumps past it.
    # The jump is at 01:00 UTC (02:00 BST); the window ends at 02:30 BST = 01:30 UTC.
    assert not schedule_active(s, utc(2026, 3, 29, 0, 59, 59))  # 00:59:59 GMT
    assert schedule_active(s, utc(2026, 3, 29, 1))  # 02:00 BST
    assert schedule_active(s, utc(2026, 3, 29, 1, 15))  # 02:15 BST
    assert schedule_active(s, utc(2026, 3, 29, 1, 29, 59))  # 02:29:59 BST
    assert not schedule_active(s, utc(2026, 3, 29, 1, 30))  # 02:30 BST


def test_spring_forward_days_around_the_change_are_ordinary() -> None:
    s = daily("01:30", "02:30", tz="Europe/London")
    # The day before: GMT, so 01:30-02:30 UTC.
    assert schedule_active(s, utc(2026, 3, 28, 1, 30))
    assert not schedule_active(s, utc(2026, 3, 28, 2, 30))
    # The day after: BST, so 00:30-01:30 UTC.
    assert schedule_active(s, utc(2026, 3, 30, 0, 30))
    assert not schedule_active(s, utc(2026, 3, 30, 1, 30))
    assert not schedule_active(s, utc(2026, 3, 30, 0, 29, 59))


def test_spring_forward_window_ending_in_the_gap_ends_when_the_clock_jumps_past() -> None:
    # 00:30-01:30 local: the clock never shows 01:00-02:00, so the window is over once it
    # shows 02:00 BST (01:00 UTC); at 01:15 UTC the clock reads 02:15, outside 00:30-01:30.
    s = daily("00:30", "01:30", tz="Europe/London")
    assert schedule_active(s, utc(2026, 3, 29, 0, 30))
    assert schedule_active(s, utc(2026, 3, 29, 0, 59, 59))
    assert not schedule_active(s, utc(2026, 3, 29, 1, 15))


def test_spring_forward_window_around_the_gap_is_an_hour_shorter() -> None:
    # 00:30-03:00 local: 00:30 GMT (00:30 UTC) to 03:00 BST (02:00 UTC).
    s = daily("00:30", "03:00", tz="Europe/London")
    assert not schedule_active(s, utc(2026, 3, 29, 0, 29, 59))
    assert schedule_active(s, utc(2026, 3, 29, 0, 30))
    assert schedule_active(s, utc(2026, 3, 29, 1, 30))
    assert not schedule_active(s, utc(2026, 3, 29, 2))


def test_fall_back_window_in_the_repeated_hour_starts_the_first_time_and_runs_through() -> None:
    # 01:30-02:30 local: starts the first time the clock reads 01:30 (BST, 00:30 UTC), keeps
    # going through the repeated hour, and ends when the clock reads 02:30 GMT (02:30 UTC).
    s = daily("01:30", "02:30", tz="Europe/London")
    assert not schedule_active(s, utc(2026, 10, 25, 0, 29, 59))  # 01:29:59 BST
    assert schedule_active(s, utc(2026, 10, 25, 0, 30))  # 01:30 BST
    assert schedule_active(s, utc(2026, 10, 25, 0, 59, 59))  # 01:59:59 BST
    assert schedule_active(s, utc(2026, 10, 25, 1))  # 01:00 GMT, the repeat
    assert schedule_active(s, utc(2026, 10, 25, 1, 45))  # 01:45 GMT
    assert schedule_active(s, utc(2026, 10, 25, 2, 29, 59))  # 02:29:59 GMT
    assert not schedule_active(s, utc(2026, 10, 25, 2, 30))  # 02:30 GMT


def test_fall_back_window_ending_in_the_repeated_hour_ends_the_first_time() -> None:
    # 00:30-01:30 local: ends the first time the clock reads 01:30 (BST, 00:30 UTC) and
    # does not run again when the clock repeats 01:00-02:00 in GMT.
    s = daily("00:30", "01:30", tz="Europe/London")
    assert schedule_active(s, utc(2026, 10, 24, 23, 30))  # 00:30 BST
    assert schedule_active(s, utc(2026, 10, 25, 0, 29, 59))  # 01:29:59 BST
    assert not schedule_active(s, utc(2026, 10, 25, 0, 30))  # 01:30 BST
    assert not schedule_active(s, utc(2026, 10, 25, 1, 10))  # 01:10 GMT, the repeat


def test_fall_back_window_around_the_overlap_is_an_hour_longer() -> None:
    # 00:00-03:00 local: 00:00 BST (23:00 UTC the day before) to 03:00 GMT (03:00 UTC).
    s = daily("00:00", "03:00", tz="Europe/London")
    assert not schedule_active(s, utc(2026, 10, 24, 22, 59, 59))
    assert schedule_active(s, utc(2026, 10, 24, 23))
    assert schedule_active(s, utc(2026, 10, 25, 2, 59, 59))
    assert not schedule_active(s, utc(2026, 10, 25, 3))


# --- weekly ------------------------------------------------------------------------------
# 2026-05-04 is a Monday.


def test_weekly_only_on_listed_days() -> None:
    s = schedule("weekly", days=["mon", "wed"], start_time="09:00", end_time="17:00")
    assert schedule_active(s, utc(2026, 5, 4, 12))  # Monday
    assert not schedule_active(s, utc(2026, 5, 5, 12))  # Tuesday
    assert schedule_active(s, utc(2026, 5, 6, 12))  # Wednesday
    assert not schedule_active(s, utc(2026, 5, 9, 12))  # Saturday
    assert not schedule_active(s, utc(2026, 5, 4, 17))  # Monday, end is exclusive
    assert schedule_active(s, utc(2026, 5, 11, 9))  # next Monday


def test_weekly_window_crossing_midnight_continues_into_an_unlisted_day() -> None:
    s = schedule("weekly", days=["fri"], start_time="22:00", end_time="02:00")
    # Friday 2026-05-08 22:00 to Saturday 02:00.
    assert schedule_active(s, utc(2026, 5, 8, 23))
    assert schedule_active(s, utc(2026, 5, 9, 1, 59, 59))
    assert not schedule_active(s, utc(2026, 5, 9, 2))
    # Saturday's own 22:00 is not a listed start.
    assert not schedule_active(s, utc(2026, 5, 9, 23))
    # Early Friday belongs to a window that would have started on Thursday.
    assert not schedule_active(s, utc(2026, 5, 8, 1))


def test_weekly_days_are_local_days_of_the_zone() -> None:
    # Monday 01:00-03:00 in Tokyo (UTC+9) is Sunday 16:00-18:00 UTC.
    s = schedule("weekly", days=["mon"], start_time="01:00", end_time="03:00", tz="Asia/Tokyo")
    assert schedule_active(s, utc(2026, 5, 3, 17))  # Sunday in UTC, Monday in Tokyo
    assert not schedule_active(s, utc(2026, 5, 4, 1))  # Monday in UTC, 10:00 in Tokyo


# --- continuous and cron -----------------------------------------------------------------


def test_continuous_is_always_active() -> None:
    s = schedule("continuous")
    for moment in (utc(2000, 1, 1), utc(2026, 3, 29, 1, 30), utc(2099, 12, 31, 23, 59, 59)):
        assert schedule_active(s, moment)


def test_cron_with_duration() -> None:
    s = schedule("cron", expression="0 * * * *", duration_s=600)
    assert schedule_active(s, utc(2026, 5, 4, 10))
    assert schedule_active(s, utc(2026, 5, 4, 10, 5))
    assert schedule_active(s, utc(2026, 5, 4, 10, 9, 59))
    assert not schedule_active(s, utc(2026, 5, 4, 10, 10))
    assert not schedule_active(s, utc(2026, 5, 4, 10, 15))
    assert not schedule_active(s, utc(2026, 5, 4, 9, 59, 59))


def test_cron_is_matched_in_the_schedule_zone() -> None:
    # 09:00 on weekdays in New York, for 30 minutes; 2026-07-15 is a Wednesday (EDT).
    s = schedule("cron", expression="0 9 * * 1-5", duration_s=1800, tz="America/New_York")
    assert schedule_active(s, utc(2026, 7, 15, 13, 10))
    assert not schedule_active(s, utc(2026, 7, 15, 9, 10))
    assert not schedule_active(s, utc(2026, 7, 18, 13, 10))  # Saturday


def test_cron_duration_longer_than_the_period_stays_active() -> None:
    s = schedule("cron", expression="*/5 * * * *", duration_s=600)
    assert all(schedule_active(s, utc(2026, 5, 4, 10, m, 30)) for m in range(60))


# --- disabled ----------------------------------------------------------------------------


@pytest.mark.parametrize("fields", [
    {"kind": "continuous"},
    {"kind": "once", "start": "2026-05-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"},
    {"kind": "daily", "start_time": "00:00", "end_time": "23:59"},
    {"kind": "weekly", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
     "start_time": "00:00", "end_time": "23:59"},
    {"kind": "cron", "expression": "* * * * *", "duration_s": 86_400},
])
def test_disabled_schedules_are_never_active(fields: dict[str, Any]) -> None:
    enabled = ADAPTER.validate_python({"schedule_id": "s1", "camera_ids": ["c"], **fields})
    disabled = enabled.model_copy(update={"enabled": False})
    now = utc(2026, 5, 4, 12)
    assert schedule_active(enabled, now)
    assert not schedule_active(disabled, now)
    assert cameras_to_record([disabled], {}, now) == {}


# --- cameras_to_record -------------------------------------------------------------------


def test_cameras_of_active_schedules_record_with_the_schedule_reason() -> None:
    s = daily("09:00", "17:00", camera_ids=["cam-1", "cam-2"], segment_seconds=30)
    wants = cameras_to_record([s], {}, utc(2026, 5, 4, 12))
    assert wants == {
        "cam-1": Want("cam-1", "schedule", 30, schedule_id="s1"),
        "cam-2": Want("cam-2", "schedule", 30, schedule_id="s1"),
    }
    assert cameras_to_record([s], {}, utc(2026, 5, 4, 18)) == {}


def test_manual_recording_is_active_until_its_end() -> None:
    until = utc(2026, 5, 4, 12, 0, 30)
    manual = {"cam-9": ManualRecording("cam-9", until, "cmd-1")}
    want = Want("cam-9", "manual", MANUAL_SEGMENT_SECONDS, command_id="cmd-1")
    assert cameras_to_record([], manual, utc(2026, 5, 4, 12)) == {"cam-9": want}
    assert cameras_to_record([], manual, until - timedelta(microseconds=1)) == {"cam-9": want}
    assert cameras_to_record([], manual, until) == {}


def test_expired_manual_recordings_are_ignored() -> None:
    now = utc(2026, 5, 4, 12)
    manual = {
        "old": ManualRecording("old", now - timedelta(seconds=1), "cmd-old"),
        "new": ManualRecording("new", now + timedelta(seconds=1), "cmd-new"),
    }
    assert set(cameras_to_record([], manual, now)) == {"new"}


def test_manual_and_schedules_are_merged_and_the_schedule_reason_wins() -> None:
    now = utc(2026, 5, 4, 12)
    s = daily("09:00", "17:00", camera_ids=["cam-1", "cam-2"])
    manual = {
        "cam-2": ManualRecording("cam-2", now + timedelta(minutes=5), "cmd-2"),
        "cam-3": ManualRecording("cam-3", now + timedelta(minutes=5), "cmd-3"),
    }
    wants = cameras_to_record([s], manual, now)
    assert set(wants) == {"cam-1", "cam-2", "cam-3"}
    assert wants["cam-2"] == Want("cam-2", "schedule", 60, schedule_id="s1")
    assert wants["cam-3"].trigger == "manual"
    assert wants["cam-3"].command_id == "cmd-3"
    # Once the schedule ends, the manual recording still in force takes over.
    later = utc(2026, 5, 4, 17)
    manual_late = {"cam-2": ManualRecording("cam-2", later + timedelta(minutes=5), "cmd-2")}
    assert cameras_to_record([s], manual_late, later) == {
        "cam-2": Want("cam-2", "manual", MANUAL_SEGMENT_SECONDS, command_id="cmd-2")}


def test_overlapping_schedules_give_the_first_by_id_whatever_the_input_order() -> None:
    now = utc(2026, 5, 4, 12)
    a = schedule("continuous", schedule_id="a-sched", camera_ids=["cam-1"], segment_seconds=10)
    b = schedule("continuous", schedule_id="b-sched", camera_ids=["cam-1"], segment_seconds=20)
    for order in ([a, b], [b, a]):
        assert cameras_to_record(order, {}, now)["cam-1"].schedule_id == "a-sched"


def test_an_inactive_schedule_does_not_hide_an_active_one() -> None:
    now = utc(2026, 5, 4, 12)
    inactive = daily("20:00", "21:00", camera_ids=["cam-1"]).model_copy(
        update={"schedule_id": "a-night"})
    active = schedule("continuous", schedule_id="b-always", camera_ids=["cam-1"])
    assert cameras_to_record([inactive, active], {}, now)["cam-1"].schedule_id == "b-always"


# --- property: a daily window equals a brute-force wall-clock check ----------------------


def _wall_clock_check(start: time, end: time, zone: ZoneInfo, now: datetime) -> bool:
    local = now.astimezone(zone).time().replace(tzinfo=None)
    if start < end:
        return start <= local < end
    return local >= start or local < end


@given(
    start=st.times(),
    end=st.times(),
    tz=st.sampled_from(["UTC", "Asia/Tokyo", "Asia/Kolkata"]),
    now=st.datetimes(min_value=NAIVE_2000, max_value=NAIVE_2099, timezones=st.just(UTC)),
)
def test_property_daily_matches_local_wall_clock(start: time, end: time, tz: str,
                                                 now: datetime) -> None:
    if start == end:
        return  # refused by the model: use `continuous` for all day
    s = schedule("daily", start_time=start.isoformat(), end_time=end.isoformat(), tz=tz)
    assert schedule_active(s, now) == _wall_clock_check(start, end, ZoneInfo(tz), now)


@given(
    start=st.times().map(lambda t: t.replace(microsecond=0)),
    now=st.datetimes(min_value=NAIVE_2000, max_value=NAIVE_2099, timezones=st.just(UTC)),
)
def test_property_daily_window_boundaries_are_start_inclusive_end_exclusive(
    start: time, now: datetime
) -> None:
    """At the exact local start instant the window is on; at the exact end it is off."""
    local_day = now.astimezone(ZoneInfo("Asia/Tokyo")).date()
    begin = datetime.combine(local_day, start, tzinfo=ZoneInfo("Asia/Tokyo"))
    finish = begin + timedelta(hours=1)
    s = schedule("daily", start_time=start.isoformat(),
                 end_time=finish.time().isoformat(), tz="Asia/Tokyo")
    assert schedule_active(s, begin.astimezone(UTC))
    assert not schedule_active(s, finish.astimezone(UTC))
    assert schedule_active(s, (finish - timedelta(seconds=1)).astimezone(UTC))
    assert not schedule_active(s, (begin - timedelta(seconds=1)).astimezone(UTC))
