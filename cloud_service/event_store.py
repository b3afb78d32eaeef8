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

from sqlalchemy import tuple_
from sqlmodel import Session, col, select

from cloud_service import tables
from cloud_service.node_rows import new_node
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


@dataclass
class StoreResult:
    stored: dict[str, int] = field(default_factory=dict)  # event type -> count
    duplicates: int = 0
    acked: dict[str, int] = field(default_factory=dict)  # node_id -> upto_seq to ack


def ensure_node(session: Session, node_id: str, now: datetime) -> tables.Node:
    return session.get(tables.Node, node_id) or new_node(session, node_id, now)


def store_events(session: Session, events: Sequence[Event], received_at: datetime) -> StoreResult:
    result = StoreResult()
    unique: dict[str, Event] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    known_ids = set(session.exec(
        select(tables.Event.event_id).where(col(tables.Event.event_id).in_(list(unique)))
    ))
    pairs = [(e.node_id, e.seq) for e in unique.values()]
    known_pairs = set(session.exec(
        select(tables.Event.node_id, tables.Event.seq).where(
            tuple_(col(tables.Event.node_id), col(tables.Event.seq)).in_(pairs))
    ).all()) if pairs else set()
    touched: set[str] = set()
    for event in unique.values():
        touched.add(event.node_id)
        if event.event_id in known_ids or (event.node_id, event.seq) in known_pairs:
            if event.event_id not in known_ids:
                logger.warning("event.seq_conflict node_id=%s seq=%d event_id=%s",
                               event.node_id, event.seq, event.event_id)
            continue
        known_pairs.add((event.node_id, event.seq))
        session.add(tables.Event(
            event_id=event.event_id, node_id=event.node_id, seq=event.seq, type=event.type,
            ts=event.ts, received_at=received_at, envelope=event.model_dump(mode="json"),
        ))
        _project(session, event)
        result.stored[event.type] = result.stored.get(event.type, 0) + 1
    result.duplicates = len(events) - sum(result.stored.values())
    session.flush()
    for node_id in sorted(touched):
        result.acked[node_id] = _advance_node(session, node_id, received_at)
    return result


def _advance_node(session: Session, node_id: str, now: datetime) -> int:
    node = ensure_node(session, node_id, now)
    above = session.exec(select(tables.Event.seq).where(
        tables.Event.node_id == node_id, tables.Event.seq > node.acked_seq)).all()
    state = advance(node.acked_seq, above)
    node.acked_seq, node.max_seq, node.seq_gaps = state.acked, state.max_seen, state.gaps
    node.last_seen = now
    session.add(node)
    return state.acked


def _recording(session: Session, recording_id: str, node_id: str,
               camera_id: str) -> tables.Recording:
    row = session.get(tables.Recording, recording_id)
    if row is None:
        row = tables.Recording(recording_id=recording_id, node_id=node_id, camera_id=camera_id)
        session.add(row)
    return row


def _project(session: Session, event: Event) -> None:
    match event:
        case RecordingStartedEvent(data=data):
            row = _recording(session, data.recording_id, event.node_id, data.camera_id)
            row.trigger, row.schedule_id, row.command_id = (
                data.trigger, data.schedule_id, data.command_id)
            row.started_at = row.started_at or event.ts
        case RecordingSegmentEvent(data=data):
            recording = _recording(session, data.recording_id, event.node_id, data.camera_id)
            recording.started_at = recording.started_at or data.start
            if session.get(tables.Segment, data.segment_id) is not None:
                # Reported again (a node that crashed between reporting and
                # noting it did): the first report stands.
                return
            session.add(tables.Segment(
                segment_id=data.segment_id, recording_id=data.recording_id,
                node_id=event.node_id, camera_id=data.camera_id, start=data.start, end=data.end,
                bytes=data.bytes, crc32c=data.crc32c, codec=data.codec, width=data.width,
                height=data.height, frames=data.frames, lost_packets=data.lost_packets,
            ))
        case RecordingStoppedEvent(data=data):
            row = _recording(session, data.recording_id, event.node_id, data.camera_id)
            row.stopped_at, row.reason = event.ts, data.reason
        case UploadCompletedEvent(data=data):
            _set_segment(session, data.segment_id, "uploaded", data.uri)
        case UploadFailedEvent(data=data) if not data.will_retry:
            _set_segment(session, data.segment_id, "failed")
        case StorageEvictedEvent(data=data) if not data.uploaded:
            _set_segment(session, data.segment_id, "evicted")
        case _:
            pass


def _set_segment(session: Session, segment_id: str, state: str, uri: str | None = None) -> None:
    segment = session.get(tables.Segment, segment_id)
    if segment is None:
        logger.warning("segment.unknown segment_id=%s state=%s", segment_id, state)
        return
    segment.upload_state = state
    if uri is not None:
        segment.uri = uri
    session.add(segment)
