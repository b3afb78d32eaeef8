"""Fleet benchmark: N simulated nodes connected and heartbeating against one broker
and one cloud service on this machine; the node list API's latency under load,
whether every node's presence is right, and how soon a vanished node shows offline.

    cd /work/main && .venv/bin/python bench/fleet.py [--nodes 10000] [--keepalive 30]
        [--clients 8] [--requests 2000] [--kill 100] [--database sqlite|postgres]
        [--workers 3] [--steady S] [--profile DIR] [--quick] [--keep]

One Mosquitto from the project's mosquitto.conf on a free loopback port, with
an account per node; one `cctv cloud` (a subprocess) on a fresh SQLite file or
PostgreSQL database. The nodes live in `--workers` processes, each an asyncio
loop of minimal MQTT 5 connections (bench/mqtt_wire.py) behaving as edge nodes
(bench/sim_nodes.py): client id = node id, persistent session, keepalive K, a
Last Will of its retained `NodeStatus` offline with its session and
`keepalive_s`; it subscribes to its own schedules/cameras/commands/acks,
publishes its retained `NodeStatus` online (with `keepalive_s` = K), its
retained `ReportedState` and a `Heartbeat` (two cameras) at once, the next one
at a random point of the first K seconds (a real fleet's phases are spread) and
then one per K, as the edge node (heartbeat interval min(heartbeat_s,
keepalive_s)), all QoS 1.

Open files: the broker holds a socket per node and each node process one per
node it runs; the benchmark raises its soft limit to the hard limit (children
inherit it) and refuses to start below nodes + 500 (`ulimit -Hn` first where
the hard limit is lower, as root; mosquitto.conf sets no max_connections).

Phases, in order: connect every node; wait until `GET /api/nodes?online=true`
counts them all; a quiet steady window (`--steady`, default K) to measure what
heartbeats alone cost; `--requests` of `GET /api/nodes?limit=100&offset=<random>`
from `--clients` concurrent httpx clients with a bearer token (p50/p95/p99;
target p95 < 200 ms); a full presence check (every node listed, online, with
its session); then `--kill` nodes vanish, half by closing their socket without
DISCONNECT (a crashed process: the broker sends the Will at once) and half
silently (socket left open, nothing sent or read again: a cut link or a hung
box, found by the cloud's silence rule, nothing heard for 1.5 x the keepalive
the node announced, or by the broker's keepalive timeout, whichever is first).
Each is timed from the kill (and, for the silent ones, from the last packet it
sent, the worst case) to the answer of the `GET /api/nodes?online=false` (every
0.1 s) that first lists it; target <= 1.5 x K. A subscriber of the bench's own
notes when the broker publishes each Will, so the broker's share and the
cloud's are told apart. Every
other node must still be online afterwards. `--profile DIR` records the cloud
with py-spy during the API load and prints where its samples went.

Resource use: RSS and peak RSS of the broker, the cloud and the node processes;
their CPU in each phase, and the CPU other processes on this shared machine
used meanwhile (figures from a busy box are noted as such).

Everything it starts is ended on exit, Ctrl-C included; the temporary
directory is removed (`--keep` leaves it) and a PostgreSQL database dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import httpx

from bench import sim_nodes
from bench.cloud_harness import (
    CLOUD_ACCOUNT,
    DEFAULT_DSN,
    Broker,
    CloudProcess,
    ThrowawayDatabase,
    Worker,
    cpu_model,
    make_work_dir,
    peak_rss_mib,
    raise_open_files,
    rss_mib,
)
from bench.linux_counters import box_times, cpu_seconds
from bench.mqtt_wire import MqttConnection, MqttError
from bench.py_spy import CHARGED_NAMES, profile_summary, start_py_spy, stop_py_spy
from bench.sim_nodes import TOPICS, HeartbeatClock, SimNode, SimNodeIdentity
from schemas.topics import Channel

TARGET_P95_S = 0.2
OFFLINE_FACTOR = 1.5
POLL_S = 0.1  # how often the kill phase asks the API for the offline nodes
SESSION = 1  # every simulated node is on its first connection
VERSION = "bench-fleet"
# The broker holds a socket per node, each node process one per node it runs.
# Raised as far as the hard limit allows (root without CAP_SYS_RESOURCE cannot
# raise the hard limit itself: `ulimit -Hn` before the run).
OPEN_FILES = 65536
# Where an API request's time goes: SQL, JSON column decoding, pydantic, responses.
API_CHARGED_NAMES = (*CHARGED_NAMES, "Connection.execute", "JSONDecoder.decode",
                     "validate_python", "serialize_response", "jsonable_encoder",
                     "model_dump_json", "_load_on_pk_identity", "instances")


# --- child: a share of the nodes -----------------------------------------------


class NodeShare:
    """This worker's nodes: connects them, keeps them heartbeating, kills on request."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._host, self._port = spec["host"], spec["port"]
        self._keepalive: int = spec["keepalive"]
        self._concurrency: int = spec["concurrency"]
        self.nodes = {n: SimNode(SimNodeIdentity(n, p, self._keepalive, SESSION, VERSION))
                      for n, p in spec["nodes"]}
        self.clock = HeartbeatClock(self._keepalive)
        self.failed: list[str] = []

    async def connect_all(self) -> None:
        gate = asyncio.Semaphore(self._concurrency)

        async def one(node: SimNode) -> None:
            async with gate:
                for attempt in range(5):
                    try:
                        await node.connect(self._host, self._port)
                    except (OSError, MqttError, TimeoutError):
                        await asyncio.sleep(0.5 * (attempt + 1))
                    else:
                        # The next heartbeat at a random phase, as a real fleet's
                        # nodes (connected over days) have, rather than in step
                        # with the benchmark's connect burst; then one per keepalive.
                        self.clock.schedule(node, node.connected_at
                                            + self._keepalive * random.uniform(0.05, 1.0))
                        return
                self.failed.append(node.identity.node_id)

        await asyncio.gather(*(one(n) for n in self.nodes.values()))

    def kill(self, close: list[str], freeze: list[str]) -> dict[str, Any]:
        at = time.monotonic()
        last_sent = {}
        for node_id in close:
            node = self.nodes[node_id]
            node.gone = True
            if node.connection is not None:
                node.connection.close()
        for node_id in freeze:
            node = self.nodes[node_id]
            node.gone = True
            if node.connection is not None:
                last_sent[node_id] = node.connection.last_sent
                node.connection.freeze()
        return {"at": at, "last_sent": last_sent}

    def stats(self) -> dict[str, Any]:
        live = [n for n in self.nodes.values() if n.connection is not None and not n.gone]
        return {"connected": sum(1 for n in self.nodes.values() if n.connection is not None),
                "failed": len(self.failed),
                "lost": sum(1 for n in live if n.connection is not None and n.connection.lost),
                "heartbeats": sum(n.heartbeats for n in self.nodes.values()),
                "late_max": self.clock.late_max,
                "refused": sum(n.connection.refused for n in self.nodes.values()
                               if n.connection is not None)}

    def disconnect_all(self) -> None:
        for node in self.nodes.values():
            node.leave()


