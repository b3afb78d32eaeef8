"""The stream-copy recorder against a live RTSP camera (H.264 over RTP/UDP)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import pytest

from edge_node.copy_recorder import CopyRecorder
from edge_node.recorder_thread import CameraProbe, RecorderCallbacks, RecordingRequest
from edge_node.segments import SealedSegment, crc32c_of_file
from tests.fixtures.media import RtspCameraFactory


def probe_duration(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.time_base is not None
        spans = [(p.pts, p.pts + (p.duration or 0)) for p in container.demux(stream)
                 if p.pts is not None]
        first = min(start for start, _ in spans)
        last = max(end for _, end in spans)
        return float((last - first) * stream.time_base)


@pytest.mark.timeout(60)
def test_segments_are_copied_cut_at_key_frames_and_cover_the_wall_clock(
        rtsp_camera: RtspCameraFactory, tmp_path: Path) -> None:
    camera = rtsp_camera()
    segments: list[SealedSegment] = []
    exited = threading.Event()
    probes: list[CameraProbe] = []
    recorder = CopyRecorder(RecordingRequest("rec-1", "cam-1", camera.url, 2, tmp_path),
                            RecorderCallbacks(segments.append, exited.set, probes.append),
                            transport="udp")
    recorder.start()
    time.sleep(9)
    recorder.stop()
    assert exited.is_set()
    assert recorder.failed is None
    assert probes == [CameraProbe("h264", 1280, 720, 15.0)]
    assert len(segments) >= 3
    span = (segments[-1].end - segments[0].start).total_seconds()
    recorded = sum(probe_duration(s.path) for s in segments)
    # Each file also holds its last frame's duration: allow one frame per segment.
    assert abs(recorded - span) <= 0.02 * span + len(segments) / 15
    for segment in segments:
        assert segment.codec == "h264"
        assert (segment.width, segment.height) == (1280, 720)
        assert segment.crc32c == crc32c_of_file(segment.path)
        assert segment.bytes == segment.path.stat().st_size


@pytest.mark.timeout(60)
def test_a_camera_that_dies_ends_the_recording_with_its_footage_kept(
        rtsp_camera: RtspCameraFactory, tmp_path: Path) -> None:
    camera = rtsp_camera()
    segments: list[SealedSegment] = []
    exited = threading.Event()
    recorder = CopyRecorder(RecordingRequest("rec-2", "cam-2", camera.url, 60, tmp_path),
                            RecorderCallbacks(segments.append, exited.set), transport="udp")
    recorder.start()
    time.sleep(4)
    camera.kill()
    assert exited.wait(20), "the read timeout should end a recording whose camera died"
    assert recorder.failed is not None
    assert len(segments) == 1, "the segment in progress is sealed, not dropped"
    assert probe_duration(segments[0].path) > 1.0


@pytest.mark.timeout(60)
def test_a_stream_with_b_frames_is_copied_playable(
        rtsp_camera: RtspCameraFactory, h264_clip_bframes: Path, tmp_path: Path) -> None:
    camera = rtsp_camera(clip=h264_clip_bframes)
    segments: list[SealedSegment] = []
    recorder = CopyRecorder(RecordingRequest("rec-3", "cam-3", camera.url, 2, tmp_path),
                            RecorderCallbacks(segments.append, lambda: None), transport="udp")
    recorder.start()
    time.sleep(7)
    recorder.stop()
    assert recorder.failed is None
    assert len(segments) >= 2
    for segment in segments:
        with av.open(str(segment.path)) as container:
            stream = container.streams.video[0]
            decoded = sum(1 for _ in container.decode(stream))
        assert decoded == segment.frames, "every copied frame decodes"
        assert segment.lost_packets == 0
