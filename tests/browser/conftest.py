"""Fixtures for the dashboard's browser tests.

The whole system runs once per module exactly as a user starts it (`cctv up`
with Mosquitto), plus one H.264 RTSP camera on the demo node: the demo's
synthetic camera is recorded as MPEG-4 Part 2, which no browser decodes, so
playback is proven on the H.264 one. Debian's chromium is driven by
Playwright (its own browser download is never used). Every test leaves a
screenshot in tests/browser/artifacts/, pass or fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from broker.launcher import free_port
from broker.passwords import signal_reload
from broker.provisioning import provision_nodes
from tests.fixtures.media import RtspCamera, RtspServer, encode_test_clip

ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS = Path(__file__).parents[2] / "docs"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
VIEWPORT = ViewportSize(width=1440, height=900)
START_TIMEOUT_S = 90
H264_CAMERA = "lobby-cam"
SECOND_NODE = "browser-site-2"
SECOND_NODE_KEEPALIVE_S = 5

expect.set_options(timeout=10_000)


@dataclass
class System:
    """A running `cctv up` with its extras: where it serves, its token, its
    demo node and camera, the H.264 camera beside it, a second edge node."""

    url: str
    token: str
    node_id: str
    camera_id: str
    broker_url: str
    data_dir: Path
    api: httpx.Client
    h264_camera: str = H264_CAMERA
    second_node: str = SECOND_NODE
    second_edge: subprocess.Popen[bytes] | None = None

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.data_dir / "logs" / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _stop(process: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


def _wait_for_up(process: subprocess.Popen[bytes], data_dir: Path) -> dict[str, str]:
    summary_file = data_dir / "up.json"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not summary_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"cctv up did not start:\n{(data_dir / 'up.out').read_text()[-3000:]}")
        time.sleep(0.2)
    summary: dict[str, str] = json.loads(summary_file.read_text())
    return summary


def _start_second_edge(system: System, work_dir: Path) -> subprocess.Popen[bytes]:
    """Provision a node's broker account, register it, run its edge with a
    short keepalive (it has no camera: it only comes and goes)."""
    broker_dir = system.data_dir / "broker"
    env_text = provision_nodes(broker_dir / "passwd", [SECOND_NODE], system.broker_url)
    signal_reload(broker_dir / "mosquitto.pid")
    system.api.post("/api/nodes", json={"node_id": SECOND_NODE}).raise_for_status()
    env = dict(line.split("=", 1) for line in env_text[SECOND_NODE].splitlines() if line)
    with (work_dir / "edge.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "cctv", "edge"], stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, cwd=work_dir, env={
                **os.environ, **env, "CCTV_DATA_DIR": str(work_dir / "edge"),
                "CCTV_STORAGE_URL": (work_dir / "storage").as_uri(),
                "CCTV_EDGE_HTTP_ADDR": f"127.0.0.1:{free_port()}", "CCTV_MQTT_PROTOCOL": "5",
                "CCTV_KEEPALIVE_S": str(SECOND_NODE_KEEPALIVE_S), "CCTV_HEARTBEAT_S": "2"})


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory,
           rtsp_server: RtspServer) -> Iterator[System]:
    """`cctv up` plus an H.264 RTSP camera on its node (recorded by stream
    copy) and a second edge node; the slow parts overlap `cctv up` starting."""
    data_dir = tmp_path_factory.mktemp("browser-up")
    with (data_dir / "up.out").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cctv", "up", "--data-dir", str(data_dir),
             "--http-port", str(free_port()), "--broker", "mosquitto"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    camera: RtspCamera | None = None
    system: System | None = None
    try:
        # A short clip (it loops): encoding the usual 20 s one takes about as long.
        clip = encode_test_clip(data_dir.parent / f"{data_dir.name}-lobby.mp4", seconds=6)
        camera = RtspCamera(rtsp_server, "browser-lobby", clip)
        camera.start()
        summary = _wait_for_up(process, data_dir)
        url = summary["dashboard"]
        with httpx.Client(base_url=url.rstrip("/"), timeout=15,
                          headers={"Authorization": f"Bearer {summary['token']}"}) as api:
            system = System(url=url, token=summary["token"], node_id=summary["node_id"],
                            camera_id=summary["camera_id"], broker_url=summary["broker"],
                            data_dir=data_dir, api=api)
            api.post("/api/cameras", json={
                "camera_id": H264_CAMERA, "node_id": system.node_id,
                "name": "Lobby (H.264 RTSP)", "url": camera.url, "enabled": True,
                "transport": "udp"}).raise_for_status()
            system.second_edge = _start_second_edge(
                system, tmp_path_factory.mktemp("browser-second-edge"))
            yield system
    finally:
        if system is not None and system.second_edge is not None:
            system.second_edge.kill()  # also ends a stopped (SIGSTOP) process
            system.second_edge.wait()
        _stop(process, signal.SIGINT, 45)
        if camera is not None:
            camera.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed (apt-get install chromium; "
                    "`make test` installs it)", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh tab (its own sessionStorage); its screenshot is saved at the end."""
    context = browser.new_context(viewport=VIEWPORT)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        try:
            tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        finally:
            context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def sign_in(page: Page, system: System, path: str = "") -> None:
    page.goto(system.url + path)
    page.get_by_label("API token").fill(system.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#live-state")).to_have_text("live")


def save_screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """A named screenshot in the artifacts; also in docs/ when
    CCTV_DOCS_SCREENSHOTS=1 (so a plain test run leaves the tree unchanged)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("CCTV_DOCS_SCREENSHOTS") == "1":
        shutil.copyfile(path, DOCS / f"{name}.png")
    return path
