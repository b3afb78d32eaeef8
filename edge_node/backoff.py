"""How long to wait before trying a failed camera or upload again, pure."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, base_s: float = 1.0, cap_s: float = 60.0,
                  rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base*2^n)],
    so a site's cameras that fail together do not retry in lockstep."""
    ceiling = min(cap_s, base_s * 2 ** max(attempt - 1, 0))
    return (rng or random).uniform(ceiling / 2, ceiling)
