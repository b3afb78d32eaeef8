"""Which recorder a camera gets: stream copy for RTSP, decoding for the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from edge_node.copy_recorder import CopyRecorder
from edge_node.decoded_recorder import DecodedRecorder, RecordingRequest
from edge_node.segments import SealedSegment


class Recorder(Protocol):
    request: RecordingRequest
    segments: int
    failed: str | None

    def start(self) -> None: ...
    def stop(self, timeout: float = 15.0) -> None: ...
    @property
    def running(self) -> bool: ...


def make_recorder(request: RecordingRequest, transport: str,
                  on_segment: Callable[[SealedSegment], None],
                  on_exit: Callable[[], None]) -> Recorder:
    """RTSP cameras send H.264/H.265, which is copied without decoding; MJPEG
    over HTTP and USB devices must be decoded and re-encoded."""
    if request.url.startswith("rtsp://"):
        return CopyRecorder(request, on_segment, on_exit, transport)
    return DecodedRecorder(request, on_segment, on_exit)
