"""Commands to the node: each runs at most once and always gets a reply.

A command id seen before is answered from the command log without running
again; an expired command is refused; `snapshot` runs in a thread of its own
and replies when done. Runs on the service thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from edge_node.command_log import CommandLog
from edge_node.recorder_thread import CameraError
from edge_node.recordings import Recordings
from edge_node.scheduling import ManualRecording
from edge_node.snapshots import take_snapshot
from edge_node.store_base import StoreError
from edge_node.stores import SegmentStore
from schemas.commands import (
    Command,
    CommandReply,
    RecordCommand,
    ResyncCommand,
    SnapshotCommand,
    StopCommand,
)
from schemas.ids import utc_now

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandDone:
    """A reply produced off the service thread (a snapshot)."""

    reply: CommandReply


def refuse(command_id: str, error: str) -> CommandReply:
    return CommandReply(command_id=command_id, ok=False, error=error)


@dataclass
class Commands:
    node_id: str
    log: CommandLog
    recordings: Recordings
    store: SegmentStore
    send_reply: Callable[[CommandReply], None]
    resync: Callable[[], None]
    deliver: Callable[[CommandDone], None]

    def __post_init__(self) -> None:
        self._running: set[str] = set()

    def handle(self, command: Command) -> None:
        held = self.log.reply_for(command.command_id)
        if held is not None:
            logger.info("command.repeat command_id=%s", command.command_id)
            self.send_reply(held)
            return
        if command.command_id in self._running:
            return  # a snapshot still being taken answers for both
        reply = self._run(command)
        if reply is not None:
            self.finish(reply)

    def local(self, command: RecordCommand) -> CommandReply:
        """A manual recording asked for on the node's local API."""
        reply = self._record(command)
        self.log.remember(reply)
        logger.info("command.local command_id=%s ok=%s", command.command_id, reply.ok)
        return reply

    def finish(self, reply: CommandReply) -> None:
        self._running.discard(reply.command_id)
        self.log.remember(reply)
        self.send_reply(reply)
        logger.info("command.done command_id=%s ok=%s error=%s", reply.command_id, reply.ok,
                    reply.error)

    def _run(self, command: Command) -> CommandReply | None:
        now = utc_now()
        if command.expires_at is not None and command.expires_at <= now:
            return refuse(command.command_id, "expired")
        match command:
            case RecordCommand():
                return self._record(command)
            case StopCommand():
                stopped = self.recordings.stop_manual(command.camera_id)
                return CommandReply(command_id=command.command_id, ok=True,
                                    result={"stopped": stopped})
            case ResyncCommand():
                self.resync()
                return CommandReply(command_id=command.command_id, ok=True)
            case SnapshotCommand():
                return self._snapshot(command)

    def _record(self, command: RecordCommand) -> CommandReply:
        if self.recordings.camera(command.camera_id) is None:
            return refuse(command.command_id, f"unknown camera {command.camera_id}")
        until = utc_now() + timedelta(seconds=command.duration_s)
        held = self.recordings.manual.get(command.camera_id)
        if held is not None and held.until > until:
            until = held.until  # a recording by hand is extended, never shortened
        self.recordings.manual[command.camera_id] = ManualRecording(
            command.camera_id, until, held.command_id if held else command.command_id)
        return CommandReply(command_id=command.command_id, ok=True,
                            result={"until": until.isoformat()})

    def _snapshot(self, command: SnapshotCommand) -> CommandReply | None:
        camera = self.recordings.camera(command.camera_id)
        if camera is None:
            return refuse(command.command_id, f"unknown camera {command.camera_id}")
        self._running.add(command.command_id)

        def work() -> None:
            try:
                jpeg, width, height = take_snapshot(camera.url, camera.transport)
                at = utc_now()
                uri = self.store.put(
                    f"{self.node_id}/{camera.camera_id}/snapshots/"
                    f"{at:%Y%m%dT%H%M%SZ}_{command.command_id}.jpg", jpeg)
                reply = CommandReply(command_id=command.command_id, ok=True, result={
                    "uri": uri, "bytes": len(jpeg), "width": width, "height": height,
                    "at": at.isoformat()})
            except (CameraError, StoreError) as exc:
                reply = refuse(command.command_id, f"snapshot failed: {exc}")
            except Exception as exc:  # thread edge: the command still gets its reply
                logger.exception("snapshot.crashed camera_id=%s", camera.camera_id)
                reply = refuse(command.command_id, f"snapshot failed: {type(exc).__name__}")
            self.deliver(CommandDone(reply))

        threading.Thread(target=work, name=f"snapshot-{camera.camera_id}", daemon=True).start()
        return None
