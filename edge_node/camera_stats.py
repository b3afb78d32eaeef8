"""Per-camera figures for the heartbeat, from counters the recorders keep. Pure."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

HOUR_S = 3600.0


@dataclass
class CameraStats:
    reconnects: deque[float] = field(default_factory=deque)  # monotonic times
    _last_bytes: int = 0
    _last_at: float | None = None
    bitrate_bps: int | None = None

    def reconnected(self, now: float) -> None:
        self.reconnects.append(now)

    def reconnects_last_hour(self, now: float) -> int:
        while self.reconnects and now - self.reconnects[0] > HOUR_S:
            self.reconnects.popleft()
        return len(self.reconnects)

    def sample(self, total_bytes: int, now: float) -> None:
        """Bitrate over the interval since the last sample (a new recorder
        restarts its byte counter, which just starts a new interval)."""
        if self._last_at is not None and now > self._last_at and total_bytes >= self._last_bytes:
            self.bitrate_bps = int((total_bytes - self._last_bytes) * 8 / (now - self._last_at))
        self._last_bytes, self._last_at = total_bytes, now

    def idle(self) -> None:
        self._last_at, self.bitrate_bps = None, None
