"""Which recorder a camera gets: stream copy for RTSP, decoding for the rest."""

from __future__ import annotations

from edge_node.copy_recorder import CopyRecorder
from edge_node.decoded_recorder import DecodedRecorder
from edge_node.recorder_thread import RecorderCallbacks, RecorderThread, RecordingRequest


def make_recorder(request: RecordingRequest, transport: str,
                  callbacks: RecorderCallbacks) -> RecorderThread:
    """RTSP cameras send H.264/H.265, which is copied without decoding; MJPEG
    over HTTP and USB devices must be decoded and re-encoded."""
    if request.url.startswith("rtsp://"):
        return CopyRecorder(request, callbacks, transport)
    return DecodedRecorder(request, callbacks)
