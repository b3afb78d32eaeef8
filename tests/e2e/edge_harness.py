"""Runs a real `cctv edge` process against the test broker and watches what
it publishes, as the cloud would (paho, the cctv-cloud account)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker.launcher import free_port
from schemas.codec import encode
from schemas.status import EventAck
from schemas.topics import Channel, TopicTable

TOPICS = TopicTable()


class CloudObserver:
    """Subscribes to a node's events and status, acks events like the cloud,
    and publishes its desired state."""

    def __init__(self, host: str, port: int, password: str, node_id: str) -> None:
        self.node_id = node_id
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self.acked = 0
        self.ack_events = True
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._client.username_pw_set("cctv-cloud", password)
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.subscribe([(TOPICS.subscription(c, node_id), 1) for c in (
            Channel.EVENTS, Channel.STATUS, Channel.STATE, Channel.REPLIES, Channel.HEARTBEAT)])
        self._client.loop_start()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        if not message.payload:
            return
        body = json.loads(message.payload)
        self.messages.put((message.topic, body))

    def publish(self, channel: Channel, payload: bytes, *, retain: bool = True) -> None:
        self._client.publish(TOPICS.topic(self.node_id, channel), payload, qos=1,
                             retain=retain).wait_for_publish(5)

    def wait_for(self, predicate: Callable[[str, dict[str, Any]], bool],
                 timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                topic, body = self.messages.get(timeout=remaining)
            except queue.Empty:
                break
            if "/events/" in topic:
                self.events.append(body)
                if self.ack_events and body["seq"] == self.acked + 1:
                    self.acked = body["seq"]
                    self.publish(Channel.ACKS, encode(EventAck(upto_seq=self.acked)),
                                 retain=False)
            if predicate(topic, body):
                return body
        raise AssertionError(f"nothing matched in {timeout} s; events: "
                             f"{[e['type'] for e in self.events]}")

    def wait_event(self, type_: str, timeout: float,
                   where: Callable[[dict[str, Any]], bool] = lambda _: True) -> dict[str, Any]:
        return self.wait_for(lambda t, b: "/events/" in t and b["type"] == type_ and where(b),
                             timeout)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


class EdgeProcess:
    def __init__(self, data_dir: Path, node_id: str, mqtt_url: str, storage: Path) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, "CCTV_NODE_ID": node_id, "CCTV_MQTT_URL": mqtt_url,
                    "CCTV_DATA_DIR": str(data_dir), "CCTV_STORAGE_URL": storage.as_uri(),
                    "CCTV_HEARTBEAT_S": "2", "CCTV_KEEPALIVE_S": "5", "CCTV_LOG_LEVEL": "INFO",
                    "CCTV_EDGE_HTTP_ADDR": f"127.0.0.1:{free_port()}"}
        self.api = "http://" + self.env["CCTV_EDGE_HTTP_ADDR"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, **env: str) -> None:
        log = (self.data_dir.parent / f"{self.data_dir.name}.log").open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "cctv", "edge"],
                                        env={**self.env, **env}, stdout=log,
                                        stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return (self.data_dir.parent / f"{self.data_dir.name}.log").read_text()
