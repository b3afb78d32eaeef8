"""Replies to commands already handled, kept on disk.

A command id seen before gets the same reply again and is not run again,
also after a restart (a QoS 1 command may be delivered twice, and an
operator may retry). Old entries are pruned so the file stays small.
"""

from __future__ import annotations

import time

from pydantic import TypeAdapter

from edge_node.sqlite_store import SqliteStore
from schemas.codec import PayloadError, decode, encode
from schemas.commands import CommandReply

KEEP_S = 7 * 24 * 3600
_REPLY: TypeAdapter[CommandReply] = TypeAdapter(CommandReply)


class CommandLog(SqliteStore):
    schema = ("CREATE TABLE IF NOT EXISTS replies (command_id TEXT PRIMARY KEY, "
              "reply BLOB NOT NULL, at REAL NOT NULL)")

    def open(self) -> None:
        super().open()
        with self._lock:
            self._conn.execute("DELETE FROM replies WHERE at < ?", (time.time() - KEEP_S,))

    def reply_for(self, command_id: str) -> CommandReply | None:
        with self._lock:
            row = self._conn.execute("SELECT reply FROM replies WHERE command_id = ?",
                                       (command_id,)).fetchone()
        if row is None:
            return None
        try:
            return decode(bytes(row[0]), _REPLY)
        except PayloadError:
            return None

    def remember(self, reply: CommandReply) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?)",
                                 (reply.command_id, encode(reply), time.time()))
