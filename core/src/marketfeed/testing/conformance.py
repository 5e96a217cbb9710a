"""Conformance suite for venue plugins (architecture section 8).

A plugin author points the suite at an installed plugin and a real capture by subclassing
:class:`VenueConformance` in a test module; pytest collects the inherited tests::

    from pathlib import Path
    from marketfeed.testing.conformance import VenueConformance

    class TestMyVenue(VenueConformance):
        venue = "myvenue"                      # the name the plugin registers
        capture = Path(__file__).parent / "data" / "myvenue.ws.jsonl"
        endpoint = "ws"                        # endpoint the capture was recorded from
        path = "/ws"                           # its URL path on the replay server
        subscriptions = [{"channels": ["trades"], "symbols": ["BTC-USDT"]}]

        def is_market_frame(self, frame: str | bytes) -> bool:
            return b'"event"' not in (frame if isinstance(frame, bytes) else frame.encode())

What it checks:

* **discovery**: the venue is installed through the ``marketfeed`` entry-point group and
  declares channels, endpoints and a strict config schema (unknown keys are errors that
  name the key path);
* **subscribe**: the ``subscribe`` hook returns text or binary frames for every action;
* **normalisation** of every frame of the capture: no exception, every market frame yields
  events, symbols normalised ``BASE-QUOTE``, prices and sizes exact ``Decimal``, times
  timezone-aware UTC, every event round-trips through ``msgspec`` JSON;
* **streaming** through the real :class:`marketfeed.Supervisor` and the replay server into
  the in-memory sink, with no malformed frame;
* **reconnect and resubscribe**: after the replay server drops the connection, the
  supervisor reconnects, sends the subscribe frames again, emits a :class:`Gap`, and
  events keep flowing.

Scheduled (polled) venues such as scrapers subclass :class:`JobConformance` instead: it
runs one of the venue's jobs against recorded responses served by the replay server.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import anyio
import msgspec
import pytest

from .._config import Config, parse_config
from .._contract import ConnectionPlan, Frame, Subscription, VenueInfo
from .._errors import ConfigError
from .._models import CONTROL_EVENTS, Event, Gap, MarketEvent
from .._plugins import PluginManager
from .._supervisor import Supervisor
from ._capture import CaptureFrame, read_capture, read_http_capture
from ._memory import MemorySink
from ._replay import Faults, ReplayServer

__all__ = ["JobConformance", "VenueConformance"]

_SYMBOL = re.compile(r"^[A-Z0-9.]+-[A-Z0-9.]+(-[A-Z0-9.]+)*$")
_event_decoder = msgspec.json.Decoder(Event)
_event_encoder = msgspec.json.Encoder(decimal_format="string")


class _PluginChecks:
    """Checks every plugin passes: discovery, declaration, strict config schema."""

    venue: ClassVar[str] = ""
    options: ClassVar[Mapping[str, Any]] = {}
    symbol_pattern: ClassVar[re.Pattern[str]] = _SYMBOL

    def _info(self) -> VenueInfo:
        return PluginManager().venue(self.venue)

    def _base_config(self, endpoints: Mapping[str, str], **extra: Any) -> Config:
        return parse_config(
            {
                "supervisor": {
                    "status_path": None,
                    "dead_letter_path": None,
                    "batch_interval": 0.05,
                },
                "reconnect": {"initial": 0.05, "maximum": 0.2},
                "venues": {self.venue: {"endpoints": dict(endpoints), **dict(self.options)}},
                "sinks": [{"type": "memory", "url": f"memory://conformance-{self.venue}"}],
                **extra,
            }
        )

    def test_discovered_through_entry_point(self) -> None:
        """The venue is installed through the ``marketfeed`` entry-point group."""
        pm = PluginManager()
        assert self.venue in pm.venues, f"{self.venue!r} not installed via entry points"
        row = next(r for r in pm.listing() if any(v.name == self.venue for v in r["venues"]))
        assert row["distribution"] != "(in-process)"

    def test_config_schema_is_strict_and_names_the_key(self) -> None:
        info = self._info()
        if info.config_schema is None:
            return
        sup = Supervisor(self._base_config({}), plugins=[MemorySink()])
        assert sup.context(self.venue).config is not None
        bad = parse_config({"venues": {self.venue: {"no_such_option_xyz": 1}}})
        with pytest.raises(ConfigError) as exc:
            Supervisor(bad, plugins=[MemorySink()]).context(self.venue)
        assert exc.value.path == f"venues.{self.venue}.no_such_option_xyz"

    def _check_event(self, ev: Any, where: object) -> None:
        assert isinstance(ev, msgspec.Struct)
        if isinstance(ev, CONTROL_EVENTS):
            return
        if isinstance(ev, MarketEvent):
            assert ev.venue == self.venue
            assert self.symbol_pattern.match(ev.symbol), f"{where}: symbol {ev.symbol!r}"
            assert ev.native_symbol, f"{where}: empty native_symbol"
        for field in msgspec.structs.fields(ev):
            value = getattr(ev, field.name)
            assert not isinstance(value, float), f"{where}: {field.name} is a float"
            if isinstance(value, _dt.datetime):
                assert value.utcoffset() == _dt.timedelta(0), f"{where}: {field.name} not UTC"
            if isinstance(value, tuple):
                for level in value:
                    if isinstance(level, tuple):
                        assert all(isinstance(x, Decimal) for x in level), (
                            f"{where}: {field.name} levels must be Decimal"
                        )
        decoded = _event_decoder.decode(_event_encoder.encode(ev))
        assert decoded == ev, f"{where}: {type(ev).__name__} does not round-trip"


class VenueConformance(_PluginChecks):
    """Base class of a plugin's conformance tests (see the module docstring).

    Class attributes to set:
        venue: Venue name the plugin registers.
        capture: A real WebSocket capture (JSON Lines capture format) of that venue.
        endpoint: Endpoint name (``VenueInfo.endpoints``) the capture was recorded from.
        path: URL path the plugin connects to on that endpoint (e.g. ``"/ws/v5/public"``).
        endpoint_path: Path to put in the endpoint URL when it differs from ``path`` (a
            venue that appends to its base URL, e.g. Binance ``/stream``): ``""`` there.
        subscriptions: ``[[subscriptions]]`` tables (without ``venue``) matching the capture.
        options: Venue options for the test config.
        http_captures: HTTP captures the plugin needs while connecting (optional).
        wait_for_client: The venue sends data only after a subscribe frame.
        drop_after: Frames replayed before the reconnect test drops the connection.
        symbol_pattern: Regex every normalised ``symbol`` must match.
    """

    venue: ClassVar[str] = ""
    capture: ClassVar[Path | None] = None
    endpoint: ClassVar[str] = "ws"
    path: ClassVar[str] = "/"
    endpoint_path: ClassVar[str | None] = None
    subscriptions: ClassVar[Sequence[Mapping[str, Any]]] = ()
    http_captures: ClassVar[Sequence[Path]] = ()
    wait_for_client: ClassVar[bool] = True
    drop_after: ClassVar[int] = 20

    # ----------------------------------------------------------------- hooks to override

    def is_market_frame(self, frame: Frame) -> bool:
        """Whether ``frame`` carries market data (acks, pongs and status frames do not).
        The default treats every frame as market data."""
        return True

    # ----------------------------------------------------------------- helpers

    def _frames(self) -> list[CaptureFrame]:
        if self.capture is None:
            pytest.fail("set `capture` to a real capture of the venue")
        return read_capture(self.capture)

    def _config(
        self, ws_url: str = "ws://127.0.0.1:9", http_url: str = "http://127.0.0.1:9"
    ) -> Config:
        endpoints = {}
        ws_path = self.path if self.endpoint_path is None else self.endpoint_path
        for name, url in self._info().endpoints.items():
            if name == self.endpoint or url.startswith(("ws://", "wss://")):
                endpoints[name] = ws_url + ws_path
            else:
                endpoints[name] = http_url
        subscriptions = [{"venue": self.venue, **dict(s)} for s in self.subscriptions]
        return self._base_config(endpoints, subscriptions=subscriptions)

    def _supervisor(self, config: Config | None = None) -> Supervisor:
        return Supervisor(config or self._config(), plugins=[MemorySink()])

    def _expanded(self, sup: Supervisor) -> list[Subscription]:
        return sup._validate()

    def _plans(self, sup: Supervisor) -> list[ConnectionPlan]:
        subs = self._expanded(sup)
        plans: list[ConnectionPlan] = sup.plugins.hook.plan(
            venue=self.venue, subscriptions=subs, context=sup.context(self.venue)
        )
        return plans

    # ----------------------------------------------------------------- discovery

    def test_declares_channels_endpoints_and_docs(self) -> None:
        info = self._info()
        assert info.description, "VenueInfo.description is empty"
        assert info.channels, "a streaming venue declares its channels"
        assert self.endpoint in info.endpoints
        for channel, kind in info.channels.items():
            assert kind in {
                "trade",
                "ticker",
                "candle",
                "book_snapshot",
                "book_delta",
                "book",
                "instrument",
                "daily_bar",
                "investor_flow",
                "etf_holding",
            }, f"channel {channel!r} yields unknown kind {kind!r}"

    # ----------------------------------------------------------------- subscribe

    @pytest.mark.anyio
    async def test_subscribe_frames(self) -> None:
        sup = self._supervisor()
        subs = self._expanded(sup)
        assert subs, "set `subscriptions`"
        for action in ("subscribe", "unsubscribe", "resubscribe"):
            frames = sup.plugins.hook.subscribe(
                venue=self.venue,
                subscriptions=subs[:1],
                action=action,
                context=sup.context(self.venue),
            )
            if inspect.isawaitable(frames):  # the supervisor awaits awaitables too
                frames = await frames
            assert frames is not None, f"subscribe hook returned None for {action}"
            for frame in frames:
                assert isinstance(frame, str | bytes)

    def test_plans_cover_every_subscription(self) -> None:
        sup = self._supervisor()
        plans = self._plans(sup)
        planned = [s.key for p in plans for s in p.subscriptions]
        assert sorted(planned) == sorted(s.key for s in self._expanded(sup))
        assert len({p.name for p in plans}) == len(plans), "connection names must be unique"

    # ----------------------------------------------------------------- normalise

    def test_normalises_every_frame(self) -> None:
        sup = self._supervisor()
        plans = self._plans(sup)
        normaliser = sup.plugins.hook.normalise(
            venue=self.venue, plan=plans[0], context=sup.context(self.venue)
        )
        assert callable(normaliser)
        frames = [f for f in self._frames() if f.dir == "in"]
        assert frames, "the capture has no received frames"
        market_frames = 0
        for i, cf in enumerate(frames):
            payload = cf.payload
            received = _dt.datetime.fromtimestamp(cf.t, _dt.UTC)
            events = normaliser(payload, received)
            if self.is_market_frame(payload):
                market_frames += 1
                assert events, f"market frame {i} yielded no event: {cf.frame[:200]}"
            for ev in events:
                self._check_event(ev, f"frame {i}")
        assert market_frames, "no market frame in the capture"

    # ----------------------------------------------------------------- streaming

    def _replay(self, server: ReplayServer, **kwargs: Any) -> None:
        server.add_ws(self.path, self._frames(), wait_for_client=self.wait_for_client, **kwargs)
        for http in self.http_captures:
            server.add_http(read_http_capture(http))

    @pytest.mark.anyio
    async def test_streams_through_the_supervisor(self) -> None:
        store = f"conformance-{self.venue}"
        MemorySink.clear(store)
        async with ReplayServer() as server:
            self._replay(server)
            async with self._supervisor(self._config(server.ws_url, server.http_url)) as sup:
                with anyio.fail_after(20):
                    while not any(isinstance(e, MarketEvent) for e in MemorySink.events(store)):
                        await anyio.sleep(0.02)
                await anyio.sleep(0.2)
                status = sup.status()
        assert all(c.malformed == 0 for c in status.connections), status.connections
        assert any(s.events for s in status.subscriptions)
        failed = [s for s in status.subscriptions if s.state == "failed"]
        assert not failed, failed

    @pytest.mark.anyio
    async def test_reconnects_and_resubscribes(self) -> None:
        store = f"conformance-{self.venue}"
        MemorySink.clear(store)
        async with ReplayServer() as server:
            self._replay(server, faults=Faults(drop_after=self.drop_after))
            async with self._supervisor(self._config(server.ws_url, server.http_url)) as sup:
                sessions = await server.wait_for_sessions(2, path=self.path, timeout=20)
                before = len(MemorySink.events(store))
                with anyio.fail_after(20):
                    while len(MemorySink.events(store)) <= before or not any(
                        isinstance(e, Gap) for e in MemorySink.events(store)
                    ):
                        await anyio.sleep(0.02)
                status = sup.status()
        first, second = sessions[0], sessions[1]
        assert first.closed_by == "dropped"
        if first.received:
            assert second.received, "the subscribe frames were not sent again on reconnect"
        assert sum(c.reconnects for c in status.connections) >= 1
        assert not [s for s in status.subscriptions if s.state == "failed"]


class JobConformance(_PluginChecks):
    """Base class of conformance tests for a scheduled (polled) venue, e.g. a scraper.

    Class attributes to set:
        venue: Venue name the plugin registers.
        job: The job to run (``Job.name``).
        job_options: Options passed to the job run.
        options: Venue options for the test config.

    Override :meth:`serve` to register the fake venue's recorded responses on the replay
    server and return the endpoint URLs (endpoint name -> URL on the server). The suite
    checks the job declarations (description, crontab, time zone, trading-day predicate),
    then runs the job once through a real :class:`marketfeed.Supervisor` into the memory
    sink and checks every event (exact decimals, UTC times, normalised symbols, JSON
    round trip) and that everything routed was stored.
    """

    job: ClassVar[str] = ""
    job_options: ClassVar[Mapping[str, Any]] = {}

    def serve(self, server: ReplayServer) -> Mapping[str, str]:
        """Register recorded responses on ``server``; return endpoint name -> URL."""
        raise NotImplementedError("override serve() to register the fake venue")

    def test_declares_jobs(self) -> None:
        from zoneinfo import ZoneInfo

        from apscheduler.triggers.cron import CronTrigger

        info = self._info()
        assert info.description, "VenueInfo.description is empty"
        names = {j.name for j in info.jobs}
        assert self.job in names, f"job {self.job!r} not declared; jobs: {sorted(names)}"
        for job in info.jobs:
            assert job.description, f"job {job.name!r} has no description"
            CronTrigger.from_crontab(job.cron, timezone=ZoneInfo(job.timezone))
            if job.trading_days is not None:
                assert isinstance(job.trading_days(_dt.date(2025, 1, 6)), bool)

    @pytest.mark.anyio
    async def test_job_runs_through_the_supervisor(self) -> None:
        from .._scheduler import run_job

        store = f"conformance-{self.venue}"
        MemorySink.clear(store)
        async with ReplayServer() as server:
            endpoints = self.serve(server)
            config = self._base_config(endpoints)
            async with Supervisor(config, plugins=[MemorySink()]) as sup:
                job = next(j for j in sup.plugins.venue(self.venue).jobs if j.name == self.job)
                with anyio.fail_after(60):
                    routed = await run_job(sup, sup.context(self.venue), job, self.job_options)
        events = MemorySink.events(store)
        assert routed > 0, "the job produced no event"
        assert len(events) == routed, "not every routed event was stored"
        for n, ev in enumerate(events):
            self._check_event(ev, f"event {n}")
