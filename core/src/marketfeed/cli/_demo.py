"""``marketfeed demo``: real captures -> loopback replay server -> plugins -> supervisor -> sink.

Every installed venue plugin that bundles a :class:`marketfeed.Demo` takes part (OKX and
Upbit in this repository), all at once in one supervisor. Nothing leaves the machine: the
plugins' endpoints point at a replay server on 127.0.0.1 that serves the bundled captures.

What the summary counts, per venue and channel:

* frames: WebSocket frames the venue's connections received (per venue: frames belong to
  connections, not channels);
* events: market events the normalisers produced (counted by a second, in-process sink
  that receives exactly what the SQL sink receives);
* rows stored: rows of the venue in the channel's table, counted in the database after the
  run (so a second run into the same database shows the same numbers: upserts);
* books validated: book events whose checksum was verified / all book events ("n/a" when
  the venue sends no checksum);
* errors: failed subscriptions and book resyncs (per venue also malformed frames);
* dead letters: frames or events dead-lettered.
"""

from __future__ import annotations

import collections
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import msgspec
from rich.table import Table

from .._config import parse_config
from .._contract import Demo, PersistResult, SinkInfo
from .._errors import MarketfeedError
from .._hookspecs import Registry, hookimpl
from .._models import BookDelta, BookSnapshot, Candle, DeadLetter, Event, event_kind
from .._plugins import PluginManager
from .._status import Status
from .._supervisor import Supervisor
from ..testing import CaptureFrame, ReplayServer, read_capture, read_http_capture

__all__ = ["DemoRow", "DemoSummary", "run_demo"]

_COUNT_SINK = "demo-count"

# event kind -> (sql table, family used to find the venue channel)
_TABLE_OF_KIND = {
    "trade": "trade",
    "ticker": "ticker",
    "candle": "candle",
    "book_snapshot": "book_top",
    "book_delta": "book_top",
}


def _family(kind: str) -> str:
    return "book" if kind.startswith("book") else kind


@dataclass
class DemoRow:
    """One line of the summary: a venue channel, or a venue total (``channel == "all"``).

    Attributes:
        venue, channel: What the line is about (candles: one line per timeframe).
        frames: WebSocket frames received (venue totals only; ``None`` on channel lines).
        events: Market events normalised.
        stored: Rows of the venue in the channel's table after the run (database count).
        books: Book events with a verified checksum; ``book_events``: all book events;
            ``checksummed``: book events that carried a checksum at all.
        errors: Failed subscriptions and book resyncs (+ malformed frames on totals).
        dead_letters: Dead letters (venue totals only).
    """

    venue: str
    channel: str
    frames: int | None = None
    events: int = 0
    stored: int = 0
    books: int = 0
    book_events: int = 0
    checksummed: int = 0
    errors: int = 0
    dead_letters: int | None = None


@dataclass
class DemoSummary:
    """What the demo did (see :meth:`table`)."""

    url: str = ""
    rows: list[DemoRow] = field(default_factory=list)
    elapsed: float = 0.0
    dead_letters: int = 0
    errors: list[str] = field(default_factory=list)
    status: Status | None = None

    @property
    def failed(self) -> bool:
        """True when something went wrong (a failed subscription, a resync, a malformed
        frame, a dead letter) or nothing was stored."""
        totals = [r for r in self.rows if r.channel == "all"]
        return (
            bool(self.errors)
            or self.dead_letters > 0
            or not totals
            or not all(r.stored for r in totals)
        )

    def table(self) -> Table:
        """A rich table: one line per venue channel plus a total per venue and overall."""
        t = Table(title=f"marketfeed demo -> {self.url}", title_justify="left")
        for col in (
            "venue",
            "channel",
            "frames",
            "events",
            "rows stored",
            "books validated",
            "errors",
            "dead letters",
            "events/s",
        ):
            t.add_column(col, justify="left" if col in ("venue", "channel") else "right")
        for r in self.rows:
            if r.book_events:
                books = f"{r.books}/{r.book_events}" if r.checksummed else "n/a (no checksum)"
            else:
                books = ""
            rate = r.events / self.elapsed if self.elapsed else 0.0
            style = "bold" if r.channel == "all" else None
            t.add_row(
                r.venue,
                r.channel,
                "" if r.frames is None else f"{r.frames:,}",
                f"{r.events:,}",
                f"{r.stored:,}",
                books,
                str(r.errors),
                "" if r.dead_letters is None else str(r.dead_letters),
                f"{rate:,.0f}",
                style=style,
                end_section=r.channel == "all",
            )
        return t

    def footer(self) -> str:
        """Elapsed time, overall rates, dead letters and errors (one line each)."""
        totals = [r for r in self.rows if r.channel == "all"]
        frames = sum(r.frames or 0 for r in totals)
        events = sum(r.events for r in totals)
        elapsed = self.elapsed or float("nan")
        text = (
            f"elapsed {self.elapsed:.2f}s: {frames:,} frames ({frames / elapsed:,.0f}/s), "
            f"{events:,} events ({events / elapsed:,.0f}/s); dead letters {self.dead_letters}"
        )
        if any(r.book_events and r.stored < r.events for r in totals):
            text += (
                "\nbook_top keeps at most one top-N snapshot per book per second of venue time"
                " (sql sink option book_interval)"
            )
        for error in self.errors[:10]:
            text += f"\nerror: {error}"
        return text


