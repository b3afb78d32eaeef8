"""Schedules and the retained `ScheduleSet` document a node records from.

Each kind's fields sit flat on the schedule object, discriminated by `kind`.
Only structure and local consistency are checked here; *when* a schedule
records is the edge node's pure evaluator's business.
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, model_validator

from schemas.base import WireModel
from schemas.cron import CronError, CronExpression
from schemas.ids import CameraId, ScheduleId, UtcDatetime

T = TypeVar("T")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
LocalTime = Annotated[time, Field(strict=False)]


def _check_tz(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc
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

    @model_validator(mode="after")
    def _end_after_start(self) -> OnceSchedule:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class _WindowFields(_ScheduleBase):
    start_time: LocalTime
    end_time: LocalTime

    @model_validator(mode="after")
    def _not_empty(self) -> _WindowFields:
        # An end before the start crosses midnight; an equal end would be ambiguous
        # (nothing or all day), so it is refused: use `continuous` for all day.
        if self.start_time == self.end_time:
            raise ValueError("end_time must differ from start_time")
        if self.start_time.tzinfo is not None or self.end_time.tzinfo is not None:
            raise ValueError("start_time and end_time are local times in tz, without offset")
        return self


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
    schedules: Annotated[list[Schedule], Field(max_length=1000)]

    @model_validator(mode="after")
    def _unique_ids(self) -> ScheduleSet:
        _unique([s.schedule_id for s in self.schedules])
        return self
