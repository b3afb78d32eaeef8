"""Shows nodes offline that went silent: nothing heard from them for 1.5 x
their keepalive. The broker's Will says the same, but Mosquitto 2.0 checks
keepalives only every few seconds, too late for the fleet view.

Every cloud process runs this; the UPDATE it makes is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from prometheus_client import Counter
from sqlalchemy import Engine
from sqlmodel import Session

from cloud_service.live import Live
from cloud_service.presence import mark_silent_offline
from schemas.ids import utc_now

logger = logging.getLogger(__name__)

SWEEP_EVERY_S = 0.5
MARKED_SILENT = Counter("cctv_nodes_marked_silent_total",
                        "Nodes shown offline for silence before any Will came")


def sweep(engine: Engine) -> list[tuple[str, int]]:
    """Marks the nodes whose deadline falls before the next sweep: waiting for
    that one would show them offline up to a sweep late (and a node's deadline
    counts from its message's commit, a little after its arrival)."""
    with Session(engine) as session:
        marked = mark_silent_offline(session, utc_now() + timedelta(seconds=SWEEP_EVERY_S))
        session.commit()
    return marked


async def watch_silence(engine: Engine, live: Live) -> None:
    while True:
        await asyncio.sleep(SWEEP_EVERY_S)
        try:
            marked = await asyncio.to_thread(sweep, engine)
        except Exception:  # loop edge: the next sweep tries again
            logger.exception("presence.sweep_failed")
            continue
        for node_id, session in marked:
            MARKED_SILENT.inc()
            logger.info("node.silent node_id=%s session=%d", node_id, session)
            live.went_silent(node_id, session)
