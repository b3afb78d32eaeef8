"""Commands sent to a node, and the reply every command gets."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue

from schemas.base import WireModel
from schemas.ids import CameraId, Identifier, UtcDatetime

# A manual recording is capped: a typo of an extra zero must not fill a disk.
MAX_MANUAL_DURATION_S = 4 * 3600


class _CommandBase(WireModel):
    command_id: Identifier
    expires_at: UtcDatetime | None = None


class RecordCommand(_CommandBase):
    command: Literal["record"]
    camera_id: CameraId
    duration_s: Annotated[int, Field(ge=1, le=MAX_MANUAL_DURATION_S)]


class StopCommand(_CommandBase):
    command: Literal["stop"]
    camera_id: CameraId


class SnapshotCommand(_CommandBase):
    command: Literal["snapshot"]
    camera_id: CameraId


class ResyncCommand(_CommandBase):
    command: Literal["resync"]


Command = Annotated[
    RecordCommand | StopCommand | SnapshotCommand | ResyncCommand,
    Field(discriminator="command"),
]


class CommandReply(WireModel):
    command_id: Identifier
    ok: bool
    error: Annotated[str, Field(max_length=1000)] | None = None
    result: dict[str, JsonValue] | None = None
