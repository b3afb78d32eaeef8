"""What every recorder shares: one thread per recording, callbacks out, and
failures turned into a reason rather than an exception.

A recorder never touches the service's state: it reports through its
callbacks (which only enqueue) and the fields the service reads (`failed`,
`segments`, `packets`, `last_packet_at`, `probe`).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_node.segments import SealedSegment

logger = logging.getLogger(__name__)


class CameraError(RuntimeError):
    """The camera could not be opened or stopped delivering; the message is
    safe to publish (it never carries the camera's URL)."""


@dataclass(frozen=True)
class RecordingRequest:
    recording_id: str
    camera_id: str
    url: str
    segment_seconds: int
    directory: Path


@dataclass(frozen=True)
class CameraProbe:
    """What the camera turned out to send, learnt on connecting."""

    codec: str
    width: int
    height: int
    fps: float | None


@dataclass(frozen=True)
class RecorderCallbacks:
    on_segment: Callable[[SealedSegment], None]
    on_exit: Callable[[], None]
    on_online: Callable[[CameraProbe], None] = lambda _probe: None


class RecorderThread(ABC):
    """One recording of one camera, in a thread, until `stop()` or failure."""

    def __init__(self, request: RecordingRequest, callbacks: RecorderCallbacks) -> None:
        self.request = request
        self._callbacks = callbacks
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rec-{request.camera_id}",
                                        daemon=True)
        self.segments = 0
        self.failed: str | None = None
        self.packets = 0
        self.lost_packets = 0
        self.bytes = 0
        self.last_packet_at = time.monotonic()  # read by the service's watchdog
        self.probe: CameraProbe | None = None

    def start(self) -> None:
        self.request.directory.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @abstractmethod
    def _record(self) -> None:
        """Record until `self._stopping` is set; raise CameraError on failure."""

    def _run(self) -> None:
        try:
            self._record()
        except Exception as exc:  # thread edge: reported, never raised
            self.failed = str(exc) or type(exc).__name__
            logger.warning("recorder.failed camera_id=%s error=%s", self.request.camera_id,
                           self.failed, exc_info=not isinstance(exc, CameraError))
        finally:
            self._callbacks.on_exit()

    def _online(self, probe: CameraProbe) -> None:
        self.probe = probe
        self._callbacks.on_online(probe)

    def _received(self, size: int) -> None:
        self.packets += 1
        self.bytes += size
        self.last_packet_at = time.monotonic()

    def _emit(self, segment: SealedSegment | None) -> None:
        if segment is not None:
            self.segments += 1
            logger.info("segment.sealed camera_id=%s segment_id=%s bytes=%d frames=%d",
                        segment.camera_id, segment.segment_id, segment.bytes, segment.frames)
            self._callbacks.on_segment(segment)
