"""The cloud REST API on SQLite and PostgreSQL: auth, nodes, cameras (credentials never
returned but published to the node), schedules and the retained documents they publish,
validation, and paging."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from cloud_service.api.app import create_app
from cloud_service.api.context import ApiContext
from cloud_service.database import make_engine, migrate
from cloud_service.event_store import store_events
from cloud_service.presence import apply_status
from schemas.cameras import CameraSet
from schemas.codec import ADAPTERS, decode
from schemas.events import CameraPresence, RecordingStarted, make_event
from schemas.ids import new_id
from schemas.schedules import ScheduleSet
from schemas.status import NodeStatus
from schemas.topics import Channel, TopicTable

TOKEN = "test-token-1"
OTHER_TOKEN = "test-token-2"
PASSWORD = "hunter2-Secret"
CAMERA_URL = f"rtsp://admin:{PASSWORD}@10.0.0.5:554/stream1"
REDACTED_URL = "rtsp://admin:***@10.0.0.5:554/stream1"
TOPICS = TopicTable()


@dataclass
class Published:
    messages: list[tuple[str, bytes]] = field(default_factory=list)

    def __call__(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))

    def on(self, node_id: str, channel: Channel) -> list[bytes]:
        topic = TOPICS.topic(node_id, channel)
        return [payload for t, payload in self.messages if t == topic]

    def schedule_sets(self, node_id: str) -> list[ScheduleSet]:
        return [decode(p, ADAPTERS[Channel.SCHEDULES]) for p in self.on(node_id, Channel.SCHEDULES)]

    def camera_sets(self, node_id: str) -> list[CameraSet]:
        return [decode(p, ADAPTERS[Channel.CAMERAS]) for p in self.on(node_id, Channel.CAMERAS)]


@dataclass
class Api:
    app: FastAPI
    client: TestClient
    published: Published
    engine: Engine

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.client.post(path, json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def node(self, node_id: str) -> Any:
        return self.post("/api/nodes", {"node_id": node_id})

    def camera(self, camera_id: str, node_id: str, url: str = "rtsp://10.0.0.9/live") -> Any:
        return self.post("/api/cameras",
                         {"camera_id": camera_id, "node_id": node_id, "url": url})


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    engine = make_engine(database_url)
    migrate(engine)
    published = Published()
    app = create_app(ApiContext(engine, TOPICS, published, (TOKEN, OTHER_TOKEN)))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield Api(app, client, published, engine)
    engine.dispose()


def daily(schedule_id: str, camera_ids: list[str], **fields: Any) -> dict[str, Any]:
    return {"schedule_id": schedule_id, "camera_ids": camera_ids, "kind": "daily",
            "tz": "Europe/London", "start_time": "22:00:00", "end_time": "06:00:00", **fields}


# --- auth --------------------------------------------------------------------------------


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) under /api, from the app's own OpenAPI description."""
    routes: list[tuple[str, str]] = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/api"):
            concrete = re.sub(r"\{[^}]+\}", "abc-1", path)
            routes.extend((method.upper(), concrete) for method in sorted(operations))
    return routes


BAD_AUTH: list[dict[str, str]] = [
    {},  # missing
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": f"Bearer {TOKEN}x"},  # a valid token's prefix is not the token
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},  # no scheme
]


def test_every_api_path_refuses_a_missing_or_wrong_token(api: Api) -> None:
    routes = api_routes(api.app)
    assert {("GET", "/api/nodes"), ("POST", "/api/nodes"), ("DELETE", "/api/nodes/abc-1"),
            ("PUT", "/api/cameras/abc-1"), ("POST", "/api/schedules"),
            ("GET", "/api/recordings/abc-1"), ("GET", "/api/events")} <= set(routes)
    for headers in BAD_AUTH:
        for method, path in routes:
            # The client's default (valid) header is replaced, or removed when empty.
            request = api.client.build_request(method, path, json={})
            del request.headers["Authorization"]
            request.headers.update(headers)
            response = api.client.send(request)
            assert response.status_code == 401, (headers, method, path, response.text)
            assert response.headers.get("www-authenticate") == "Bearer"
    assert api.published.messages == []
    assert api.get("/api/nodes")["total"] == 0  # nothing was created either
    for token in (TOKEN, OTHER_TOKEN):
        response = api.client.get("/api/nodes", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
    health = api.client.get("/health", headers={"Authorization": ""})
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}


