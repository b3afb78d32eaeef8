"""Desired state held on disk, so the node records through reboots without a broker.

A document is applied only when its revision is higher than the one held,
and written to disk (atomically, fsynced) before the node reports it applied.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from schemas.cameras import CameraSet
from schemas.schedules import ScheduleSet

logger = logging.getLogger(__name__)

Doc = TypeVar("Doc", ScheduleSet, CameraSet)


def applies(held_revision: int, incoming_revision: int) -> bool:
    """Revisions only grow: a retained copy re-delivered on reconnect, or an
    older document arriving late, changes nothing."""
    return incoming_revision > held_revision


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class DesiredStateStore:
    """The last applied ScheduleSet and CameraSet, in `directory`."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self.schedules = ScheduleSet(revision=0, schedules=[])
        self.cameras = CameraSet(revision=0, cameras=[])

    def load(self) -> None:
        self.schedules = self._read("schedules.json", ScheduleSet, self.schedules)
        self.cameras = self._read("cameras.json", CameraSet, self.cameras)

    def apply_schedules(self, document: ScheduleSet) -> bool:
        if not self._store("schedules.json", self.schedules.revision, document):
            return False
        self.schedules = document
        return True

    def apply_cameras(self, document: CameraSet) -> bool:
        if not self._store("cameras.json", self.cameras.revision, document):
            return False
        self.cameras = document
        return True

    def _store(self, name: str, held_revision: int, document: ScheduleSet | CameraSet) -> bool:
        if not applies(held_revision, document.revision):
            return False
        write_atomically(self._directory / name, document.model_dump_json().encode())
        return True

    def _read(self, name: str, model: type[Doc], default: Doc) -> Doc:
        path = self._directory / name
        try:
            return model.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return default
        except ValidationError as exc:
            # A corrupt file must not stop recording on the other document;
            # the broker's retained copy will replace it on connect.
            logger.error("desired_state.unreadable file=%s error=%s", path, exc)  # noqa: TRY400
            return default

