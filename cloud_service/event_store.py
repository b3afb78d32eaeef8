"""Stores a batch of events exactly once and projects them into the tables.

Idempotent on `event_id` (and on `(node_id, seq)`): a redelivered or replayed
event changes nothing. Runs inside the caller's transaction; never commits,
never publishes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlmodel import Session, SQLModel, col, select

from cloud_service import tables
from cloud_service.database import insert_skipping_conflicts
from cloud_service.node_rows import heard_from, new_node
from cloud_service.sequencing import advance
from schemas.events import (
    Event,
    RecordingSegmentEvent,
    RecordingStartedEvent,
    RecordingStoppedEvent,
    StorageEvictedEvent,
    UploadCompletedEvent,
    UploadFailedEvent,
)

logger = logging.getLogger(__name__)

# Core tables for the two append-mostly inserts: no ORM object per row.
_EVENT_TABLE = SQLModel.metadata.tables["event"]
_SEGMENT_TABLE = SQLModel.metadata.tables["segment"]


@dataclass
class StoreResult:
    stored: dict[str, int] = field(default_factory=dict)  # event type -> count
    duplicates: int = 0
    acked: dict[str, int] = field(default_factory=dict)  # node_id -> upto_seq to ack
    outboxes: dict[str, str] = field(default_factory=dict)  # node_id -> outbox of that ack


def ensure_node(session: Session, node_id: str, now: datetime) -> tables.Node:
    return session.get(tables.Node, node_id) or new_node(session, node_id, now)


def _outbox(event: Event) -> str:
    return event.outbox_id or ""


def store_events(session: Session, events: Sequence[Event], received_at: datetime) -> StoreResult:
    result = StoreResult()
    unique: dict[str, Event] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    inserted = _insert_new(session, list(unique.values()), received_at)
    fresh = [e for e in unique.values() if e.event_id in inserted]
    for event in fresh:
        result.stored[event.type] = result.stored.get(event.type, 0) + 1
    result.duplicates = len(events) - len(fresh)
    if len(fresh) < len(unique):
        _log_seq_conflicts(session, [e for e in unique.values() if e.event_id not in inserted])
    if fresh:
        _Projection(session, fresh).apply(fresh)
    session.flush()
    nodes = _nodes(session, {e.node_id for e in unique.values()}, received_at)
    _follow_new_outboxes(session, nodes, fresh)
    session.flush()
    above = _stored_above(session, list(nodes))
    for node_id in sorted(nodes):
        result.acked[node_id] = _advance_node(session, nodes[node_id], above[node_id],
                                              received_at)
        result.outboxes[node_id] = nodes[node_id].outbox_id
    return result


def _insert_new(session: Session, events: Sequence[Event], received_at: datetime) -> set[str]:
    """Insert the events in one statement, skipping any whose event_id, or whose
    seq in its node's outbox, is stored already; returns the event_ids inserted.

    The database does the dedup in the insert: a lookup of the batch's keys
    first cost more than the insert (an IN over 500 (node, outbox, seq) tuples
    scanned SQLite's whole index and took PostgreSQL 50 ms to plan)."""
    if not events:
        return set()
    statement = insert_skipping_conflicts(session, _EVENT_TABLE).returning(
        _EVENT_TABLE.c.event_id)
    return set(session.execute(statement, [
        {"event_id": e.event_id, "node_id": e.node_id, "outbox_id": _outbox(e),
         "seq": e.seq, "type": e.type, "ts": e.ts, "received_at": received_at,
         "envelope": e.model_dump(mode="json")}
        for e in events]).scalars())


def _log_seq_conflicts(session: Session, skipped: Sequence[Event]) -> None:
    """Of the events not inserted, those whose event_id is new reused a stored
    seq: a node that lost its outbox without a new outbox_id. Logged, not stored."""
    known = set(session.exec(select(tables.Event.event_id).where(
        col(tables.Event.event_id).in_([e.event_id for e in skipped]))))
    for event in skipped:
        if event.event_id not in known:
            logger.warning("event.seq_conflict node_id=%s seq=%d event_id=%s",
                           event.node_id, event.seq, event.event_id)


def _follow_new_outboxes(session: Session, nodes: dict[str, tables.Node],
                         fresh: Sequence[Event]) -> None:
    """Follow each node to an outbox it reports from for the first time (no event
    of it stored before this batch). Only events from another outbox than the
    node's current one cost a query: after a wipe, or late ones of an old disk."""
    others: dict[tuple[str, str], list[str]] = {}
    for event in fresh:
        if _outbox(event) != nodes[event.node_id].outbox_id:
            others.setdefault((event.node_id, _outbox(event)), []).append(event.event_id)
    for (node_id, outbox_id), batch_ids in others.items():
        seen_before = session.exec(select(tables.Event.event_id).where(
            tables.Event.node_id == node_id, tables.Event.outbox_id == outbox_id,
            col(tables.Event.event_id).not_in(batch_ids)).limit(1)).first()
        if seen_before is None:
            _follow_new_outbox(session, nodes[node_id], outbox_id)


def _follow_new_outbox(session: Session, node: tables.Node, outbox_id: str) -> None:
    """A node's first event from an outbox never seen before: its data dir was
    wiped or replaced, and it numbers from 1 again. Track and ack that outbox
    from now on; a late event of the old one is still stored, never acked.
    The old disk's segments still waiting for upload will never come: they
    are shown failed (a late `upload.completed` of the old outbox still wins)."""
    abandoned = len(session.execute(
        update(tables.Segment)
        .where(col(tables.Segment.node_id) == node.node_id,
               col(tables.Segment.upload_state) == "pending")
        .values(upload_state="failed")
        .returning(col(tables.Segment.segment_id))).all()) if node.max_seq else 0
    logger.log(logging.WARNING if node.max_seq else logging.INFO,
               "node.new_outbox node_id=%s outbox_id=%s previous=%s acked_seq=%d "
               "pending_segments_failed=%d", node.node_id, outbox_id, node.outbox_id or "-",
               node.acked_seq, abandoned)
    node.outbox_id = outbox_id
    node.acked_seq = node.max_seq = node.seq_gaps = 0


def _nodes(session: Session, node_ids: set[str], now: datetime) -> dict[str, tables.Node]:
    """The rows of these nodes (created if new), loaded with one query and
    locked: two ingest processes storing the same node's events must compute
    its ack one after the other, or the later commit overwrites the ack with
    one that could not see the other's events. (SQLite serialises writers.)"""
    rows = {row.node_id: row for row in session.exec(
        select(tables.Node).where(col(tables.Node.node_id).in_(list(node_ids)))
        .order_by(col(tables.Node.node_id)).with_for_update()
        .execution_options(populate_existing=True))}
    for node_id in node_ids - rows.keys():
        rows[node_id] = new_node(session, node_id, now)
    return rows


def _stored_above(session: Session, node_ids: Sequence[str]) -> dict[str, list[int]]:
    """Every stored seq above each node's acked_seq, in one query."""
    above: dict[str, list[int]] = {node_id: [] for node_id in node_ids}
    rows = session.exec(
        select(tables.Event.node_id, tables.Event.seq)
        .join(tables.Node, col(tables.Node.node_id) == col(tables.Event.node_id))
        .where(col(tables.Node.node_id).in_(list(node_ids)),
               col(tables.Event.outbox_id) == col(tables.Node.outbox_id),
               col(tables.Event.seq) > col(tables.Node.acked_seq)))
    for node_id, seq in rows:
        above[node_id].append(seq)
    return above


def _advance_node(session: Session, node: tables.Node, above: Sequence[int],
                  now: datetime) -> int:
    state = advance(node.acked_seq, above)
    node.acked_seq, node.max_seq, node.seq_gaps = state.acked, state.max_seen, state.gaps
    heard_from(node, now)
    session.add(node)
    return state.acked


_RECORDING_EVENTS = (RecordingStartedEvent, RecordingSegmentEvent, RecordingStoppedEvent)
_SEGMENT_EVENTS = (RecordingSegmentEvent, UploadCompletedEvent, UploadFailedEvent,
                   StorageEvictedEvent)


class _Projection:
    """A batch's recording and segment rows: those the events name are loaded
    up front, new segments are inserted together at the end."""

    def __init__(self, session: Session, events: Sequence[Event]) -> None:
        self._session = session
        recording_ids = {e.data.recording_id for e in events if isinstance(e, _RECORDING_EVENTS)}
        segment_ids = {e.data.segment_id for e in events if isinstance(e, _SEGMENT_EVENTS)}
        self._recordings = {row.recording_id: row for row in session.exec(
            select(tables.Recording).where(
                col(tables.Recording.recording_id).in_(list(recording_ids))))
        } if recording_ids else {}
        self._stored_segments = {row.segment_id: row for row in session.exec(
            select(tables.Segment).where(col(tables.Segment.segment_id).in_(list(segment_ids))))
        } if segment_ids else {}
        self._early_outcomes = {row.segment_id: row for row in session.exec(
            select(tables.SegmentOutcome).where(
                col(tables.SegmentOutcome.segment_id).in_(list(segment_ids))))
        } if segment_ids else {}
        self._new_segments: dict[str, dict[str, Any]] = {}

    def apply(self, events: Sequence[Event]) -> None:
        for event in events:
            self._project(event)
        if self._new_segments:
            self._session.execute(insert(_SEGMENT_TABLE),
                                  list(self._new_segments.values()))

    def _recording(self, recording_id: str, node_id: str, camera_id: str) -> tables.Recording:
        row = self._recordings.get(recording_id)
        if row is None:
            row = tables.Recording(recording_id=recording_id, node_id=node_id,
                                   camera_id=camera_id)
            self._session.add(row)
            self._recordings[recording_id] = row
        return row

    def _project(self, event: Event) -> None:
        match event:
            case RecordingStartedEvent(data=data):
                row = self._recording(data.recording_id, event.node_id, data.camera_id)
                row.trigger, row.schedule_id, row.command_id = (
                    data.trigger, data.schedule_id, data.command_id)
                row.started_at = row.started_at or event.ts
            case RecordingSegmentEvent(data=data):
                recording = self._recording(data.recording_id, event.node_id, data.camera_id)
                recording.started_at = recording.started_at or data.start
                if data.segment_id in self._stored_segments or (
                        data.segment_id in self._new_segments):
                    # Reported again (a node that crashed between reporting and
                    # noting it did): the first report stands.
                    return
                self._new_segments[data.segment_id] = {
                    "segment_id": data.segment_id, "recording_id": data.recording_id,
                    "node_id": event.node_id, "camera_id": data.camera_id,
                    "start": data.start, "end": data.end, "bytes": data.bytes,
                    "crc32c": data.crc32c, "codec": data.codec, "width": data.width,
                    "height": data.height, "frames": data.frames,
                    "lost_packets": data.lost_packets, "uri": None, "upload_state": "pending",
                    "outcome_seq": 0,
                }
                early = self._early_outcomes.pop(data.segment_id, None)
                if early is not None:
                    self._session.delete(early)
                    self._set_segment(early.segment_id, early.node_id, early.seq,
                                      early.upload_state, early.uri)
            case RecordingStoppedEvent(data=data):
                row = self._recording(data.recording_id, event.node_id, data.camera_id)
                row.stopped_at, row.reason = event.ts, data.reason
            case UploadCompletedEvent(data=data):
                self._set_segment(data.segment_id, event.node_id, event.seq, "uploaded",
                                  data.uri)
            case UploadFailedEvent(data=data) if not data.will_retry:
                self._set_segment(data.segment_id, event.node_id, event.seq, "failed")
            case StorageEvictedEvent(data=data) if not data.uploaded:
                self._set_segment(data.segment_id, event.node_id, event.seq, "evicted")
            case _:
                pass

    def _set_segment(self, segment_id: str, node_id: str, seq: int, state: str,
                     uri: str | None = None) -> None:
        """The segment's outcome, unless a later one (by the node's seq) was
        applied already; kept aside if the segment is not stored yet."""
        new = self._new_segments.get(segment_id)
        if new is not None:  # reported earlier in this same batch
            if new["node_id"] == node_id and seq > new["outcome_seq"]:
                new.update(upload_state=state, outcome_seq=seq)
                new["uri"] = uri or new["uri"]
            return
        segment = self._stored_segments.get(segment_id)
        if segment is None:
            self._keep_early_outcome(segment_id, node_id, seq, state, uri)
            return
        if segment.node_id != node_id:
            logger.warning("segment.other_node segment_id=%s node_id=%s owner=%s",
                           segment_id, node_id, segment.node_id)
            return
        if seq > segment.outcome_seq:
            segment.upload_state, segment.outcome_seq = state, seq
            segment.uri = uri or segment.uri
            self._session.add(segment)

    def _keep_early_outcome(self, segment_id: str, node_id: str, seq: int, state: str,
                            uri: str | None) -> None:
        logger.info("segment.outcome_before_segment segment_id=%s node_id=%s state=%s",
                    segment_id, node_id, state)
        early = self._early_outcomes.get(segment_id)
        if early is not None and (early.node_id != node_id or seq <= early.seq):
            return
        if early is None:
            early = tables.SegmentOutcome(segment_id=segment_id, node_id=node_id, seq=seq,
                                          upload_state=state)
            self._early_outcomes[segment_id] = early
        early.seq, early.upload_state, early.uri = seq, state, uri or early.uri
        self._session.add(early)
