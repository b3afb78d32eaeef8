"""When a frame was captured, on the node's UTC clock, from its media timestamp.

A camera's packets reach us late and unevenly (an RTSP session hands over
seconds of buffered packets at once when it opens), so arrival time is a poor
capture time. Media timestamps are exact relative to each other; the wall
clock is anchored on the least-delayed packet seen, i.e. the smallest
`arrival - media time`. The same anchor tells a reader whether it has caught up
with a live stream (`LiveEdge`). Pure: the caller supplies both clocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass
class MediaClock:
    offset_s: float | None = None  # epoch seconds minus media seconds

    def observe(self, media_s: float, arrived_epoch_s: float) -> None:
        candidate = arrived_epoch_s - media_s
        if self.offset_s is None or candidate < self.offset_s:
            self.offset_s = candidate

    def wall(self, media_s: float) -> datetime:
        if self.offset_s is None:
            raise ValueError("no packet observed yet")
        return datetime.fromtimestamp(self.offset_s + media_s, UTC)


def frames_missing(previous_dts: int | None, dts: int, frame_ticks: float | None) -> int:
    """Frames lost between two consecutive packets, judged by their dts gap.

    A jump of more than half a frame beyond the expected interval means the
    frames in between never arrived (dropped on the network or by the
    camera). Without a known frame rate, or across a backwards step, none
    can be counted.
    """
    if previous_dts is None or frame_ticks is None or frame_ticks <= 0 or dts <= previous_dts:
        return 0
    return max(0, round((dts - previous_dts) / frame_ticks) - 1)


@dataclass
class LiveEdge:
    """Whether a reader has caught up with a live stream, from each packet's media
    time and the moment it was read (any one clock, seconds).

    A packet's delay is when it was read less its media time; the least delay seen
    is the stream's own latency, so a packet's wait is its delay less that. A wait
    shorter than `frame_s` means the next frame cannot have arrived yet: reading on
    would only block until it does. Pure: the caller supplies both times.
    """

    frame_s: float
    least_delay_s: float = math.inf

    def caught_up(self, media_s: float, read_s: float) -> bool:
        delay = read_s - media_s
        self.least_delay_s = min(self.least_delay_s, delay)
        return delay - self.least_delay_s < self.frame_s
