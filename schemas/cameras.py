"""Cameras and the retained `CameraSet` document.

A camera URL may carry the stream's credentials: `redact_url` is the one
place that removes them before a URL is logged, published or returned.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, Field

from schemas.base import WireModel
from schemas.ids import CameraId, NodeId

_SCHEMES = ("rtsp", "http", "https", "device")
_DEVICE_RE = re.compile(r"^device://\d{1,3}$")


def _check_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # parsing the port is what validates it
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(_SCHEMES)}")
    if parts.scheme == "device":
        if not _DEVICE_RE.fullmatch(url):
            raise ValueError("a USB camera is device://N")
    elif not parts.hostname:
        raise ValueError("URL has no host")
    if any(c.isspace() for c in url):
        raise ValueError("URL contains whitespace")
    return url


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***` (user name kept)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "***"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (f"{parts.username}:{REDACTED}@{host}" if parts.username
              else f"{REDACTED}@{host}")
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


REDACTED = "***"


def keep_stored_password(url: str, stored: str) -> str:
    """`url` as sent back by a client that read it redacted: a password of
    `***` stands for the stored one, kept only for the same user at the same
    address (a stored password is never handed to another host). Raises
    ValueError when `***` cannot be resolved."""
    parts = urlsplit(url)
    if parts.password != REDACTED:
        return url
    old = urlsplit(stored)
    if old.password is None:
        raise ValueError("*** stands for the stored password, and there is none")
    if (parts.scheme, parts.username, parts.hostname, parts.port) != (
            old.scheme, old.username, old.hostname, old.port):
        raise ValueError("give the password again when changing the user or address")
    return urlunsplit((parts.scheme, old.netloc, parts.path, parts.query, parts.fragment))


CameraUrl = Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_check_url)]


class Camera(WireModel):
    camera_id: CameraId
    node_id: NodeId
    name: Annotated[str, Field(max_length=200)] = ""
    url: CameraUrl
    enabled: bool = True
    transport: Literal["auto", "tcp", "udp"] = "auto"

    def __repr_args__(self):  # type: ignore[no-untyped-def]  # pydantic's own signature
        # Never let a password reach a log line through repr().
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "url" else value


def _unique_ids(cameras: list[Camera]) -> list[Camera]:
    ids = [c.camera_id for c in cameras]
    if len(set(ids)) != len(ids):
        raise ValueError("camera ids must be unique")
    return cameras


class CameraSet(WireModel):
    """A node's whole camera document; `revision` only grows."""

    revision: Annotated[int, Field(ge=0)]
    cameras: Annotated[list[Camera], Field(max_length=256), AfterValidator(_unique_ids)]
