"""How the managing verbs show what the API answered: rich tables and one-line
summaries, built from the API's JSON objects.

Pure: no I/O, no clock (callers pass `now`), so every figure and colour is
testable with plain asserts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

Json = dict[str, Any]

# A node heartbeats every 30 s by default: one missed beat is normal jitter,
# several mean trouble.
FRESH_S = 90.0
STALE_S = 300.0


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def age_text(seconds: float) -> str:
    """12s, 5m, 3h, 2d: the largest unit that is at least 1."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def size_text(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def heartbeat_style(age_s: float | None) -> str:
    if age_s is None:
        return "dim"
    if age_s <= FRESH_S:
        return "green"
    return "yellow" if age_s <= STALE_S else "red"


def heartbeat_cell(node: Json, now: datetime) -> Text:
    last = parse_time(node.get("last_heartbeat"))
    if last is None:
        return Text("never", style=heartbeat_style(None))
    age = (now - last).total_seconds()
    return Text(f"{age_text(age)} ago", style=heartbeat_style(age))


def drift_text(node: Json) -> str:
    """Desired revisions the node has not applied yet; '-' when it is in step."""
    parts = []
    for what in ("schedules", "cameras"):
        behind = node[f"{what}_revision_desired"] - node[f"{what}_revision_applied"]
        if behind:
            parts.append(f"{what} {node[f'{what}_revision_applied']}/"
                         f"{node[f'{what}_revision_desired']}")
    return ", ".join(parts) or "-"


def backlog_text(node: Json) -> str:
    backlog = node.get("upload_backlog")
    if not backlog:
        return "-"
    if not backlog.get("count"):
        return "0"
    return (f"{backlog['count']} ({size_text(backlog.get('bytes', 0))}, "
            f"oldest {age_text(backlog.get('oldest_s', 0))})")


def nodes_table(nodes: list[Json], now: datetime) -> Table:
    table = Table("node", "online", "last heartbeat", "drift", "upload backlog", "seq gaps",
                  box=None, header_style="bold")
    for node in nodes:
        online = Text("online", style="green") if node["online"] \
            else Text("offline", style="red")
        gaps = node.get("seq_gaps", 0)
        table.add_row(node["node_id"], online, heartbeat_cell(node, now),
                      Text(drift_text(node), style="yellow" if drift_text(node) != "-" else ""),
                      backlog_text(node),
                      Text(str(gaps), style="red" if gaps else ""))
    return table


def _clock(value: str) -> str:
    """22:00:00 as 22:00; 22:00:30 as it is."""
    return value.removesuffix(":00") if value.count(":") == 2 else value


def schedule_when(schedule: Json) -> str:
    """When a schedule records, as a person would say it."""
    kind = schedule["kind"]
    tz = schedule.get("tz", "UTC")
    if kind == "once":
        return f"{schedule['start']} to {schedule['end']}"
    window = f"{_clock(schedule.get('start_time', ''))}-{_clock(schedule.get('end_time', ''))}"
    if kind == "daily":
        return f"{window} {tz}"
    if kind == "weekly":
        return f"{','.join(schedule['days'])} {window} {tz}"
    if kind == "cron":
        return f"'{schedule['expression']}' for {schedule['duration_s']}s {tz}"
    return "always"


def schedules_table(schedules: list[Json]) -> Table:
    table = Table("schedule", "kind", "cameras", "when", "enabled", "segment",
                  box=None, header_style="bold")
    for schedule in schedules:
        enabled = Text("yes", style="green") if schedule.get("enabled", True) \
            else Text("no", style="dim")
        table.add_row(schedule["schedule_id"], schedule["kind"],
                      ",".join(schedule["camera_ids"]), schedule_when(schedule), enabled,
                      f"{schedule.get('segment_seconds', 60)}s")
    return table


def _short_time(value: str | None) -> str:
    moment = parse_time(value)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def recordings_table(recordings: list[Json]) -> Table:
    table = Table("recording", "node", "camera", "trigger", "started", "stopped", "segments",
                  "uploaded", "size", box=None, header_style="bold")
    for recording in recordings:
        segments = recording["segments"]
        uploaded = sum(1 for s in segments if s["upload_state"] == "uploaded")
        stopped = _short_time(recording.get("stopped_at"))
        if recording.get("reason"):
            stopped = f"{stopped} ({recording['reason']})"
        table.add_row(recording["recording_id"], recording["node_id"], recording["camera_id"],
                      recording["trigger"], _short_time(recording.get("started_at")), stopped,
                      str(len(segments)),
                      Text(f"{uploaded}/{len(segments)}",
                           style="" if uploaded == len(segments) else "yellow"),
                      size_text(sum(s["bytes"] for s in segments)))
    return table


def _data_summary(data: Json) -> str:
    return " ".join(f"{key}={value}" for key, value in data.items()
                    if value is not None and key != "ts"
                    and not isinstance(value, (dict, list)))


def stream_line(item: Json) -> str:
    """One line of `cctv tail` for an item of /api/stream."""
    node = item.get("node_id", "-")
    kind = item.get("kind", "message")
    data = item.get("data") or {}
    if kind == "event":
        return f"{item.get('ts', '')} {node} {item.get('type')} #{item.get('seq')} " \
               f"{_data_summary(data)}".rstrip()
    if kind == "heartbeat":
        backlog = data.get("upload_backlog", {})
        cameras = " ".join(f"{c['camera_id']}:{c['state']}" for c in data.get("cameras", []))
        return (f"{data.get('ts', '')} {node} heartbeat session={data.get('session')} "
                f"backlog={backlog.get('count', 0)} outbox={data.get('outbox', {}).get('depth')} "
                f"{cameras}").rstrip()
    return f"{data.get('ts', '')} {node} {kind} {_data_summary(data)}".strip()
