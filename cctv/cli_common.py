"""What every `cctv` verb shares: the one-line failure, and for the verbs
that manage the fleet over REST, the API options and the client.

A REST verb opens the API with `api(url, token)`; any `ApiError` inside it
ends the command with its one line and exit 1, never a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from cctv.api_client import ApiClient

DEFAULT_API_URL = "http://127.0.0.1:8000"  # cloud_service's CCTV_HTTP_ADDR default

ApiUrlOption = Annotated[str, typer.Option(
    "--api-url", envvar="CCTV_API_URL", help="The cloud service's base URL.")]
TokenOption = Annotated[str | None, typer.Option(
    "--token", envvar="CCTV_API_TOKEN", show_default=False,
    help="API bearer token (one of the cloud's CCTV_API_TOKENS).")]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="Print the API's JSON instead of a table.")]
LimitOption = Annotated[int, typer.Option(min=1, help="Show at most this many.")]


# Tables piped to a file or another program are not cut to 80 columns.
PIPED_WIDTH = 240


def table_console() -> Console:
    """A console for tables on stdout: the terminal's width, or wide when piped."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPED_WIDTH)


def fail(message: str, code: int = 2) -> NoReturn:
    """End the command: one line on stderr, exit `code` (2 bad input or setting, 1 refused)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def api(api_url: str, token: str | None) -> Iterator[ApiClient]:
    if not token:
        fail("CCTV_API_TOKEN: set it or pass --token")
    from cctv.api_client import ApiClient, ApiError  # noqa: PLC0415  # httpx only when used

    try:
        client = ApiClient(api_url, token)
    except ValueError as exc:
        fail(str(exc))
    try:
        with client:
            yield client
    except ApiError as exc:
        fail(str(exc), 1)
