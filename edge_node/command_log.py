"""Replies to commands already handled, kept on disk.

A command id seen before gets the same reply again and is not run again,
also after a restart (a QoS 1 command may be delivered twice, and an
operator may retry). Old entries are pruned so the file stays small.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from pydantic import TypeAdapter

from schemas.codec import PayloadError, decode, encode
from schemas.commands import CommandReply

KEEP_S = 7 * 24 * 3600
_REPLY: TypeAdapter[CommandReply] = TypeAdapter(CommandReply)


class CommandLog:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS replies (command_id TEXT PRIMARY KEY, "
                   "reply BLOB NOT NULL, at REAL NOT NULL)")
        db.execute("DELETE FROM replies WHERE at < ?", (time.time() - KEEP_S,))
        self._db = db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("command log is not open")
        return self._db

    def reply_for(self, command_id: str) -> CommandReply | None:
        with self._lock:
            row = self._conn().execute("SELECT reply FROM replies WHERE command_id = ?",
                                       (command_id,)).fetchone()
        if row is None:
            return None
        try:
            return decode(bytes(row[0]), _REPLY)
        except PayloadError:
            return None

    def remember(self, reply: CommandReply) -> None:
        with self._lock:
            self._conn().execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?)",
                                 (reply.command_id, encode(reply), time.time()))
