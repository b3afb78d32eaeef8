"""The `cctv` verbs that manage the fleet over REST (node list|rm, nodes, schedules,
recordings, tail), run as a user runs them, in a subprocess, against a real
`cctv cloud` on SQLite and the session's real Mosquitto. What the fleet reports
reaches the cloud the only way it can: published on the broker by a node's
account. Each way a verb can fail ends with one line and a non-zero exit."""

from __future__ import annotations

import base64
import json
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import google_crc32c
import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker.launcher import free_port
from broker.passwords import list_accounts
from schemas.addresses import MqttUrl
from schemas.ids import new_id
from tests.fixtures.broker import RunningMosquitto, connack_code
from tests.integration.test_cli import (
    assert_one_line_error,
    cctv,
    clean_env,
    parse_env,
    unique,
)

TOKEN = "cli-rest-token"
START_TIMEOUT_S = 30.0

# Every verb that talks to the API, with arguments that would otherwise be valid.
REST_VERBS: list[list[str]] = [
    ["nodes"], ["node", "list"], ["node", "rm", "site-x"],
    ["schedules", "list"], ["schedules", "add", "s-x", "--camera", "c-x", "--kind", "continuous"],
    ["schedules", "rm", "s-x"],
    ["recordings", "list"], ["recordings", "download", "rec-x"],
    ["tail"],
]


