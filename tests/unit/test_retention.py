"""Eviction choice: uploaded copies first, un-uploaded only as a last resort."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge_node.retention import LocalSegment, RetentionPolicy, choose_evictions

NOW = 1_000_000.0
POLICY = RetentionPolicy(min_free_bytes=100, max_bytes=0, max_uploaded_age_s=3600)


def seg(segment_id: str, *, uploaded: bool, age_s: float, size: int = 10) -> LocalSegment:
    return LocalSegment(segment_id, "cam", size, NOW - age_s, uploaded)


def test_nothing_goes_while_there_is_room() -> None:
    segments = [seg("a", uploaded=True, age_s=10), seg("b", uploaded=False, age_s=20)]
    assert choose_evictions(segments, free_bytes=1000, policy=POLICY, now=NOW) == []


def test_uploaded_copies_past_their_age_go_even_with_room() -> None:
    segments = [seg("old", uploaded=True, age_s=7200), seg("pending", uploaded=False,
                                                             age_s=7200)]
    chosen = choose_evictions(segments, free_bytes=1000, policy=POLICY, now=NOW)
    assert [(e.segment.segment_id, e.reason) for e in chosen] == [("old", "max_age")]


def test_short_of_disk_uploaded_go_first_oldest_first_then_pending_oldest_first() -> None:
    segments = [seg("p-new", uploaded=False, age_s=1), seg("u-new", uploaded=True, age_s=5),
                seg("p-old", uploaded=False, age_s=50), seg("u-old", uploaded=True, age_s=60)]
    chosen = choose_evictions(segments, free_bytes=65, policy=POLICY, now=NOW)
    assert [e.segment.segment_id for e in chosen] == ["u-old", "u-new", "p-old", "p-new"]
    chosen = choose_evictions(segments, free_bytes=85, policy=POLICY, now=NOW)
    assert [e.segment.segment_id for e in chosen] == ["u-old", "u-new"]
    assert {e.reason for e in chosen} == {"disk_low"}


def test_a_quota_counts_every_local_segment() -> None:
    policy = RetentionPolicy(min_free_bytes=0, max_bytes=25, max_uploaded_age_s=3600)
    segments = [seg("a", uploaded=False, age_s=30), seg("b", uploaded=False, age_s=20),
                seg("c", uploaded=False, age_s=10)]
    chosen = choose_evictions(segments, free_bytes=10**9, policy=policy, now=NOW)
    assert [(e.segment.segment_id, e.reason) for e in chosen] == [("a", "quota")]


def test_protected_segments_are_never_chosen() -> None:
    segments = [seg("busy", uploaded=False, age_s=99), seg("b", uploaded=False, age_s=1)]
    chosen = choose_evictions(segments, free_bytes=0, policy=POLICY, now=NOW,
                              protected=frozenset({"busy"}))
    assert [e.segment.segment_id for e in chosen] == ["b"]


segment_lists = st.lists(
    st.builds(LocalSegment, segment_id=st.uuids().map(str), camera_id=st.just("cam"),
              bytes=st.integers(1, 1000), created=st.floats(NOW - 10_000, NOW),
              uploaded=st.booleans()), max_size=30)


@given(segment_lists, st.integers(0, 5000), st.integers(0, 20_000))
def test_no_pending_segment_goes_while_an_uploaded_one_remains(
        segments: list[LocalSegment], free: int, quota: int) -> None:
    policy = RetentionPolicy(min_free_bytes=3000, max_bytes=quota, max_uploaded_age_s=5000)
    chosen = choose_evictions(segments, free_bytes=free, policy=policy, now=NOW)
    gone = {e.segment.segment_id for e in chosen}
    first_pending = next((i for i, e in enumerate(chosen) if not e.segment.uploaded), None)
    if first_pending is not None:
        assert all(s.segment_id in gone for s in segments if s.uploaded)
    # Enough is freed, or everything went.
    freed = sum(e.segment.bytes for e in chosen)
    left = sum(s.bytes for s in segments) - freed
    fits = free + freed >= policy.min_free_bytes and (quota == 0 or left <= quota)
    assert fits or len(chosen) == len(segments)