class _Counts:
    """What the counting sink saw, per venue and summary line."""

    def __init__(self) -> None:
        self.events: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.verified: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.checksummed: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.dead: collections.Counter[str] = collections.Counter()
        self.timeframes: dict[tuple[str, str], str] = {}


class _CountingSink:
    """In-process sink ``demo-count``: counts what the supervisor routes to sinks (the same
    events the SQL sink gets, drained the same way at shutdown)."""

    def __init__(self, counts: _Counts) -> None:
        self.counts = counts

    @hookimpl
    def register(self, registry: Registry) -> None:
        registry.sink(SinkInfo(name=_COUNT_SINK, description="marketfeed demo: event counts"))

    @hookimpl
    def open_sink(self, sink: str, url: str, options: dict[str, Any]) -> Any:
        if sink != _COUNT_SINK:
            return None

        @asynccontextmanager
        async def _open() -> AsyncIterator[_Counts]:
            yield self.counts

        return _open()

    @hookimpl
    def persist(self, sink: str, handle: Any, batch: Sequence[Event]) -> Any:
        if sink != _COUNT_SINK:
            return None
        c = self.counts
        for ev in batch:
            if isinstance(ev, DeadLetter):
                c.dead[ev.venue] += 1
                continue
            venue = getattr(ev, "venue", None)
            if venue is None or not hasattr(ev, "native_symbol"):
                continue  # gaps, instruments without a channel
            kind = event_kind(type(ev))
            timeframe = ev.timeframe if isinstance(ev, Candle) else ""
            key = (venue, _family(kind), timeframe)
            c.events[key] += 1
            if isinstance(ev, BookSnapshot | BookDelta):
                if ev.checksum is not None:
                    c.checksummed[key] += 1
                if ev.verified:
                    c.verified[key] += 1
        return PersistResult(stored=len(batch))


def _candle_channel(timeframe: str, channels: Sequence[str]) -> str:
    """The subscribed candle channel of a normalised timeframe (``"1h"`` -> OKX
    ``candle1H``, ``"1m"`` -> Upbit ``candle.1m``), or ``"candle <timeframe>"``."""

    for fold in (False, True):  # exact case first ("1m" minute vs OKX "1M" month)
        tf = timeframe.lower() if fold else timeframe
        found = [c for c in channels if _ends_with_timeframe(c.lower() if fold else c, tf)]
        if len(found) == 1:
            return found[0]
    return f"candle {timeframe}"


def _ends_with_timeframe(channel: str, timeframe: str) -> bool:
    """``candle15m`` ends with ``15m`` but not with ``5m``."""
    return channel.endswith(timeframe) and not channel[: -len(timeframe)][-1:].isdigit()


def _stored_rows(url: str, options: Mapping[str, Any]) -> dict[tuple[str, str, str], int]:
    """``(table, venue, timeframe) -> rows`` in the SQL sink's database (``timeframe`` is
    ``""`` except for candles)."""
    from marketfeed_sinks import make_engine
    from sqlalchemy import inspect, text

    engine = make_engine(url, schema=options.get("schema"))
    out: dict[tuple[str, str, str], int] = {}
    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names(schema=options.get("schema")))
            for table in sorted(set(_TABLE_OF_KIND.values()) & names):
                if table == "candle":
                    query = (
                        "SELECT venue, timeframe, COUNT(*) FROM candle GROUP BY venue, timeframe"
                    )
                    for venue, tf, n in conn.execute(text(query)):
                        out[(table, venue, tf)] = int(n)
                else:
                    query = f"SELECT venue, COUNT(*) FROM {table} GROUP BY venue"
                    for venue, n in conn.execute(text(query)):
                        out[(table, venue, "")] = int(n)
    finally:
        engine.dispose()
    return out


