"""The integration fixtures deliver what later tests rely on.

Each fixture is checked against its promise with an assertion that fails if the promise
breaks: the RTSP camera is real H.264 over RTP/UDP and can go away and come back; the MJPEG
camera is readable by OpenCV, encodes once per tick and can hang; the GCS emulator checks
crc32c and speaks resumable uploads; both database URLs give an empty, writable database.
Streams are few and short: these run on 2-core machines next to other suites.
"""

from __future__ import annotations

import base64
import os
import random
import re
import socket
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import av
import cv2
import google_crc32c
import numpy as np
import pytest
import requests
import sqlalchemy as sa

from tests.fixtures.gcs import GcsEmulator
from tests.fixtures.media import (
    CLIP_FPS,
    CLIP_HEIGHT,
    CLIP_MAX_FRAME_BYTES,
    CLIP_SECONDS,
    CLIP_WIDTH,
    MjpegCameraFactory,
    RtspCameraFactory,
    read_video_packet,
)
from tests.fixtures.postgres import PostgresServer

_PART_HEADERS = re.compile(rb"Content-Length: (\d+)\r\nX-Frame-Index: (\d+)\r\n\r\n")


def _gcs_crc32c(data: bytes) -> str:
    """crc32c as GCS reports it: base64 of the big-endian 4-byte value."""
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


class _RawMjpegReader:
    """Reads a multipart MJPEG stream off a plain socket and returns each part's index.

    A plain socket (not http.client) because a read timeout must leave it usable: the
    pause test needs "nothing arrived for 1 s" and then more frames on the same connection.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.port is not None
        self._sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
        self._sock.sendall(f"GET {parts.path} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode())
        self._buf = b""

    def next_index(self, timeout_s: float) -> int | None:
        """The next complete part's X-Frame-Index, or None if none completes in time."""
        deadline = time.monotonic() + timeout_s
        while True:
            match = _PART_HEADERS.search(self._buf)
            if match and len(self._buf) >= match.end() + int(match[1]):
                self._buf = self._buf[match.end() + int(match[1]) :]
                return int(match[2])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise EOFError("camera closed the stream")
            self._buf += chunk

    def close(self) -> None:
        self._sock.close()


