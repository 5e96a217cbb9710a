"""``marketfeed demo``: real captures -> loopback replay server -> plugins -> supervisor -> sink.

Every venue plugin that bundles a :class:`marketfeed.Demo` takes part (OKX and Upbit in this
repository). Nothing leaves the machine: the plugins' endpoints point at the replay server.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import anyio
from rich.table import Table

from .._config import parse_config
from .._errors import MarketfeedError
from .._models import BookDelta, BookSnapshot, DeadLetter, Event
from .._plugins import PluginManager
from .._supervisor import Supervisor
from ..testing import ReplayServer, read_capture, read_http_capture

__all__ = ["DemoSummary", "run_demo"]

_TABLE_OF_KIND = {
    "trade": "trade",
    "ticker": "ticker",
    "candle": "candle",
    "book": "book_top",
    "book_snapshot": "book_top",
    "book_delta": "book_top",
}


class DemoSummary:
    """What the demo did, per venue and channel (see :meth:`table`)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.elapsed = 0.0
        self.url = ""
        self.dead_letters = 0
        self.errors: list[str] = []

    @property
    def failed(self) -> bool:
        """True when a subscription failed or nothing was stored."""
        return bool(self.errors) or not any(r["stored"] for r in self.rows)

    def table(self) -> Table:
        """A rich table: venue, channel, frames, events, rows stored, books validated,
        errors, dead letters, rate."""
        t = Table(title=f"marketfeed demo -> {self.url}")
        for col in ("venue", "channel", "frames", "events", "rows stored", "books validated",
                    "errors", "dead letters", "events/s"):
            t.add_column(col, justify="right" if col not in ("venue", "channel") else "left")
        for r in self.rows:
            rate = r["events"] / self.elapsed if self.elapsed else 0.0
            t.add_row(r["venue"], r["channel"], str(r["frames"]), str(r["events"]),
                      str(r["stored"]), str(r["books"]), str(r["errors"]),
                      str(r["dead_letters"]), f"{rate:,.0f}")
        return t

    def footer(self) -> str:
        """One line: elapsed time, dead letters and errors."""
        text = f"elapsed {self.elapsed:.2f}s; dead letters {self.dead_letters}"
        if self.errors:
            text += "; errors: " + "; ".join(self.errors[:5])
        return text


def _stored_rows(url: str) -> dict[tuple[str, str], int]:
    """``(table, venue) -> rows`` in an SQL sink database (empty if it cannot be read)."""
    try:
        import sqlalchemy as sa
    except ImportError:  # pragma: no cover - the sql sink installs it
        return {}
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    engine = sa.create_engine(url)
    out: dict[tuple[str, str], int] = {}
    try:
        with engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
            for table in set(_TABLE_OF_KIND.values()) & names:
                query = f"SELECT venue, COUNT(*) FROM {table} GROUP BY venue"
                for venue, n in conn.execute(sa.text(query)):
                    out[(table, venue)] = int(n)
    finally:
        engine.dispose()
    return out


