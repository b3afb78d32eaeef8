"""UTC helpers for values read back from the database.

SQLite returns naive datetimes even for timezone-aware columns; every value
stored here is UTC, so a naive one read back is UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
