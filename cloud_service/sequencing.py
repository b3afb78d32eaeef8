"""Per-node event sequence bookkeeping, pure.

A node numbers its events 1, 2, 3... with no gaps. The cloud acknowledges the
highest seq it holds with nothing missing below it, and counts the holes
above that point so the API can warn that events are missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SeqState:
    acked: int  # every seq in 1..acked is stored
    max_seen: int
    gaps: int  # seqs missing between acked and max_seen


def advance(acked: int, stored_above: Iterable[int]) -> SeqState:
    """Move `acked` over the stored seqs that follow it without a hole.

    `stored_above` is every stored seq greater than `acked`, in any order.
    """
    above = sorted(set(stored_above))
    for seq in above:
        if seq != acked + 1:
            break
        acked = seq
    max_seen = max(above[-1], acked) if above else acked
    remaining = sum(1 for seq in above if seq > acked)
    return SeqState(acked=acked, max_seen=max_seen, gaps=max_seen - acked - remaining)
