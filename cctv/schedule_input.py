"""A schedule from `cctv schedules add` options (or a JSON file), validated by
the contract's own models before anything is sent.

Pure: the caller reads files and talks to the API. Errors name the field and
the option it came from, so `--start 25:00` is reported as
`start_time (--start): ...`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import TypeAdapter, ValidationError

from schemas.schedules import Schedule

SCHEDULE_ADAPTER: TypeAdapter[Schedule] = TypeAdapter(Schedule)
# The union's tags, in the contract's order: once, daily, weekly, continuous, cron.
KINDS: tuple[str, ...] = tuple(get_args(model.model_fields["kind"].annotation)[0]
                               for model in get_args(get_args(Schedule)[0]))
_TAGS = frozenset(KINDS)

# Which option fills which field, per kind where it differs.
OPTION_OF_FIELD = {
    "schedule_id": "SCHEDULE_ID", "camera_ids": "--camera", "kind": "--kind", "tz": "--tz",
    "enabled": "--disabled", "segment_seconds": "--segment-seconds", "start": "--start",
    "end": "--end", "start_time": "--start", "end_time": "--end", "days": "--days",
    "expression": "--expression", "duration_s": "--duration",
}


class ScheduleInputError(ValueError):
    """The options or the file do not make a valid schedule; the message names the field."""


@dataclass(frozen=True)
class ScheduleOptions:
    """What the command line gave; None where an option was not given."""

    cameras: tuple[str, ...] = ()
    kind: str | None = None
    start: str | None = None
    end: str | None = None
    tz: str | None = None
    days: str | None = None
    expression: str | None = None
    duration: int | None = None
    segment_seconds: int | None = None
    disabled: bool = False

    def given(self) -> list[str]:
        """The options set, as typed (for refusing them next to --file)."""
        names = [("--camera", bool(self.cameras)), ("--kind", self.kind is not None),
                 ("--start", self.start is not None), ("--end", self.end is not None),
                 ("--tz", self.tz is not None), ("--days", self.days is not None),
                 ("--expression", self.expression is not None),
                 ("--duration", self.duration is not None),
                 ("--segment-seconds", self.segment_seconds is not None),
                 ("--disabled", self.disabled)]
        return [name for name, is_set in names if is_set]


def document_from_options(schedule_id: str, options: ScheduleOptions) -> dict[str, Any]:
    """The schedule's JSON document, fields named as the contract names them."""
    if options.kind is None:
        raise ScheduleInputError(f"kind (--kind): required, one of {', '.join(KINDS)}")
    window = options.kind in ("daily", "weekly")
    fields: dict[str, Any] = {
        "schedule_id": schedule_id, "camera_ids": list(options.cameras), "kind": options.kind,
        "enabled": not options.disabled,
        "start_time" if window else "start": options.start,
        "end_time" if window else "end": options.end,
        "tz": options.tz, "expression": options.expression, "duration_s": options.duration,
        "segment_seconds": options.segment_seconds,
        "days": [d.strip() for d in options.days.split(",")] if options.days is not None
        else None,
    }
    return {key: value for key, value in fields.items() if value is not None}


def document_from_file(text: str, source: str, schedule_id: str | None) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScheduleInputError(f"{source}: not JSON ({exc.msg} at line {exc.lineno})") \
            from None
    if not isinstance(document, dict):
        raise ScheduleInputError(f"{source}: a schedule is a JSON object")
    if schedule_id is not None:
        held = document.setdefault("schedule_id", schedule_id)
        if held != schedule_id:
            raise ScheduleInputError(
                f"schedule_id: {source} says {held!r}, the command line {schedule_id!r}")
    return document


def _describe(exc: ValidationError, document: dict[str, Any], from_options: bool) -> str:
    first = exc.errors(include_url=False)[0]
    path = [str(p) for p in first["loc"] if p not in _TAGS]
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        path = ["kind"]
        message = f"must be one of {', '.join(KINDS)}"
    elif first["type"] == "extra_forbidden":
        message = f"not a field of a {document.get('kind')} schedule"
    elif first["type"] == "missing":
        message = f"required for a {document.get('kind')} schedule"
    else:
        message = str(first["msg"]).removeprefix("Value error, ")
    field = ".".join(path) or "schedule"
    option = OPTION_OF_FIELD.get(path[0]) if from_options and path else None
    where = f"{field} ({option})" if option else field
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"invalid schedule: {where}: {message}{more}"


def validate_document(document: dict[str, Any], *, from_options: bool) -> dict[str, Any]:
    """The document as the API will store it, or ScheduleInputError naming the field."""
    try:
        schedule = SCHEDULE_ADAPTER.validate_json(json.dumps(document))
    except ValidationError as exc:
        raise ScheduleInputError(_describe(exc, document, from_options)) from None
    result: dict[str, Any] = schedule.model_dump(mode="json")
    return result

