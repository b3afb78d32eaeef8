"""Runs real `cctv cloud` processes for end-to-end tests, a Mosquitto of a
test's own for them, and simulated nodes that publish as a node would (paho,
MQTT 5, the node's own account).

A cloud process keeps a persistent MQTT session and joins the shared event
subscription, so after it stops the broker may go on queueing a share of the
events for it: tests that run a cloud therefore get their own broker
(`OwnBroker`), or remove the session afterwards (`forget_session`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client.parser import text_string_to_metric_families

from broker.dev_broker import BrokerStartError
from broker.launcher import MosquittoBroker, free_port
from broker.passwords import RESERVED_ACCOUNTS, add_accounts
from broker.provisioning import node_mqtt_url
from schemas.codec import encode
from schemas.commands import CommandReply
from schemas.events import CameraPresence, Event, event_kind, make_event
from schemas.ids import new_id, utc_now
from schemas.topics import Channel, TopicTable
from tests.fixtures.broker import connack_code

TOPICS = TopicTable()
TOKEN = "e2e-cloud-token"


def wait_until(condition: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.2) -> Any:
    """Poll `condition` until it returns something truthy; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class OwnBroker:
    """A Mosquitto from mosquitto.conf for one test, with accounts made on demand."""

    def __init__(self) -> None:
        # Straight under the system temp dir: the `mosquitto` user must reach it.
        self.run_dir = Path(tempfile.mkdtemp(prefix="cctv-cloud-e2e-"))
        self.passwords: dict[str, str] = {}
        self.broker: MosquittoBroker | None = None

    @property
    def host(self) -> str:
        assert self.broker is not None
        return self.broker.host

    @property
    def port(self) -> int:
        assert self.broker is not None
        return self.broker.port

    def start(self) -> None:
        self.passwords.update(add_accounts(self.run_dir / "passwd", RESERVED_ACCOUNTS))
        for attempt in range(3):
            broker = MosquittoBroker(self.run_dir, port=free_port())
            try:
                broker.start()
            except BrokerStartError:
                if attempt == 2:
                    raise
                continue
            self.broker = broker
            return

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def account(self, username: str) -> str:
        """The password of `username`, creating the account on first use."""
        if username not in self.passwords:
            assert self.broker is not None
            password = add_accounts(self.broker.password_file, [username])[username]
            self.broker.reload()
            wait_until(lambda: connack_code(self.host, self.port, username, password) == 0,
                       5, f"the broker to accept {username}", interval=0.02)
            self.passwords[username] = password
        return self.passwords[username]

    def url(self, username: str) -> str:
        return node_mqtt_url(f"mqtt://{self.host}:{self.port}", username,
                             self.account(username))


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of `name` (a counter's `_total`) matching `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                total += sample.value
    return total


class CloudProcess:
    """One `cctv cloud` subprocess and an HTTP client for its API."""

    def __init__(self, workdir: Path, mqtt_url: str, *, client_id: str | None = None,
                 database_url: str | None = None, **env: str) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "CCTV_MQTT_URL": mqtt_url, "CCTV_DATA_DIR": str(workdir),
                    "CCTV_API_TOKENS": TOKEN, "CCTV_HTTP_ADDR": f"127.0.0.1:{self.port}",
                    "CCTV_MQTT_CLIENT_ID": client_id or f"cctv-cloud-{secrets.token_hex(4)}",
                    "CCTV_LOG_LEVEL": "INFO", **env}
        if database_url is not None:
            self.env["CCTV_DATABASE_URL"] = database_url
        self.client_id = self.env["CCTV_MQTT_CLIENT_ID"]
        self.log_path = workdir / "cloud.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.api = httpx.Client(base_url=self.base_url,
                                headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    @property
    def database(self) -> Path:
        """The SQLite file, when no database URL was given."""
        return self.workdir / "cloud.db"

    def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            # cwd: a .env file in the repository must not configure the test's cloud.
            self.process = subprocess.Popen([sys.executable, "-m", "cctv", "cloud"],
                                            env=self.env, cwd=self.workdir, stdout=log,
                                            stderr=subprocess.STDOUT)
        try:
            wait_until(self._healthy, timeout, "the cloud to serve")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"cctv cloud exited with {self.process.returncode}\n"
                                 f"{self.log_tail()}")
        # The line is printed once this process serves: a free port taken by
        # someone else must not pass for our /health.
        if f"cloud service on {self.base_url}/" not in self.log_text():
            return False
        try:
            return self.api.get("/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_subscribed(self, broker: OwnBroker, timeout: float = 10.0) -> None:
        """Return once this process receives the fleet's events: a malformed probe
        event (refused and counted, never stored) is sent until it shows up in
        this process's own metrics. Without this, events published between the
        cloud's CONNACK and its SUBACK would find no subscriber."""
        prober = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                             client_id=f"probe-{secrets.token_hex(4)}")
        prober.username_pw_set("cctv-cloud", broker.account("cctv-cloud"))
        prober.connect(broker.host, broker.port)
        prober.loop_start()
        try:
            before = self.metric("cctv_ingest_rejected_total", reason="payload")

            def seen() -> bool:
                prober.publish(TOPICS.topic("probe", Channel.EVENTS, "camera"), b"{}", qos=1)
                return self.metric("cctv_ingest_rejected_total", reason="payload") > before

            try:
                wait_until(seen, timeout, f"{self.client_id} to subscribe", interval=0.1)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{self.log_tail()}") from None
        finally:
            prober.loop_stop()
            prober.disconnect()

    def metrics(self) -> str:
        response = self.api.get("/metrics")
        assert response.status_code == 200
        return response.text

    def metric(self, name: str, **labels: str) -> float:
        return metric(self.metrics(), name, **labels)

    def get(self, path: str, **params: Any) -> Any:
        response = self.api.get(path, params=params)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    def post(self, path: str, body: dict[str, Any], expect: int = 201) -> Any:
        response = self.api.post(path, json=body)
        assert response.status_code == expect, (path, response.status_code, response.text)
        return response.json()

    def put(self, path: str, body: dict[str, Any]) -> Any:
        response = self.api.put(path, json=body)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    def node(self, node_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.get(f"/api/nodes/{node_id}")
        return body

    def node_if_known(self, node_id: str) -> dict[str, Any] | None:
        response = self.api.get(f"/api/nodes/{node_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def stop(self) -> None:
        self.api.close()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_text() or "(no cloud log)"
        return "\n".join(text.splitlines()[-lines:])


def forget_session(host: str, port: int, username: str, password: str, client_id: str) -> None:
    """Remove a stopped client's persistent session (and so its subscriptions) from
    the broker: connect with its id, clean start, no session expiry, and leave."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    client.connect(host, port, clean_start=True)
    client.loop_start()
    try:
        wait_until(client.is_connected, 5, f"{client_id} to connect")
    finally:
        client.disconnect()
        client.loop_stop()


class SimulatedNode:
    """Publishes events as a node would (its account, MQTT 5, QoS 1) and
    records the EventAcks the cloud sends it."""

    def __init__(self, broker: OwnBroker, node_id: str, client_id: str | None = None) -> None:
        self.node_id = node_id
        self.acks: list[int] = []
        self.seq = 0
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=client_id or node_id)
        self.client.username_pw_set(node_id, broker.account(node_id))
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(broker.host, broker.port, clean_start=True)
        self.client.loop_start()
        wait_until(self._subscribed.is_set, 5, f"{node_id} to subscribe to its acks")

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode,
                    _p: Any) -> None:
        if not rc.is_failure:
            client.subscribe(TOPICS.topic(self.node_id, Channel.ACKS), qos=1)

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, _codes: Any, _p: Any) -> None:
        self._subscribed.set()

    def answer_commands(self) -> None:
        """From now on reply ok to every command, as a node does (from paho's thread)."""
        self._subscribed.clear()
        self.client.subscribe(TOPICS.topic(self.node_id, Channel.COMMANDS), qos=1)
        wait_until(self._subscribed.is_set, 5, f"{self.node_id} to subscribe to commands")

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        # Only hand over or answer; nothing here may raise.
        if message.topic == TOPICS.topic(self.node_id, Channel.COMMANDS):
            try:
                command_id = str(json.loads(message.payload)["command_id"])
            except (ValueError, KeyError, TypeError):
                return
            reply = CommandReply(command_id=command_id, ok=True, result={"answered": True})
            self.client.publish(TOPICS.topic(self.node_id, Channel.REPLIES), encode(reply),
                                qos=1)
            return
        try:
            upto = int(json.loads(message.payload)["upto_seq"])
        except (ValueError, KeyError, TypeError):
            return
        with self._cond:
            self.acks.append(upto)
            self._cond.notify_all()

    def next_event(self, ts: datetime | None = None) -> Event:
        """A new `camera.online` event with the next seq."""
        self.seq += 1
        return make_event("camera.online", event_id=new_id(), node_id=self.node_id,
                          seq=self.seq, ts=ts or utc_now(),
                          data=CameraPresence(camera_id="cam-1", fps=10.0))

    def publish_raw(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), f"broker did not take {topic}"

    def publish(self, events: Iterable[Event], *, wait: bool = True) -> list[mqtt.MQTTMessageInfo]:
        infos = [self.client.publish(TOPICS.topic(self.node_id, Channel.EVENTS,
                                                  event_kind(e)), encode(e), qos=1)
                 for e in events]
        if wait:
            for info in infos:
                info.wait_for_publish(30)
                assert info.is_published()
        return infos

    def clear_acks(self) -> None:
        with self._cond:
            self.acks.clear()

    def wait_ack(self, upto: int, timeout: float = 15.0) -> int:
        """Wait for an EventAck of at least `upto`; the highest one received."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self.acks) and max(self.acks) >= upto, timeout)
            return max(self.acks, default=0)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()



class StatusWatcher:
    """Notes when each NodeStatus of one node reaches a subscriber (the cctv-cloud
    account), to tell the broker's share of a delay from the cloud's."""

    def __init__(self, broker: OwnBroker, node_id: str) -> None:
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self._cond = threading.Condition()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                   client_id=f"watch-{secrets.token_hex(4)}")
        self._client.username_pw_set("cctv-cloud", broker.account("cctv-cloud"))
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port, clean_start=True)
        self._client.subscribe(TOPICS.topic(node_id, Channel.STATUS), qos=1)
        self._client.loop_start()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        with self._cond:
            self.seen.append((time.monotonic(), body))
            self._cond.notify_all()

    def wait_offline(self, after: float, timeout: float) -> float:
        """When an `offline` status arrived after the monotonic time `after`."""
        def found() -> float | None:
            return next((t for t, body in self.seen
                         if t >= after and body.get("state") == "offline"), None)

        with self._cond:
            self._cond.wait_for(lambda: found() is not None, timeout)
            when = found()
        assert when is not None, f"no offline status within {timeout} s"
        return when

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