# --- nodes -------------------------------------------------------------------------------


def test_register_node_then_a_duplicate_conflicts(api: Api) -> None:
    response = api.client.post("/api/nodes", json={"node_id": "site-a"})
    assert response.status_code == 201
    body = response.json()
    assert body["node_id"] == "site-a"
    assert body["online"] is False
    assert body["seq_gaps"] == 0
    duplicate = api.client.post("/api/nodes", json={"node_id": "site-a"})
    assert duplicate.status_code == 409
    assert api.get("/api/nodes/site-a")["node_id"] == "site-a"
    assert api.client.get("/api/nodes/site-zz").status_code == 404


def test_delete_node_clears_its_retained_documents(api: Api) -> None:
    api.node("site-a")
    api.camera("front", "site-a")
    api.post("/api/schedules", daily("nights", ["front"]))
    api.published.messages.clear()
    response = api.client.delete("/api/nodes/site-a")
    assert response.status_code == 204
    for channel in (Channel.SCHEDULES, Channel.CAMERAS, Channel.STATUS, Channel.STATE):
        assert api.published.on("site-a", channel) == [b""], channel
    assert api.client.get("/api/nodes/site-a").status_code == 404
    assert api.client.get("/api/cameras/front").status_code == 404
    assert api.client.delete("/api/nodes/site-a").status_code == 404


def test_re_registering_a_deleted_node_never_reuses_its_revisions(api: Api) -> None:
    """The node keeps the documents it applied (on disk) and applies only higher
    revisions, so a node id deleted and registered again must go on from where its
    documents were, or the node would ignore every new document."""
    api.node("site-a")
    api.camera("front", "site-a")
    api.post("/api/schedules", daily("nights", ["front"]))
    last_schedules = api.published.schedule_sets("site-a")[-1].revision
    last_cameras = api.published.camera_sets("site-a")[-1].revision
    assert api.client.delete("/api/nodes/site-a").status_code == 204
    api.published.messages.clear()

    api.node("site-a")
    api.camera("front-2", "site-a")
    (cameras,) = api.published.camera_sets("site-a")
    (schedules,) = api.published.schedule_sets("site-a")
    assert cameras.revision > last_cameras
    assert schedules.revision > last_schedules


# --- cameras -----------------------------------------------------------------------------


def test_camera_password_is_never_returned_but_is_published_to_its_node(api: Api) -> None:
    api.node("site-a")
    created = api.client.post("/api/cameras", json={
        "camera_id": "front", "node_id": "site-a", "name": "Front door", "url": CAMERA_URL})
    assert created.status_code == 201
    assert created.json()["url"] == REDACTED_URL
    assert PASSWORD not in created.text
    fetched = api.client.get("/api/cameras/front")
    assert fetched.json()["url"] == REDACTED_URL
    assert PASSWORD not in fetched.text
    listed = api.client.get("/api/cameras")
    assert [c["url"] for c in listed.json()["items"]] == [REDACTED_URL]
    assert PASSWORD not in listed.text

    (camera_set,) = api.published.camera_sets("site-a")
    assert camera_set.revision == 1
    assert [(c.camera_id, c.node_id, c.name, c.url) for c in camera_set.cameras] == [
        ("front", "site-a", "Front door", CAMERA_URL)]