async def worker_main() -> None:
    stdin = await sim_nodes.stdin_reader()
    share = NodeShare(json.loads(await stdin.readline()))
    started = time.monotonic()
    # Beating from the start: the first nodes must not go quiet while the last connect.
    beating = asyncio.create_task(share.clock.run())
    await share.connect_all()
    sim_nodes.to_parent({**share.stats(), "seconds": time.monotonic() - started})
    try:
        while line := await stdin.readline():
            command = json.loads(line)
            if command["cmd"] == "kill":
                sim_nodes.to_parent(share.kill(command["close"], command["freeze"]))
            else:
                sim_nodes.to_parent(share.stats())
    finally:
        beating.cancel()
        share.disconnect_all()
        await asyncio.sleep(0.5)  # let the DISCONNECTs go out


# --- the benchmark ---------------------------------------------------------------


@dataclass
class Phase:
    """CPU seconds of our processes, and of everything else, over one phase.

    The groups are read again at the end: PostgreSQL backends the cloud opens
    during the phase (its pool grows under API load) count as "db", with their
    whole life's CPU, rather than as other processes."""

    name: str
    groups: Callable[[], dict[str, list[int]]]
    seconds: float = 0.0
    cores: dict[str, float] = field(default_factory=dict)
    others: float = 0.0
    pids: dict[str, list[int]] = field(default_factory=dict)  # the groups at the end
    _start: dict[int, float] = field(default_factory=dict)
    _box: Any = None
    _t: float = 0.0

    def __enter__(self) -> Phase:
        self._start = {p: cpu_seconds(p) for group in self.groups().values() for p in group}
        self._box, self._t = box_times(), time.monotonic()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.seconds = time.monotonic() - self._t
        box = box_times()
        self.pids = self.groups()
        wall = max(self.seconds, 1e-9)
        self.cores = {k: sum(cpu_seconds(p) - self._start.get(p, 0.0) for p in group) / wall
                      for k, group in self.pids.items()}
        busy = (box.busy_s - self._box.busy_s) / wall
        self.others = max(0.0, busy - sum(self.cores.values()))


