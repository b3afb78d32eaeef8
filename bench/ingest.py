"""Ingest benchmark: how fast the cloud service stores events against how fast a
bare MQTT subscriber drains the same broker, in the same run.

    cd /work/main && .venv/bin/python bench/ingest.py [--events 20000] [--nodes 20]
        [--rounds 1] [--arms bare,sqlite,postgres] [--clouds 1] [--profile DIR] [--quick]
        [--keep]

One Mosquitto, started here from the project's mosquitto.conf on a free
loopback port, with an account for `cctv-cloud` and one per simulated node. K
nodes (one publisher process, one MQTT 5 connection each, as their own account
so the ACL applies) connect as edge nodes do (bench/sim_nodes.py: persistent
session, Will, retained `online` with keepalive_s and state, a heartbeat at
once and then one per keepalive, 30 s) and publish N valid `recording.segment`
events, seq 1.. per node, QoS 1, as fast as the broker acknowledges them (up to
its Receive Maximum in flight per connection, less one slot kept for the
node's heartbeat; payloads and packets are built before the clock starts). The
same load goes, in turn, to:

- bare: a gmqtt MQTT 5 subscriber in a process of its own, on the same shared
  subscription ingest uses (`$share/cctv-ingest/cctv/v1/+/events/#`, QoS 1,
  gmqtt's default acknowledgement), that only counts;
- sqlite: `cctv cloud` (a subprocess, as operators run it) on a fresh SQLite
  file;
- postgres: `cctv cloud` on a fresh PostgreSQL database (created from
  template0, dropped at the end).

`--clouds N` runs N `cctv cloud` processes per cloud arm on the same database,
splitting the events through the shared subscription as DESIGN.md's scale-out
does (each must have received the probe before the clock starts).

A rate is N / (last event stored or counted - first publish), both on the
machine's monotonic clock. For the cloud arms "stored" is the moment the
cloud's `EventAck` for the last node reaches `upto_seq` = that node's last seq
(the cloud publishes it only after the commit); a probe event before the clock
starts proves its subscription is live, and the clock starts only once the
cloud shows every node online (their status, state and first heartbeat
stored). Afterwards the database must hold
every published event_id exactly once, one segment row per event, and each
node's `acked_seq` must equal its last seq with no gaps. The ratios cloud/bare
come from the same round (the median over `--rounds`); the machine is shared,
absolute figures drift. The target (DESIGN.md) is a ratio >= 0.8.

`--profile DIR` records each cloud arm with py-spy (raw stacks and a flame
graph) and prints where its samples went.

Everything it starts is ended on exit, Ctrl-C included; the temporary
directory is removed (`--keep` leaves it) and PostgreSQL databases dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from sqlalchemy import create_engine, text

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
    purge_session,
)
from bench.linux_counters import box_times, cpu_seconds, cpu_seconds_of
from bench.mqtt_wire import (
    MqttConnection,
    PreparedPublish,
    PublishPump,
    connect_packet,
    open_connection,
    prepare_publish,
)
from bench.py_spy import profile_summary, start_py_spy, stop_py_spy
from bench.sim_nodes import TOPICS, HeartbeatClock, SimNode, SimNodeIdentity
from cloud_service.ingest import SHARE_GROUP
from schemas.codec import encode
from schemas.events import RecordingSegment, make_event
from schemas.ids import new_id
from schemas.topics import Channel, TopicTable

TARGET_RATIO = 0.8
ARMS = ("bare", "sqlite", "postgres")
PROBE_NODE = "bench-probe"
SEGMENTS_PER_RECORDING = 100
SEGMENT_S = 10
T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
KEEPALIVE_S = 30  # the edge node's default; it heartbeats once per keepalive


def node_names(count: int) -> list[str]:
    return [f"bench-node-{i:04d}" for i in range(count)]


def split(total: int, parts: int) -> list[int]:
    """`total` events over `parts` nodes, as evenly as possible."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def segment_event(node_id: str, seq: int, recording_id: str) -> tuple[str, bytes, str]:
    """(topic, payload, event_id) of one valid recording.segment event."""
    start = T0 + timedelta(seconds=SEGMENT_S * seq)
    event = make_event(
        "recording.segment", event_id=new_id(), node_id=node_id, seq=seq, ts=start,
        data=RecordingSegment(
            recording_id=recording_id, segment_id=new_id(), camera_id="cam-1", start=start,
            end=start + timedelta(seconds=SEGMENT_S), bytes=3_750_000, crc32c="AAAAAA==",
            container="mp4", codec="h264", width=1280, height=720, frames=150,
            lost_packets=0))
    return TOPICS.topic(node_id, Channel.EVENTS, "recording"), encode(event), event.event_id


