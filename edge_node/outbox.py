"""The durable outbox: every event is on disk before it is sent.

Each event gets the node's next `seq` (1, 2, 3... with no gaps, across
restarts) in the same transaction that stores it; the outbox's id, made with
it, tells the cloud when a wiped data dir started numbering again. It stays until the cloud's
`EventAck` covers it, and is resent after every reconnect or restart.
Thread-safe; never talks to the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_node.sqlite_store import SqliteStore
from schemas.ids import new_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('last_seq', 0), ('acked_seq', 0);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Outgoing:
    seq: int
    topic: str
    payload: bytes


@dataclass(frozen=True)
class OutboxStats:
    depth: int
    oldest_s: float


class Outbox(SqliteStore):
    schema = _SCHEMA
    #: Names this outbox in every event and ack (see `schemas.events`); None for
    #: an outbox that numbered events before outboxes had ids, which goes on so.
    outbox_id: str | None = None

    def open(self) -> None:
        super().open()
        with self._lock:
            db = self._conn
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT value FROM meta WHERE name='outbox_id'").fetchone()
            if row is None:
                (last,) = db.execute(
                    "SELECT value FROM counters WHERE name='last_seq'").fetchone()
                row = (new_id() if last == 0 else "",)
                db.execute("INSERT INTO meta VALUES ('outbox_id', ?)", row)
            db.execute("COMMIT")
        self.outbox_id = row[0] or None

    def append(self, build: Callable[[int], tuple[str, bytes]]) -> int:
        """Store the event `build(seq)` returns under the next seq; return the seq."""
        with self._lock:
            db = self._conn
            db.execute("BEGIN IMMEDIATE")
            try:
                (last,) = db.execute("SELECT value FROM counters WHERE name='last_seq'").fetchone()
                seq = last + 1
                topic, payload = build(seq)
                db.execute("INSERT INTO outbox VALUES (?, ?, ?, ?)",
                           (seq, topic, payload, time.time()))
                db.execute("UPDATE counters SET value=? WHERE name='last_seq'", (seq,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return int(seq)

    def pending(self, after_seq: int, limit: int = 500) -> list[Outgoing]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, topic, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit)).fetchall()
        return [Outgoing(seq, topic, bytes(payload)) for seq, topic, payload in rows]

    def acknowledge(self, upto_seq: int) -> int:
        """Drop every event up to `upto_seq`; returns how many were dropped."""
        with self._lock:
            db = self._conn
            (last,) = db.execute("SELECT value FROM counters WHERE name='last_seq'").fetchone()
            # An ack beyond what was ever sent is a confused cloud, not a reason
            # to drop events not yet numbered.
            upto = min(upto_seq, last)
            cursor = db.execute("DELETE FROM outbox WHERE seq <= ?", (upto,))
            db.execute("UPDATE counters SET value=max(value, ?) WHERE name='acked_seq'", (upto,))
            return cursor.rowcount

    @property
    def acked_seq(self) -> int:
        with self._lock:
            (value,) = self._conn.execute(
                "SELECT value FROM counters WHERE name='acked_seq'").fetchone()
        return int(value)

    def stats(self, now: float | None = None) -> OutboxStats:
        with self._lock:
            depth, oldest = self._conn.execute(
                "SELECT count(*), min(created) FROM outbox").fetchone()
        now = time.time() if now is None else now
        age = max(0.0, now - oldest) if oldest is not None else 0.0
        return OutboxStats(depth=depth, oldest_s=age)
