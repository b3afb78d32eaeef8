"""Identifiers and timestamps shared by every payload.

Ids are safe in MQTT topics and file paths by construction: anything outside
the pattern is rejected at the boundary, so no later code has to think about
`/`, `..`, `+` or `#` inside an id. This module must never do I/O.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, StringConstraints

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
_ID_RE = re.compile(ID_PATTERN)

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
NodeId = Identifier
CameraId = Identifier
ScheduleId = Identifier


def is_valid_id(value: str) -> bool:
    """True when `value` may be used as a node, camera, schedule or other id."""
    return bool(_ID_RE.fullmatch(value))


def check_id(value: str, what: str = "id") -> str:
    """Return `value` or raise ValueError naming `what` and the pattern."""
    if not is_valid_id(value):
        raise ValueError(f"invalid {what} {value!r}: must match {ID_PATTERN}")
    return value


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def text_only(value: object) -> object:
    """Refuse numbers where the contract wants ISO 8601 text: lax parsing
    would otherwise read 1717228800 as a Unix time."""
    if isinstance(value, (int, float)) or (
            isinstance(value, str) and value.strip().replace(".", "", 1).isdigit()):
        raise ValueError("must be ISO 8601 text, not a number")
    return value


# Wire timestamps: aware ISO 8601 text (naive ones are rejected), normalised to
# UTC. strict=False lets JSON strings through even though models are strict.
UtcDatetime = Annotated[AwareDatetime, Field(strict=False), BeforeValidator(text_only),
                        AfterValidator(_to_utc)]


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A UUIDv7 (time-ordered, RFC 9562) in lowercase: a valid id everywhere."""
    unix_ms = time.time_ns() // 1_000_000
    value = (unix_ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= secrets.randbits(12) << 64
    value |= 0b10 << 62  # variant
    value |= secrets.randbits(62)
    return str(uuid.UUID(int=value))