# --- child: the simulated nodes publishing ------------------------------------


def build_packets(spec: dict[str, Any]) -> dict[str, list[PreparedPublish]]:
    """Every node's PUBLISH packets, seq 1.. in order; their event ids go to a file."""
    packets: dict[str, list[PreparedPublish]] = {}
    event_ids: list[str] = []
    for node_id, count in zip(spec["nodes"], spec["counts"], strict=True):
        packets[node_id] = []
        recording_id = new_id()
        for seq in range(1, count + 1):
            if seq % SEGMENTS_PER_RECORDING == 1 and seq > 1:
                recording_id = new_id()
            topic, payload, event_id = segment_event(node_id, seq, recording_id)
            packets[node_id].append(prepare_publish(topic, payload))
            event_ids.append(event_id)
    Path(spec["ids_file"]).write_text("\n".join(event_ids))
    return packets


async def publisher_main() -> None:
    """Builds every node's events, connects the nodes as edge nodes, reports ready;
    on "go" publishes the events and reports when the first went out and when
    the last was acknowledged. The nodes heartbeat meanwhile, as edge nodes do."""
    stdin = await sim_nodes.stdin_reader()
    spec = json.loads(await stdin.readline())
    packets = build_packets(spec)
    nodes = {n: SimNode(SimNodeIdentity(n, spec["passwords"][n], KEEPALIVE_S, spec["session"]))
             for n in spec["nodes"]}
    clock = HeartbeatClock(KEEPALIVE_S)
    beating = asyncio.create_task(clock.run())
    try:
        for node in nodes.values():
            await node.connect(spec["host"], spec["port"])
            clock.schedule(node, node.connected_at + KEEPALIVE_S)
        connections = {n: node.connection for n, node in nodes.items()
                       if node.connection is not None}
        sim_nodes.to_parent({"ready": True,
                             "window": min(c.receive_maximum for c in connections.values())})
        if not await stdin.readline():  # any line is "go"; EOF: the benchmark is gone
            return
        # One slot of each node's window is left for its heartbeat.
        pumps = [PublishPump(connections[n], packets[n], reserve=1) for n in spec["nodes"]]
        first = time.monotonic()
        for pump in pumps:
            pump.start()
        await asyncio.gather(*(p.done for p in pumps))
        acked = time.monotonic()
        sim_nodes.to_parent({"first": first, "acked": acked,
                             "refused": sum(c.refused for c in connections.values()),
                             "lost": sum(1 for c in connections.values() if c.lost)})
        await stdin.readline()  # until told to go, or the benchmark is gone
    finally:
        beating.cancel()
        for node in nodes.values():
            node.leave()


# --- child: the bare subscriber ---------------------------------------------------


async def counter_main() -> None:
    """A gmqtt MQTT 5 subscriber on ingest's shared subscription that only counts."""
    from gmqtt import Client  # noqa: PLC0415  # only this child needs it
    from gmqtt.mqtt.constants import MQTTv50  # noqa: PLC0415

    stdin = await sim_nodes.stdin_reader()
    spec = json.loads(await stdin.readline())
    expected: int = spec["expected"]
    state = {"count": 0, "first": 0.0, "last": 0.0}
    done = asyncio.Event()
    subscribed = asyncio.Event()

    def on_message(_client: Any, _topic: str, _payload: bytes, _qos: int, _props: Any) -> int:
        state["count"] += 1
        if state["count"] == 1:
            state["first"] = time.monotonic()
        if state["count"] >= expected:
            state["last"] = time.monotonic()
            done.set()
        return 0

    client = Client(f"bench-count-{secrets.token_hex(4)}", clean_session=True,
                    session_expiry_interval=0)
    client.set_auth_credentials(CLOUD_ACCOUNT, spec["password"])
    client.on_message = on_message
    client.on_subscribe = lambda *_args: subscribed.set()
    await client.connect(spec["host"], spec["port"], keepalive=60, version=MQTTv50)
    client.subscribe(spec["filter"], qos=1)
    await asyncio.wait_for(subscribed.wait(), 30)
    sim_nodes.to_parent({"ready": True})
    waiting = asyncio.ensure_future(stdin.readline())
    finished = asyncio.ensure_future(done.wait())
    await asyncio.wait({waiting, finished}, return_when=asyncio.FIRST_COMPLETED)
    sim_nodes.to_parent({"count": state["count"], "first": state["first"],
                         "last": state["last"]})
    if not waiting.done():
        await waiting
    await client.disconnect()


