"""Prometheus metrics read from the supervisor's status (one source of truth)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._supervisor import Supervisor

__all__ = ["StatusCollector", "serve_metrics"]


class StatusCollector:
    """A prometheus-client collector exporting ``Supervisor.status()`` on each scrape."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._sup = supervisor

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        st = self._sup.status()
        frames = CounterMetricFamily(
            "marketfeed_frames", "Frames received", labels=["connection", "venue"]
        )
        malformed = CounterMetricFamily(
            "marketfeed_malformed_frames", "Malformed frames", labels=["connection", "venue"]
        )
        reconnects = CounterMetricFamily(
            "marketfeed_reconnects", "Reconnections", labels=["connection", "venue"]
        )
        up = GaugeMetricFamily(
            "marketfeed_connection_up", "1 when connected", labels=["connection", "venue"]
        )
        for c in st.connections:
            labels = [c.name, c.venue]
            frames.add_metric(labels, c.frames)
            malformed.add_metric(labels, c.malformed)
            reconnects.add_metric(labels, c.reconnects)
            up.add_metric(labels, 1.0 if c.state == "connected" else 0.0)
        events = CounterMetricFamily(
            "marketfeed_subscription_events",
            "Events per subscription",
            labels=["venue", "channel", "symbol", "state"],
        )
        for s in st.subscriptions:
            events.add_metric([s.venue, s.channel, s.symbol, s.state], s.events)
        depth = GaugeMetricFamily(
            "marketfeed_sink_queue_depth", "Events waiting per sink", labels=["sink"]
        )
        rows = CounterMetricFamily("marketfeed_sink_rows", "Rows stored per sink", labels=["sink"])
        for k in st.sinks:
            depth.add_metric([k.name], k.queue_depth)
            rows.add_metric([k.name], k.rows)
        dead = CounterMetricFamily("marketfeed_dead_letters", "Dead letters", value=st.dead_letters)
        yield from (frames, malformed, reconnects, up, events, depth, rows, dead)


def serve_metrics(supervisor: Supervisor, port: int, addr: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` for Prometheus on ``addr:port`` (a daemon thread)."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(StatusCollector(supervisor))
    start_http_server(port, addr=addr, registry=registry)
