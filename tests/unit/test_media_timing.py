"""Pure timing helpers of the recorders: frame-rate estimate, pacing, media
clock anchoring, catching up with a live stream (and how long to pause then) and
lost-frame counting."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from edge_node.copy_recorder import CATCH_UP_PAUSE_S, catch_up_pause_s
from edge_node.decoded_recorder import DEFAULT_FPS, estimate_fps, frames_due
from edge_node.media_clock import LiveEdge, MediaClock, frames_missing


def test_estimate_fps_uses_the_median_interval_and_ignores_one_late_frame() -> None:
    arrivals = [0.0, 0.1, 0.2, 0.3, 0.9, 1.0, 1.1, 1.2]
    assert estimate_fps(arrivals) == 10.0


def test_estimate_fps_without_intervals_falls_back() -> None:
    assert estimate_fps([5.0]) == DEFAULT_FPS
    assert estimate_fps([1.0, 1.0, 1.0]) == DEFAULT_FPS


@given(st.floats(min_value=1, max_value=60))
def test_estimate_fps_recovers_a_steady_rate(fps: float) -> None:
    arrivals = [i / fps for i in range(10)]
    assert abs(estimate_fps(arrivals) - fps) <= 0.25 + 1e-9


def test_frames_due_follows_the_wall_clock() -> None:
    assert frames_due(0.0, 10) == 1
    assert frames_due(0.95, 10) == 10
    assert frames_due(3.0, 10) == 31


def test_media_clock_anchors_on_the_least_delayed_packet() -> None:
    clock = MediaClock()
    base = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    clock.observe(0.0, base + 3.0)  # a burst: old packets handed over late
    clock.observe(2.0, base + 3.0)
    clock.observe(3.0, base + 4.1)
    assert clock.wall(0.0) == datetime.fromtimestamp(base + 1.0, UTC)
    assert clock.wall(3.0) == datetime.fromtimestamp(base + 4.0, UTC)


def test_frames_missing_counts_the_frames_a_dts_gap_skipped() -> None:
    assert frames_missing(None, 100, 6000) == 0
    assert frames_missing(0, 6000, 6000) == 0
    assert frames_missing(0, 18000, 6000) == 2
    assert frames_missing(0, 8000, 6000) == 0  # jitter below half a frame
    assert frames_missing(18000, 6000, 6000) == 0  # a step backwards counts nothing
    assert frames_missing(0, 18000, None) == 0


def test_live_edge_pauses_only_once_the_backlog_is_read() -> None:
    edge = LiveEdge(frame_s=0.1)
    assert edge.caught_up(0.0, 5.0)  # read as it arrived: the next frame is not there yet
    # The reader stalled: frames 1-5 arrived at 5.1 ... 5.5 and are all read at 5.55.
    waits = [edge.caught_up(n / 10, 5.55) for n in range(1, 6)]
    assert waits == [False, False, False, False, True]
    assert edge.caught_up(0.6, 5.62)  # back at the live edge, 20 ms after it arrived


@given(st.floats(min_value=-1e6, max_value=1e6),
       st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=50))
def test_live_edge_is_caught_up_exactly_when_a_packet_waited_less_than_a_frame(
        latency: float, waits: list[float]) -> None:
    frame_s = 1 / 15
    edge = LiveEdge(frame_s)
    assert edge.caught_up(0.0, latency)  # the first packet is read as it arrives
    for n, wait in enumerate(waits, start=1):
        arrived = latency + n * frame_s
        caught_up = edge.caught_up(n * frame_s, arrived + wait)
        if abs(wait - frame_s) > 1e-6:  # float rounding at the boundary
            assert caught_up == (wait < frame_s)


def test_a_pause_only_lets_queue_what_the_socket_buffer_holds() -> None:
    frame_s = 1 / 15
    # 1.5 Mbit/s with 72 kB key frames and 2 MiB to queue in: the full pause.
    assert catch_up_pause_s(190_000, 72_000, 2 << 20, frame_s) == CATCH_UP_PAUSE_S
    # 8 Mbit/s, 250 kB key frames, 400 kB of room: what the rest of the room takes.
    assert catch_up_pause_s(1_000_000, 250_000, 400_000, frame_s) == 0.15
    # A stock box (rmem_max 208 KiB): a key frame alone could fill the half allowed.
    assert catch_up_pause_s(1_000_000, 250_000, 106_496, frame_s) == 0.0
    assert catch_up_pause_s(0.0, 0, 2 << 20, frame_s) == 0.0


def test_no_pause_shorter_than_a_frame_interval() -> None:
    assert catch_up_pause_s(1_000_000, 250_000, 300_000, 1 / 15) == 0.0  # 50 ms
    assert catch_up_pause_s(190_000, 72_000, 2 << 20, 0.5) == 0.0  # a 2 fps camera
