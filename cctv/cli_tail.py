"""`cctv tail`: the fleet's live events, from the cloud's /api/stream.

Everything the cloud stores (events, status, state, heartbeats, replies) is
printed as it is committed, one line each, or as the stream's raw JSON with
--json. Ctrl-C (or SIGTERM) ends it with exit 0.
"""

from __future__ import annotations

import json
import signal
from typing import Annotated

import typer

from cctv.cli_common import DEFAULT_API_URL, ApiUrlOption, TokenOption, api, fail
from cctv.sse import server_events
from cctv.views import stream_line


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def tail(
    node: Annotated[str | None, typer.Option(
        "--node", help="Only this node's.", show_default=False)] = None,
    types: Annotated[list[str] | None, typer.Option(
        "--type", help="Only this type (repeatable): an event type such as recording.segment, "
                       "or status, state, heartbeat, replies.", show_default=False)] = None,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print each item's JSON as the stream sends it.")] = False,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
) -> None:
    """Follow the fleet's live events until Ctrl-C."""
    from schemas.ids import check_id  # noqa: PLC0415

    if node is not None:
        try:
            check_id(node, "--node")
        except ValueError as exc:
            fail(str(exc))
    # SIGINT too: a shell starts background jobs with SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)

    def opened() -> None:
        typer.echo(f"following {api_url.rstrip('/')}/api/stream (Ctrl-C stops)", err=True)

    try:
        with api(api_url, token) as client:
            for message in server_events(client.stream(node_id=node, types=types or [],
                                                       on_open=opened)):
                if json_out:
                    typer.echo(message.data)
                else:
                    typer.echo(stream_line(json.loads(message.data)))
    except KeyboardInterrupt:
        return
    except BrokenPipeError:  # `cctv tail | head`: the reader has had enough
        return
    fail("the API closed the stream", 1)
