"""Server-sent events (the WHATWG `text/event-stream` format) from lines.

Pure: it turns the lines of `/api/stream` into `(event, data)` messages and
never touches the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerEvent:
    event: str
    data: str


def server_events(lines: Iterable[str]) -> Iterator[ServerEvent]:
    """Messages as they complete (a blank line ends one); comments (`: ...`)
    and messages without data are skipped."""
    event = "message"
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield ServerEvent(event, "\n".join(data))
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
