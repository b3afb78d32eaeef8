"""`cctv recordings list|download`: what the fleet recorded, over REST.

`download` fetches segments through the API's media route (which redirects
to a signed Cloud Storage URL, or streams file storage), verifies each file's
crc32c against the one the node sealed, and fails loudly on a mismatch.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from cctv.cli_common import (
    DEFAULT_API_URL,
    ApiUrlOption,
    JsonOption,
    LimitOption,
    TokenOption,
    api,
    fail,
    table_console,
)
from cctv.views import recordings_table

if TYPE_CHECKING:
    from cctv.api_client import ApiClient
    from cctv.segment_download import SegmentRef

recordings_app = typer.Typer(help="Recordings: list them, download their segments.",
                             no_args_is_help=True)

NodeOption = Annotated[str | None, typer.Option(
    "--node", help="Only this node's.", show_default=False)]
CameraOption = Annotated[str | None, typer.Option(
    "--camera", help="Only this camera's.", show_default=False)]
_AGE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_moment(value: str, option: str, now: datetime) -> datetime:
    """An aware ISO 8601 time, or an age before `now` such as 90m, 2h, 7d."""
    age = _AGE.fullmatch(value.strip())
    if age:
        return now - timedelta(seconds=int(age[1]) * _UNITS[age[2]])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(f"{option}: {value!r} is neither an ISO 8601 time with offset "
                         "(2026-06-01T08:00:00Z) nor an age (30m, 2h, 7d)")
    return moment


def _filters(node: str | None, camera: str | None, since: str | None = None,
             until: str | None = None) -> dict[str, str]:
    from schemas.ids import check_id  # noqa: PLC0415

    now = datetime.now(UTC)
    filters: dict[str, str] = {}
    try:
        if node is not None:
            filters["node_id"] = check_id(node, "--node")
        if camera is not None:
            filters["camera_id"] = check_id(camera, "--camera")
        if since is not None:
            filters["since"] = parse_moment(since, "--since", now).isoformat()
        if until is not None:
            filters["until"] = parse_moment(until, "--until", now).isoformat()
    except ValueError as exc:
        fail(str(exc))
    return filters


@recordings_app.command("list")
def recordings_list(  # noqa: PLR0917  # filters are options
    node: NodeOption = None,
    camera: CameraOption = None,
    since: Annotated[str | None, typer.Option(
        help="Started at or after: ISO 8601 with offset, or an age (2h, 7d).",
        show_default=False)] = None,
    until: Annotated[str | None, typer.Option(
        help="Started before: ISO 8601 with offset, or an age.", show_default=False)] = None,
    limit: LimitOption = 100,
    json_out: JsonOption = False,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
) -> None:
    """Recordings, newest first, with their segments' upload state."""
    filters = _filters(node, camera, since, until)
    with api(api_url, token) as client:
        recordings, total = client.list_recordings(filters, limit=limit)
    if json_out:
        typer.echo(json.dumps({"items": recordings, "total": total}, indent=2))
        return
    console = table_console()
    console.print(recordings_table(recordings))
    shown = f"{len(recordings)} of {total}" if total > len(recordings) else str(total)
    console.print(f"{shown} recording{'s' if total != 1 else ''}", style="dim")


@recordings_app.command("download")
def recordings_download(  # noqa: PLR0917  # options
    recording_id: Annotated[str | None, typer.Argument(
        help="The recording whose segments to fetch.", show_default=False)] = None,
    segment: Annotated[list[str] | None, typer.Option(
        "--segment", help="A segment to fetch (repeatable); with RECORDING_ID, only those "
                          "of it.", show_default=False)] = None,
    out: Annotated[Path, typer.Option(
        "--out", help="Directory to write the .mp4 files to.")] = Path(),
    node: NodeOption = None,
    camera: CameraOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
) -> None:
    """Download segments as .mp4 files, each verified against the crc32c the node
    recorded. Prints each file's path; exit 1 if any could not be fetched."""
    from schemas.ids import check_id  # noqa: PLC0415

    wanted = list(dict.fromkeys(segment or []))
    try:
        if recording_id is not None:
            check_id(recording_id, "recording id")
        for segment_id in wanted:
            check_id(segment_id, "--segment")
    except ValueError as exc:
        fail(str(exc))
    if recording_id is None and not wanted:
        fail("give a RECORDING_ID or --segment SEGMENT_ID")
    filters = _filters(node, camera)
    with api(api_url, token) as client:
        refs = _chosen_segments(client, recording_id, wanted, filters)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"--out: cannot create {out}: {exc.strerror}")
        paths, problems = _fetch(client, refs, out)
    for path in paths:
        typer.echo(path)
    if problems:
        for problem in problems[:-1]:
            typer.echo(f"error: {problem}", err=True)
        fail(problems[-1] if len(problems) == 1 else
             f"{problems[-1]} ({len(problems)} segments not downloaded)", 1)


def _chosen_segments(client: ApiClient, recording_id: str | None, wanted: list[str],
                     filters: dict[str, str]) -> list[SegmentRef]:
    from cctv.segment_download import SegmentRef, segments_of  # noqa: PLC0415

    if recording_id is not None:
        refs = segments_of(client.get_recording(recording_id))
        missing = [s for s in wanted if s not in {r.segment_id for r in refs}]
        if missing:
            fail(f"recording {recording_id} has no segment {', '.join(missing)}", 1)
        if not refs:
            fail(f"recording {recording_id} has no segments yet", 1)
        return [r for r in refs if r.segment_id in wanted] if wanted else refs
    found = client.find_segments(set(wanted), filters)
    missing = [s for s in wanted if s not in found]
    if missing:
        fail(f"no segment {', '.join(missing)}", 1)
    return [SegmentRef.of(*found[s]) for s in wanted]


def _fetch(client: ApiClient, refs: list[SegmentRef], out: Path) -> tuple[list[str], list[str]]:
    """Download each segment under a progress bar (on a terminal); stop at the
    first crc32c mismatch, carry on past segments that cannot be fetched."""
    from rich.progress import (  # noqa: PLC0415  # only when downloading
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from cctv.api_client import ApiRefusedError  # noqa: PLC0415
    from cctv.segment_download import (  # noqa: PLC0415  # crc32c only when downloading
        CrcMismatchError,
        SegmentUnavailableError,
        download_segment,
    )

    paths: list[str] = []
    problems: list[str] = []
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=console,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task("downloading", total=sum(r.bytes for r in refs))
        for ref in refs:
            progress.update(task, description=ref.segment_id[:20])
            try:
                done = download_segment(client, ref, out, lambda n: progress.advance(task, n))
            except (SegmentUnavailableError, ApiRefusedError) as exc:
                # Not in storage (yet), or the stored object is gone: say so, go on.
                problems.append(str(exc) if isinstance(exc, SegmentUnavailableError)
                                else f"segment {ref.segment_id}: {exc}")
                progress.advance(task, ref.bytes)
                continue
            except CrcMismatchError as exc:
                progress.stop()
                for path in paths:
                    typer.echo(path)
                fail(str(exc), 1)
            paths.append(str(done.path))
    return paths, problems
