"""GET /api/coverage on SQLite and PostgreSQL: cameras and a schedule made through
the API, segments stored as ingest stores them (store_events), and the scheduled
seconds, recorded seconds and gaps the endpoint reports for them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from cloud_service.api.app import create_app
from cloud_service.api.context import ApiContext
from cloud_service.database import make_engine, migrate
from cloud_service.event_store import store_events
from schemas.events import Event, RecordingSegment, make_event
from schemas.ids import new_id
from schemas.topics import TopicTable

TOKEN = "coverage-token"
T0 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Fleet:
    """The API client plus a way to store segments as ingest would."""

    def __init__(self, client: TestClient, engine: Engine) -> None:
        self.client = client
        self.engine = engine
        self._seq = itertools.count(1)

    def post(self, path: str, body: dict[str, Any]) -> None:
        response = self.client.post(path, json=body)
        assert response.status_code == 201, response.text

    def segments(self, node_id: str, camera_id: str, *spans: tuple[datetime, datetime]) -> None:
        recording_id = new_id()
        events: list[Event] = [
            make_event("recording.segment", event_id=new_id(), node_id=node_id,
                       seq=next(self._seq), ts=end, data=RecordingSegment(
                           recording_id=recording_id, segment_id=new_id(), camera_id=camera_id,
                           start=start, end=end, bytes=1000, crc32c="AAAAAA==",
                           container="mp4", codec="mjpeg", width=640, height=360, frames=20,
                           lost_packets=0))
            for start, end in spans]
        with Session(self.engine) as session:
            result = store_events(session, events, datetime.now(UTC))
            session.commit()
        assert sum(result.stored.values()) == len(spans)

    def coverage(self, since: datetime, until: datetime, **filters: str) -> dict[str, Any]:
        response = self.client.get("/api/coverage", params={
            "since": since.isoformat(), "until": until.isoformat(), **filters})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def fleet(database_url: str) -> Iterator[Fleet]:
    engine = make_engine(database_url)
    migrate(engine)
    app = create_app(ApiContext(engine, TopicTable(), lambda _t, _p: None, (TOKEN,)))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        fleet = Fleet(client, engine)
        for node_id in ("site-a", "site-b"):
            fleet.post("/api/nodes", {"node_id": node_id})
        for camera_id, node_id in (("cam-1", "site-a"), ("cam-2", "site-a"),
                                   ("cam-3", "site-b")):
            fleet.post("/api/cameras", {"camera_id": camera_id, "node_id": node_id,
                                        "url": "http://10.0.0.7/video.mjpg"})
        fleet.post("/api/schedules", {
            "schedule_id": "morning", "camera_ids": ["cam-1", "cam-3"], "kind": "once",
            "start": at(0).isoformat(), "end": at(10).isoformat()})
        yield fleet
    engine.dispose()


def gaps(item: dict[str, Any]) -> list[tuple[datetime, datetime]]:
    return [(datetime.fromisoformat(g["start"]), datetime.fromisoformat(g["end"]))
            for g in item["gaps"]]


def test_coverage_reports_scheduled_and_recorded_seconds_and_the_gaps(fleet: Fleet) -> None:
    sliver = timedelta(seconds=1)  # under the 3 s tolerance
    fleet.segments("site-a", "cam-1", (at(0), at(2)), (at(2) + sliver, at(4)),
                   (at(6), at(10)), (at(30), at(40)))  # the last one is unscheduled
    fleet.segments("site-a", "cam-2", (at(0), at(10)))  # recorded, never scheduled
    fleet.segments("site-b", "cam-3", (at(-5), at(3)))

    body = fleet.coverage(at(-60), at(60))
    assert datetime.fromisoformat(body["since"]) == at(-60)
    assert datetime.fromisoformat(body["until"]) == at(60)
    items = {item["camera_id"]: item for item in body["items"]}
    assert list(items) == ["cam-1", "cam-2", "cam-3"]

    cam1 = items["cam-1"]
    assert cam1["node_id"] == "site-a"
    assert cam1["scheduled_s"] == 600
    assert cam1["recorded_s"] == 480 - sliver.total_seconds()
    assert gaps(cam1) == [(at(4), at(6))]
    assert cam1["ratio"] == pytest.approx((480 - 1) / 600)

    cam2 = items["cam-2"]
    assert (cam2["scheduled_s"], cam2["recorded_s"], cam2["ratio"], cam2["gaps"]) == \
        (0, 0, None, [])

    cam3 = items["cam-3"]
    assert cam3["scheduled_s"] == 600
    assert cam3["recorded_s"] == 180
    assert gaps(cam3) == [(at(3), at(10))]


def test_the_period_cuts_segments_and_schedules_and_filters_apply(fleet: Fleet) -> None:
    fleet.segments("site-a", "cam-1", (at(0), at(4)), (at(6), at(10)))
    fleet.segments("site-b", "cam-3", (at(0), at(10)))

    body = fleet.coverage(at(1), at(9), camera_id="cam-1")
    assert [item["camera_id"] for item in body["items"]] == ["cam-1"]
    (cam1,) = body["items"]
    assert cam1["scheduled_s"] == 480
    assert cam1["recorded_s"] == 360
    assert gaps(cam1) == [(at(4), at(6))]

    by_node = fleet.coverage(at(1), at(9), node_id="site-b")
    assert [(i["camera_id"], i["recorded_s"], i["ratio"]) for i in by_node["items"]] == \
        [("cam-3", 480, 1)]

    # A period with no scheduled time at all: nothing to cover.
    later = fleet.coverage(at(60), at(120), camera_id="cam-1")
    assert later["items"][0]["scheduled_s"] == 0
    assert later["items"][0]["ratio"] is None


def test_a_period_longer_than_31_days_or_backwards_is_refused(fleet: Fleet) -> None:
    def status(since: datetime, until: datetime) -> int:
        response = fleet.client.get("/api/coverage", params={
            "since": since.isoformat(), "until": until.isoformat()})
        return int(response.status_code)

    assert status(at(0), at(0) + timedelta(days=31)) == 200
    assert status(at(0), at(0) + timedelta(days=31, seconds=1)) == 422
    assert status(at(0), at(0) + timedelta(days=400)) == 422
    assert status(at(10), at(0)) == 422
    assert status(at(0), at(0)) == 422
    naive = fleet.client.get("/api/coverage", params={"since": "2025-03-04T10:00:00"})
    assert naive.status_code == 422
    unauthenticated = fleet.client.get("/api/coverage", headers={"Authorization": ""})
    assert unauthenticated.status_code == 401
