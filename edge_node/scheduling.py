"""Which cameras record at an instant: a pure function of the schedules,
the manual recordings in force and the time.

Wall-clock windows (daily, weekly, cron) are evaluated in the schedule's IANA
zone and compared as UTC instants, which is the one place DST gaps, overlaps
and clock steps are dealt with: a window starts when the zone's clock first
reaches its start (a start inside a DST gap starts when the clock jumps past
it) and every instant is judged afresh, so a reboot or a clock step resumes
whatever window the new time falls in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from schemas.cron import CronExpression
from schemas.schedules import (
    ContinuousSchedule,
    CronSchedule,
    DailySchedule,
    OnceSchedule,
    Schedule,
    WeeklySchedule,
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MANUAL_SEGMENT_SECONDS = 60


@dataclass(frozen=True)
class ManualRecording:
    camera_id: str
    until: datetime  # UTC
    command_id: str


@dataclass(frozen=True)
class Want:
    """Why a camera should be recording now."""

    camera_id: str
    trigger: Literal["schedule", "manual"]
    segment_seconds: int
    schedule_id: str | None = None
    command_id: str | None = None


def _at(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant the zone's clock first reads `wall` on `day`.

    In a fall-back overlap that is the first of the two; in a spring-forward
    gap (a wall time that never happens) it is the instant the clock jumps
    past it.
    """
    local = datetime.combine(day, wall)
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == local:
        return first
    # In a gap fold=1 reads the wall time with the later offset (too early) and
    # fold=0 with the earlier one (too late): find the jump between them.
    low = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= local:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def _window_active(start_time: time, end_time: time, zone: ZoneInfo, now: datetime,
                   days: frozenset[int] | None) -> bool:
    today = now.astimezone(zone).date()
    # A window that crosses midnight began on the previous local day.
    for day in (today, today - timedelta(days=1)):
        if days is not None and day.weekday() not in days:
            continue
        end_day = day if end_time > start_time else day + timedelta(days=1)
        if _at(day, start_time, zone) <= now < _at(end_day, end_time, zone):
            return True
    return False


def _cron_active(schedule: CronSchedule, zone: ZoneInfo, now: datetime) -> bool:
    expression = CronExpression.parse(schedule.expression)
    minute = now.replace(second=0, microsecond=0)
    span = timedelta(seconds=schedule.duration_s)
    while now - minute < span:
        if expression.matches(minute.astimezone(zone)):
            return True
        minute -= timedelta(minutes=1)
    return False


def schedule_active(schedule: Schedule, now: datetime) -> bool:
    """True when `schedule` wants its cameras recording at `now` (aware)."""
    if not schedule.enabled:
        return False
    zone = ZoneInfo(schedule.tz)
    match schedule:
        case ContinuousSchedule():
            return True
        case OnceSchedule():
            return schedule.start <= now < schedule.end
        case DailySchedule():
            return _window_active(schedule.start_time, schedule.end_time, zone, now, None)
        case WeeklySchedule():
            days = frozenset(WEEKDAYS.index(d) for d in schedule.days)
            return _window_active(schedule.start_time, schedule.end_time, zone, now, days)
        case CronSchedule():
            return _cron_active(schedule, zone, now)


def cameras_to_record(schedules: Iterable[Schedule], manual: Mapping[str, ManualRecording],
                      now: datetime) -> dict[str, Want]:
    """Each camera that should record at `now`, with the first reason found:
    schedules in id order, then manual recordings still in force."""
    wants: dict[str, Want] = {}
    for schedule in sorted(schedules, key=lambda s: s.schedule_id):
        if schedule_active(schedule, now):
            for camera_id in schedule.camera_ids:
                wants.setdefault(camera_id, Want(
                    camera_id, "schedule", schedule.segment_seconds,
                    schedule_id=schedule.schedule_id))
    for camera_id, recording in manual.items():
        if now < recording.until:
            wants.setdefault(camera_id, Want(camera_id, "manual", MANUAL_SEGMENT_SECONDS,
                                             command_id=recording.command_id))
    return wants