MAX_PAUSE = 10.0
"""Seconds: at a recorded ``--speed``, longer pauses between two frames are shortened to
this (the OKX candle frames are single pushes recorded months apart)."""


def _shorten_pauses(frames: Sequence[CaptureFrame]) -> list[CaptureFrame]:
    """The frames with every gap in ``t`` longer than :data:`MAX_PAUSE` cut to it."""
    out: list[CaptureFrame] = []
    shift = 0.0
    previous: float | None = None
    for f in frames:
        if previous is not None and f.t - previous > MAX_PAUSE:
            shift += f.t - previous - MAX_PAUSE
        previous = f.t
        out.append(msgspec.structs.replace(f, t=f.t - shift) if shift else f)
    return out


def _span(frames: Sequence[CaptureFrame]) -> float:
    times = [f.t for f in frames if f.dir == "in"]
    return max(times) - min(times) if times else 0.0


async def run_demo(
    url: str,
    speed: float | None = None,
    only: Sequence[str] = (),
    *,
    sink_options: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> DemoSummary:
    """Replay every bundled demo capture through the real plugins and supervisor into the
    SQL sink at ``url``; return the summary.

    Args:
        url: SQL sink URL (``sqlite:///marketfeed-demo.db``, ``postgresql://...``).
        speed: ``None`` as fast as possible; ``1.0`` the recorded pace; ``10`` ten times
            faster.
        only: Venue names to include (empty: every venue with a demo).
        sink_options: Options of the SQL sink (e.g. ``{"schema": "demo"}``).
        timeout: Seconds to wait for the replays to be delivered (default: 120 s plus the
            longest capture's duration at ``speed``).

    Raises:
        MarketfeedError: no installed plugin bundles a demo (or none of ``only``), the
            sink cannot be opened, or the replays were not delivered within ``timeout``
            (the message says which connection is behind and why).
    """
    pm = PluginManager()
    demos: dict[str, Demo] = {
        name: info.demo
        for name, info in sorted(pm.venues.items())
        if info.demo is not None and (not only or name in only)
    }
    if not demos:
        wanted = f" among {', '.join(only)}" if only else ""
        raise MarketfeedError(
            f"no installed venue plugin bundles a demo{wanted}: "
            "pip install ./plugins/okx ./plugins/upbit"
        )
    options = dict(sink_options or {})
    summary = DemoSummary(url=url)
    counts = _Counts()
    longest = 0.0
    async with ReplayServer() as server:
        venues: dict[str, Any] = {}
        subscriptions: list[dict[str, Any]] = []
        replayed: dict[str, int] = {}  # path -> frames each connection gets
        for name, demo in demos.items():
            for path, file in demo.ws.items():
                frames = _shorten_pauses(read_capture(file))
                longest = max(longest, _span(frames))
                replayed[_path(path)] = sum(1 for f in frames if f.dir == "in")
                server.add_ws(path, frames, speed=speed)
            for file in demo.http:
                server.add_http(read_http_capture(file))
            endpoints = {
                ep: (server.ws_url if path in demo.ws else server.http_url) + path
                for ep, path in demo.endpoints.items()
            }
            venues[name] = {"endpoints": endpoints, **dict(demo.options)}
            subscriptions += [{**dict(s), "venue": name} for s in demo.subscriptions]
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
                "sinks": [
                    {"type": "sql", "url": url, "options": options},
                    {"type": _COUNT_SINK, "url": "count://demo"},
                ],
            }
        )
        if timeout is None:
            timeout = 120.0 + (longest / speed if speed else 0.0)
        started = time.perf_counter()
        async with Supervisor(config, plugins=[_CountingSink(counts)]) as sup:
            await _wait_delivered(server, sup, replayed, timeout)
        # leaving the block drained and flushed every sink
        status = sup.status()
        summary.elapsed = time.perf_counter() - started
    summary.status = status
    try:
        stored = _stored_rows(url, options)
    except Exception as exc:  # report, keep the summary
        summary.errors.append(f"cannot count rows in {status.sinks[0].url}: {exc}")
        stored = {}
    _fill(summary, pm, demos, status, counts, stored)
    return summary


def _fill(
    summary: DemoSummary,
    pm: PluginManager,
    demos: Mapping[str, Demo],
    status: Status,
    counts: _Counts,
    stored: Mapping[tuple[str, str, str], int],
) -> None:
    for venue in demos:
        summary.rows += _venue_rows(venue, pm, status, counts, stored, summary.errors)
    summary.dead_letters = status.dead_letters
    summary.errors += [e for e in status.errors if e not in summary.errors]


