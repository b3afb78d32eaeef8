"""The session counter on disk: +1 per connect, and a new data dir starts above
anything the node's previous disk can have reached."""

from __future__ import annotations

from pathlib import Path

from edge_node.mqtt_link import SESSION_EPOCH, SessionCounter

NOW = SESSION_EPOCH + 200_000_000.5  # 2026-05-04


def test_it_grows_by_one_per_connect_and_survives_a_restart(tmp_path: Path) -> None:
    counter = SessionCounter(tmp_path / "session", now=lambda: NOW)
    first = counter.next()
    assert first == 200_000_001
    assert counter.next() == first + 1
    assert SessionCounter(tmp_path / "session", now=lambda: NOW + 3600).next() == first + 2


def test_a_wiped_data_dir_starts_above_the_old_sessions(tmp_path: Path) -> None:
    old = SessionCounter(tmp_path / "old" / "session", now=lambda: NOW)
    old.next()
    for _ in range(1000):  # a thousand reconnects in the old disk's life
        reached = old.next()
    later = SessionCounter(tmp_path / "new" / "session", now=lambda: NOW + 1001)
    assert later.next() > reached


def test_a_clock_before_2020_starts_at_one(tmp_path: Path) -> None:
    assert SessionCounter(tmp_path / "session", now=lambda: 0.0).next() == 1