# --- the benchmark ------------------------------------------------------------


@dataclass
class ArmResult:
    arm: str
    events: int
    seconds: float
    publish_s: float
    verified: str
    cpu_s: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds
    others_busy: float = 0.0  # cores busy with processes not ours, on average
    commits: float = 0.0  # the cloud's ingest batches committed over the arm
    commit_s: float = 0.0  # and the seconds they took, from its own /metrics

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Run:
    broker: Broker
    nodes: list[str]
    counts: list[int]
    work: Path
    timeout_s: float
    dsn: str
    profile_dir: Path | None
    databases: list[ThrowawayDatabase] = field(default_factory=list)
    connects: int = 0  # the nodes' session: one more on every connect, as on an edge node
    clouds: int = 1  # `cctv cloud` processes per cloud arm, splitting the shared subscription

    @property
    def total(self) -> int:
        return sum(self.counts)

    def spec(self, ids_file: Path) -> dict[str, Any]:
        self.connects += 1
        return {"host": self.broker.host, "port": self.broker.port, "nodes": self.nodes,
                "counts": self.counts, "ids_file": str(ids_file), "session": self.connects,
                "passwords": {n: self.broker.passwords[n] for n in self.nodes}}


class CpuWindow:
    """CPU seconds of named processes (and of the PostgreSQL backends serving the
    cloud, as "db": read again at the end, a backend opened meanwhile counts
    with its whole life), and of the whole box, over a window."""

    def __init__(self, pids: dict[str, Sequence[int]],
                 db_pids: Callable[[], list[int]] = list) -> None:
        self._pids = pids
        self._db_pids = db_pids
        self._start = {name: cpu_seconds_of(list(group)) for name, group in pids.items()}
        self._db_start = {pid: cpu_seconds(pid) for pid in db_pids()}
        self._box = box_times()
        self._t = time.monotonic()

    def finish(self) -> tuple[dict[str, float], float]:
        used = {name: cpu_seconds_of(list(group)) - self._start[name]
                for name, group in self._pids.items()}
        used["db"] = sum(cpu_seconds(pid) - self._db_start.get(pid, 0.0)
                         for pid in self._db_pids())
        box = box_times()
        wall = time.monotonic() - self._t
        busy_cores = (box.busy_s - self._box.busy_s) / wall if wall > 0 else 0.0
        return used, max(0.0, busy_cores - sum(used.values()) / wall if wall > 0 else 0.0)


async def start_publisher(run: Run, tag: str) -> tuple[Worker, Path]:
    ids_file = run.work / f"{tag}.ids"
    worker = await Worker.start([__file__, "--role", "publisher"],
                                run.work / f"{tag}.publisher.log")
    await worker.send(run.spec(ids_file))
    await worker.receive(timeout_s=300)
    return worker, ids_file


def publish_problems(published: dict[str, Any]) -> str:
    problems = [f"{published[k]} {what}" for k, what in (
        ("refused", "publishes refused by the broker"), ("lost", "node connections lost"))
        if published.get(k)]
    return "".join(f", {p}" for p in problems)


