"""`file:///path` storage: the embedded default, and the shape of every store.

An object is written to a temporary name, fsynced, checked against the
segment's crc32c and only then renamed into place, so a reader never sees a
partial object and an existing object is never overwritten.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from edge_node.segments import CHUNK, SealedSegment, crc32c_of_file, fsync_file
from edge_node.store_base import NO_CONTROL, StoreError, UploadControl


class FileStore:
    prefix = ""  # the URL's path is the root

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, name: str, data: bytes) -> str:
        """Store a small object (a snapshot) whole; return its URI."""
        target = self._target(name)
        partial = target.with_name(f".{target.name}.partial")
        try:
            with partial.open("wb") as sink:
                sink.write(data)
                sink.flush()
                os.fsync(sink.fileno())
            partial.rename(target)
        except OSError as exc:
            raise StoreError(f"cannot write {name}: {exc}", retryable=True) from exc
        finally:
            partial.unlink(missing_ok=True)
        return target.as_uri()

    def _target(self, name: str) -> Path:
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise StoreError(f"object name {name!r} escapes the store", retryable=False)
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def upload(self, segment: SealedSegment, name: str, session_url: str | None = None,
               control: UploadControl = NO_CONTROL) -> str:
        """Store the segment as object `name`; return its `file://` URI. A copy
        is quick and atomic, so there is no session to resume."""
        del session_url, control
        target = self._target(name)
        if target.exists():
            if crc32c_of_file(target) == segment.crc32c:
                return target.as_uri()  # an earlier attempt finished: done
            raise StoreError(f"object {name} exists with other content", retryable=False)
        partial = target.with_name(f".{target.name}.partial")
        try:
            with segment.path.open("rb") as source, partial.open("wb") as sink:
                shutil.copyfileobj(source, sink, CHUNK)
                sink.flush()
                os.fsync(sink.fileno())
            if crc32c_of_file(partial) != segment.crc32c:
                raise StoreError(f"crc32c mismatch writing {name}", retryable=True)
            partial.rename(target)
            fsync_file(target.parent)
        except OSError as exc:
            raise StoreError(f"cannot write {name}: {exc}", retryable=True) from exc
        finally:
            partial.unlink(missing_ok=True)
        return target.as_uri()
