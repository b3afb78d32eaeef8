"""The decoded recorder's segment files on disk: H.264 in fragmented MP4 that
plays in a browser, keeps wall-clock duration, and survives being cut short."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np

from edge_node.decoded_recorder import CODEC, _SegmentWriter
from edge_node.recorder_thread import RecordingRequest

T0 = datetime(2026, 5, 4, 12, tzinfo=UTC)
FPS = 10.0


def request(tmp_path: Path) -> RecordingRequest:
    return RecordingRequest(recording_id="rec-1", camera_id="cam-1", url="http://x/",
                            segment_seconds=10, directory=tmp_path)


def frame(n: int, height: int = 241, width: int = 321) -> np.ndarray:
    picture = np.zeros((height, width, 3), dtype=np.uint8)
    picture[:, : (n * 7) % width] = 200  # a moving edge, so frames differ
    return picture


def write_seconds(writer: _SegmentWriter, seconds: float) -> None:
    for n in range(int(seconds * FPS)):
        writer.write(frame(n), n / FPS, T0 + timedelta(seconds=n / FPS))


def probe(path: Path) -> tuple[str, int, int, int, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        duration = float(container.duration or 0) / av.time_base
        return stream.codec_context.name, stream.width, stream.height, frames, duration


def test_a_sealed_segment_is_h264_with_the_wall_clock_duration(tmp_path: Path) -> None:
    writer = _SegmentWriter(request(tmp_path), FPS, (321, 241))
    write_seconds(writer, 4.0)
    sealed = writer.seal(request(tmp_path))
    assert sealed is not None
    assert (sealed.codec, sealed.width, sealed.height) == (CODEC, 320, 240)  # cropped even
    codec, width, height, frames, duration = probe(sealed.path)
    assert (codec, width, height) == ("h264", 320, 240)
    assert frames == sealed.frames == 40
    assert abs(duration - 4.0) <= 0.02 * 4.0


def test_a_segment_cut_short_plays_up_to_its_last_fragment(tmp_path: Path) -> None:
    """A copy taken mid-segment is what a power cut leaves: every key frame
    (each 2 s) closed a fragment that is already in the file."""
    writer = _SegmentWriter(request(tmp_path), FPS, (321, 241))
    write_seconds(writer, 5.0)
    cut = tmp_path / "cut.mp4"
    shutil.copyfile(writer.path, cut)
    writer.seal(request(tmp_path))
    codec, _, _, frames, _ = probe(cut)
    assert codec == "h264"
    assert frames >= 20, f"only {frames} frames readable from the cut file"