async def wait_online(cloud: CloudProcess, nodes: int, timeout_s: float = 60) -> None:
    """Until the cloud shows every node online: their `online`, state and first
    heartbeat are stored before the clock starts."""
    deadline = time.monotonic() + timeout_s
    async with cloud.api() as api:
        while True:
            response = await api.get("/api/nodes", params={"online": "true", "limit": 1})
            response.raise_for_status()
            if response.json()["total"] >= nodes:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {response.json()['total']} of {nodes} nodes online "
                                   f"in the cloud after {timeout_s:.0f}s")
            await asyncio.sleep(0.1)


async def run_bare(run: Run, tag: str) -> ArmResult:
    counter = await Worker.start([__file__, "--role", "counter"], run.work / f"{tag}.log")
    publisher: Worker | None = None
    try:
        await counter.send({
            "host": run.broker.host, "port": run.broker.port, "expected": run.total,
            "password": run.broker.passwords[CLOUD_ACCOUNT],
            "filter": TopicTable.shared(SHARE_GROUP, TOPICS.subscription(Channel.EVENTS))})
        await counter.receive(timeout_s=30)
        publisher, _ = await start_publisher(run, tag)
        window = CpuWindow({"subscriber": [counter.pid], "broker": [run.broker.pid or 0],
                            "publisher": [publisher.pid]})
        await publisher.send({"go": True})
        published = await publisher.receive(timeout_s=run.timeout_s)
        counted = await counter.receive(timeout_s=run.timeout_s)
        cpu, others = window.finish()
        verified = ("ok" if counted["count"] == run.total else f"{counted['count']} counted"
                    ) + publish_problems(published)
        return ArmResult("bare", run.total, counted["last"] - published["first"],
                         published["acked"] - published["first"], verified, cpu, others)
    finally:
        if publisher is not None:
            await publisher.stop()
        await counter.stop()


class AckWatcher:
    """Follows the cloud's EventAck per node, as the cctv-cloud account."""

    def __init__(self, last_seq: dict[str, int]) -> None:
        self._last_seq = last_seq
        self.upto: dict[str, int] = {}
        self.all_done = asyncio.Event()
        self.done_at = 0.0
        self.connection: MqttConnection | None = None

    def on_message(self, topic: str, payload: bytes) -> None:
        parsed = TOPICS.parse(topic)
        self.upto[parsed.node_id] = max(self.upto.get(parsed.node_id, 0),
                                        int(json.loads(payload)["upto_seq"]))
        self._check()

    def _check(self) -> None:
        if not self.all_done.is_set() and all(
                self.upto.get(n, 0) >= s for n, s in self._last_seq.items()):
            self.done_at = time.monotonic()
            self.all_done.set()

    async def start(self, broker: Broker) -> None:
        self.connection = await sim_nodes.cloud_watcher(
            broker, "acks", [TOPICS.subscription(Channel.ACKS)], self.on_message)

    async def wait_for(self, last_seq: dict[str, int], timeout_s: float) -> None:
        self._last_seq = last_seq
        self.all_done.clear()
        self._check()
        await asyncio.wait_for(self.all_done.wait(), timeout_s)


async def probe(run: Run, watcher: AckWatcher, clouds: Sequence[CloudProcess]) -> None:
    """One event from a node of its own, stored and acknowledged, and received by
    every cloud process (the shared subscription deals it round robin): each is
    subscribed, and one has committed, before the clock starts."""
    connection = await open_connection(
        run.broker.host, run.broker.port,
        connect_packet(PROBE_NODE, PROBE_NODE, run.broker.passwords[PROBE_NODE],
                       keepalive=60, clean_start=True))
    topic, payload, _ = segment_event(PROBE_NODE, 1, new_id())
    deadline = time.monotonic() + 60
    try:
        while True:
            connection.publish(topic, payload)  # again until stored: idempotent
            with contextlib.suppress(TimeoutError):
                await watcher.wait_for({PROBE_NODE: 1}, timeout_s=2)
                received = [(await c.ingest_counters())["events"] for c in clouds]
                if all(received):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the cloud never acknowledged the probe event")
    finally:
        connection.disconnect()


