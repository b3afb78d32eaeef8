"""One JPEG from a camera, for the `snapshot` command.

Runs in its own short-lived thread so a camera that hangs delays nothing
else. Frames come from PyAV for RTSP (so the camera's transport setting is
honoured) and from OpenCV for MJPEG and USB; the JPEG is encoded by OpenCV.
"""

from __future__ import annotations

import contextlib
from typing import Any

import av
import av.error
import cv2
import numpy as np
import numpy.typing as npt

from edge_node.copy_recorder import transports
from edge_node.decoded_recorder import capture_source
from edge_node.recorder_thread import CameraError

TIMEOUT_S = 10.0
JPEG_QUALITY = 85


def _frame_from_rtsp(url: str, transport: str) -> npt.NDArray[np.uint8]:
    for option in transports(transport):
        with contextlib.suppress(av.error.FFmpegError, OSError):
            container: Any = av.open(url, options={"rtsp_transport": option},
                                     timeout=(TIMEOUT_S, TIMEOUT_S))
            try:
                for frame in container.decode(video=0):
                    image: npt.NDArray[np.uint8] = frame.to_ndarray(format="bgr24")
                    return image
            finally:
                container.close()
    raise CameraError("no frame from the camera")


def _frame_from_capture(url: str) -> npt.NDArray[np.uint8]:
    capture = cv2.VideoCapture(capture_source(url), cv2.CAP_ANY, [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(TIMEOUT_S * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(TIMEOUT_S * 1000)])
    try:
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok:
        raise CameraError("no frame from the camera")
    return np.asarray(frame, dtype=np.uint8)


def take_snapshot(url: str, transport: str = "auto") -> tuple[bytes, int, int]:
    """A JPEG of the camera's current picture, with its width and height."""
    image = _frame_from_rtsp(url, transport) if url.startswith("rtsp://") \
        else _frame_from_capture(url)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise CameraError("could not encode the JPEG")
    height, width = image.shape[:2]
    return encoded.tobytes(), width, height