async def run_demo(url: str, speed: float | None, only: Sequence[str]) -> DemoSummary:
    """Run the demo into the sink at ``url``.

    Raises:
        MarketfeedError: no installed plugin bundles a demo.
    """
    pm = PluginManager()
    demos = {
        name: info.demo
        for name, info in pm.venues.items()
        if info.demo is not None and (not only or name in only)
    }
    if not demos:
        raise MarketfeedError(
            "no installed venue plugin bundles a demo: pip install ./plugins/okx ./plugins/upbit"
        )
    summary = DemoSummary()
    summary.url = url
    async with ReplayServer() as server:
        routes: list[str] = []
        venues: dict[str, Any] = {}
        subscriptions: list[dict[str, Any]] = []
        for name, demo in demos.items():
            for path, file in demo.ws.items():
                server.add_ws(path, read_capture(file), speed=speed)
                routes.append(path)
            for file in demo.http:
                server.add_http(read_http_capture(file))
            endpoints = {
                ep: (server.ws_url + path if path.startswith("/") else server.http_url + path)
                for ep, path in demo.endpoints.items()
            }
            venues[name] = {"endpoints": endpoints, **dict(demo.options)}
            subscriptions += [{"venue": name, **dict(s)} for s in demo.subscriptions]
        config = parse_config(
            {
                "supervisor": {
                    "status_path": None,
                    "batch_interval": 0.2,
                    "batch_size": 5000,
                    "dead_letter_path": "marketfeed-demo-dead-letters.jsonl",
                },
                "venues": venues,
                "subscriptions": subscriptions,
                "sinks": [{"type": "sql", "url": url}],
            }
        )
        books: collections.Counter[str] = collections.Counter()
        dead: collections.Counter[str] = collections.Counter()
        started = time.perf_counter()
        async with Supervisor(config) as sup:

            async def count(events: Any) -> None:
                async for ev in events:
                    _count(ev, books, dead)

            async with anyio.create_task_group() as tg:
                tg.start_soon(count, sup.events(BookSnapshot, BookDelta, DeadLetter))
                await _wait_replayed(server, sup, routes)
                tg.cancel_scope.cancel()
            status = sup.status()
        summary.elapsed = time.perf_counter() - started
    stored = _stored_rows(url)
    frames: collections.Counter[str] = collections.Counter()
    for c in status.connections:
        frames[c.venue] += c.frames
        if c.malformed:
            summary.errors.append(f"{c.name}: {c.malformed} malformed frames")
    per_channel: dict[tuple[str, str], dict[str, Any]] = {}
    for s in status.subscriptions:
        row = per_channel.setdefault(
            (s.venue, s.channel),
            {"venue": s.venue, "channel": s.channel, "events": 0, "errors": 0},
        )
        row["events"] += s.events
        if s.state == "failed":
            row["errors"] += 1
            summary.errors.append(f"{s.venue} {s.channel} {s.symbol}: {s.code} {s.message}")
    shown_venues: set[str] = set()
    for (venue, channel), row in sorted(per_channel.items()):
        kind = pm.venue(venue).channels.get(channel, "")
        table = _TABLE_OF_KIND.get(kind, "")
        first = venue not in shown_venues
        shown_venues.add(venue)
        row["frames"] = frames[venue] if first else ""
        row["stored"] = stored.get((table, venue), 0)
        row["books"] = books[venue] if kind.startswith("book") else ""
        row["dead_letters"] = dead[venue] if first else ""
        summary.rows.append(row)
    summary.dead_letters = status.dead_letters
    return summary


def _count(ev: Event, books: collections.Counter[str], dead: collections.Counter[str]) -> None:
    if isinstance(ev, BookSnapshot | BookDelta):
        if ev.verified:
            books[ev.venue] += 1
    elif isinstance(ev, DeadLetter):
        dead[ev.venue] += 1


async def _wait_replayed(server: ReplayServer, sup: Supervisor, routes: list[str]) -> None:
    """Until every replay on the demo routes finished, the sinks drained and the
    connections went quiet."""
    norm = {urlsplit(r).path.rstrip("/") or "/" for r in routes}
    with anyio.fail_after(600):
        while True:
            await anyio.sleep(0.1)
            sessions = [s for s in server.ws_sessions if s.path.rstrip("/") in norm]
            status = sup.status()
            if not sessions or len(sessions) < len(status.connections):
                continue
            pending = False
            for session in sessions:
                try:
                    await session.wait_replayed(timeout=0.01)
                except TimeoutError:
                    pending = True
            if pending:
                continue
            frames = sum(c.frames for c in status.connections)
            await anyio.sleep(0.3)
            after = sup.status()
            if sum(c.frames for c in after.connections) == frames and all(
                k.queue_depth == 0 for k in after.sinks
            ):
                return
