"""What every segment store shares: its error and the controls of an upload."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class StoreError(RuntimeError):
    """An upload that did not complete; `retryable` says whether to try again."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class UploadControl:
    """How an upload talks back: the session to keep, whether to stop
    between chunks, and how many bytes the store holds so far."""

    remember_session: Callable[[str | None], None] = lambda _url: None
    stopping: Callable[[], bool] = lambda: False
    progress: Callable[[int], None] = lambda _sent: None


NO_CONTROL = UploadControl()