def _venue_rows(
    venue: str,
    pm: PluginManager,
    status: Status,
    counts: _Counts,
    stored: Mapping[tuple[str, str, str], int],
    errors: list[str],
) -> list[DemoRow]:
    """The venue's channel lines (sorted) and its total line; problems go to ``errors``
    (failed subscriptions are already in the supervisor's own error list)."""
    channels_of = pm.venue(venue).channels
    subs = [s for s in status.subscriptions if s.venue == venue]
    channels = list(dict.fromkeys(s.channel for s in subs))
    by_family: dict[str, list[str]] = collections.defaultdict(list)
    for c in channels:
        by_family[_family(channels_of.get(c, c))].append(c)
    rows: dict[str, DemoRow] = {
        c: DemoRow(
            venue=venue,
            channel=c,
            stored=stored.get((_TABLE_OF_KIND.get(channels_of.get(c, ""), ""), venue, ""), 0),
        )
        for c in channels
        if _family(channels_of.get(c, c)) != "candle"
    }
    for (v, family, tf), n in counts.events.items():
        if v != venue:
            continue
        if family == "candle":
            name = _candle_channel(tf, by_family["candle"])
            r = rows.setdefault(name, DemoRow(venue=venue, channel=name))
            r.stored = stored.get(("candle", venue, tf), 0)
        else:
            name = "/".join(by_family[family]) or family
            r = rows.setdefault(name, DemoRow(venue=venue, channel=name))
        r.events += n
        r.books += counts.verified[(v, family, tf)]
        r.checksummed += counts.checksummed[(v, family, tf)]
        r.book_events += n if family == "book" else 0
    for s in subs:
        r = rows.setdefault(s.channel, DemoRow(venue=venue, channel=s.channel))
        r.errors += (s.state == "failed") + s.resyncs
        if s.resyncs:
            errors.append(f"{venue} {s.channel} {s.symbol}: book resynchronised {s.resyncs}x")
    conns = [c for c in status.connections if c.venue == venue]
    malformed = sum(c.malformed for c in conns)
    if malformed:
        errors.append(f"{venue}: {malformed} malformed frames (dead-lettered)")
    lines = sorted(rows.values(), key=lambda r: r.channel)
    total = DemoRow(
        venue=venue,
        channel="all",
        frames=sum(c.frames for c in conns),
        events=sum(r.events for r in lines),
        stored=sum(n for (_table, v, _tf), n in stored.items() if v == venue),
        books=sum(r.books for r in lines),
        book_events=sum(r.book_events for r in lines),
        checksummed=sum(r.checksummed for r in lines),
        errors=sum(r.errors for r in lines) + malformed,
        dead_letters=counts.dead[venue],
    )
    return [*lines, total]


async def _wait_delivered(
    server: ReplayServer, sup: Supervisor, frames: Mapping[str, int], timeout: float
) -> None:
    """Until every demo route replayed its capture and the supervisor received every frame
    the server sent (then leaving the supervisor drains and flushes the sinks).

    Raises:
        MarketfeedError: not done within ``timeout`` seconds (names what is behind).
    """
    wanted = set(frames)
    with anyio.move_on_after(timeout):
        while True:
            await anyio.sleep(0.05)
            sessions = [s for s in server.ws_sessions if s.path in wanted]
            if {s.path for s in sessions} != wanted:
                continue
            if not all(s.replay_done for s in sessions if not s.closed):
                continue
            if _behind(server, sup.status(), wanted):
                continue
            return
    status = sup.status()
    behind = _behind(server, status, wanted) or ["replay not finished"]
    raise MarketfeedError(
        f"the demo replays were not delivered within {timeout:.0f}s: {'; '.join(behind)}"
    )


def _path(url: str) -> str:
    return urlsplit(url).path.rstrip("/") or "/"


def _behind(server: ReplayServer, status: Status, wanted: set[str]) -> list[str]:
    """Paths whose frames sent by the server were not all received (with the connection's
    state and last error)."""
    sent: collections.Counter[str] = collections.Counter()
    for s in server.ws_sessions:
        if s.path in wanted:
            sent[s.path] += s.sent
    received: collections.Counter[str] = collections.Counter()
    states: dict[str, str] = {}
    for c in status.connections:
        path = _path(c.url)
        received[path] += c.frames
        states[path] = f"{c.name} {c.state}" + (f" ({c.last_error})" if c.last_error else "")
    return [
        f"{path}: {received[path]} of {sent[path]} frames received, {states.get(path, '?')}"
        for path in sorted(wanted)
        if received[path] < sent[path] or path not in states
    ]