@dataclass
class Fleet:
    broker: Broker
    cloud: CloudProcess
    workers: list[Worker]
    nodes: list[str]
    node_worker: dict[str, int]
    database: ThrowawayDatabase | None = None

    def pids(self) -> dict[str, list[int]]:
        pids = {"broker": [self.broker.pid or 0], "cloud": [self.cloud.pid],
                "nodes": [w.pid for w in self.workers], "bench": [os.getpid()]}
        if self.database is not None:
            pids["db"] = self.database.backend_pids()  # PostgreSQL serving the cloud
        return pids

    def api(self) -> httpx.AsyncClient:
        return self.cloud.api()

    async def ask_all(self, command: dict[str, Any], timeout_s: float = 60) -> list[dict[str, Any]]:
        for worker in self.workers:
            await worker.send(command)
        return [await w.receive(timeout_s) for w in self.workers]


async def online_total(api: httpx.AsyncClient, online: bool = True) -> int:
    response = await api.get("/api/nodes", params={"online": str(online).lower(), "limit": 1})
    response.raise_for_status()
    return int(response.json()["total"])


def start_fleet(args: argparse.Namespace, work: Path, database: ThrowawayDatabase | None) -> Fleet:
    nodes = [f"fleet-node-{i:05d}" for i in range(args.nodes)]
    broker = Broker(work / "broker", [CLOUD_ACCOUNT, *nodes])
    cloud = CloudProcess(work / "cloud", broker, database_url=database.url if database else None,
                         client_id=f"bench-fleet-{secrets.token_hex(4)}",
                         token=secrets.token_urlsafe(16))
    return Fleet(broker, cloud, [], nodes, {}, database)


async def spawn_workers(fleet: Fleet, args: argparse.Namespace, work: Path) -> None:
    for index in range(args.workers):
        worker = await Worker.start([__file__, "--role", "worker"], work / f"nodes-{index}.log")
        fleet.workers.append(worker)
        for node_id in fleet.nodes[index::args.workers]:
            fleet.node_worker[node_id] = index


