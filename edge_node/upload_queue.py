"""The durable upload queue: every sealed segment waits here until its upload
is verified, across restarts.

Ordered by priority (manual recordings before scheduled ones), then age. A
resumable session URL is kept with its job so an upload interrupted by a
crash continues where it stopped. Thread-safe; never touches the network.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from edge_node.segments import SealedSegment
from edge_node.sqlite_store import SqliteStore

MANUAL, SCHEDULED = 0, 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    segment_id TEXT PRIMARY KEY,
    segment TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    session_url TEXT
);
CREATE INDEX IF NOT EXISTS uploads_order ON uploads (priority, created);
"""


@dataclass(frozen=True)
class UploadJob:
    segment: SealedSegment
    priority: int
    attempts: int
    session_url: str | None


@dataclass(frozen=True)
class Backlog:
    count: int
    bytes: int
    oldest_created: float | None


def _dump(segment: SealedSegment) -> str:
    data = asdict(segment)
    data["path"] = str(segment.path)
    data["start"], data["end"] = segment.start.isoformat(), segment.end.isoformat()
    return json.dumps(data)


def _load(text: str) -> SealedSegment:
    data = json.loads(text)
    data["path"] = Path(data["path"])
    data["start"] = datetime.fromisoformat(data["start"])
    data["end"] = datetime.fromisoformat(data["end"])
    return SealedSegment(**data)


class UploadQueue(SqliteStore):
    schema = _SCHEMA

    def add(self, segment: SealedSegment, priority: int) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO uploads (segment_id, segment, bytes, priority, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (segment.segment_id, _dump(segment), segment.bytes, priority, time.time()))

    def next_ready(self, now: float | None = None) -> UploadJob | None:
        now = time.time() if now is None else now
        with self._lock:
            row = self._conn.execute(
                "SELECT segment, priority, attempts, session_url FROM uploads "
                "WHERE not_before <= ? ORDER BY priority, created LIMIT 1", (now,)).fetchone()
        if row is None:
            return None
        return UploadJob(_load(row[0]), row[1], row[2], row[3])

    def remember_session(self, segment_id: str, session_url: str | None) -> None:
        with self._lock:
            self._conn.execute("UPDATE uploads SET session_url = ? WHERE segment_id = ?",
                                 (session_url, segment_id))

    def retry_later(self, segment_id: str, delay_s: float) -> int:
        """Count a failed attempt and hold the job back; returns the attempt count."""
        with self._lock:
            db = self._conn
            db.execute("UPDATE uploads SET attempts = attempts + 1, not_before = ? "
                       "WHERE segment_id = ?", (time.time() + delay_s, segment_id))
            row = db.execute("SELECT attempts FROM uploads WHERE segment_id = ?",
                             (segment_id,)).fetchone()
        return int(row[0]) if row else 0

    def remove(self, segment_id: str) -> bool:
        with self._lock:
            cursor = self._conn.execute("DELETE FROM uploads WHERE segment_id = ?",
                                          (segment_id,))
        return cursor.rowcount > 0

    def contains(self, segment_id: str) -> bool:
        with self._lock:
            row = self._conn.execute("SELECT 1 FROM uploads WHERE segment_id = ?",
                                       (segment_id,)).fetchone()
        return row is not None

    def jobs(self) -> list[UploadJob]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT segment, priority, attempts, session_url FROM uploads "
                "ORDER BY priority, created").fetchall()
        return [UploadJob(_load(r[0]), r[1], r[2], r[3]) for r in rows]

    def backlog(self) -> Backlog:
        with self._lock:
            count, total, oldest = self._conn.execute(
                "SELECT count(*), coalesce(sum(bytes), 0), min(created) FROM uploads").fetchone()
        return Backlog(count, total, oldest)
