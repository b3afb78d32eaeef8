"""Simulated edge nodes for the cloud benchmarks, and the plumbing the benchmark
scripts share (children speaking JSON lines, the cloud account's watchers, the
entry point).

A simulated node does on the wire what edge_node/mqtt_link.py and
edge_node/service.py do: it connects as its own account with client id = node
id, a persistent session (clean start off, the edge node's session expiry),
keepalive K and a Last Will of its retained `NodeStatus` offline carrying its
session and `keepalive_s`; it subscribes to its own schedules, cameras,
commands and acks, publishes its retained `NodeStatus` online (with
`keepalive_s`, so the cloud shows it offline once silent for 1.5 x K) and its
retained `ReportedState`, then heartbeats at least once per keepalive. All
QoS 1. What it sends is built from the contract's own models (schemas/), so a
payload the cloud would refuse fails here first.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from bench.cloud_harness import CLOUD_ACCOUNT, Broker, die_with_parent
from bench.mqtt_wire import MessageHandler, MqttConnection, Will, connect_packet, open_connection
from edge_node.mqtt_link import SESSION_EXPIRY_S, SUBSCRIBED
from schemas.codec import encode
from schemas.ids import utc_now
from schemas.status import (
    CameraHealth,
    Heartbeat,
    NodeStatus,
    OutboxInfo,
    ReportedState,
    SystemInfo,
    UploadBacklog,
)
from schemas.topics import Channel, TopicTable

TOPICS = TopicTable()
VERSION = "bench-sim"


@dataclass(frozen=True)
class SimNodeIdentity:
    """Who a simulated node is on the wire: account, session, keepalive."""

    node_id: str
    password: str
    keepalive: int
    session: int = 1  # one more on every connect, as the edge node's SessionCounter
    version: str = VERSION

    def topic(self, channel: Channel, kind: str | None = None) -> str:
        return TOPICS.topic(self.node_id, channel, kind)

    def status(self, state: Literal["online", "offline"]) -> bytes:
        return encode(NodeStatus(state=state, session=self.session, ts=utc_now(),
                                 version=self.version, keepalive_s=self.keepalive))

    def will(self) -> Will:
        return Will(self.topic(Channel.STATUS), self.status("offline"), qos=1, retain=True)

    def connect_packet(self) -> bytes:
        return connect_packet(self.node_id, self.node_id, self.password,
                              keepalive=self.keepalive, clean_start=False,
                              session_expiry_s=SESSION_EXPIRY_S, will=self.will())

    def reported_state(self) -> bytes:
        return encode(ReportedState(schedules_revision=0, cameras_revision=0, ts=utc_now()))

    def heartbeat(self, uptime_s: float, cameras: int = 2) -> bytes:
        """A heartbeat as a recording node with `cameras` healthy cameras sends it."""
        ts = utc_now()
        health = [CameraHealth(camera_id=f"cam-{i}", state="recording", fps=15.0, width=1280,
                               height=720, codec="h264", reconnects_1h=0,
                               last_segment_at=ts - timedelta(seconds=5),
                               bitrate_bps=1_500_000)
                  for i in range(1, cameras + 1)]
        return encode(Heartbeat(
            ts=ts, session=self.session, uptime_s=round(max(0.0, uptime_s), 1),
            version=self.version,
            system=SystemInfo(hostname=self.node_id, os="Linux-6.1-x86_64", ip="10.0.0.2"),
            disk_free_bytes=200_000_000_000, disk_total_bytes=250_000_000_000,
            upload_backlog=UploadBacklog(count=0, bytes=0, oldest_s=0.0),
            outbox=OutboxInfo(depth=0, oldest_s=0.0), schedules_revision=0, cameras_revision=0,
            cameras=health))


async def connect_like_edge(host: str, port: int, node: SimNodeIdentity, *,
                            on_message: MessageHandler | None = None,
                            timeout_s: float = 30.0) -> MqttConnection:
    """Connect as the edge node does: CONNECT with the Will, subscribe to its own
    desired state, commands and acks, then its retained `online` and state.
    The caller sends the first heartbeat (the edge node sends one at once)."""
    connection = await open_connection(host, port, node.connect_packet(),
                                       on_message=on_message, timeout_s=timeout_s)
    try:
        await asyncio.wait_for(connection.subscribe(
            [TOPICS.subscription(c, node.node_id) for c in SUBSCRIBED]), timeout_s)
    except BaseException:
        connection.close()
        raise
    connection.publish(node.topic(Channel.STATUS), node.status("online"), retain=True)
    connection.publish(node.topic(Channel.STATE), node.reported_state(), retain=True)
    return connection


@dataclass
class SimNode:
    identity: SimNodeIdentity
    connection: MqttConnection | None = None
    connected_at: float = 0.0
    heartbeats: int = 0
    gone: bool = False  # killed on purpose

    @property
    def alive(self) -> bool:
        return not self.gone and self.connection is not None and not self.connection.lost

    async def connect(self, host: str, port: int, *, timeout_s: float = 30.0) -> None:
        """Connect like the edge node, and send the first heartbeat at once as it does."""
        self.connection = await connect_like_edge(host, port, self.identity, timeout_s=timeout_s)
        self.connected_at = time.monotonic()
        self.beat(self.connected_at)

    def leave(self) -> None:
        """Stop as the edge node does: its retained `offline`, then DISCONNECT (the
        broker then drops the Will)."""
        if self.alive:
            assert self.connection is not None
            self.connection.publish(self.identity.topic(Channel.STATUS),
                                    self.identity.status("offline"), retain=True)
            self.connection.disconnect()

    def beat(self, now: float) -> None:
        assert self.connection is not None
        self.connection.publish(self.identity.topic(Channel.HEARTBEAT),
                                self.identity.heartbeat(now - self.connected_at))
        self.heartbeats += 1


class HeartbeatClock:
    """Keeps nodes heartbeating: each node's next heartbeat is due one keepalive
    after the last was due (the edge node's interval is min(heartbeat_s,
    keepalive_s)), counted from the due time so a late tick does not push every
    later heartbeat back. A node stops beating once it is not `alive`."""

    TICK_S = 0.05

    def __init__(self, keepalive: float) -> None:
        self._keepalive = keepalive
        self._due: list[tuple[float, int, SimNode]] = []
        self._order = 0  # ties broken by insertion, never by comparing nodes
        self.late_max = 0.0  # the most a heartbeat went out after it was due, seconds

    def schedule(self, node: SimNode, due: float) -> None:
        self._order += 1
        heapq.heappush(self._due, (due, self._order, node))

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                due, _, node = heapq.heappop(self._due)
                if node.alive:
                    self.late_max = max(self.late_max, now - due)
                    node.beat(now)
                    self.schedule(node, due + self._keepalive)
            await asyncio.sleep(self.TICK_S)


# --- plumbing shared by the benchmark scripts -------------------------------------


async def stdin_reader(limit: int = 1 << 26) -> asyncio.StreamReader:
    """This child's stdin as an asyncio stream: the benchmark's JSON commands."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def to_parent(message: dict[str, Any]) -> None:
    """One JSON line to the benchmark."""
    print(json.dumps(message), flush=True)


async def cloud_watcher(broker: Broker, tag: str, filters: Sequence[str],
                        on_message: MessageHandler) -> MqttConnection:
    """A throwaway subscriber as the cloud's account (it may read everything)."""
    connection = await open_connection(
        broker.host, broker.port,
        connect_packet(f"bench-{tag}-{secrets.token_hex(4)}", CLOUD_ACCOUNT,
                       broker.passwords[CLOUD_ACCOUNT], keepalive=60, clean_start=True),
        on_message=on_message)
    await connection.subscribe(list(filters), qos=1)
    return connection


def remove_work_dir(work: Path, keep: bool) -> None:
    if keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def cancel_on_sigterm() -> None:
    """SIGTERM ends the benchmark as Ctrl-C does: through its `finally` blocks."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def run_main(child: Callable[[], Coroutine[Any, Any, None]] | None,
             bench: Callable[[], Awaitable[int]]) -> int:
    """The scripts' entry point: a child role runs `child` and dies with its parent;
    otherwise the benchmark, whose Ctrl-C ends everything it started."""
    if child is not None:
        die_with_parent()
        asyncio.run(child())
        return 0

    async def main() -> int:
        cancel_on_sigterm()
        return await bench()

    try:
        return asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
