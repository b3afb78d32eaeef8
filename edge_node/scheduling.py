"""Which cameras record at an instant: a pure function of the schedules,
the manual recordings in force and the time. When a single schedule is
active is schemas.schedule_windows's business (DST and clock steps included).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schemas.schedule_windows import schedule_active
from schemas.schedules import Schedule

__all__ = ["ManualRecording", "Want", "cameras_to_record", "schedule_active"]
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
