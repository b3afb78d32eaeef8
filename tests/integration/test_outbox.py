"""The edge node's durable outbox on a real SQLite file: gapless seqs across restarts,
acknowledgement, resending order, and concurrent producers."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_node.outbox import Outbox, OutboxStats, Outgoing

TOPIC = "cctv/v1/site-1/events/recording"


def payload(seq: int) -> bytes:
    return f'{{"seq":{seq}}}'.encode()


def build(seq: int) -> tuple[str, bytes]:
    return TOPIC, payload(seq)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "edge" / "outbox.db"


@pytest.fixture
def outbox(path: Path) -> Iterator[Outbox]:
    box = Outbox(path)
    box.open()
    try:
        yield box
    finally:
        box.close()


def reopen(box: Outbox, path: Path) -> Outbox:
    box.close()
    again = Outbox(path)
    again.open()
    return again


def test_a_new_outbox_has_an_id_of_its_own_that_it_keeps(outbox: Outbox, path: Path,
                                                          tmp_path: Path) -> None:
    first = outbox.outbox_id
    assert first
    outbox.append(build)
    again = reopen(outbox, path)
    try:
        assert again.outbox_id == first
    finally:
        again.close()
    other = Outbox(tmp_path / "wiped" / "outbox.db")
    other.open()
    try:
        assert other.outbox_id not in (None, first)
    finally:
        other.close()


def test_an_outbox_from_before_outbox_ids_goes_on_without_one(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:  # the previous version's schema, 7 events numbered
        db.executescript("""
            CREATE TABLE outbox (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL,
                                 payload BLOB NOT NULL, created REAL NOT NULL);
            CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            INSERT INTO counters VALUES ('last_seq', 7), ('acked_seq', 7);""")
    box = Outbox(path)
    box.open()
    try:
        assert box.outbox_id is None
        assert box.append(build) == 8
    finally:
        box.close()


def test_seqs_start_at_one_and_grow_by_one(outbox: Outbox) -> None:
    assert [outbox.append(build) for _ in range(5)] == [1, 2, 3, 4, 5]


def test_build_receives_the_seq_it_is_stored_under(outbox: Outbox) -> None:
    seen: list[int] = []

    def recording_build(seq: int) -> tuple[str, bytes]:
        seen.append(seq)
        return build(seq)

    outbox.append(recording_build)
    outbox.append(recording_build)
    assert seen == [1, 2]
    assert outbox.pending(0) == [Outgoing(1, TOPIC, payload(1)), Outgoing(2, TOPIC, payload(2))]


def test_constructor_does_no_io_and_an_unopened_outbox_refuses(path: Path) -> None:
    box = Outbox(path)
    assert not path.parent.exists()
    with pytest.raises(RuntimeError, match="not open"):
        box.append(build)


def test_events_and_seqs_survive_close_and_reopen(outbox: Outbox, path: Path) -> None:
    for _ in range(3):
        outbox.append(build)
    again = reopen(outbox, path)
    try:
        assert [o.seq for o in again.pending(0)] == [1, 2, 3]
        assert again.append(build) == 4
    finally:
        again.close()


def test_seqs_are_not_reused_after_everything_is_acknowledged(outbox: Outbox,
                                                              path: Path) -> None:
    for _ in range(3):
        outbox.append(build)
    assert outbox.acknowledge(3) == 3
    assert outbox.pending(0) == []
    again = reopen(outbox, path)
    try:
        assert again.append(build) == 4
        assert again.acked_seq == 3
        assert [o.seq for o in again.pending(0)] == [4]
    finally:
        again.close()


def test_acknowledge_drops_only_up_to_the_ack(outbox: Outbox) -> None:
    for _ in range(5):
        outbox.append(build)
    assert outbox.acknowledge(2) == 2
    assert [o.seq for o in outbox.pending(0)] == [3, 4, 5]
    assert outbox.acked_seq == 2
    # A late, lower ack changes nothing and does not move acked_seq back.
    assert outbox.acknowledge(1) == 0
    assert outbox.acked_seq == 2


def test_acknowledge_beyond_last_seq_keeps_future_events(outbox: Outbox, path: Path) -> None:
    outbox.append(build)
    outbox.append(build)
    assert outbox.acknowledge(10) == 2
    assert outbox.acked_seq == 2
    # Events numbered after a confused ack are still there to send.
    assert outbox.append(build) == 3
    assert outbox.append(build) == 4
    assert [o.seq for o in outbox.pending(0)] == [3, 4]
    again = reopen(outbox, path)
    try:
        assert [o.seq for o in again.pending(0)] == [3, 4]
    finally:
        again.close()


def test_pending_is_ordered_after_the_given_seq_and_limited(outbox: Outbox) -> None:
    for _ in range(10):
        outbox.append(build)
    assert [o.seq for o in outbox.pending(0)] == list(range(1, 11))
    assert [o.seq for o in outbox.pending(4)] == list(range(5, 11))
    assert [o.seq for o in outbox.pending(4, limit=3)] == [5, 6, 7]
    assert outbox.pending(10) == []
    first = outbox.pending(0, limit=1)
    assert first == [Outgoing(1, TOPIC, payload(1))]
    assert isinstance(first[0].payload, bytes)


def test_a_build_that_raises_consumes_no_seq(outbox: Outbox, path: Path) -> None:
    assert outbox.append(build) == 1

    def broken(seq: int) -> tuple[str, bytes]:
        raise ValueError(f"cannot serialise event {seq}")

    with pytest.raises(ValueError, match="cannot serialise event 2"):
        outbox.append(broken)
    assert outbox.append(build) == 2
    assert [o.seq for o in outbox.pending(0)] == [1, 2]
    again = reopen(outbox, path)
    try:
        assert again.append(build) == 3
    finally:
        again.close()


def test_concurrent_appends_give_unique_gapless_seqs(outbox: Outbox) -> None:
    threads, per_thread = 8, 40
    results: list[list[int]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def produce(index: int) -> None:
        def tagged(seq: int) -> tuple[str, bytes]:
            return TOPIC, f"{index}:{seq}".encode()

        try:
            start.wait()
            for _ in range(per_thread):
                results[index].append(outbox.append(tagged))
        except BaseException as exc:  # noqa: BLE001  # surfaced by the assert below
            errors.append(exc)

    workers = [threading.Thread(target=produce, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert errors == []
    seqs = [seq for result in results for seq in result]
    assert sorted(seqs) == list(range(1, threads * per_thread + 1))
    for result in results:
        assert result == sorted(result)  # each producer sees its own seqs grow
    stored = outbox.pending(0, limit=10_000)
    assert [o.seq for o in stored] == list(range(1, threads * per_thread + 1))
    # Each stored payload was built with the seq it is stored under.
    assert all(o.payload.decode().endswith(f":{o.seq}") for o in stored)


def test_stats_report_depth_and_age_of_the_oldest(outbox: Outbox) -> None:
    assert outbox.stats() == OutboxStats(depth=0, oldest_s=0.0)
    before = time.time()
    outbox.append(build)
    after = time.time()
    time.sleep(0.01)
    outbox.append(build)
    outbox.append(build)
    stats = outbox.stats(now=after + 100)
    assert stats.depth == 3
    # The age is that of the first event, not of the later ones.
    assert 100.0 <= stats.oldest_s <= 100.0 + (after - before) + 0.001
    # A clock behind the events' time never gives a negative age.
    assert outbox.stats(now=before - 50).oldest_s == 0.0
    outbox.acknowledge(2)
    assert outbox.stats().depth == 1
    assert outbox.stats(now=after + 100).oldest_s < 100.0  # the oldest left is younger
    outbox.acknowledge(3)
    assert outbox.stats(now=after + 100) == OutboxStats(depth=0, oldest_s=0.0)