def verify(database_url: str, run: Run, ids_file: Path) -> str:
    """Every published event stored once, with its segment; acked_seq per node right."""
    expected = set(ids_file.read_text().split())
    engine = create_engine(database_url)
    try:
        with engine.connect() as db:
            nodes = {"nodes": run.nodes}
            in_nodes = "node_id IN :nodes"
            stored = [r[0] for r in db.execute(
                text(f"SELECT event_id FROM event WHERE {in_nodes}").bindparams(  # noqa: S608
                    _expanding("nodes")), nodes)]
            segments = db.execute(text(f"SELECT count(*) FROM segment WHERE {in_nodes}")  # noqa: S608
                                  .bindparams(_expanding("nodes")), nodes).scalar_one()
            rows = {r[0]: (r[1], r[2]) for r in db.execute(
                text(f"SELECT node_id, acked_seq, seq_gaps FROM node WHERE {in_nodes}")  # noqa: S608
                .bindparams(_expanding("nodes")), nodes)}
    finally:
        engine.dispose()
    problems = []
    duplicates = sum(c - 1 for c in Counter(stored).values() if c > 1)
    if duplicates:
        problems.append(f"{duplicates} stored twice")
    if set(stored) != expected:
        problems.append(f"{len(expected - set(stored))} missing, "
                        f"{len(set(stored) - expected)} unexpected")
    if segments != len(expected):
        problems.append(f"{segments} segments for {len(expected)} events")
    wrong = [n for n, c in zip(run.nodes, run.counts, strict=True) if rows.get(n) != (c, 0)]
    if wrong:
        problems.append(f"{len(wrong)} nodes with wrong acked_seq/gaps (e.g. {wrong[0]}: "
                        f"{rows.get(wrong[0])})")
    return "; ".join(problems) or "ok"


def _expanding(name: str) -> Any:
    from sqlalchemy import bindparam  # noqa: PLC0415

    return bindparam(name, expanding=True)


async def ingest_counters(clouds: Sequence[CloudProcess]) -> dict[str, float]:
    """The cloud processes' ingest counters, summed."""
    total: dict[str, float] = {}
    for cloud in clouds:
        for key, value in (await cloud.ingest_counters()).items():
            total[key] = total.get(key, 0.0) + value
    return total


def cloud_processes(run: Run, tag: str, database: ThrowawayDatabase | None
                    ) -> list[CloudProcess]:
    """`run.clouds` cloud processes on one database (the first one's SQLite file
    when not PostgreSQL), each with a session of its own in the shared subscription."""
    token = secrets.token_urlsafe(16)
    clouds = [CloudProcess(run.work / tag, run.broker,
                           database_url=database.url if database else None,
                           client_id=f"bench-ingest-{tag}", token=token)]
    for index in range(1, run.clouds):
        clouds.append(CloudProcess(run.work / f"{tag}-{index}", run.broker,
                                   database_url=clouds[0].database_url,
                                   client_id=f"bench-ingest-{tag}-{index}", token=token))
    return clouds


async def stop_clouds(run: Run, clouds: Sequence[CloudProcess]) -> None:
    for cloud in clouds:
        cloud.stop()
        with contextlib.suppress(Exception):  # the broker may be gone on Ctrl-C
            await purge_session(run.broker, cloud.client_id)


