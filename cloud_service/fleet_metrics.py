"""Fleet-wide gauges for Prometheus, read from the database at each scrape:
what every cloud process would agree on, unlike its own counters."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, func, or_, select
from sqlmodel import Session, col

from cloud_service import tables

_NODE = tables.Node


class FleetCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        drifting = or_(
            col(_NODE.schedules_revision_applied) < col(_NODE.schedules_revision_desired),
            col(_NODE.cameras_revision_applied) < col(_NODE.cameras_revision_desired))
        with Session(self._engine) as session:
            nodes, online, gaps, with_gaps, drift = session.execute(select(
                func.count(),
                func.coalesce(func.sum(case((col(_NODE.online), 1), else_=0)), 0),
                func.coalesce(func.sum(_NODE.seq_gaps), 0),
                func.coalesce(func.sum(case((col(_NODE.seq_gaps) > 0, 1), else_=0)), 0),
                func.coalesce(func.sum(case((drifting, 1), else_=0)), 0),
            )).one()
        for name, help_text, value in (
            ("cctv_fleet_nodes", "Nodes registered or heard from", nodes),
            ("cctv_fleet_nodes_online", "Nodes online", online),
            ("cctv_fleet_seq_gaps", "Events missing between nodes' acked and highest seq", gaps),
            ("cctv_fleet_nodes_with_seq_gaps", "Nodes with events missing", with_gaps),
            ("cctv_fleet_nodes_drifting",
             "Nodes that have not applied their desired schedules or cameras", drift),
        ):
            yield GaugeMetricFamily(name, help_text, value=float(value))
