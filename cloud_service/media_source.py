"""Reading a stored segment back for playback: a signed URL where the store
can sign one, the bytes themselves otherwise.

`file://` objects are served from disk (only under the configured storage
root); `gs://` objects get a V4 signed URL when the credentials can sign,
else (an emulator, or credentials without a key) they are streamed through
this service.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

SIGNED_URL_LIFETIME = timedelta(minutes=15)

CHUNK = 1 << 20


class MediaError(LookupError):
    """The segment's object cannot be served from here."""


@dataclass(frozen=True)
class Playable:
    """Either a URL to redirect to, or a local path, or a chunk stream."""

    redirect: str | None = None
    path: Path | None = None
    chunks: Iterator[bytes] | None = None
    size: int | None = None


class MediaSource:
    def __init__(self, file_root: Path | None) -> None:
        self._file_root = file_root.resolve() if file_root else None

    def open(self, uri: str) -> Playable:
        parts = urlsplit(uri)
        if parts.scheme == "file":
            return self._file(Path(unquote(parts.path)))
        if parts.scheme == "gs":
            return self._gcs(parts.netloc, parts.path.lstrip("/"))
        raise MediaError(f"unsupported storage {parts.scheme!r}")

    def _file(self, path: Path) -> Playable:
        resolved = path.resolve()
        if self._file_root is None or not resolved.is_relative_to(self._file_root):
            raise MediaError("object is outside the configured storage")
        if not resolved.is_file():
            raise MediaError("object is gone")
        return Playable(path=resolved)

    def _gcs(self, bucket_name: str, name: str) -> Playable:
        from google.api_core import exceptions as gexc  # noqa: PLC0415  # gs:// only
        from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415
        from google.cloud import storage  # noqa: PLC0415

        if os.environ.get("STORAGE_EMULATOR_HOST"):
            client = storage.Client(project="emulator",
                                    credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
        else:
            client = storage.Client()
        blob = client.bucket(bucket_name).blob(name)
        try:
            return Playable(redirect=blob.generate_signed_url(
                version="v4", expiration=SIGNED_URL_LIFETIME, method="GET"))
        except (AttributeError, TypeError, ValueError):
            pass  # credentials that cannot sign: stream it ourselves
        try:
            blob.reload()
        except gexc.NotFound as exc:
            raise MediaError("object is gone") from exc

        def chunks() -> Iterator[bytes]:
            with blob.open("rb", chunk_size=CHUNK) as reader:
                while data := reader.read(CHUNK):
                    yield data

        return Playable(chunks=chunks(), size=blob.size)
