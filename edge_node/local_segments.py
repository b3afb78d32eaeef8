"""The segment files on this node's disk, and their deletion when space runs short.

Two kinds live under the data dir: segments waiting for upload (or whose
upload failed for good) in `segments/`, and verified-uploaded copies kept
for a while in `uploaded/`. A file with a sidecar is still being written or
not yet reported, and the upload in progress is left alone.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from edge_node.retention import Eviction, LocalSegment, RetentionPolicy, choose_evictions
from edge_node.segments import SealedSegment, sidecar_path
from edge_node.upload_queue import UploadQueue

logger = logging.getLogger(__name__)


class LocalSegments:
    def __init__(self, segments_dir: Path, uploaded_dir: Path, queue: UploadQueue,
                 policy: RetentionPolicy) -> None:
        self.segments_dir = segments_dir
        self.uploaded_dir = uploaded_dir
        self._queue = queue
        self._policy = policy

    def keep_uploaded(self, segment: SealedSegment) -> None:
        """A verified upload's local copy: kept for local playback while the
        policy allows, deleted at once if it allows none."""
        if self._policy.max_uploaded_age_s <= 0:
            segment.path.unlink(missing_ok=True)
            return
        target = self.uploaded_dir / segment.camera_id / segment.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        segment.path.replace(target)

    def _scan(self, directory: Path, *, uploaded: bool) -> list[LocalSegment]:
        found = []
        for path in directory.glob("*/*.mp4"):
            if not uploaded and sidecar_path(path).exists():
                continue  # being written, or not reported yet
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            found.append(LocalSegment(path.stem, path.parent.name, stat.st_size,
                                      stat.st_mtime, uploaded))
        return found

    def enforce(self, now: float, busy: frozenset[str],
                report_loss: Callable[[Eviction], None]) -> list[Eviction]:
        """Delete what the policy chooses; each un-uploaded loss is reported."""
        segments = (self._scan(self.uploaded_dir, uploaded=True)
                    + self._scan(self.segments_dir, uploaded=False))
        free = shutil.disk_usage(self.segments_dir.parent).free
        evictions = choose_evictions(segments, free_bytes=free, policy=self._policy, now=now,
                                     protected=busy)
        for eviction in evictions:
            segment = eviction.segment
            root = self.uploaded_dir if segment.uploaded else self.segments_dir
            (root / segment.camera_id / f"{segment.segment_id}.mp4").unlink(missing_ok=True)
            if not segment.uploaded:
                self._queue.remove(segment.segment_id)
                logger.warning("storage.evicted segment_id=%s uploaded=false reason=%s",
                               segment.segment_id, eviction.reason)
                report_loss(eviction)
            else:
                logger.info("storage.evicted segment_id=%s uploaded=true reason=%s",
                            segment.segment_id, eviction.reason)
        return evictions