def test_a_camera_put_back_as_read_keeps_its_stored_password(api: Api) -> None:
    api.node("site-a")
    api.camera("front", "site-a", CAMERA_URL)
    read = api.get("/api/cameras/front")
    assert read["url"] == REDACTED_URL
    replaced = api.client.put("/api/cameras/front", json={**read, "name": "Porch"})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["name"] == "Porch"
    latest = api.published.camera_sets("site-a")[-1]
    assert [(c.name, c.url) for c in latest.cameras] == [("Porch", CAMERA_URL)]
    # `***` is never handed to another address, nor stored as a password.
    moved = api.client.put("/api/cameras/front", json={
        **read, "url": "rtsp://admin:***@10.0.0.6:554/stream1"})
    assert moved.status_code == 422
    assert "url:" in moved.json()["detail"]
    api.camera("back", "site-a", "rtsp://10.0.0.7/live")
    no_password = api.client.put("/api/cameras/back", json={
        **api.get("/api/cameras/back"), "url": "rtsp://admin:***@10.0.0.7/live"})
    assert no_password.status_code == 422
    urls = {c.camera_id: c.url for c in api.published.camera_sets("site-a")[-1].cameras}
    assert urls == {"front": CAMERA_URL, "back": "rtsp://10.0.0.7/live"}


def test_camera_changes_republish_the_camera_set_with_growing_revisions(api: Api) -> None:
    api.node("site-a")
    api.camera("front", "site-a")
    api.camera("back", "site-a")
    replaced = api.client.put("/api/cameras/front", json={
        "camera_id": "front", "node_id": "site-a", "url": CAMERA_URL, "enabled": False})
    assert replaced.status_code == 200
    assert replaced.json()["url"] == REDACTED_URL
    assert api.client.delete("/api/cameras/back").status_code == 204
    sets = api.published.camera_sets("site-a")
    assert [s.revision for s in sets] == [1, 2, 3, 4]
    assert [c.camera_id for c in sets[1].cameras] == ["back", "front"]
    assert [(c.camera_id, c.enabled, c.url) for c in sets[-1].cameras] == [
        ("front", False, CAMERA_URL)]
    assert api.get("/api/nodes/site-a")["cameras_revision_desired"] == 4


# --- schedules ---------------------------------------------------------------------------


def test_schedule_changes_publish_the_node_schedule_set_with_growing_revisions(
    api: Api,
) -> None:
    api.node("site-a")
    api.camera("front", "site-a")
    before = [s.revision for s in api.published.schedule_sets("site-a")]

    created = api.client.post("/api/schedules", json=daily("nights", ["front"]))
    assert created.status_code == 201
    assert created.json()["schedule_id"] == "nights"
    after_post = api.published.schedule_sets("site-a")[-1]
    assert all(after_post.revision > r for r in before)
    assert [s.schedule_id for s in after_post.schedules] == ["nights"]
    assert after_post.schedules[0].model_dump(mode="json")["start_time"] == "22:00:00"
    # A fresh node's first document is revision 1, and they follow on one by one.
    revisions = [s.revision for s in api.published.schedule_sets("site-a")]
    assert revisions == list(range(1, len(revisions) + 1))
    duplicate = api.client.post("/api/schedules", json=daily("nights", ["front"]))
    assert duplicate.status_code == 409
    assert api.published.schedule_sets("site-a")[-1] == after_post

    replaced = api.client.put("/api/schedules/nights",
                              json=daily("nights", ["front"], start_time="21:00:00"))
    assert replaced.status_code == 200
    after_put = api.published.schedule_sets("site-a")[-1]
    assert after_put.revision == after_post.revision + 1
    assert after_put.schedules[0].model_dump(mode="json")["start_time"] == "21:00:00"

    assert api.client.delete("/api/schedules/nights").status_code == 204
    after_delete = api.published.schedule_sets("site-a")[-1]
    assert after_delete.revision == after_put.revision + 1
    assert after_delete.schedules == []

    revisions = [s.revision for s in api.published.schedule_sets("site-a")]
    assert revisions == sorted(set(revisions))  # strictly growing
    assert api.get("/api/nodes/site-a")["schedules_revision_desired"] == revisions[-1]