async def connect_nodes(fleet: Fleet, args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    for index, worker in enumerate(fleet.workers):
        await worker.send({"host": fleet.broker.host, "port": fleet.broker.port,
                           "keepalive": args.keepalive, "concurrency": args.concurrency,
                           "nodes": [[n, fleet.broker.passwords[n]]
                                     for n in fleet.nodes[index::args.workers]]})
    reports = [await w.receive(timeout_s=900) for w in fleet.workers]
    return {"seconds": time.monotonic() - started,
            "connected": sum(r["connected"] for r in reports),
            "failed": sum(r["failed"] for r in reports)}


async def wait_presence(fleet: Fleet, expected: int, timeout_s: float) -> tuple[float, int]:
    started = time.monotonic()
    seen = 0
    async with fleet.api() as api:
        while time.monotonic() - started < timeout_s:
            seen = await online_total(api)
            if seen >= expected:
                break
            await asyncio.sleep(0.5)
    return time.monotonic() - started, seen


async def load_api(fleet: Fleet, clients: int, requests: int, nodes: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    remaining = iter(range(requests))

    async def client() -> None:
        async with fleet.api() as api:
            for _ in remaining:
                offset = random.randrange(max(1, nodes - 100))
                t0 = time.perf_counter()
                try:
                    response = await api.get("/api/nodes",
                                             params={"limit": 100, "offset": offset})
                except httpx.TransportError as exc:
                    errors.append(f"{type(exc).__name__} after "
                                  f"{time.perf_counter() - t0:.1f} s")
                    continue
                body = response.content
                latencies.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    errors.append(f"HTTP {response.status_code}")
                elif len(json.loads(body)["items"]) != min(100, nodes - offset):
                    errors.append(f"short page at offset {offset}")

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    seconds = time.monotonic() - started
    q = statistics.quantiles(latencies, n=100)
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": max(latencies),
            "rate": len(latencies) / seconds, "errors": errors, "count": len(latencies)}


async def all_nodes(api: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        response = await api.get("/api/nodes", params={"limit": 1000, "offset": offset})
        response.raise_for_status()
        page = response.json()
        rows.update({r["node_id"]: r for r in page["items"]})
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return rows


async def check_presence(fleet: Fleet, gone: set[str]) -> list[str]:
    """Problems with what the API says about each node (empty: all right)."""
    async with fleet.api() as api:
        rows = await all_nodes(api)
        online = await online_total(api)
    problems = []
    missing = [n for n in fleet.nodes if n not in rows]
    wrong = [n for n in fleet.nodes if n in rows
             and (rows[n]["online"] != (n not in gone) or rows[n]["session"] != SESSION)]
    stale = [n for n in fleet.nodes if n in rows and n not in gone
             and rows[n]["last_heartbeat"] is None]
    if missing:
        problems.append(f"{len(missing)} nodes not listed (e.g. {missing[0]})")
    if wrong:
        problems.append(f"{len(wrong)} with wrong online/session (e.g. {wrong[0]}: "
                        f"{rows[wrong[0]]['online']}, session {rows[wrong[0]]['session']})")
    if stale:
        problems.append(f"{len(stale)} online without a heartbeat (e.g. {stale[0]})")
    if online != len(fleet.nodes) - len(gone):
        problems.append(f"online=true total {online}, expected {len(fleet.nodes) - len(gone)}")
    return problems


class WillWatcher:
    """Notes when the broker publishes each node's `offline` status (its Will)."""

    def __init__(self) -> None:
        self.offline_at: dict[str, float] = {}
        self.connection: MqttConnection | None = None

    def on_message(self, topic: str, payload: bytes) -> None:
        if b'"offline"' in payload:
            self.offline_at.setdefault(TOPICS.parse(topic).node_id, time.monotonic())

    async def start(self, broker: Broker) -> None:
        self.connection = await sim_nodes.cloud_watcher(
            broker, "wills", [TOPICS.subscription(Channel.STATUS)], self.on_message)
        await asyncio.sleep(2)  # the retained statuses of the whole fleet come first
        self.offline_at.clear()


async def kill_and_time(fleet: Fleet, count: int, keepalive: int) -> dict[str, Any]:
    """Kill `count` nodes (half closed, half silent) and time, for each, the broker's
    Will and the moment the API lists it offline."""
    victims = random.sample(fleet.nodes, count)
    close, freeze = set(victims[: count // 2]), set(victims[count // 2:])
    killed_at: dict[str, float] = {}
    last_sent: dict[str, float] = {}
    wills = WillWatcher()
    await wills.start(fleet.broker)
    for index, worker in enumerate(fleet.workers):
        mine = [n for n in victims if fleet.node_worker[n] == index]
        await worker.send({"cmd": "kill", "close": [n for n in mine if n in close],
                           "freeze": [n for n in mine if n in freeze]})
        reply = await worker.receive(timeout_s=60)
        killed_at.update(dict.fromkeys(mine, reply["at"]))
        last_sent.update(reply["last_sent"])
    seen: dict[str, float] = {}
    polls: list[float] = []
    deadline = time.monotonic() + OFFLINE_FACTOR * keepalive * 2 + 30
    async with fleet.api() as api:
        while len(seen) < count and time.monotonic() < deadline:
            asked = time.monotonic()
            response = await api.get("/api/nodes", params={"online": "false", "limit": 1000})
            now = time.monotonic()
            polls.append(now - asked)
            for row in response.json()["items"]:
                if row["node_id"] in killed_at and row["node_id"] not in seen:
                    seen[row["node_id"]] = now  # an upper bound: it was so by the answer
            await asyncio.sleep(POLL_S)
    # The broker's Wills for the silent ones may come later still: wait for them
    # a while, to tell its share from the cloud's.
    wills_deadline = min(deadline, min(killed_at.values()) + OFFLINE_FACTOR * keepalive + 20)
    while (len(wills.offline_at.keys() & killed_at.keys()) < count  # noqa: ASYNC110  # a dict the watcher fills
           and time.monotonic() < wills_deadline):
        await asyncio.sleep(0.5)
    if wills.connection is not None:
        wills.connection.disconnect()
    will = wills.offline_at
    return {"close": sorted(seen[n] - killed_at[n] for n in close if n in seen),
            "freeze": sorted(seen[n] - killed_at[n] for n in freeze if n in seen),
            "freeze_from_last_packet": sorted(seen[n] - last_sent[n] for n in freeze
                                              if n in seen and n in last_sent),
            "will_after_kill_close": sorted(will[n] - killed_at[n] for n in close if n in will),
            "will_after_last_packet": sorted(will[n] - last_sent[n] for n in freeze
                                             if n in will and n in last_sent),
            "api_after_will": sorted(seen[n] - will[n] for n in victims
                                     if n in seen and n in will),
            "poll_s": max(polls, default=0.0),
            "never": sorted(set(victims) - seen.keys()), "gone": set(victims)}


async def ingest_report(fleet: Fleet, before: dict[str, float]) -> str:
    """Heartbeats sent against received (read first, so the lag is an upper bound),
    and the batches committed since `before`."""
    now = await fleet.cloud.ingest_counters()
    stats = await fleet.ask_all({"cmd": "stats"})
    sent = sum(r["heartbeats"] for r in stats)
    late = max(r["late_max"] for r in stats)
    batches = now["batches"] - before["batches"]
    mean_ms = 1000 * (now["batch_s"] - before["batch_s"]) / batches if batches else 0.0
    return (f"heartbeats {sent} sent (at most {late:.2f} s after due), "
            f"{now['heartbeats']:.0f} received by the cloud (lag <= "
            f"{sent - now['heartbeats']:.0f}); {batches:.0f} commits, {mean_ms:.1f} ms each")


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return (f"n={len(values)} min {min(values):.2f} s, median "
            f"{statistics.median(values):.2f} s, max {max(values):.2f} s")


def print_phase(phase: Phase) -> None:
    cores = ", ".join(f"{k} {v:.2f}" for k, v in phase.cores.items())
    rss = ", ".join(f"{k} {sum(rss_mib(p) for p in pids):.0f}"
                    for k, pids in phase.pids.items() if k not in ("bench", "db"))
    print(f"  CPU over {phase.name} ({phase.seconds:.0f} s), in cores: {cores}; "
          f"other processes {phase.others:.2f}. RSS MiB: {rss}")


async def phase_connect(fleet: Fleet, args: argparse.Namespace, work: Path) -> bool:
    await spawn_workers(fleet, args, work)
    with Phase("connect", fleet.pids) as phase:
        connected = await connect_nodes(fleet, args)
        presence_s, seen = await wait_presence(fleet, args.nodes, timeout_s=600)
    print(f"connect: {connected['connected']} of {args.nodes} nodes in "
          f"{connected['seconds']:.1f} s ({connected['connected'] / connected['seconds']:.0f}"
          f"/s), {connected['failed']} failed; all online in the API "
          f"{presence_s:.1f} s later ({seen} seen)", flush=True)
    print_phase(phase)
    return bool(connected["connected"] == args.nodes and seen >= args.nodes)


async def phase_steady(fleet: Fleet, args: argparse.Namespace) -> None:
    before = await fleet.cloud.ingest_counters()
    with Phase("steady heartbeats", fleet.pids) as phase:
        await asyncio.sleep(args.steady)
    print(f"steady, {args.nodes / args.keepalive:.0f} heartbeats/s: "
          f"{await ingest_report(fleet, before)}", flush=True)
    print_phase(phase)


async def phase_api(fleet: Fleet, args: argparse.Namespace) -> bool:
    before = await fleet.cloud.ingest_counters()
    spy = start_py_spy(fleet.cloud.pid, args.profile / "api") if args.profile else None
    try:
        with Phase("API load", fleet.pids) as phase:
            latency = await load_api(fleet, args.clients, args.requests, args.nodes)
    finally:
        if spy is not None:
            stop_py_spy(spy)
    passed = latency["p95"] < TARGET_P95_S and not latency["errors"]
    print(f"GET /api/nodes?limit=100 (random offsets), {args.clients} clients, "
          f"{latency['count']} requests, {latency['rate']:.0f} req/s: p50 "
          f"{1000 * latency['p50']:.0f} ms, p95 {1000 * latency['p95']:.0f} ms, p99 "
          f"{1000 * latency['p99']:.0f} ms, max {1000 * latency['max']:.0f} ms "
          f"(target p95 < {1000 * TARGET_P95_S:.0f} ms: {'met' if passed else 'NOT met'})"
          + (f"; {len(latency['errors'])} errors, e.g. {latency['errors'][0]}"
             if latency["errors"] else ""), flush=True)
    print_phase(phase)
    print(f"  meanwhile: {await ingest_report(fleet, before)}", flush=True)
    if args.profile:
        print("  profile of the cloud under API load (py-spy, CPU samples):")
        for line in profile_summary(args.profile / "api.txt", top=30,
                                    charged_names=API_CHARGED_NAMES):
            print(f"  {line}")
    return passed


async def phase_kill(fleet: Fleet, args: argparse.Namespace) -> tuple[bool, set[str]]:
    with Phase("kill", fleet.pids) as phase:
        offline = await kill_and_time(fleet, args.kill, args.keepalive)
    bound = OFFLINE_FACTOR * args.keepalive
    worst = max(offline["close"] + offline["freeze"], default=float("inf"))
    passed = not offline["never"] and worst <= bound
    print(f"vanished nodes shown offline (bound 1.5 x {args.keepalive} s = {bound:.0f} s; "
          f"the API polled every {POLL_S} s, slowest answer {offline['poll_s']:.2f} s):\n"
          f"  socket closed without DISCONNECT: {spread(offline['close'])} after the kill\n"
          f"    (broker's Will {spread(offline['will_after_kill_close'])} after the kill)\n"
          f"  silent (socket open, nothing sent): {spread(offline['freeze'])} after the kill;\n"
          f"    {spread(offline['freeze_from_last_packet'])} after its last packet\n"
          f"    (broker's Will {spread(offline['will_after_last_packet'])} after the last "
          f"packet)\n"
          f"  API listing offline minus the broker's Will (negative: the cloud's silence\n"
          f"    rule came first): {spread(offline['api_after_will'])}\n"
          f"  worst {worst:.1f} s after the kill: {'within' if passed else 'NOT within'} the bound"
          + (f"; never offline: {len(offline['never'])}" if offline["never"] else ""),
          flush=True)
    print_phase(phase)
    return passed, offline["gone"]


async def presence_right(fleet: Fleet, gone: set[str], when: str) -> bool:
    problems = await check_presence(fleet, gone)
    print(f"presence {when}: {'right' if not problems else '; '.join(problems)}", flush=True)
    return not problems


async def run_phases(fleet: Fleet, args: argparse.Namespace, work: Path) -> bool:
    ok = await phase_connect(fleet, args, work)
    await phase_steady(fleet, args)
    ok &= await phase_api(fleet, args)
    ok &= await presence_right(fleet, set(), f"of all {args.nodes} nodes")
    passed, gone = await phase_kill(fleet, args)
    ok &= passed
    ok &= await presence_right(fleet, gone, "after the kill")
    stats = await fleet.ask_all({"cmd": "stats"})
    lost, refused = sum(s["lost"] for s in stats), sum(s["refused"] for s in stats)
    if lost or refused:
        ok = False
        print(f"  connections dropped unexpectedly: {lost}; publishes refused: {refused}")
    print("memory (RSS now / peak, MiB): " + ", ".join(
        f"{name} {sum(rss_mib(p) for p in group):.0f} / "
        f"{sum(peak_rss_mib(p) for p in group):.0f}"
        for name, group in fleet.pids().items() if name not in ("bench", "db")))
    print(f"result: {'all targets met' if ok else 'NOT all targets met'}")
    return ok


async def bench(args: argparse.Namespace) -> int:
    work = make_work_dir("cctv-bench-fleet-")
    database = ThrowawayDatabase(args.dsn) if args.database == "postgres" else None
    fleet = start_fleet(args, work, database)
    print(f"fleet benchmark: {args.nodes} nodes in {args.workers} processes, keepalive "
          f"{args.keepalive} s, cloud on {args.database}; {cpu_model()}, {os.cpu_count()} "
          f"cores; open files {args.open_files}; work dir {work}", flush=True)
    try:
        if database is not None:
            database.create()
        fleet.broker.start()
        fleet.cloud.start()
        await fleet.cloud.wait_healthy()
        return 0 if await run_phases(fleet, args, work) else 1
    except Exception:
        print(f"failed; the cloud's log ends:\n{fleet.cloud.log_tail(30)}", file=sys.stderr)
        raise
    finally:
        for worker in fleet.workers:
            await worker.stop()
        fleet.cloud.stop()
        fleet.broker.stop()
        if database is not None:
            with contextlib.suppress(Exception):
                database.drop()
        sim_nodes.remove_work_dir(work, args.keep)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="10,000 simulated nodes against one broker and one cloud service: "
                    "GET /api/nodes latency, presence, time to show a vanished node offline.")
    parser.add_argument("--nodes", type=int, default=10000, help="simulated nodes (10000)")
    parser.add_argument("--keepalive", type=int, default=30,
                        help="MQTT keepalive and heartbeat interval, seconds (30)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent API clients (8)")
    parser.add_argument("--requests", type=int, default=2000, help="API requests in all (2000)")
    parser.add_argument("--kill", type=int, default=100,
                        help="nodes to kill, half closed and half silent (100)")
    parser.add_argument("--steady", type=float, default=None,
                        help="seconds of heartbeats alone before the API load (keepalive)")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite",
                        help="the cloud's database (sqlite)")
    parser.add_argument("--dsn", default=DEFAULT_DSN,
                        help="libpq conninfo of a PostgreSQL server for --database postgres")
    parser.add_argument("--workers", type=int, default=3, help="node processes (3)")
    parser.add_argument("--concurrency", type=int, default=50,
                        help="connects in progress at once per node process (50)")
    parser.add_argument("--profile", metavar="DIR", type=Path,
                        help="record the cloud with py-spy during the API load and summarise")
    parser.add_argument("--quick", action="store_true",
                        help="1000 nodes, 400 requests, 20 killed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--role", choices=("worker",), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.requests, args.kill = 1000, 400, 20
    if args.steady is None:
        args.steady = float(args.keepalive)
    if args.profile:
        args.profile = args.profile.resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    if args.nodes < 200 or not 2 <= args.kill <= args.nodes // 2 or args.workers < 1:
        parser.error("need --nodes >= 200, 2 <= --kill <= nodes/2, --workers >= 1")
    return args


def main() -> int:
    args = parse_args()
    args.open_files = raise_open_files(OPEN_FILES)  # the broker and node processes inherit it
    if args.role is None and args.open_files < args.nodes + 500:
        print(f"open-files limit {args.open_files} is too low for {args.nodes} nodes (the "
              "broker holds one socket each): raise the hard limit (ulimit -Hn)",
              file=sys.stderr)
        return 2
    return sim_nodes.run_main(worker_main if args.role == "worker" else None,
                              lambda: bench(args))


if __name__ == "__main__":
    sys.exit(main())