async def run_cloud(run: Run, arm: str, tag: str) -> ArmResult:
    database: ThrowawayDatabase | None = None
    if arm == "postgres":
        database = ThrowawayDatabase(run.dsn)
        run.databases.append(database)
        database.create()
    clouds = cloud_processes(run, tag, database)
    cloud = clouds[0]
    last_seq = dict(zip(run.nodes, run.counts, strict=True))
    watcher = AckWatcher(last_seq)
    publisher: Worker | None = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        for each in clouds:  # one after the other: each runs the migrations first
            each.start()
            await each.wait_healthy()
        await watcher.start(run.broker)
        await probe(run, watcher, clouds)
        publisher, ids_file = await start_publisher(run, tag)
        await wait_online(cloud, len(run.nodes))
        if run.profile_dir is not None:
            spy = start_py_spy(cloud.pid, run.profile_dir / tag)
        counters = await ingest_counters(clouds)
        window = CpuWindow({"cloud": [c.pid for c in clouds], "broker": [run.broker.pid or 0],
                            "publisher": [publisher.pid]},
                           database.backend_pids if database else list)
        waiting = asyncio.ensure_future(watcher.wait_for(last_seq, run.timeout_s))
        await publisher.send({"go": True})
        published = await publisher.receive(timeout_s=run.timeout_s)
        try:
            await waiting
        except TimeoutError:
            stored = sum(watcher.upto.get(n, 0) for n in run.nodes)
            raise RuntimeError(f"{arm}: only {stored} of {run.total} events acknowledged "
                               f"after {run.timeout_s:.0f}s; log {cloud.log_path}") from None
        cpu, others = window.finish()
        after = await ingest_counters(clouds)
        if spy is not None:
            stop_py_spy(spy)
            spy = None
        await stop_clouds(run, clouds)
        verified = verify(cloud.database_url, run, ids_file) + publish_problems(published)
        return ArmResult(arm, run.total, watcher.done_at - published["first"],
                         published["acked"] - published["first"], verified, cpu, others,
                         after["batches"] - counters["batches"],
                         after["batch_s"] - counters["batch_s"])
    finally:
        if spy is not None:
            stop_py_spy(spy)
        if publisher is not None:
            await publisher.stop()
        if watcher.connection is not None:
            watcher.connection.disconnect()
        await stop_clouds(run, clouds)
        if database is not None:
            database.drop()


# --- report -----------------------------------------------------------------------


def print_profiles(profile_dir: Path) -> None:
    for raw in sorted(profile_dir.glob("*.txt")):
        print(f"\nprofile {raw.name} (py-spy, cloud process, CPU samples):")
        for line in profile_summary(raw):
            print(line)


def report(results: list[list[ArmResult]], arms: list[str]) -> bool:
    print("\nper round (CPU in seconds over the arm; us/ev: CPU of the subscriber or cloud,\n"
          "plus its PostgreSQL backends, per event; others: cores busy with processes not ours):")
    print(f"{'round':>5} {'arm':<9} {'events':>7} {'seconds':>8} {'events/s':>9} {'ratio':>6} "
          f"{'pub s':>6} {'CPU sub/cloud':>13} {'broker':>6} {'pub':>5} {'db':>5} {'us/ev':>6} "
          f"{'others':>6}  verified")
    for number, round_results in enumerate(results, 1):
        bare = next((r for r in round_results if r.arm == "bare"), None)
        for r in round_results:
            ratio = f"{r.rate / bare.rate:.2f}" if bare and bare.rate else "-"
            cpu = list(r.cpu_s.values())
            per_event = 1e6 * (cpu[0] + r.cpu_s.get("db", 0.0)) / r.events
            print(f"{number:>5} {r.arm:<9} {r.events:>7} {r.seconds:>8.2f} {r.rate:>9.0f} "
                  f"{ratio:>6} {r.publish_s:>6.2f} {cpu[0]:>13.2f} {cpu[1]:>6.2f} "
                  f"{cpu[2]:>5.2f} {r.cpu_s.get('db', 0.0):>5.2f} {per_event:>6.0f} "
                  f"{r.others_busy:>6.2f}  {r.verified}")
    print("\ncloud arms: the cloud's commits (its /metrics), and its CPU over the wall time "
          "(1.00: one core\nbusy throughout, the most one ingest process's Python gets; "
          "summed over --clouds processes):")
    for number, round_results in enumerate(results, 1):
        for r in round_results:
            if r.arm != "bare" and r.commits:
                per_commit_ms = 1000 * r.commit_s / r.commits
                print(f"{number:>5} {r.arm:<9} {r.commits:>6.0f} commits, "
                      f"{r.events / r.commits:>5.1f} events and {per_commit_ms:5.1f} ms each; "
                      f"cloud CPU/wall {r.cpu_s['cloud'] / r.seconds:.2f}")
    print("\nsummary (median over rounds; ratio = median of per-round ratios to bare):")
    ok = True
    for arm in arms:
        rates = [r.rate for rr in results for r in rr if r.arm == arm]
        line = f"  {arm:<9} {statistics.median(rates):>8.0f} events/s"
        if arm != "bare" and "bare" in arms:
            ratios = [next(r.rate for r in rr if r.arm == arm)
                      / next(r.rate for r in rr if r.arm == "bare") for rr in results]
            median_ratio = statistics.median(ratios)
            passed = median_ratio >= TARGET_RATIO
            ok &= passed
            line += (f"   {arm}/bare = {median_ratio:.2f} (target >= {TARGET_RATIO}: "
                     f"{'met' if passed else 'NOT met'})")
        print(line)
    bad = [r for rr in results for r in rr if r.verified != "ok"]
    if bad:
        ok = False
        for r in bad:
            print(f"  CHECK FAILED {r.arm}: {r.verified}")
    else:
        print("  every event stored exactly once, every node acked to its last seq"
              if any(a != "bare" for a in arms) else "  every event counted")
    return ok