def test_a_schedule_over_two_nodes_gives_each_node_only_its_cameras(api: Api) -> None:
    api.node("site-a")
    api.node("site-b")
    api.camera("a-front", "site-a")
    api.camera("a-back", "site-a")
    api.camera("b-front", "site-b")
    api.published.messages.clear()
    api.post("/api/schedules", daily("nights", ["a-front", "b-front"]))
    (set_a,) = api.published.schedule_sets("site-a")
    (set_b,) = api.published.schedule_sets("site-b")
    assert [s.camera_ids for s in set_a.schedules] == [["a-front"]]
    assert [s.camera_ids for s in set_b.schedules] == [["b-front"]]
    assert api.published.on("site-a", Channel.CAMERAS) == []  # cameras did not change

    # Dropping site-b's camera from the schedule republishes site-b too, now empty.
    api.published.messages.clear()
    response = api.client.put("/api/schedules/nights", json=daily("nights", ["a-front"]))
    assert response.status_code == 200
    (set_b_after,) = api.published.schedule_sets("site-b")
    assert set_b_after.revision > set_b.revision
    assert set_b_after.schedules == []
    (set_a_after,) = api.published.schedule_sets("site-a")
    assert [s.camera_ids for s in set_a_after.schedules] == [["a-front"]]


def test_unknown_camera_in_a_schedule_is_refused(api: Api) -> None:
    api.node("site-a")
    api.camera("front", "site-a")
    api.published.messages.clear()
    response = api.client.post("/api/schedules", json=daily("nights", ["front", "ghost"]))
    assert response.status_code == 422
    assert "ghost" in response.text
    assert api.published.messages == []
    assert api.client.get("/api/schedules/nights").status_code == 404


# --- validation --------------------------------------------------------------------------


INVALID_ID_PATHS = [
    "/api/nodes/Bad_Id", "/api/nodes/-leading", "/api/nodes/UPPER", f"/api/nodes/{'a' * 64}",
    "/api/cameras/has.dot", "/api/schedules/x%2By", "/api/recordings/Bad",
]


def test_invalid_ids_in_paths_and_filters_are_422(api: Api) -> None:
    for path in INVALID_ID_PATHS:
        assert api.client.get(path).status_code == 422, path
    assert api.client.delete("/api/nodes/Bad_Id").status_code == 422
    assert api.client.delete("/api/cameras/Bad_Id").status_code == 422
    for path in ("/api/recordings", "/api/events"):
        assert api.client.get(path, params={"node_id": "Bad/Id"}).status_code == 422, path
        assert api.client.get(path, params={"node_id": "ok-id"}).status_code == 200, path
    assert api.client.get("/api/recordings", params={"camera_id": "A"}).status_code == 422


def test_invalid_ids_in_bodies_are_422(api: Api) -> None:
    unregistered = api.client.post("/api/cameras", json={
        "camera_id": "front", "node_id": "site-nowhere", "url": "rtsp://10.0.0.9/live"})
    assert unregistered.status_code == 422
    assert api.published.messages == []
    for node_id in ("Bad/Id", "UPPER", "", "a" * 64, "cctv/v1/#"):
        assert api.client.post("/api/nodes", json={"node_id": node_id}).status_code == 422
    api.node("site-a")
    bad_camera = {"camera_id": "Front Door", "node_id": "site-a", "url": "rtsp://h/x"}
    assert api.client.post("/api/cameras", json=bad_camera).status_code == 422
    api.camera("front", "site-a")
    assert api.client.post("/api/schedules",
                           json=daily("Nights!", ["front"])).status_code == 422
    assert api.client.post("/api/schedules",
                           json=daily("nights", ["Front"])).status_code == 422
    assert api.get("/api/nodes")["total"] == 1
    assert api.published.camera_sets("site-a")[-1].revision == 1


def test_path_and_body_ids_must_match_on_put(api: Api) -> None:
    api.node("site-a")
    api.camera("front", "site-a")
    api.post("/api/schedules", daily("nights", ["front"]))
    response = api.client.put("/api/schedules/nights", json=daily("days", ["front"]))
    assert response.status_code == 422
    response = api.client.put("/api/cameras/front", json={
        "camera_id": "back", "node_id": "site-a", "url": "rtsp://h/x"})
    assert response.status_code == 422


# --- lists -------------------------------------------------------------------------------


