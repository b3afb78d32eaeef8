"""A synthetic MJPEG IP camera: a loopback HTTP server streaming a generated test pattern.

`cctv up` uses it as the demo's camera and the test suite uses it as a real MJPEG source,
so both exercise the same HTTP `multipart/x-mixed-replace` path as a cheap IP camera
(`cv2.VideoCapture(camera.url)` reads it). It can also misbehave on purpose: `pause()`
keeps connections open but sends nothing (a hung camera) and `stop()` then `start()` drops
every client and comes back on the same port (a camera that rebooted).

It must never encode a frame more than once per tick, however many clients watch: a single
producer thread renders and JPEG-encodes each frame and every client sends the same bytes.
It never does I/O in its constructor and never outlives `stop()` with a thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["BOUNDARY", "SNAPSHOT_PATH", "STREAM_PATH", "SyntheticMjpegCamera"]

BOUNDARY = "cctvframe"
STREAM_PATH = "/stream.mjpg"
SNAPSHOT_PATH = "/snapshot.jpg"

logger = logging.getLogger(__name__)

# How a viewer going away shows up while we write to (or read from) its socket; none of
# them is an error of the camera, so they are logged at debug level and swallowed.
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)

# Waits are sliced so that waiting threads notice stop() even if a notify is missed.
_WAIT_SLICE_S = 0.5

# Seven SMPTE-like colour bars (BGR) behind the moving bar.
_BARS_BGR = (
    (192, 192, 192),
    (0, 192, 192),
    (192, 192, 0),
    (0, 192, 0),
    (192, 0, 192),
    (0, 0, 192),
    (192, 0, 0),
)


@dataclass(frozen=True)
class _Frame:
    index: int
    jpeg: bytes
    part: bytes  # the complete multipart chunk, built once and sent as is to every client


class _CameraHttpServer(ThreadingHTTPServer):
    # Non-daemon handler threads are joined by server_close(), which is what makes
    # stop() leave no thread behind.
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], camera: SyntheticMjpegCamera) -> None:
        self.camera = camera
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server_version = "SyntheticMjpegCamera/1.0"
    protocol_version = "HTTP/1.0"
    timeout = 10  # a viewer that stops reading for this long is dropped, not waited on

    def _camera(self) -> SyntheticMjpegCamera:
        assert isinstance(self.server, _CameraHttpServer)
        return self.server.camera

    def setup(self) -> None:
        super().setup()
        self._camera()._track(self.connection, add=True)

    def finish(self) -> None:
        self._camera()._track(self.connection, add=False)
        super().finish()

    def handle(self) -> None:
        try:
            super().handle()
        except _CLIENT_GONE as exc:
            logger.debug("camera.client_gone peer=%s error=%s", self.client_address, exc)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == STREAM_PATH:
            self._camera()._serve_stream(self)
        elif path == SNAPSHOT_PATH:
            self._camera()._serve_snapshot(self)
        else:
            self.send_error(HTTPStatus.NOT_FOUND)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        logger.debug("camera.http peer=%s line=%s", self.client_address, format % args)


class SyntheticMjpegCamera:
    """An MJPEG-over-HTTP camera on `host:port` (port 0: a free port, kept across restarts).

    `url` is the stream (`/stream.mjpg`), `snapshot_url` one JPEG (`/snapshot.jpg`). Each
    multipart part carries `Content-Length` and `X-Frame-Index` (the camera's frame counter,
    monotonic across pause and restart) so tests can tell frames apart without decoding.
    Frames are only rendered while someone is watching.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        fps: float = 10,
        width: int = 640,
        height: int = 360,
        *,
        label: str = "synthetic",
        jpeg_quality: int = 80,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if width < 32 or height < 32:
            raise ValueError(f"frame size must be at least 32x32, got {width}x{height}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1..100, got {jpeg_quality}")
        self.host = host
        self.fps = fps
        self.width = width
        self.height = height
        self.label = label
        self.jpeg_quality = jpeg_quality
        self._port = port
        self._cond = threading.Condition()
        self._running = False
        self._paused = False
        self._frame: _Frame | None = None
        self._next_index = 0
        self._viewers = 0
        self._frames_encoded = 0
        self._connections: set[socket.socket] = set()
        self._background: npt.NDArray[np.uint8] | None = None
        self._server: _CameraHttpServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop_producer = threading.Event()
        # start() and stop() may be called from test threads and fixture teardown at once.
        self._lifecycle = threading.Lock()

    # -- public API -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("the camera has no port until start() has bound one")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{STREAM_PATH}"

    @property
    def snapshot_url(self) -> str:
        return f"http://{self.host}:{self.port}{SNAPSHOT_PATH}"

    @property
    def is_running(self) -> bool:
        return self._running

    @property
    def is_paused(self) -> bool:
        return self._paused

    @property
    def frames_encoded(self) -> int:
        """JPEG encodes so far: one per tick with viewers, however many viewers there are."""
        return self._frames_encoded

    @property
    def viewers(self) -> int:
        """Clients currently waiting for frames (stream viewers and pending snapshots)."""
        return self._viewers

    def start(self) -> None:
        """Bind, then serve frames. After a stop() it binds the same port again."""
        with self._lifecycle:
            if self._running:
                raise RuntimeError("camera already running")
            if self._background is None:
                self._background = self._render_background()
            server = _CameraHttpServer((self.host, self._port), self)
            self._port = server.server_address[1]
            self._server = server
            self._stop_producer.clear()
            with self._cond:
                self._running = True
                self._frame = None
            self._threads = [
                threading.Thread(target=self._produce, name=f"mjpeg-producer-{self._port}"),
                threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.2},
                    name=f"mjpeg-http-{self._port}",
                ),
            ]
            for thread in self._threads:
                thread.start()
            logger.info(
                "camera.started url=%s fps=%s size=%sx%s",
                self.url,
                self.fps,
                self.width,
                self.height,
            )

    def stop(self) -> None:
        """Drop every client, close the port and join all threads. Idempotent."""
        with self._lifecycle:
            server = self._server
            if server is None:
                return
            with self._cond:
                self._running = False
                self._cond.notify_all()
            self._stop_producer.set()
            server.shutdown()
            with self._cond:
                connections = list(self._connections)
            for conn in connections:
                # Unblocks a handler stuck in sendall() to a viewer that stopped reading.
                with contextlib.suppress(OSError):  # already closed by peer or handler
                    conn.shutdown(socket.SHUT_RDWR)
            server.server_close()  # joins the handler threads
            for thread in self._threads:
                thread.join()
            self._threads = []
            self._server = None
            logger.info("camera.stopped port=%s", self._port)

    def pause(self) -> None:
        """Keep connections open but send nothing, like a hung camera (snapshots wait too)."""
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"SyntheticMjpegCamera({self.host}:{self._port}, {state})"

    # -- producer ---------------------------------------------------------------------------

    def _produce(self) -> None:
        period = 1.0 / self.fps
        next_tick = time.monotonic()
        while not self._stop_producer.is_set():
            with self._cond:
                wanted = self._viewers > 0 and not self._paused
                index = self._next_index
                self._next_index += 1
            if wanted:
                try:
                    frame = self._encode(index)
                except Exception:
                    # The loop's edge: a bad frame must not kill the camera for good.
                    logger.exception("camera.encode_failed index=%s", index)
                else:
                    with self._cond:
                        self._frame = frame
                        self._frames_encoded += 1
                        self._cond.notify_all()
            next_tick += period
            lag = time.monotonic() - next_tick
            if lag > period:
                # After a stall (a loaded CI box) skip the missed ticks instead of bursting.
                next_tick = time.monotonic()
            self._stop_producer.wait(max(0.0, next_tick - time.monotonic()))

    def _render_background(self) -> npt.NDArray[np.uint8]:
        background = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        edges = np.linspace(0, self.width, len(_BARS_BGR) + 1).astype(int)
        for colour, left, right in zip(_BARS_BGR, edges[:-1], edges[1:], strict=True):
            background[:, left:right] = colour
        return background

    def _encode(self, index: int) -> _Frame:
        assert self._background is not None
        image = self._background.copy()
        # The bar crosses the picture every 4 s, so motion is visible at any fps.
        bar = max(8, self.width // 20)
        step = (self.width + bar) / (4 * self.fps)
        left = int(index * step) % (self.width + bar) - bar
        cv2.rectangle(image, (left, 0), (left + bar, self.height - 1), (255, 255, 255), -1)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
        scale = self.height / 480
        # A black caption band keeps the text legible over the bars and the white bar
        # (OpenCV 5's putText font barely widens with thickness, so outlining does not work).
        cv2.rectangle(image, (0, 0), (self.width - 1, round(95 * scale)), (0, 0, 0), -1)
        for row, text in enumerate((now, f"{self.label} #{index}")):
            origin = (round(10 * scale), round((40 + 40 * row) * scale))
            cv2.putText(
                image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2,
                cv2.LINE_AA,
            )  # fmt: skip
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise RuntimeError("OpenCV failed to encode a JPEG")
        jpeg = buffer.tobytes()
        header = (
            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
            f"X-Frame-Index: {index}\r\n\r\n"
        ).encode("ascii")
        return _Frame(index=index, jpeg=jpeg, part=header + jpeg + b"\r\n")

    # -- serving (called from handler threads) ----------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._cond:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _next_frame(self, after: int) -> _Frame | None:
        """Block until a frame newer than `after` exists and the camera is not paused.

        Returns None once the camera is stopping.
        """
        with self._cond:
            while True:
                if not self._running:
                    return None
                frame = self._frame
                if frame is not None and frame.index > after and not self._paused:
                    return frame
                self._cond.wait(_WAIT_SLICE_S)

    def _join(self) -> int:
        """Register a viewer; returns the index it must wait past (no stale frames)."""
        with self._cond:
            self._viewers += 1
            return self._frame.index if self._frame is not None else -1

    def _leave(self) -> None:
        with self._cond:
            self._viewers -= 1

    def _serve_stream(self, handler: _Handler) -> None:
        last = self._join()
        try:
            handler.send_response(HTTPStatus.OK)
            handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            handler.send_header("Cache-Control", "no-cache, no-store")
            handler.send_header("Pragma", "no-cache")
            handler.send_header("Connection", "close")
            handler.end_headers()
            while (frame := self._next_frame(last)) is not None:
                handler.wfile.write(frame.part)
                last = frame.index
        finally:
            self._leave()

    def _serve_snapshot(self, handler: _Handler) -> None:
        last = self._join()
        try:
            frame = self._next_frame(last)
        finally:
            self._leave()
        if frame is None:
            handler.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "camera stopping")
            return
        handler.send_response(HTTPStatus.OK)
        handler.send_header("Content-Type", "image/jpeg")
        handler.send_header("Content-Length", str(len(frame.jpeg)))
        handler.send_header("Cache-Control", "no-cache, no-store")
        handler.end_headers()
        handler.wfile.write(frame.jpeg)
