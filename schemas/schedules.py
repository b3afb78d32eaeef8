"""Schedules and the retained `ScheduleSet` document a node records from.

Each kind's fields sit flat on the schedule object, discriminated by `kind`.
Only structure and local consistency are checked here; *when* a schedule
records is the edge node's pure evaluator's business.
"""

from __future__ import annotations

from datetime import datetime, time
from functools import lru_cache
from typing import Annotated, Literal, TypeVar
from zoneinfo import available_timezones

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator

from schemas.base import WireModel
from schemas.cron import CronError, CronExpression
from schemas.ids import CameraId, ScheduleId, UtcDatetime, text_only

T = TypeVar("T")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
LocalTime = Annotated[time, Field(strict=False), BeforeValidator(text_only)]


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    # The IANA names only: "localtime" (present on Debian) would mean each
    # host's own zone, and the others are not zones a person would choose.
    return frozenset(available_timezones()) - {"localtime", "posixrules", "Factory"}


def _check_tz(name: str) -> str:
    if name not in _zones():
        raise ValueError(f"unknown IANA time zone {name!r}")
    return name


def _check_cron(expression: str) -> str:
    try:
        CronExpression.parse(expression)
    except CronError as exc:
        raise ValueError(f"invalid cron expression: {exc}") from exc
    return expression


def _unique(values: list[T]) -> list[T]:
    if len(set(values)) != len(values):
        raise ValueError("values must be unique")
    return values


def _unique_ids(schedules: list[Schedule]) -> list[Schedule]:
    ids = [s.schedule_id for s in schedules]
    if len(set(ids)) != len(ids):
        raise ValueError("schedule ids must be unique")
    return schedules


TimeZoneName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_tz)]


class _ScheduleBase(WireModel):
    schedule_id: ScheduleId
    camera_ids: Annotated[list[CameraId], Field(min_length=1, max_length=256),
                          AfterValidator(_unique)]
    tz: TimeZoneName = "UTC"
    enabled: bool = True
    segment_seconds: Annotated[int, Field(ge=2, le=3600)] = 60


class OnceSchedule(_ScheduleBase):
    kind: Literal["once"]
    start: UtcDatetime
    end: UtcDatetime

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError("end must be after start")
        return end


def _local(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a local time in tz, without offset")
    return value


class _WindowFields(_ScheduleBase):
    start_time: Annotated[LocalTime, AfterValidator(_local)]
    end_time: Annotated[LocalTime, AfterValidator(_local)]

    @field_validator("end_time")
    @classmethod
    def _not_empty(cls, end_time: time, info: ValidationInfo) -> time:
        # An end before the start crosses midnight; an equal end would be ambiguous
        # (nothing or all day), so it is refused: use `continuous` for all day.
        if end_time == info.data.get("start_time"):
            raise ValueError("end_time must differ from start_time")
        return end_time


class DailySchedule(_WindowFields):
    kind: Literal["daily"]


class WeeklySchedule(_WindowFields):
    kind: Literal["weekly"]
    days: Annotated[list[Weekday], Field(min_length=1, max_length=7), AfterValidator(_unique)]


class ContinuousSchedule(_ScheduleBase):
    kind: Literal["continuous"]


class CronSchedule(_ScheduleBase):
    kind: Literal["cron"]
    expression: Annotated[str, Field(max_length=200), AfterValidator(_check_cron)]
    duration_s: Annotated[int, Field(ge=1, le=86_400)]


Schedule = Annotated[
    OnceSchedule | DailySchedule | WeeklySchedule | ContinuousSchedule | CronSchedule,
    Field(discriminator="kind"),
]


class ScheduleSet(WireModel):
    """A node's whole schedule document; `revision` only grows."""

    revision: Annotated[int, Field(ge=0)]
    schedules: Annotated[list[Schedule], Field(max_length=1000), AfterValidator(_unique_ids)]
