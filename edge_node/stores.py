"""Where segments go: the storage URL picks the store.

`gs://bucket/prefix` is Google Cloud Storage (STORAGE_EMULATOR_HOST points
the client at an emulator, with anonymous credentials); `file:///path` is a
directory, the embedded default.
"""

from __future__ import annotations

import os
from typing import Protocol

from edge_node.file_store import FileStore
from edge_node.segments import SealedSegment
from edge_node.store_base import UploadControl
from schemas.addresses import file_root


class SegmentStore(Protocol):
    prefix: str

    def upload(self, segment: SealedSegment, name: str, session_url: str | None,
               control: UploadControl = ...) -> str: ...

    def put(self, name: str, data: bytes) -> str: ...


def open_store(url: str, *, max_bytes_per_s: int = 0) -> SegmentStore:
    if url.startswith("file://"):
        return FileStore(file_root(url))
    from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415  # gs:// only
    from google.cloud import storage  # noqa: PLC0415

    from edge_node.gcs_store import GcsStore, parse_gs_url  # noqa: PLC0415

    bucket, prefix = parse_gs_url(url)
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        client = storage.Client(project="emulator",
                                credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    else:
        client = storage.Client()
    return GcsStore(client, bucket, prefix, max_bytes_per_s=max_bytes_per_s)
