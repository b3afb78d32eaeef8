"""What a recorded file actually holds, read back with PyAV: media seconds,
frames, and frames missing inside it (gaps in its timestamps).

The same reading for every recorder, so their outputs are compared on what
they wrote rather than on what each claims to have written.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import av
import av.error


@dataclass(frozen=True)
class FileStats:
    seconds: float  # first pts to last pts plus the last frame's duration
    frames: int
    missing_frames: int  # frames absent between consecutive timestamps
    readable: bool = True


def file_stats(path: Path, fps: float) -> FileStats:
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.time_base is None:
                return FileStats(0.0, 0, 0, readable=False)
            time_base = float(stream.time_base)
            stamps = sorted(packet.pts for packet in container.demux(stream)
                            if packet.pts is not None and packet.size)
    except (av.error.FFmpegError, OSError, IndexError):
        return FileStats(0.0, 0, 0, readable=False)
    if not stamps:
        return FileStats(0.0, 0, 0)
    frame_ticks = 1 / (fps * time_base)
    missing = sum(max(0, round((b - a) / frame_ticks) - 1)
                  for a, b in itertools.pairwise(stamps))
    seconds = (stamps[-1] - stamps[0]) * time_base + 1 / fps
    return FileStats(seconds, len(stamps), missing)


def total(stats: list[FileStats]) -> FileStats:
    return FileStats(sum(s.seconds for s in stats), sum(s.frames for s in stats),
                     sum(s.missing_frames for s in stats), all(s.readable for s in stats))


def video_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.mp4"))
