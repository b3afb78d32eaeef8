"""`cctv up`: the whole system on one machine, for a demo or a first look.

A broker (Mosquitto from the project's mosquitto.conf when installed, else
the embedded amqtt broker), the cloud service on SQLite, one edge node with
a synthetic MJPEG camera, and file storage, all under one data dir. The
services run as child processes exactly as they would in production; this
module only provisions them, watches them and stops them in order (edge
first, so it seals its segments and says goodbye; then cloud; then broker).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from broker.launcher import free_port
from cctv.up_broker import BrokerChoice, LocalBroker, start_broker
from edge_node.synthetic_camera import SyntheticMjpegCamera

logger = logging.getLogger(__name__)

NODE_ID = "site-1"
CAMERA_ID = "demo-cam"
START_TIMEOUT_S = 60.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def port_or_free(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


def _token(data_dir: Path) -> str:
    path = data_dir / "api-token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def _spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Child:
    log = (log_dir / f"{name}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "cctv", *args], env={**os.environ, **env},
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)  # Ctrl-C reaches us; we stop the children in order
    return Child(name, process)


def _wait_healthy(url: str, child: Child, log_dir: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.process.returncode}; "
                               f"see {log_dir / (child.name + '.log')}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{child.name} did not answer {url} within {START_TIMEOUT_S:.0f} s")


def _register_demo(api: str, token: str, camera_url: str) -> None:
    """The demo node and camera, created or brought up to date."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api, headers=headers, timeout=10) as client:
        response = client.post("/api/nodes", json={"node_id": NODE_ID})
        if response.status_code not in (201, 409):
            response.raise_for_status()
        camera = {"camera_id": CAMERA_ID, "node_id": NODE_ID, "name": "Synthetic camera",
                  "url": camera_url, "enabled": True, "transport": "auto"}
        response = client.put(f"/api/cameras/{CAMERA_ID}", json=camera)
        if response.status_code == 404:
            response = client.post("/api/cameras", json=camera)
        response.raise_for_status()


def _stop(child: Child, timeout: float = 30.0) -> None:
    if child.process.poll() is not None:
        return
    child.process.send_signal(signal.SIGTERM)
    try:
        child.process.wait(timeout)
    except subprocess.TimeoutExpired:
        logger.warning("up.kill child=%s reason=did_not_stop_in_%ss", child.name, timeout)
        child.process.kill()
        child.process.wait()


@contextlib.contextmanager
def _interrupts_as_exit() -> Iterator[None]:
    def raise_interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a shell starts background jobs with SIGINT ignored.
    previous = {s: signal.signal(s, raise_interrupt) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_up(data_dir: Path, http_port: int = 0,
           broker_choice: BrokerChoice = BrokerChoice.AUTO) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = data_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    token = _token(data_dir)
    children: list[Child] = []
    with _interrupts_as_exit(), SyntheticMjpegCamera(fps=10) as camera, \
            start_broker(data_dir / "broker", [NODE_ID], broker_choice) as broker:
        try:
            _run(data_dir, log_dir, token, http_port, camera=camera, broker=broker,
                 children=children)
        except KeyboardInterrupt:
            typer_echo("\nstopping...")
        finally:
            for child in reversed(children):  # edge, then cloud
                _stop(child)


def _run(data_dir: Path, log_dir: Path, token: str, http_port: int, *,
         camera: SyntheticMjpegCamera, broker: LocalBroker, children: list[Child]) -> None:
    port = http_port or port_or_free(8000)
    api = f"http://127.0.0.1:{port}"
    storage = (data_dir / "storage").resolve().as_uri()
    cloud = _spawn("cloud", ["cloud"], {
        "CCTV_MQTT_URL": broker.url("cctv-cloud"), "CCTV_DATA_DIR": str(data_dir / "cloud"),
        "CCTV_API_TOKENS": token, "CCTV_HTTP_ADDR": f"127.0.0.1:{port}",
        "CCTV_STORAGE_URL": storage, "CCTV_DATABASE_URL": "",
        "CCTV_MQTT_PROTOCOL": broker.protocol,
    }, log_dir)
    children.append(cloud)
    _wait_healthy(f"{api}/health", cloud, log_dir)
    _register_demo(api, token, camera.url)
    edge_port = port_or_free(8081)
    edge = _spawn("edge", ["edge"], {
        "CCTV_NODE_ID": NODE_ID, "CCTV_MQTT_URL": broker.url(NODE_ID),
        "CCTV_DATA_DIR": str(data_dir / "edge"), "CCTV_STORAGE_URL": storage,
        "CCTV_EDGE_HTTP_ADDR": f"127.0.0.1:{edge_port}", "CCTV_HEARTBEAT_S": "10",
        "CCTV_MQTT_PROTOCOL": broker.protocol,
    }, log_dir)
    children.append(edge)
    summary = {"dashboard": f"{api}/", "api": f"{api}/api", "token": token,
               "broker": broker.public_url, "node_id": NODE_ID, "camera_id": CAMERA_ID,
               "storage": storage, "logs": str(log_dir), "broker_kind": broker.kind}
    (data_dir / "up.json").write_text(json.dumps(summary, indent=2))
    typer_echo(
        f"dashboard  {api}/\n"
        f"API docs   {api}/docs\n"
        f"token      {token}\n"
        f"broker     {broker.public_url} ({broker.kind})\n"
        f"storage    {storage}\n"
        f"logs       {log_dir}\n\n"
        "record the demo camera continuously:\n"
        f"  curl -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' "
        f"-d '{{\"schedule_id\":\"demo\",\"camera_ids\":[\"{CAMERA_ID}\"],"
        f"\"kind\":\"continuous\",\"segment_seconds\":10}}' {api}/api/schedules\n"
        f"  curl -H 'Authorization: Bearer {token}' {api}/api/recordings\n"
        "or trigger 30 s by hand:\n"
        f"  {broker.pub_command(NODE_ID, CAMERA_ID)}\n\n"
        "Ctrl-C stops everything."
    )
    while True:
        for child in children:
            if child.process.poll() is not None:
                raise RuntimeError(f"{child.name} exited with {child.process.returncode}; "
                                   f"see {log_dir / (child.name + '.log')}")
        time.sleep(0.5)


def typer_echo(text: str) -> None:
    print(text, flush=True)  # noqa: T201  # the command's own output