def test_lists_answer_items_and_total_with_limit_and_offset(api: Api) -> None:
    for n in range(5):
        api.node(f"site-{n}")
        api.camera(f"cam-{n}", f"site-{n}")
        api.post("/api/schedules", daily(f"sched-{n}", [f"cam-{n}"]))
    for path, key in (("/api/nodes", "node_id"), ("/api/cameras", "camera_id"),
                      ("/api/schedules", "schedule_id")):
        whole = api.get(path)
        assert set(whole) == {"items", "total"}
        assert whole["total"] == 5
        assert len(whole["items"]) == 5
        page = api.get(path, limit=2, offset=1)
        assert page["total"] == 5
        assert [item[key] for item in page["items"]] == [
            item[key] for item in whole["items"][1:3]]
        tail = api.get(path, limit=10, offset=4)
        assert (tail["total"], len(tail["items"])) == (5, 1)
        beyond = api.get(path, offset=50)
        assert beyond == {"items": [], "total": 5}
    assert api.get("/api/nodes", online="false")["total"] == 5
    assert api.get("/api/nodes", online="true") == {"items": [], "total": 0}
    assert api.get("/api/cameras", node_id="site-3")["total"] == 1


def test_recordings_and_events_lists_page_too(api: Api) -> None:
    api.node("site-a")
    t0 = datetime(2026, 5, 4, 12, tzinfo=UTC)
    events = [make_event("recording.started", event_id=new_id(), node_id="site-a", seq=n,
                         ts=t0 + timedelta(minutes=n),
                         data=RecordingStarted(recording_id=f"rec-{n}", camera_id="front",
                                               trigger="manual", command_id=f"cmd-{n}"))
              for n in range(1, 4)]
    events.append(make_event("camera.online", event_id=new_id(), node_id="site-a", seq=4,
                             ts=t0, data=CameraPresence(camera_id="front")))
    with Session(api.engine) as session:
        store_events(session, events, datetime.now(UTC))
        session.commit()
    recordings = api.get("/api/recordings", limit=2)
    assert recordings["total"] == 3
    assert [r["recording_id"] for r in recordings["items"]] == ["rec-3", "rec-2"]
    assert api.get("/api/recordings", offset=2)["items"][0]["recording_id"] == "rec-1"
    all_events = api.get("/api/events")
    assert all_events["total"] == 4
    assert all("received_at" in e for e in all_events["items"])
    started = api.get("/api/events", type="recording.started", limit=1, offset=1)
    assert started["total"] == 3
    assert len(started["items"]) == 1
    assert started["items"][0]["type"] == "recording.started"


LIST_PATHS = ["/api/nodes", "/api/cameras", "/api/schedules", "/api/recordings", "/api/events"]


def test_list_paging_out_of_range_is_422(api: Api) -> None:
    for path in LIST_PATHS:
        for params in ({"limit": 1001}, {"limit": 0}, {"offset": -1}, {"limit": "many"}):
            response = api.client.get(path, params=params)
            assert response.status_code == 422, (path, params)
        assert api.get(path, limit=1000, offset=0) == {"items": [], "total": 0}


# --- metrics -----------------------------------------------------------------------------


def test_metrics_carry_the_fleets_gauges_from_the_database(api: Api) -> None:
    api.node("site-a")  # registered, never heard from
    api.camera("front", "site-a")  # desired cameras revision 1, applied 0: drifting
    with Session(api.engine) as session:
        apply_status(session, "site-b", NodeStatus(
            state="online", session=1, ts=datetime.now(UTC), version="0.1.0"), datetime.now(UTC))
        store_events(session, [make_event(
            "camera.online", event_id=new_id(), node_id="site-b", seq=seq, ts=datetime.now(UTC),
            data=CameraPresence(camera_id="cam")) for seq in (1, 2, 5, 7)], datetime.now(UTC))
        session.commit()
    text = api.client.get("/metrics").text
    gauges = {name: float(value) for name, value in re.findall(
        r"^(cctv_fleet_\w+) (\S+)$", text, re.MULTILINE)}
    assert gauges == {"cctv_fleet_nodes": 2, "cctv_fleet_nodes_online": 1,
                      "cctv_fleet_seq_gaps": 3, "cctv_fleet_nodes_with_seq_gaps": 1,
                      "cctv_fleet_nodes_drifting": 1}
    assert "cctv_api_auth_failures_total" in text, "the process's own counters too"
