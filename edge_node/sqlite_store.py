"""The one way the edge node keeps small durable state: an SQLite file in WAL
mode, one connection shared by threads behind a lock, opened explicitly."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class SqliteStore:
    #: Tables and rows to create on open (idempotent SQL).
    schema = ""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: what a store reports as written survives a power cut.
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(self.schema)
        self._db = db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"{type(self).__name__} is not open")
        return self._db
