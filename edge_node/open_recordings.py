"""Recordings in progress, noted on disk so a crash cannot leave one open.

A recording is noted when it starts and forgotten once its
`recording.stopped` is in the outbox; whatever is still noted at start-up
was cut short by a crash and gets its `recording.stopped` then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edge_node.desired_state import write_atomically


@dataclass(frozen=True)
class OpenRecording:
    recording_id: str
    camera_id: str
    segments: int


class OpenRecordings:
    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def _path(self, recording_id: str) -> Path:
        return self._directory / f"{recording_id}.json"

    def _write(self, recording: OpenRecording) -> None:
        write_atomically(self._path(recording.recording_id), json.dumps(
            {"camera_id": recording.camera_id, "segments": recording.segments}).encode())

    def opened(self, recording_id: str, camera_id: str) -> None:
        self._write(OpenRecording(recording_id, camera_id, 0))

    def segment_reported(self, recording_id: str, camera_id: str, segments: int) -> None:
        self._write(OpenRecording(recording_id, camera_id, segments))

    def closed(self, recording_id: str) -> None:
        self._path(recording_id).unlink(missing_ok=True)

    def leftovers(self) -> list[OpenRecording]:
        found = []
        for path in sorted(self._directory.glob("*.json")):
            try:
                data = json.loads(path.read_text())
                found.append(OpenRecording(path.stem, str(data["camera_id"]),
                                           int(data["segments"])))
            except (OSError, ValueError, KeyError):
                found.append(OpenRecording(path.stem, "", 0))
        return found
