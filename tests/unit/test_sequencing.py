"""The cloud's per-node seq bookkeeping: how far it can acknowledge, and how many
events it knows are missing above that point."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from cloud_service.sequencing import SeqState, advance


def test_nothing_stored_stays_at_zero() -> None:
    assert advance(0, []) == SeqState(acked=0, max_seen=0, gaps=0)


def test_nothing_new_keeps_the_acked_point() -> None:
    assert advance(7, []) == SeqState(acked=7, max_seen=7, gaps=0)


def test_contiguous_run_is_acknowledged_to_its_end() -> None:
    assert advance(0, [1, 2, 3, 4]) == SeqState(acked=4, max_seen=4, gaps=0)


def test_contiguous_run_continues_from_the_acked_point() -> None:
    assert advance(10, [11, 12, 13]) == SeqState(acked=13, max_seen=13, gaps=0)


def test_hole_stops_the_ack_and_counts_as_a_gap() -> None:
    assert advance(0, [1, 2, 4]) == SeqState(acked=2, max_seen=4, gaps=1)


def test_missing_first_seq_acks_nothing() -> None:
    assert advance(0, [2, 3]) == SeqState(acked=0, max_seen=3, gaps=1)


def test_several_holes_are_all_counted() -> None:
    # Missing: 3, 5, 6, 9.
    assert advance(0, [1, 2, 4, 7, 8, 10]) == SeqState(acked=2, max_seen=10, gaps=4)


def test_hole_above_a_previous_ack() -> None:
    assert advance(5, [8]) == SeqState(acked=5, max_seen=8, gaps=2)


def test_filling_the_hole_acknowledges_everything_above_it() -> None:
    first = advance(0, [1, 2, 4])
    assert first.acked == 2
    second = advance(first.acked, [3, 4])
    assert second == SeqState(acked=4, max_seen=4, gaps=0)


def test_duplicates_count_once() -> None:
    assert advance(0, [1, 1, 2, 2, 2, 4, 4]) == SeqState(acked=2, max_seen=4, gaps=1)


def test_order_does_not_matter() -> None:
    assert advance(0, [4, 2, 1, 3, 6]) == SeqState(acked=4, max_seen=6, gaps=1)


def test_accepts_any_iterable_once() -> None:
    # A generator can be consumed only once; the answer must still be complete.
    assert advance(0, (s for s in (3, 1, 2))) == SeqState(acked=3, max_seen=3, gaps=0)


def _largest_prefix(seqs: set[int]) -> int:
    n = 0
    while n + 1 in seqs:
        n += 1
    return n


@given(st.sets(st.integers(min_value=1, max_value=300), min_size=1, max_size=120))
def test_property_acked_is_the_longest_prefix_and_gaps_the_holes_above(seqs: set[int]) -> None:
    state = advance(0, seqs)
    acked = _largest_prefix(seqs)
    assert state.acked == acked
    assert state.max_seen == max(seqs)
    above = {s for s in seqs if s > acked}
    assert state.gaps == max(seqs) - acked - len(above)
    assert state.gaps >= 0
    assert (state.gaps == 0) == (not above)


@given(st.lists(st.integers(min_value=1, max_value=200), max_size=80), st.randoms())
def test_property_input_order_and_duplicates_are_irrelevant(
    seqs: list[int], rnd: random.Random
) -> None:
    shuffled = list(seqs) * 2
    rnd.shuffle(shuffled)
    assert advance(0, shuffled) == advance(0, sorted(set(seqs)))


@given(st.sets(st.integers(min_value=1, max_value=200), max_size=80),
       st.integers(min_value=0, max_value=200))
def test_property_advancing_in_two_steps_equals_one(seqs: set[int], split: int) -> None:
    """Storing part of the seqs, advancing, then the rest gives the same ack as all at once."""
    first = advance(0, {s for s in seqs if s <= split})
    second = advance(first.acked, {s for s in seqs if s > first.acked})
    assert second.acked == advance(0, seqs).acked
