"""Two ingest transactions storing the same node's events at once, as two cloud
processes sharing the event subscription do, on SQLite and PostgreSQL: the node
row and the ack must still say the highest seq stored with no gap."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, func, select

from cloud_service import tables
from cloud_service.database import make_engine, migrate
from cloud_service.event_store import StoreResult, store_events
from schemas.events import CameraPresence, Event, make_event
from schemas.ids import new_id

NODE = "site-concurrent"
WAIT_S = 10.0


def event(seq: int) -> Event:
    return make_event("camera.online", event_id=new_id(), node_id=NODE, seq=seq,
                      ts=datetime.now(UTC), data=CameraPresence(camera_id="cam-1"))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def test_overlapping_transactions_do_not_leave_the_ack_behind(engine: Engine) -> None:
    """Seq 2 and seq 3 are stored by two transactions that overlap (the second
    one commits last). Whatever the interleaving, once both committed the node
    is acked up to 3 with no gap: a transaction must not compute the ack from a
    view that misses the other's events and then overwrite a newer row."""
    with Session(engine) as session:
        store_events(session, [event(1)], datetime.now(UTC))
        session.commit()

    first_stored, second_stored, first_committed = (threading.Event() for _ in range(3))
    results: dict[str, StoreResult] = {}
    errors: list[Exception] = []

    def first() -> None:
        try:
            with Session(engine) as session:
                results["first"] = store_events(session, [event(2)], datetime.now(UTC))
                first_stored.set()
                # Give the other transaction its chance to run before this commits
                # (it may instead wait for this commit: a lock is a fine answer too).
                second_stored.wait(2)
                session.commit()
        except Exception as exc:  # handed to the test thread  # noqa: BLE001
            errors.append(exc)
        finally:
            first_stored.set()
            first_committed.set()

    def second() -> None:
        try:
            first_stored.wait(WAIT_S)
            with Session(engine) as session:
                results["second"] = store_events(session, [event(3)], datetime.now(UTC))
                second_stored.set()
                first_committed.wait(WAIT_S)
                session.commit()
        except Exception as exc:  # handed to the test thread  # noqa: BLE001
            errors.append(exc)
        finally:
            second_stored.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(3 * WAIT_S)
    assert not errors, errors
    with Session(engine) as session:
        node = session.get(tables.Node, NODE)
        stored = session.exec(select(func.count()).select_from(tables.Event).where(
            tables.Event.node_id == NODE)).one()
    assert stored == 3
    assert node is not None
    acks = [results[name].acked[NODE] for name in ("first", "second")]
    assert max(acks) == 3, f"the acks sent were {acks}: seq 3 is never acknowledged"
    assert (node.acked_seq, node.max_seq, node.seq_gaps) == (3, 3, 0)
