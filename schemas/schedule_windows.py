"""When a schedule records: a pure function of the schedule and the time.

Shared by the edge node (which cameras record now) and the cloud (how many
seconds a camera should have recorded in a period), so both read a schedule
the same way. Wall-clock windows (daily, weekly, cron) are evaluated in the
schedule's IANA zone and compared as UTC instants: a window starts when the
zone's clock first reaches its start (a start inside a DST gap starts when
the clock jumps past it; in an overlap, at the first pass), and every
instant is judged afresh, so a reboot or a clock step resumes whatever
window the new time falls in. No I/O, no clock of its own.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
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
Interval = tuple[datetime, datetime]


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


def _clip(start: datetime, end: datetime, since: datetime, until: datetime) -> Interval | None:
    start, end = max(start, since), min(end, until)
    return (start, end) if start < end else None


def merge(intervals: list[Interval]) -> list[Interval]:
    """Sorted, with overlapping or touching intervals joined."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _window_intervals(start_time: time, end_time: time, zone: ZoneInfo, *,
                      span: Interval, days: frozenset[int] | None) -> list[Interval]:
    since, until = span
    found = []
    day = since.astimezone(zone).date() - timedelta(days=1)
    last = until.astimezone(zone).date()
    while day <= last:
        if days is None or day.weekday() in days:
            end_day = day if end_time > start_time else day + timedelta(days=1)
            clipped = _clip(_at(day, start_time, zone), _at(end_day, end_time, zone),
                            since, until)
            if clipped:
                found.append(clipped)
        day += timedelta(days=1)
    return found


def _cron_intervals(schedule: CronSchedule, zone: ZoneInfo, since: datetime,
                    until: datetime) -> list[Interval]:
    expression = CronExpression.parse(schedule.expression)
    span = timedelta(seconds=schedule.duration_s)
    minute = (since - span).replace(second=0, microsecond=0)
    found = []
    while minute < until:
        if expression.matches(minute.astimezone(zone)):
            clipped = _clip(minute, minute + span, since, until)
            if clipped:
                found.append(clipped)
        minute += timedelta(minutes=1)
    return found


def schedule_intervals(schedule: Schedule, since: datetime, until: datetime) -> list[Interval]:
    """The merged UTC intervals in [since, until) during which `schedule` records."""
    if not schedule.enabled or since >= until:
        return []
    zone = ZoneInfo(schedule.tz)
    found: list[Interval]
    match schedule:
        case ContinuousSchedule():
            found = [(since, until)]
        case OnceSchedule():
            clipped = _clip(schedule.start, schedule.end, since, until)
            found = [clipped] if clipped else []
        case DailySchedule():
            found = _window_intervals(schedule.start_time, schedule.end_time, zone,
                                      span=(since, until), days=None)
        case WeeklySchedule():
            found = _window_intervals(
                schedule.start_time, schedule.end_time, zone, span=(since, until),
                days=frozenset(WEEKDAYS.index(d) for d in schedule.days))
        case CronSchedule():
            found = _cron_intervals(schedule, zone, since, until)
    return merge(found)