# -- video --------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_h264_clip_is_720p15_without_bframes_and_frames_fit_udp(h264_clip: Path) -> None:
    with av.open(str(h264_clip)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (
            CLIP_WIDTH,
            CLIP_HEIGHT,
        )
        assert stream.average_rate == CLIP_FPS
        packets = [p for p in container.demux(stream) if p.size]
    assert len(packets) == CLIP_SECONDS * CLIP_FPS
    assert max(p.size for p in packets) <= CLIP_MAX_FRAME_BYTES
    assert sum(p.is_keyframe for p in packets) == CLIP_SECONDS // 2  # one key frame per 2 s
    assert all(p.pts == p.dts for p in packets), "B-frames in the no-B-frame clip"


@pytest.mark.timeout(120)
def test_rtsp_camera_streams_h264_goes_away_and_comes_back(
    rtsp_camera: RtspCameraFactory,
) -> None:
    camera = rtsp_camera()
    assert camera.startup_s is not None
    assert camera.startup_s < 10
    # Short probing, as a recorder would: analyzeduration=0 would mean the 5 s default.
    options = {"rtsp_transport": "udp", "timeout": "5000000", "analyzeduration": "100000"}
    with av.open(camera.url, options=options, timeout=(10, 5)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.width == CLIP_WIDTH
        # A whole key frame crossed RTP/UDP and the relay: it decodes at full size.
        keyframe = next(p for p in container.demux(stream) if p.is_keyframe)
        frames = keyframe.decode()
    assert [(f.width, f.height) for f in frames] == [(CLIP_WIDTH, CLIP_HEIGHT)]

    camera.stop()  # clean exit: TEARDOWN unmounts the stream
    assert not read_video_packet(camera.url)
    camera.start()
    assert read_video_packet(camera.url)

    camera.kill()  # power loss: no TEARDOWN, the mount lingers without packets
    assert not read_video_packet(camera.url, timeout_s=1.0)
    camera.start()
    assert read_video_packet(camera.url)


@pytest.mark.timeout(60)
def test_mjpeg_camera_is_read_by_opencv(mjpeg_camera: MjpegCameraFactory) -> None:
    camera = mjpeg_camera()
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
    capture = cv2.VideoCapture(camera.url, cv2.CAP_FFMPEG, params)
    try:
        assert capture.isOpened()
        ok, frame = capture.read()
    finally:
        capture.release()
    assert ok
    assert frame.shape == (360, 640, 3)

    with urllib.request.urlopen(camera.snapshot_url, timeout=5) as response:  # noqa: S310 - loopback test camera
        snapshot = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)
    assert snapshot is not None
    assert snapshot.shape == (360, 640, 3)


@pytest.mark.timeout(60)
def test_mjpeg_camera_encodes_once_per_tick_pauses_and_restarts(
    mjpeg_camera: MjpegCameraFactory,
) -> None:
    camera = mjpeg_camera(fps=10)
    readers = [_RawMjpegReader(camera.url) for _ in range(3)]
    try:
        first = [reader.next_index(2.0) for reader in readers]
        encoded_before = camera.frames_encoded
        for _ in range(10):
            for reader in readers:
                assert reader.next_index(2.0) is not None
        # 3 viewers x 10 frames: about 10 encodes, not 30.
        assert camera.frames_encoded - encoded_before <= 12

        reader = readers[0]
        camera.pause()
        late = 0
        while reader.next_index(0.3) is not None:  # a part already being written may land
            late += 1
            assert late <= 2, "frames kept arriving after pause()"
        assert reader.next_index(1.0) is None  # ten frame periods of silence, socket open
        camera.resume()
        resumed = reader.next_index(2.0)
        assert resumed is not None
        assert first[0] is not None
        assert resumed > first[0]

        port = camera.port
        camera.stop()
        with pytest.raises(EOFError):
            reader.next_index(2.0)
        camera.start()
        assert camera.port == port
    finally:
        for reader in readers:
            reader.close()
    again = _RawMjpegReader(camera.url)
    try:
        assert again.next_index(2.0) is not None
    finally:
        again.close()


# -- GCS emulator ------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_gcs_upload_reports_crc32c_and_env_points_at_emulator(gcs_env: GcsEmulator) -> None:
    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_env.endpoint
    data = random.Random(1).randbytes(100_000)
    blob = gcs_env.bucket().blob("site-1/cam-1/2024/01/01/20240101T000000Z_seg.mp4")
    # No client-side checksum: the crc32c below is the emulator's own computation.
    blob.upload_from_string(data, content_type="video/mp4", checksum=None)
    blob.reload()
    assert blob.size == len(data)
    assert blob.crc32c == _gcs_crc32c(data)


@pytest.mark.timeout(60)
def test_gcs_resumable_upload_in_chunks(gcs_emulator: GcsEmulator) -> None:
    chunk = 256 * 1024  # GCS requires multiples of 256 KiB
    data = random.Random(2).randbytes(2 * chunk + 1000)
    bucket = gcs_emulator.bucket()

    # The client library: blob.open() always uses a resumable session.
    blob = bucket.blob("writer.bin", chunk_size=chunk)
    with blob.open("wb", if_generation_match=0) as writer:
        writer.write(data)
    blob.reload()
    assert (blob.size, blob.crc32c) == (len(data), _gcs_crc32c(data))

    # The protocol an uploader resumes with after a crash: 308 + Range, query, continue.
    session = bucket.blob("session.bin").create_resumable_upload_session(size=len(data))
    total = len(data)
    first = requests.put(
        session,
        data=data[:chunk],
        timeout=10,
        headers={"Content-Range": f"bytes 0-{chunk - 1}/{total}"},
    )
    assert (first.status_code, first.headers["Range"]) == (308, f"bytes=0-{chunk - 1}")
    status = requests.put(session, timeout=10, headers={"Content-Range": f"bytes */{total}"})
    assert (status.status_code, status.headers["Range"]) == (308, f"bytes=0-{chunk - 1}")
    last = requests.put(
        session,
        data=data[chunk:],
        timeout=10,
        headers={"Content-Range": f"bytes {chunk}-{total - 1}/{total}"},
    )
    assert last.status_code == 200
    assert last.json()["crc32c"] == _gcs_crc32c(data)
    assert bucket.blob("session.bin").download_as_bytes() == data


# -- databases ----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_database_url_is_empty_and_writable(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    metadata = sa.MetaData()
    cameras = sa.Table(
        "probe_cameras",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("camera_id", sa.String(63), nullable=False, unique=True),
    )
    try:
        with engine.begin() as conn:
            assert sa.inspect(conn).get_table_names() == []  # fresh per test and backend
            metadata.create_all(conn)
            conn.execute(sa.insert(cameras), [{"camera_id": "cam-1"}, {"camera_id": "cam-2"}])
        with engine.connect() as conn:
            rows = conn.execute(sa.select(cameras.c.camera_id).order_by(cameras.c.id)).all()
        assert [row.camera_id for row in rows] == ["cam-1", "cam-2"]
        assert engine.dialect.name == database_url.split(":", 1)[0].split("+", 1)[0]
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_postgres_url_is_this_runs_own_database(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            name = conn.execute(sa.text("SELECT current_database()")).scalar_one()
    finally:
        engine.dispose()
    assert name == postgres_server.run_database
    assert name.startswith("cctv_test_")