def crc32c_text(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


@dataclass
class Cloud:
    url: str
    storage: Path
    mosquitto: RunningMosquitto
    http: httpx.Client
    cwd: Path

    def env(self, **settings: str) -> dict[str, str]:
        return clean_env(CCTV_API_URL=self.url, CCTV_API_TOKEN=TOKEN, **settings)

    def run(self, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
        return cctv(*args, cwd=self.cwd, env=self.env(**settings))

    def node(self, prefix: str, *cameras: str) -> str:
        """A node registered with the cloud, with cameras, and its broker account."""
        node_id = unique(prefix)
        assert self.http.post("/api/nodes", json={"node_id": node_id}).status_code == 201
        for camera_id in cameras:
            response = self.http.post("/api/cameras", json={
                "camera_id": camera_id, "node_id": node_id, "url": "rtsp://10.0.0.9/live"})
            assert response.status_code == 201, response.text
        self.mosquitto.account(node_id)
        return node_id

    def wait_for(self, path: str, predicate: Callable[[Any], bool],
                 timeout: float = 15.0) -> Any:
        """GET `path` until `predicate(json)` holds (ingest is asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.http.get(path)
            if response.status_code == 200 and predicate(response.json()):
                return response.json()
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} never satisfied the condition: {response.text}")
            time.sleep(0.1)


def _clear_session(mosquitto: RunningMosquitto, client_id: str) -> None:
    """Connect with a clean start and no session expiry, so the cloud's persistent
    session (and its share of `$share/cctv-ingest/...`) does not outlive this module."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.username_pw_set("cctv-cloud", mosquitto.account("cctv-cloud"))
    # MQTT 5 without a Session Expiry Interval: the session ends with this connection.
    client.connect(mosquitto.host, mosquitto.port, clean_start=True)
    client.loop_start()
    time.sleep(0.5)
    client.disconnect()
    client.loop_stop()


@pytest.fixture(scope="module")
def cloud(mosquitto: RunningMosquitto,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    root = tmp_path_factory.mktemp("cli-rest")
    storage = root / "storage"
    storage.mkdir()
    port = free_port()
    client_id = f"cctv-cloud-cli-{secrets.token_hex(4)}"
    env = clean_env(
        CCTV_MQTT_URL=mosquitto.url("cctv-cloud"), CCTV_DATA_DIR=str(root / "data"),
        CCTV_API_TOKENS=TOKEN, CCTV_HTTP_ADDR=f"127.0.0.1:{port}",
        CCTV_STORAGE_URL=storage.as_uri(), CCTV_MQTT_CLIENT_ID=client_id)
    log = (root / "cloud.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "cctv", "cloud"], env=env, cwd=root,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, (root / "cloud.log").read_text()
            try:
                if http.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the cloud did not start"
            time.sleep(0.2)
        work = root / "cwd"
        work.mkdir()
        yield Cloud(url, storage, mosquitto, http, work)
    finally:
        http.close()
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()
        _clear_session(mosquitto, client_id)


class Node:
    """Publishes as a node does, with its own account: events numbered from 1."""

    def __init__(self, mosquitto: RunningMosquitto, node_id: str) -> None:
        self.node_id = node_id
        self.seq = 0
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                   client_id=f"{node_id}-{secrets.token_hex(3)}",
                                   protocol=mqtt.MQTTv5)
        self._client.username_pw_set(node_id, mosquitto.account(node_id))
        self._client.connect(mosquitto.host, mosquitto.port)
        self._client.loop_start()

    def publish(self, channel: str, payload: dict[str, Any], *, retain: bool = False) -> None:
        info = self._client.publish(f"cctv/v1/{self.node_id}/{channel}", json.dumps(payload),
                                    qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published()

    def event(self, type_: str, data: dict[str, Any], *, seq: int | None = None) -> None:
        self.seq = seq if seq is not None else self.seq + 1
        self.publish(f"events/{type_.partition('.')[0]}", {
            "event_id": new_id(), "node_id": self.node_id, "seq": self.seq,
            "ts": datetime.now(UTC).isoformat(), "type": type_, "data": data})

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def node_client(cloud: Cloud) -> Iterator[Callable[[str], Node]]:
    made: list[Node] = []

    def make(node_id: str) -> Node:
        made.append(Node(cloud.mosquitto, node_id))
        return made[-1]

    yield make
    for node in made:
        node.close()


def heartbeat(*, backlog: int, cameras_revision: int) -> dict[str, Any]:
    return {
        "ts": datetime.now(UTC).isoformat(), "session": 1, "uptime_s": 5.0, "version": "test",
        "system": {"hostname": "box", "os": "Linux", "ip": "10.0.0.9"},
        "disk_free_bytes": 10**9, "disk_total_bytes": 2 * 10**9,
        "upload_backlog": {"count": backlog, "bytes": backlog * 1_000_000, "oldest_s": 90.0},
        "outbox": {"depth": 0, "oldest_s": 0.0}, "schedules_revision": 0,
        "cameras_revision": cameras_revision, "cameras": []}


# --- failures every REST verb reports the same way -----------------------------------------


@pytest.mark.parametrize("args", REST_VERBS, ids=" ".join)
def test_a_missing_token_names_the_setting(args: list[str], tmp_path: Path) -> None:
    result = cctv(*args, cwd=tmp_path, env=clean_env(CCTV_API_URL="http://127.0.0.1:9"))
    assert_one_line_error(result, "CCTV_API_TOKEN")


@pytest.mark.parametrize("args", REST_VERBS, ids=" ".join)
def test_a_wrong_token_is_one_line_saying_401(args: list[str], cloud: Cloud) -> None:
    result = cctv(*args, cwd=cloud.cwd, env=clean_env(CCTV_API_URL=cloud.url,
                                                       CCTV_API_TOKEN="not-the-token"))
    assert_one_line_error(result, "401", "CCTV_API_TOKEN")
    assert result.returncode == 1
    assert "not-the-token" not in result.stderr


def test_an_unreachable_api_is_one_line_naming_its_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for args in (["nodes"], ["schedules", "list"], ["recordings", "list"], ["tail"]):
        result = cctv(*args, "--api-url", url, "--token", TOKEN, cwd=tmp_path)
        assert_one_line_error(result, "cannot reach the API", url)
        assert result.returncode == 1


def test_a_bad_api_url_names_the_setting(tmp_path: Path) -> None:
    result = cctv("nodes", cwd=tmp_path, env=clean_env(CCTV_API_URL="ftp://example",
                                                      CCTV_API_TOKEN=TOKEN))
    assert_one_line_error(result, "CCTV_API_URL", "ftp://example")


def test_a_usage_error_is_one_line_too(tmp_path: Path) -> None:
    result = cctv("schedules", "add", "s", "--duration", "ten", cwd=tmp_path)
    assert_one_line_error(result, "--duration")
    result = cctv("node", "rm", cwd=tmp_path)
    assert_one_line_error(result, "node_ids")


# --- nodes -----------------------------------------------------------------------------------


def test_node_list_shows_presence_heartbeat_drift_backlog_and_gaps(
        cloud: Cloud, node_client: Callable[[str], Node]) -> None:
    node_id = cloud.node("list", unique("cam"))  # a camera: cameras revision 1 desired
    quiet_id = cloud.node("quiet")
    node = node_client(node_id)
    node.publish("status", {"state": "online", "session": 1,
                            "ts": datetime.now(UTC).isoformat(), "version": "test"},
                 retain=True)
    node.publish("heartbeat", heartbeat(backlog=3, cameras_revision=0))
    camera = {"camera_id": "c", "error": "lost"}
    node.event("camera.offline", camera, seq=1)
    node.event("camera.offline", camera, seq=3)  # seq 2 never arrives: one gap
    cloud.wait_for(f"/api/nodes/{node_id}",
                   lambda n: n["online"] and n["seq_gaps"] == 1 and n["last_heartbeat"])

    table = cloud.run("node", "list", "--limit", "1000")
    assert table.returncode == 0, table.stderr
    (line,) = [row for row in table.stdout.splitlines() if row.split()[:1] == [node_id]]
    assert line.split()[1] == "online"
    assert "s ago" in line  # heartbeat age, seconds old
    assert "cameras 0/1" in line  # drift: applied 0 of desired 1
    assert "3 (2.9 MiB, oldest 1m)" in line  # the upload backlog
    assert line.split()[-1] == "1"  # seq gaps
    (quiet,) = [row for row in table.stdout.splitlines() if row.split()[:1] == [quiet_id]]
    assert quiet.split()[1:3] == ["offline", "never"]

    listed = json.loads(cloud.run("node", "list", "--json", "--limit", "1000").stdout)
    mine = {n["node_id"]: n for n in listed["items"]}
    assert mine[node_id]["upload_backlog"]["count"] == 3
    assert listed["total"] == len(listed["items"])

    online = json.loads(cloud.run("node", "list", "--online", "--json", "--limit", "1000").stdout)
    assert node_id in {n["node_id"] for n in online["items"]}
    assert quiet_id not in {n["node_id"] for n in online["items"]}
    offline = json.loads(cloud.run("nodes", "--offline", "--json", "--limit", "1000").stdout)
    assert quiet_id in {n["node_id"] for n in offline["items"]}
    assert node_id not in {n["node_id"] for n in offline["items"]}

    limited = cloud.run("nodes", "--limit", "1")
    assert limited.returncode == 0, limited.stderr
    assert f"1 of {listed['total']} nodes" in limited.stdout


def test_node_rm_removes_the_node_and_its_broker_account(cloud: Cloud) -> None:
    mosquitto = cloud.mosquitto
    node_id = unique("gone")
    added = cctv("node", "add", node_id, cwd=cloud.cwd, env=clean_env(
        CCTV_BROKER_PASSWORD_FILE=str(mosquitto.password_file),
        CCTV_BROKER_PUBLIC_URL=f"mqtt://127.0.0.1:{mosquitto.port}"))
    assert added.returncode == 0, added.stderr
    (env,) = parse_env(added.stdout)
    password = MqttUrl.parse(env["CCTV_MQTT_URL"]).password
    assert password is not None
    mosquitto.broker.reload()
    mosquitto.wait_accepts(node_id, password)
    assert cloud.http.post("/api/nodes", json={"node_id": node_id}).status_code == 201

    removed = cloud.run("node", "rm", node_id, "--broker-pid-file",
                        str(mosquitto.broker.paths.pid_file),
                        CCTV_BROKER_PASSWORD_FILE=str(mosquitto.password_file))
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == f"{node_id}: removed, broker account removed"
    assert cloud.http.get(f"/api/nodes/{node_id}").status_code == 404
    assert node_id not in list_accounts(mosquitto.password_file)
    deadline = time.monotonic() + 5
    while connack_code(mosquitto.host, mosquitto.port, node_id, password) == 0:
        assert time.monotonic() < deadline, "the broker still accepts the removed node"
        time.sleep(0.05)

    again = cloud.run("node", "rm", node_id)
    assert_one_line_error(again, node_id, "404")
    assert again.returncode == 1
    assert_one_line_error(cloud.run("node", "rm", "Not/An/Id"), "Not/An/Id")


# --- schedules -------------------------------------------------------------------------------


def test_schedules_add_every_kind_list_replace_and_rm(cloud: Cloud, tmp_path: Path) -> None:
    front, back = unique("front"), unique("back")
    cloud.node("sched", front, back)
    ids = {kind: unique(kind) for kind in ("daily", "once", "weekly", "cron", "always", "file")}
    adds = [
        [ids["daily"], "--camera", front, "--camera", back, "--kind", "daily",
         "--start", "22:00", "--end", "06:00", "--tz", "Europe/London"],
        [ids["once"], "--camera", front, "--kind", "once", "--start", "2026-12-01T20:00:00Z",
         "--end", "2026-12-01T22:30:00Z"],
        [ids["weekly"], "--camera", back, "--kind", "weekly", "--days", "mon,tue",
         "--start", "08:00", "--end", "18:00", "--tz", "America/New_York"],
        [ids["cron"], "--camera", front, "--kind", "cron", "--expression", "0 * * * *",
         "--duration", "600", "--segment-seconds", "30"],
        [ids["always"], "--camera", back, "--kind", "continuous", "--disabled"],
    ]
    for args in adds:
        result = cloud.run("schedules", "add", *args)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stdout.strip() == f"added schedule {args[0]}"
    document = tmp_path / "schedule.json"
    document.write_text(json.dumps({"schedule_id": ids["file"], "camera_ids": [front],
                                    "kind": "continuous", "segment_seconds": 10}))
    from_file = cloud.run("schedules", "add", "--file", str(document), "--json")
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["segment_seconds"] == 10

    listed = json.loads(cloud.run("schedules", "list", "--json", "--limit", "1000").stdout)
    stored = {s["schedule_id"]: s for s in listed["items"]}
    assert set(ids.values()) <= set(stored)
    assert stored[ids["daily"]] == {
        "schedule_id": ids["daily"], "camera_ids": [front, back], "kind": "daily",
        "tz": "Europe/London", "enabled": True, "segment_seconds": 60,
        "start_time": "22:00:00", "end_time": "06:00:00"}
    assert stored[ids["once"]]["start"] == "2026-12-01T20:00:00Z"
    assert stored[ids["weekly"]]["days"] == ["mon", "tue"]
    assert (stored[ids["cron"]]["expression"], stored[ids["cron"]]["duration_s"],
            stored[ids["cron"]]["segment_seconds"]) == ("0 * * * *", 600, 30)
    assert stored[ids["always"]]["enabled"] is False

    table = cloud.run("schedules", "list", "--limit", "1000")
    assert table.returncode == 0, table.stderr
    (daily_row,) = [r for r in table.stdout.splitlines() if r.split()[:1] == [ids["daily"]]]
    assert "22:00-06:00 Europe/London" in daily_row
    assert f"{front},{back}" in daily_row

    duplicate = cloud.run("schedules", "add", ids["always"], "--camera", back,
                          "--kind", "continuous")
    assert_one_line_error(duplicate, "409", "--replace")
    replaced = cloud.run("schedules", "add", ids["always"], "--camera", back,
                         "--kind", "continuous", "--segment-seconds", "5", "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert cloud.http.get(f"/api/schedules/{ids['always']}").json()["segment_seconds"] == 5

    gone = cloud.run("schedules", "rm", ids["once"], ids["file"])
    assert gone.returncode == 0, gone.stderr
    for schedule_id in (ids["once"], ids["file"]):
        assert cloud.http.get(f"/api/schedules/{schedule_id}").status_code == 404
    assert_one_line_error(cloud.run("schedules", "rm", ids["once"]), "404", ids["once"])


@pytest.mark.parametrize(("options", "names"), [
    (["--kind", "daily", "--start", "25:00", "--end", "06:00"], ["start_time", "--start"]),
    (["--kind", "weekly", "--days", "mon,funday", "--start", "08:00", "--end", "09:00"],
     ["days", "--days"]),
    (["--kind", "weekly", "--start", "08:00", "--end", "09:00"], ["days", "required"]),
    (["--kind", "cron", "--expression", "61 * * * *", "--duration", "60"],
     ["expression", "--expression"]),
    (["--kind", "cron", "--expression", "0 * * * *"], ["duration_s", "--duration"]),
    (["--kind", "once", "--start", "2026-12-01T20:00:00", "--end", "2026-12-01T21:00:00Z"],
     ["start", "--start"]),
    (["--kind", "once", "--start", "2026-12-01T20:00:00Z", "--end", "2026-12-01T19:00:00Z"],
     ["end", "after start"]),
    (["--kind", "hourly"], ["kind", "--kind"]),
    (["--kind", "continuous", "--segment-seconds", "1"], ["segment_seconds"]),
    (["--kind", "continuous", "--tz", "Mars/Olympus"], ["tz", "Mars/Olympus"]),
    (["--kind", "daily", "--start", "08:00", "--end", "09:00", "--expression", "0 * * * *"],
     ["expression", "daily"]),
    (["--start", "08:00"], ["kind", "--kind"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_schedules_add_names_the_invalid_field_and_sends_nothing(
        options: list[str], names: list[str], cloud: Cloud) -> None:
    schedule_id = unique("bad")
    result = cloud.run("schedules", "add", schedule_id, "--camera", "cam-1", *options)
    assert_one_line_error(result, "invalid schedule" if "--kind" in options else "kind",
                          *names)
    assert result.returncode == 2
    assert cloud.http.get(f"/api/schedules/{schedule_id}").status_code == 404


def test_schedules_add_from_a_file_names_its_bad_field(cloud: Cloud, tmp_path: Path) -> None:
    document = tmp_path / "bad.json"
    document.write_text(json.dumps({"schedule_id": unique("f"), "camera_ids": ["cam-1"],
                                    "kind": "continuous", "colour": "red"}))
    assert_one_line_error(cloud.run("schedules", "add", "--file", str(document)), "colour")
    document.write_text("{not json")
    assert_one_line_error(cloud.run("schedules", "add", "--file", str(document)),
                          str(document), "not JSON")
    assert_one_line_error(cloud.run("schedules", "add", "--file", str(document), "--kind",
                                    "daily"), "--kind")


def test_schedules_add_for_an_unknown_camera_is_the_api_s_422(cloud: Cloud) -> None:
    result = cloud.run("schedules", "add", unique("s"), "--camera", unique("nocam"),
                       "--kind", "continuous")
    assert_one_line_error(result, "422", "camera_ids")
    assert result.returncode == 1


# --- recordings ------------------------------------------------------------------------------


def test_recordings_list_and_download_verify_every_crc32c(
        cloud: Cloud, node_client: Callable[[str], Node], tmp_path: Path) -> None:
    camera_id = unique("door")
    node_id = cloud.node("rec", camera_id)
    node = node_client(node_id)
    recording_id, started = new_id(), datetime.now(UTC) - timedelta(minutes=2)
    node.event("recording.started", {"recording_id": recording_id, "camera_id": camera_id,
                                     "trigger": "manual", "command_id": new_id()})
    files: dict[str, bytes] = {}
    for n in range(2):
        segment_id = new_id()
        data = secrets.token_bytes(200_000 + n * 50_000)
        path = cloud.storage / node_id / camera_id / f"{segment_id}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[segment_id] = data
        start = started + timedelta(seconds=60 * n)
        node.event("recording.segment", {
            "recording_id": recording_id, "segment_id": segment_id, "camera_id": camera_id,
            "start": start.isoformat(), "end": (start + timedelta(seconds=60)).isoformat(),
            "bytes": len(data), "crc32c": crc32c_text(data), "container": "mp4",
            "codec": "h264", "width": 640, "height": 480, "frames": 1500, "lost_packets": 0})
        node.event("upload.completed", {"segment_id": segment_id, "uri": path.as_uri(),
                                        "bytes": len(data), "crc32c": crc32c_text(data)})
    cloud.wait_for(f"/api/recordings/{recording_id}", lambda r: len(r["segments"]) == 2 and all(
        s["upload_state"] == "uploaded" for s in r["segments"]))

    table = cloud.run("recordings", "list", "--node", node_id, "--since", "1h")
    assert table.returncode == 0, table.stderr
    (row,) = [r for r in table.stdout.splitlines() if recording_id in r]
    assert row.split()[1:4] == [node_id, camera_id, "manual"]
    assert "2/2" in row  # both segments uploaded
    listed = json.loads(cloud.run("recordings", "list", "--camera", camera_id, "--json").stdout)
    assert [r["recording_id"] for r in listed["items"]] == [recording_id]
    later = json.loads(cloud.run("recordings", "list", "--node", node_id, "--since",
                                 (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                                 "--json").stdout)
    assert later["items"] == []
    assert_one_line_error(cloud.run("recordings", "list", "--since", "yesterday"), "--since")

    whole = cloud.run("recordings", "download", recording_id, "--out", str(tmp_path / "all"))
    assert whole.returncode == 0, whole.stderr
    paths = [Path(p) for p in whole.stdout.split()]
    assert len(paths) == 2
    assert sorted(p.read_bytes() for p in paths) == sorted(files.values())
    for path in paths:
        assert path.name.startswith(f"{camera_id}_")
        assert path.suffix == ".mp4"

    first, second = list(files)
    one = cloud.run("recordings", "download", "--segment", second, "--out",
                    str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    (path,) = [Path(p) for p in one.stdout.split()]
    assert path.read_bytes() == files[second]
    assert second in path.name

    stored = cloud.storage / node_id / camera_id / f"{first}.mp4"
    corrupt = bytearray(files[first])
    corrupt[1000] ^= 0xFF  # one bit-flipped byte in storage
    stored.write_bytes(bytes(corrupt))
    bad = cloud.run("recordings", "download", "--segment", first, "--out",
                    str(tmp_path / "bad"))
    assert_one_line_error(bad, "crc32c mismatch", first, crc32c_text(files[first]))
    assert bad.returncode == 1
    assert list((tmp_path / "bad").iterdir()) == [], "no corrupt file is left behind"

    unknown = cloud.run("recordings", "download", "rec-nobody-made", "--out", str(tmp_path))
    assert_one_line_error(unknown, "404", "no recording rec-nobody-made")
    assert unknown.returncode == 1
    assert_one_line_error(cloud.run("recordings", "download", "--segment", "seg-nobody",
                                    "--node", node_id, "--out", str(tmp_path)),
                          "no segment seg-nobody")
    assert_one_line_error(cloud.run("recordings", "download", "--out", str(tmp_path)),
                          "RECORDING_ID")


# --- tail ------------------------------------------------------------------------------------


def _lines(stream: IO[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


@pytest.mark.parametrize("json_out", [True, False], ids=["json", "lines"])
def test_tail_prints_what_is_published_while_it_runs(
        json_out: bool, cloud: Cloud, node_client: Callable[[str], Node]) -> None:
    node_id = cloud.node("tail")
    other_id = cloud.node("tail-other")
    args = ["--node", node_id, "--type", "camera.offline"] + (["--json"] if json_out else [])
    process = subprocess.Popen([sys.executable, "-m", "cctv", "tail", *args],
                               env=cloud.env(), cwd=cloud.cwd, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stderr is not None
    stdout, stderr = _lines(process.stdout), _lines(process.stderr)
    try:
        assert "following" in stderr.get(timeout=15)  # the stream is open
        node, other = node_client(node_id), node_client(other_id)
        other.event("camera.offline", {"camera_id": "c", "error": "another node"})
        node.event("camera.online", {"camera_id": "c"})  # another type
        node.event("camera.offline", {"camera_id": "c", "error": "cable cut"})
        line = stdout.get(timeout=15)
        if json_out:
            item = json.loads(line)
            assert (item["node_id"], item["type"], item["seq"]) == (node_id, "camera.offline", 2)
            assert (item["data"]["camera_id"], item["data"]["error"]) == ("c", "cable cut")
        else:
            assert f"{node_id} camera.offline #2" in line
            assert "error=cable cut" in line
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        code = process.wait(15)
    assert code == 0
    time.sleep(0.2)  # let the readers drain the closed pipes
    assert stdout.empty(), "only the wanted node's wanted type was printed"
    assert stderr.empty(), "Ctrl-C ends it without a word (no traceback)"


def test_tail_with_a_bad_node_id_names_it(cloud: Cloud) -> None:
    assert_one_line_error(cloud.run("tail", "--node", "Bad_Id"), "--node", "Bad_Id")

