"""The node's heartbeat: health of the box, its backlog and its cameras."""

from __future__ import annotations

import platform
import shutil
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edge_node.outbox import OutboxStats
from edge_node.upload_queue import Backlog
from schemas.status import CameraHealth, Heartbeat, OutboxInfo, SystemInfo, UploadBacklog


def local_ip() -> str:
    """The address the host name resolves to (informational only)."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "unknown"


@dataclass(frozen=True)
class NodeFacts:
    session: int
    uptime_s: float
    version: str
    schedules_revision: int
    cameras_revision: int


def build_heartbeat(now: datetime, facts: NodeFacts, data_dir: Path, *,
                    backlog: Backlog, outbox: OutboxStats,
                    cameras: list[CameraHealth]) -> Heartbeat:
    disk = shutil.disk_usage(data_dir)
    return Heartbeat(
        ts=now, session=max(facts.session, 1), uptime_s=facts.uptime_s, version=facts.version,
        system=SystemInfo(hostname=socket.gethostname()[:200], os=platform.platform()[:200],
                          ip=local_ip()),
        disk_free_bytes=disk.free, disk_total_bytes=disk.total,
        upload_backlog=UploadBacklog(
            count=backlog.count, bytes=backlog.bytes,
            oldest_s=max(0.0, now.timestamp() - backlog.oldest_created)
            if backlog.oldest_created is not None else 0.0),
        outbox=OutboxInfo(depth=outbox.depth, oldest_s=outbox.oldest_s),
        schedules_revision=facts.schedules_revision, cameras_revision=facts.cameras_revision,
        cameras=cameras)