async def bench(args: argparse.Namespace) -> int:
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = set(arms) - set(ARMS)
    if unknown:
        raise SystemExit(f"--arms: unknown {', '.join(sorted(unknown))}; from {', '.join(ARMS)}")
    work = make_work_dir("cctv-bench-ingest-")
    nodes = node_names(args.nodes)
    broker = Broker(work / "broker", [CLOUD_ACCOUNT, PROBE_NODE, *nodes])
    profile_dir: Path | None = args.profile
    run = Run(broker, nodes, split(args.events, args.nodes), work,
              timeout_s=max(120.0, args.events / 100), dsn=args.dsn, profile_dir=profile_dir,
              clouds=args.clouds)
    print(f"ingest benchmark: {run.total} events from {len(nodes)} nodes, arms "
          f"{', '.join(arms)}, {args.clouds} cloud process(es) per cloud arm, "
          f"{args.rounds} round(s); {cpu_model()}, "
          f"{os.cpu_count()} cores; work dir {work}")
    results: list[list[ArmResult]] = []
    try:
        broker.start()
        for number in range(1, args.rounds + 1):
            round_results = []
            for arm in arms:
                tag = f"r{number}-{arm}"
                result = await (run_bare(run, tag) if arm == "bare"
                                else run_cloud(run, arm, tag))
                print(f"  round {number} {arm:<9} {result.rate:>8.0f} events/s "
                      f"({result.seconds:.2f} s, published in {result.publish_s:.2f} s) "
                      f"{result.verified}", flush=True)
                round_results.append(result)
            results.append(round_results)
        ok = report(results, arms)
        if profile_dir is not None:
            print_profiles(profile_dir)
        return 0 if ok else 1
    finally:
        for database in run.databases:
            with contextlib.suppress(Exception):
                database.drop()
        broker.stop()
        sim_nodes.remove_work_dir(work, args.keep)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Cloud ingest rate (SQLite, PostgreSQL) against a bare gmqtt subscriber "
                    "draining the same broker, same run; checks every event stored once.")
    parser.add_argument("--events", type=int, default=20000, help="events per arm (20000)")
    parser.add_argument("--nodes", type=int, default=20, help="simulated nodes (20)")
    parser.add_argument("--clouds", type=int, default=1,
                        help="`cctv cloud` processes per cloud arm, on one database, splitting "
                             "the event stream by the shared subscription (1)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of all arms; medians are reported (1)")
    parser.add_argument("--arms", default=",".join(ARMS),
                        help=f"comma-separated, from {','.join(ARMS)} (all)")
    parser.add_argument("--dsn", default=DEFAULT_DSN,
                        help="libpq conninfo of a PostgreSQL server where databases may be "
                             "created and dropped")
    parser.add_argument("--profile", metavar="DIR",
                        help="record each cloud arm with py-spy into DIR and summarise")
    parser.add_argument("--quick", action="store_true", help="5000 events, 10 nodes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--role", choices=("publisher", "counter"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.nodes = 5000, 10
    if args.profile:
        args.profile = Path(args.profile).resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    if args.events < args.nodes or args.nodes < 1 or args.rounds < 1 or args.clouds < 1:
        parser.error("need --nodes >= 1, --events >= --nodes, --rounds >= 1, --clouds >= 1")
    return args


def main() -> int:
    args = parse_args()
    child = {"publisher": publisher_main, "counter": counter_main}.get(args.role or "")
    return sim_nodes.run_main(child, lambda: bench(args))


if __name__ == "__main__":
    sys.exit(main())
