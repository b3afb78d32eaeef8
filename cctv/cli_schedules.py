"""`cctv schedules list|add|rm`: what the fleet records and when, over REST.

`add` builds the schedule from options (or reads it from a JSON file) and
validates it with the contract's models before anything is sent, so a bad
field is named locally, with the option it came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

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
from cctv.views import schedules_table

schedules_app = typer.Typer(help="Schedules: list, add (or replace), remove.",
                            no_args_is_help=True)


@schedules_app.command("list")
def schedules_list(
    limit: LimitOption = 100,
    json_out: JsonOption = False,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
) -> None:
    """Every schedule: its kind, cameras, window and whether it is enabled."""
    with api(api_url, token) as client:
        schedules, total = client.list_schedules(limit=limit)
    if json_out:
        typer.echo(json.dumps({"items": schedules, "total": total}, indent=2))
        return
    console = table_console()
    console.print(schedules_table(schedules))
    shown = f"{len(schedules)} of {total}" if total > len(schedules) else str(total)
    console.print(f"{shown} schedule{'s' if total != 1 else ''}", style="dim")


@schedules_app.command("add")
def schedules_add(  # noqa: PLR0917  # one option per schedule field
    schedule_id: Annotated[str | None, typer.Argument(
        help="The schedule's id (may come from --file instead).", show_default=False)] = None,
    camera: Annotated[list[str] | None, typer.Option(
        "--camera", help="A camera it records (repeatable).", show_default=False)] = None,
    kind: Annotated[str | None, typer.Option(
        help="once, daily, weekly, continuous or cron.", show_default=False)] = None,
    start: Annotated[str | None, typer.Option(
        help="once: aware ISO 8601 instant (2026-12-01T20:00:00Z); daily/weekly: local "
             "HH:MM in --tz.", show_default=False)] = None,
    end: Annotated[str | None, typer.Option(
        help="Like --start; daily/weekly: an end before the start crosses midnight.",
        show_default=False)] = None,
    tz: Annotated[str | None, typer.Option(
        help="IANA time zone of daily/weekly/cron times (default UTC).",
        show_default=False)] = None,
    days: Annotated[str | None, typer.Option(
        help="weekly: days, comma-separated (mon,tue,...,sun).", show_default=False)] = None,
    expression: Annotated[str | None, typer.Option(
        help="cron: a 5-field cron expression, e.g. '0 * * * *'.", show_default=False)] = None,
    duration: Annotated[int | None, typer.Option(
        help="cron: seconds to record from each match.", show_default=False)] = None,
    segment_seconds: Annotated[int | None, typer.Option(
        help="Segment length, 2-3600 (default 60).", show_default=False)] = None,
    disabled: Annotated[bool, typer.Option(
        "--disabled", help="Create it disabled (kept, records nothing).")] = False,
    file: Annotated[Path | None, typer.Option(
        "--file", help="A schedule as JSON (the API's object) instead of the options; - "
                       "reads stdin.", show_default=False)] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Replace the existing schedule of that id (PUT).")] = False,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print the schedule as the API stored it.")] = False,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
) -> None:
    """Add a schedule (or replace one with --replace). Each node that has one of
    its cameras gets its new schedule set at once."""
    from cctv.schedule_input import (  # noqa: PLC0415  # pydantic models only when used
        ScheduleInputError,
        ScheduleOptions,
        document_from_file,
        document_from_options,
        validate_document,
    )

    options = ScheduleOptions(
        cameras=tuple(camera or ()), kind=kind, start=start, end=end, tz=tz, days=days,
        expression=expression, duration=duration, segment_seconds=segment_seconds,
        disabled=disabled)
    try:
        if file is not None:
            if options.given():
                fail(f"--file holds the whole schedule; drop {', '.join(options.given())}")
            text = typer.get_text_stream("stdin").read() if str(file) == "-" \
                else _read(file)
            document = document_from_file(text, str(file), schedule_id)
        else:
            if schedule_id is None:
                fail("SCHEDULE_ID: give the schedule's id (or --file)")
            document = document_from_options(schedule_id, options)
        schedule = validate_document(document, from_options=file is None)
    except ScheduleInputError as exc:
        fail(str(exc))
    from cctv.api_client import ApiRefusedError  # noqa: PLC0415

    with api(api_url, token) as client:
        try:
            stored = client.put_schedule(schedule, replace=replace)
        except ApiRefusedError as exc:
            if exc.status == 409 and not replace:
                fail(f"{exc} (--replace replaces it)", 1)
            raise
    if json_out:
        typer.echo(json.dumps(stored, indent=2))
    else:
        verb = "replaced" if replace else "added"
        typer.echo(f"{verb} schedule {stored['schedule_id']}")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"--file: cannot read {path}: {exc.strerror}")


@schedules_app.command("rm")
def schedules_rm(
    schedule_ids: Annotated[list[str], typer.Argument(help="Schedule ids to remove.")],
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
) -> None:
    """Remove schedules; cameras only they were recording stop at the nodes'
    next evaluation (within a second of the nodes getting it)."""
    from schemas.ids import check_id  # noqa: PLC0415

    try:
        ids = [check_id(s, "schedule id") for s in schedule_ids]
    except ValueError as exc:
        fail(str(exc))
    with api(api_url, token) as client:
        for schedule_id in ids:
            client.delete_schedule(schedule_id)
            typer.echo(f"removed schedule {schedule_id}")
