"""The base of every wire model: strict, frozen, closed to unknown fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """A payload on the wire.

    Strict types (no "5" for 5, no 1 for true), unknown fields rejected, and
    immutable once parsed so a handler can never alter what was received.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
