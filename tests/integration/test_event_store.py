"""Storing events exactly once and projecting them, on SQLite and PostgreSQL: idempotency,
seq conflicts, recording/segment projections, seq tracking, and presence by session."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from cloud_service import tables
from cloud_service.database import make_engine, migrate
from cloud_service.event_store import StoreResult, store_events
from cloud_service.presence import (
    apply_heartbeat,
    apply_status,
    log_heartbeats,
    mark_silent_offline,
)
from cloud_service.timeutil import as_utc
from schemas.events import (
    CameraPresence,
    Event,
    EventData,
    RecordingSegment,
    RecordingStarted,
    RecordingStopped,
    StorageEvicted,
    UploadCompleted,
    UploadFailed,
    make_event,
)
from schemas.ids import new_id
from schemas.status import Heartbeat, NodeStatus

NODE = "site-1"
T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
CRC = "AAAAAA=="


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def event(seq: int, type_: str = "camera.online", data: EventData | None = None, *,
          node_id: str = NODE, event_id: str | None = None,
          ts: datetime | None = None, outbox_id: str | None = None) -> Event:
    return make_event(type_, event_id=event_id or new_id(), node_id=node_id, seq=seq,
                      ts=ts or T0 + timedelta(seconds=seq),
                      data=data or CameraPresence(camera_id="front"), outbox_id=outbox_id)


def store(engine: Engine, events: Sequence[Event]) -> StoreResult:
    with Session(engine) as session:
        result = store_events(session, events, datetime.now(UTC))
        session.commit()
    return result


def stored_ids(engine: Engine, node_id: str = NODE) -> list[tuple[int, str]]:
    with Session(engine) as session:
        rows = session.exec(select(tables.Event).where(tables.Event.node_id == node_id)
                            .order_by(col(tables.Event.seq)))
        return [(r.seq, r.event_id) for r in rows]


def node_row(engine: Engine, node_id: str = NODE) -> tables.Node:
    with Session(engine) as session:
        node = session.get(tables.Node, node_id)
        assert node is not None
        return node


# --- exactly once ------------------------------------------------------------------------


def test_the_same_batch_twice_is_stored_once(engine: Engine) -> None:
    batch = [event(1), event(2), event(3)]
    first = store(engine, batch)
    assert first.stored == {"camera.online": 3}
    assert first.duplicates == 0
    assert first.acked == {NODE: 3}
    second = store(engine, batch)
    assert second.stored == {}
    assert second.duplicates == 3
    assert second.acked == {NODE: 3}  # the ack is repeated so the node can drop them
    assert stored_ids(engine) == [(e.seq, e.event_id) for e in batch]


def test_duplicates_inside_one_batch_are_stored_once(engine: Engine) -> None:
    one, two = event(1), event(2)
    result = store(engine, [one, two, one, one, two])
    assert result.stored == {"camera.online": 2}
    assert result.duplicates == 3
    assert stored_ids(engine) == [(1, one.event_id), (2, two.event_id)]


def test_stored_envelope_is_the_event_as_sent(engine: Engine) -> None:
    sent = event(1)
    store(engine, [sent])
    with Session(engine) as session:
        row = session.get(tables.Event, sent.event_id)
        assert row is not None
        assert row.envelope == json.loads(sent.model_dump_json())
        assert row.type == "camera.online"
        assert as_utc(row.ts) == sent.ts


def test_a_new_event_id_on_a_stored_seq_is_refused_without_failing_the_batch(
    engine: Engine,
) -> None:
    original = event(1)
    store(engine, [original])
    impostor, following = event(1), event(2)
    result = store(engine, [impostor, following])
    assert result.stored == {"camera.online": 1}
    assert result.duplicates == 1
    assert result.acked == {NODE: 2}
    assert stored_ids(engine) == [(1, original.event_id), (2, following.event_id)]


def test_two_event_ids_with_one_seq_in_the_same_batch_store_the_first(engine: Engine) -> None:
    first, second, third = event(1), event(1), event(2)
    result = store(engine, [first, second, third])
    assert result.stored == {"camera.online": 2}
    assert result.duplicates == 1
    assert stored_ids(engine) == [(1, first.event_id), (2, third.event_id)]


def test_the_same_seq_on_different_nodes_is_not_a_conflict(engine: Engine) -> None:
    result = store(engine, [event(1, node_id="site-a"), event(1, node_id="site-b")])
    assert result.stored == {"camera.online": 2}
    assert result.acked == {"site-a": 1, "site-b": 1}


# --- projections -------------------------------------------------------------------------


def test_recording_events_project_into_recording_and_segment_rows(engine: Engine) -> None:
    start, end = T0 + timedelta(seconds=5), T0 + timedelta(seconds=65)
    started = event(1, "recording.started", RecordingStarted(
        recording_id="rec-1", camera_id="front", trigger="schedule", schedule_id="nights"))
    segment = event(2, "recording.segment", RecordingSegment(
        recording_id="rec-1", segment_id="seg-1", camera_id="front", start=start, end=end,
        bytes=123_456, crc32c=CRC, container="mp4", codec="h264", width=1280, height=720,
        frames=1500, lost_packets=2))
    stopped = event(3, "recording.stopped", RecordingStopped(
        recording_id="rec-1", camera_id="front", reason="schedule_ended", segments=1))
    result = store(engine, [started, segment, stopped])
    assert result.stored == {"recording.started": 1, "recording.segment": 1,
                             "recording.stopped": 1}
    with Session(engine) as session:
        recording = session.get(tables.Recording, "rec-1")
        assert recording is not None
        assert (recording.node_id, recording.camera_id) == (NODE, "front")
        assert (recording.trigger, recording.schedule_id, recording.command_id) == (
            "schedule", "nights", None)
        assert as_utc(recording.started_at) == started.ts
        assert as_utc(recording.stopped_at) == stopped.ts
        assert recording.reason == "schedule_ended"
        row = session.get(tables.Segment, "seg-1")
        assert row is not None
        assert (row.recording_id, row.node_id, row.camera_id) == ("rec-1", NODE, "front")
        assert (as_utc(row.start), as_utc(row.end)) == (start, end)
        assert (row.bytes, row.crc32c, row.codec, row.width, row.height) == (
            123_456, CRC, "h264", 1280, 720)
        assert (row.frames, row.lost_packets) == (1500, 2)
        assert row.upload_state == "pending"
        assert row.uri is None

    uri = "gs://cctv-bucket/fleet/site-1/front/2026/05/04/20260504T120005Z_seg-1.mp4"
    store(engine, [event(4, "upload.completed", UploadCompleted(
        segment_id="seg-1", uri=uri, bytes=123_456, crc32c=CRC))])
    with Session(engine) as session:
        row = session.get(tables.Segment, "seg-1")
        assert row is not None
        assert row.upload_state == "uploaded"
        assert row.uri == uri


def segment_event(seq: int, segment_id: str, size: int) -> Event:
    return event(seq, "recording.segment", RecordingSegment(
        recording_id="rec-3", segment_id=segment_id, camera_id="front", start=T0,
        end=T0 + timedelta(seconds=60), bytes=size, crc32c=CRC, container="mp4",
        codec="h264", width=640, height=360, frames=600, lost_packets=0))


def test_a_segment_reported_again_under_a_new_seq_keeps_the_first_report(
    engine: Engine,
) -> None:
    store(engine, [segment_event(1, "seg-9", 111)])
    # A node that crashed between reporting and noting it did reports it again,
    # under a new event id and seq; the batch around it must still be stored.
    result = store(engine, [segment_event(2, "seg-9", 222), event(3)])
    assert result.stored == {"recording.segment": 1, "camera.online": 1}
    assert result.acked == {NODE: 3}
    with Session(engine) as session:
        row = session.get(tables.Segment, "seg-9")
        assert row is not None
        assert row.bytes == 111
        assert session.exec(select(func.count()).select_from(tables.Segment)).one() == 1


def test_a_replayed_projection_event_changes_nothing(engine: Engine) -> None:
    started = event(1, "recording.started", RecordingStarted(
        recording_id="rec-2", camera_id="front", trigger="manual", command_id="cmd-1"))
    stopped = event(2, "recording.stopped", RecordingStopped(
        recording_id="rec-2", camera_id="front", reason="manual_ended", segments=0))
    store(engine, [started, stopped])
    result = store(engine, [started, stopped])
    assert result.duplicates == 2
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(tables.Recording)).one() == 1
        recording = session.get(tables.Recording, "rec-2")
        assert recording is not None
        assert (recording.trigger, recording.command_id) == ("manual", "cmd-1")
        assert recording.reason == "manual_ended"


def segment_state(engine: Engine, segment_id: str) -> tuple[str, str | None]:
    with Session(engine) as session:
        row = session.get(tables.Segment, segment_id)
        assert row is not None
        return row.upload_state, row.uri


def uploaded(seq: int, segment_id: str, *, node_id: str = NODE) -> Event:
    return event(seq, "upload.completed", UploadCompleted(
        segment_id=segment_id, uri=f"gs://bucket/{segment_id}.mp4", bytes=111, crc32c=CRC),
        node_id=node_id)


def test_an_upload_stored_before_its_segment_applies_when_the_segment_comes(
    engine: Engine,
) -> None:
    # A batch holding the segment failed and was redelivered after the next batch.
    result = store(engine, [uploaded(2, "seg-early")])
    assert result.stored == {"upload.completed": 1}
    assert result.acked == {NODE: 0}, "the hole at seq 1 holds the ack"
    result = store(engine, [segment_event(1, "seg-early", 111)])
    assert result.acked == {NODE: 2}
    assert segment_state(engine, "seg-early") == ("uploaded", "gs://bucket/seg-early.mp4")
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(tables.SegmentOutcome)).one() == 0


def test_an_older_outcome_arriving_late_does_not_override_a_newer_one(engine: Engine) -> None:
    store(engine, [segment_event(1, "seg-x", 111)])
    evicted = event(3, "storage.evicted", StorageEvicted(
        segment_id="seg-x", uploaded=False, reason="disk_full"))
    failed = event(2, "upload.failed", UploadFailed(
        segment_id="seg-x", attempt=9, error="gave up", will_retry=False))
    store(engine, [evicted])
    store(engine, [failed])
    assert segment_state(engine, "seg-x") == ("evicted", None)
    # The same, with both before the segment and in the opposite order.
    store(engine, [event(6, "storage.evicted", StorageEvicted(
        segment_id="seg-y", uploaded=False, reason="disk_full"))])
    store(engine, [event(5, "upload.failed", UploadFailed(
        segment_id="seg-y", attempt=9, error="gave up", will_retry=False))])
    store(engine, [segment_event(4, "seg-y", 111)])
    assert segment_state(engine, "seg-y") == ("evicted", None)


def test_an_outcome_from_another_node_never_touches_a_segment(engine: Engine) -> None:
    store(engine, [segment_event(1, "seg-mine", 111)])
    store(engine, [uploaded(1, "seg-mine", node_id="site-other")])
    assert segment_state(engine, "seg-mine") == ("pending", None)
    # Nor one kept aside before the segment came.
    store(engine, [uploaded(2, "seg-later", node_id="site-other")])
    store(engine, [segment_event(2, "seg-later", 111)])
    assert segment_state(engine, "seg-later") == ("pending", None)


# --- seq tracking ------------------------------------------------------------------------


def test_a_hole_holds_the_ack_until_it_is_filled(engine: Engine) -> None:
    result = store(engine, [event(1), event(2), event(4)])
    assert result.acked == {NODE: 2}
    node = node_row(engine)
    assert (node.acked_seq, node.max_seq, node.seq_gaps) == (2, 4, 1)

    result = store(engine, [event(3)])
    assert result.acked == {NODE: 4}
    node = node_row(engine)
    assert (node.acked_seq, node.max_seq, node.seq_gaps) == (4, 4, 0)


def test_a_wiped_node_numbering_from_one_in_a_new_outbox_is_tracked_afresh(
    engine: Engine,
) -> None:
    old, new = "outbox-old", "outbox-new"
    assert store(engine, [event(n, outbox_id=old) for n in (1, 2, 3)]).acked == {NODE: 3}
    # Two segments of the old disk: one uploaded, one that will now never be.
    store(engine, [segment_event(1, "seg-up", 1).model_copy(update={"outbox_id": old, "seq": 10}),
                   segment_event(1, "seg-lost", 1).model_copy(update={"outbox_id": old, "seq": 11}),
                   uploaded(12, "seg-up").model_copy(update={"outbox_id": old})])
    # The disk is replaced: seq 1 again, under a new outbox; no conflict, acked from 1.
    result = store(engine, [event(1, outbox_id=new), event(2, outbox_id=new)])
    assert result.stored == {"camera.online": 2}
    assert (result.acked, result.outboxes) == ({NODE: 2}, {NODE: new})
    node = node_row(engine)
    assert (node.outbox_id, node.acked_seq, node.max_seq, node.seq_gaps) == (new, 2, 2, 0)
    assert segment_state(engine, "seg-up")[0] == "uploaded"
    assert segment_state(engine, "seg-lost") == ("failed", None), "shown as never coming"
    # A late event of the old outbox is stored, and changes nothing about the new one.
    late = store(engine, [event(4, outbox_id=old)])
    assert late.stored == {"camera.online": 1}
    assert (late.acked, late.outboxes) == ({NODE: 2}, {NODE: new})
    assert len(stored_ids(engine)) == 9
    # A hole in the new outbox holds its ack as ever.
    assert store(engine, [event(4, outbox_id=new)]).acked == {NODE: 2}
    assert node_row(engine).seq_gaps == 1


def test_events_without_an_outbox_id_are_tracked_as_before(engine: Engine) -> None:
    result = store(engine, [event(1), event(2)])
    assert (result.acked, result.outboxes) == ({NODE: 2}, {NODE: ""})
    # The same node upgraded keeps numbering its old outbox, still without an id.
    assert store(engine, [event(3)]).acked == {NODE: 3}


def test_seq_tracking_is_per_node(engine: Engine) -> None:
    store(engine, [event(1, node_id="site-a"), event(3, node_id="site-a"),
                   event(1, node_id="site-b"), event(2, node_id="site-b")])
    a, b = node_row(engine, "site-a"), node_row(engine, "site-b")
    assert (a.acked_seq, a.seq_gaps) == (1, 1)
    assert (b.acked_seq, b.seq_gaps) == (2, 0)


# --- presence ----------------------------------------------------------------------------


def status(state: str, session: int, keepalive_s: int | None = None) -> NodeStatus:
    return NodeStatus.model_validate_json(json.dumps(
        {"state": state, "session": session, "ts": "2026-05-04T12:00:00Z", "version": "0.1.0",
         "keepalive_s": keepalive_s}))


def heartbeat(session: int, ts: str = "2026-05-04T12:00:00Z") -> Heartbeat:
    document: dict[str, Any] = {
        "ts": ts, "session": session, "uptime_s": 12.5, "version": "0.1.0",
        "system": {"hostname": "box", "os": "linux", "ip": "10.0.0.2"},
        "disk_free_bytes": 10, "disk_total_bytes": 100,
        "upload_backlog": {"count": 1, "bytes": 2, "oldest_s": 3.0},
        "outbox": {"depth": 0, "oldest_s": 0.0},
        "schedules_revision": 4, "cameras_revision": 5, "cameras": [],
    }
    return Heartbeat.model_validate_json(json.dumps(document))


def apply(engine: Engine, change: Any) -> bool | None:
    with Session(engine) as session:
        outcome: bool | None = change(session)
        session.commit()
    return outcome


def test_a_late_will_from_an_older_session_does_not_mark_the_node_offline(
    engine: Engine,
) -> None:
    now = datetime.now(UTC)
    assert apply(engine, lambda s: apply_status(s, NODE, status("online", 1), now))
    assert apply(engine, lambda s: apply_status(s, NODE, status("online", 2), now))
    assert not apply(engine, lambda s: apply_status(s, NODE, status("offline", 1), now))
    node = node_row(engine)
    assert node.online
    assert node.session == 2


def test_a_will_from_the_current_session_marks_the_node_offline(engine: Engine) -> None:
    now = datetime.now(UTC)
    apply(engine, lambda s: apply_status(s, NODE, status("online", 3), now))
    assert apply(engine, lambda s: apply_status(s, NODE, status("offline", 3), now))
    assert not node_row(engine).online


def test_a_heartbeat_from_a_newer_session_marks_the_node_online(engine: Engine) -> None:
    now = datetime.now(UTC)
    apply(engine, lambda s: apply_status(s, NODE, status("online", 1), now))
    apply(engine, lambda s: apply_status(s, NODE, status("offline", 1), now))
    assert not node_row(engine).online
    apply(engine, lambda s: apply_heartbeat(s, NODE, heartbeat(2), now))
    node = node_row(engine)
    assert node.online
    assert node.session == 2
    assert as_utc(node.last_heartbeat) == now
    assert (node.schedules_revision_applied, node.cameras_revision_applied) == (4, 5)
    assert node.heartbeat is not None
    assert node.heartbeat["upload_backlog"] == {"count": 1, "bytes": 2, "oldest_s": 3.0}


def test_a_heartbeat_from_an_older_session_does_not_revive_the_node(engine: Engine) -> None:
    now = datetime.now(UTC)
    apply(engine, lambda s: apply_status(s, NODE, status("online", 5), now))
    apply(engine, lambda s: apply_status(s, NODE, status("offline", 5), now))
    apply(engine, lambda s: apply_heartbeat(s, NODE, heartbeat(4), now))
    node = node_row(engine)
    assert not node.online
    assert node.session == 5


def silent_at(engine: Engine, when: datetime) -> list[tuple[str, int]]:
    return apply(engine, lambda s: mark_silent_offline(s, when))  # type: ignore[return-value]


def test_a_node_silent_for_1_5_keepalives_goes_offline_and_anything_heard_resets_it(
    engine: Engine,
) -> None:
    apply(engine, lambda s: apply_status(s, NODE, status("online", 7, keepalive_s=10), T0))
    assert silent_at(engine, T0 + timedelta(seconds=14.9)) == []
    assert node_row(engine).online
    # A heartbeat, an event or reported state: each proves the node alive.
    apply(engine, lambda s: apply_heartbeat(s, NODE, heartbeat(7), T0 + timedelta(seconds=10)))
    store_at = T0 + timedelta(seconds=20)
    with Session(engine) as session:
        store_events(session, [event(1)], store_at)
        session.commit()
    assert silent_at(engine, T0 + timedelta(seconds=34.9)) == []
    assert silent_at(engine, T0 + timedelta(seconds=35.1)) == [(NODE, 7)]
    node = node_row(engine)
    assert (node.online, node.session) == (False, 7)
    assert silent_at(engine, T0 + timedelta(seconds=60)) == [], "marked once"
    # Its next heartbeat brings it back.
    apply(engine, lambda s: apply_heartbeat(s, NODE, heartbeat(7), T0 + timedelta(seconds=61)))
    assert node_row(engine).online


def test_a_node_that_gave_no_keepalive_is_left_to_its_will(engine: Engine) -> None:
    apply(engine, lambda s: apply_status(s, NODE, status("online", 1), T0))
    assert silent_at(engine, T0 + timedelta(days=1)) == []
    assert node_row(engine).online


def test_a_heartbeat_received_twice_is_logged_once(engine: Engine) -> None:
    # Every cloud process gets every heartbeat; a redelivery brings one again.
    for _ in range(2):
        with Session(engine) as session:
            rows = [apply_heartbeat(session, NODE, heartbeat(1, ts), datetime.now(UTC))
                    for ts in ("2026-05-04T12:00:00Z", "2026-05-04T12:00:30Z")]
            log_heartbeats(session, rows)
            session.commit()
    with Session(engine) as session:
        logged = session.exec(select(tables.HeartbeatLog.ts).where(
            tables.HeartbeatLog.node_id == NODE).order_by(col(tables.HeartbeatLog.ts))).all()
    assert [as_utc(ts) for ts in logged] == [T0, T0 + timedelta(seconds=30)]


def test_an_older_heartbeat_arriving_late_does_not_replace_the_latest(engine: Engine) -> None:
    newer, older = heartbeat(1, "2026-05-04T12:00:30Z"), heartbeat(1, "2026-05-04T12:00:00Z")
    apply(engine, lambda s: apply_heartbeat(s, NODE, newer, T0))
    apply(engine, lambda s: apply_heartbeat(s, NODE, older, T0))
    node = node_row(engine)
    assert node.heartbeat is not None
    assert node.heartbeat["ts"] == "2026-05-04T12:00:30Z"
