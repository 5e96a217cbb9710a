"""The AnyIO supervisor: connections, watchdogs, sinks, schedules, graceful shutdown.

Design (architecture section 4):

* One task group. Per planned connection a runner task: connect, subscribe, receive,
  normalise, route; reconnect with exponential backoff and jitter (forever by default);
  every outage after a connection was up yields a :class:`Gap` and, where the venue has
  REST history, a backfill of the gap.
* Per-subscription silence watchdog and the venue's application heartbeat
  (:class:`Heartbeat`) run beside each receive loop; either failing recycles the
  connection.
* Integrity: a :class:`ResyncRequest` from the normaliser resubscribes that subscription
  alone through the ``subscribe`` hook (``action="resubscribe"``).
* Per sink one bounded memory stream (``queue_size``) and one worker that flushes on size
  or time. The receive loop blocks when a sink is full (backpressure): memory never grows
  with the backlog. A failed batch is retried with backoff (transient failures until they
  land); other failures ``sink_retry_attempts`` times, then every event of the batch is
  dead-lettered with the reason.
* Malformed frames (the normaliser raised) are counted and dead-lettered; the connection
  keeps running.
* Shutdown (``aclose()``, leaving the ``async with`` block, or SIGINT/SIGTERM in
  :meth:`Supervisor.run`): stop receiving, drain every sink queue, flush, close. Events
  still queued when ``shutdown_timeout`` expires go to the dead-letter file, so nothing
  accepted is lost.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import inspect
import logging
import math
import signal
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from ._backoff import Backoff
from ._config import Config, SinkConfig, convert_config
from ._contract import (
    BackfillRequest,
    Connection,
    ConnectionPlan,
    Frame,
    Normaliser,
    PersistResult,
    ProgressFactory,
    Subscription,
    VenueContext,
    VenueInfo,
)
from ._deadletter import DeadLetterFile, dead_letter_for
from ._errors import (
    ConfigError,
    ConnectionClosed,
    PluginError,
    TransientSinkError,
    TransportError,
)
from ._models import (
    Candle,
    ConnectionState,
    DeadLetter,
    Event,
    Gap,
    ResyncRequest,
    SendFrame,
    SubscriptionStatus,
    event_kind,
)
from ._plugins import PluginManager
from ._ratelimit import RateLimiters
from ._spill import SpillFile
from ._status import ConnectionStatus, SinkStatus, Status, SubscriptionState, _Rate
from ._transport import Transport, get_transport

__all__ = ["Supervisor"]

log = logging.getLogger("marketfeed.supervisor")

_UTC = _dt.UTC
_now = _dt.datetime.now


def _family(kind: str) -> str:
    return "book" if kind.startswith("book") else kind


_FAMILY_OF_TYPE: dict[type, str] = {}
_KIND: dict[type, str] = {}


def _type_family(t: type) -> str:
    fam = _FAMILY_OF_TYPE.get(t)
    if fam is None:
        fam = _FAMILY_OF_TYPE[t] = _family(event_kind(t))
    return fam


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _redact_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except Exception:
        return url
    if parsed.password or parsed.username:
        return str(parsed.copy_with(username=None, password=None))
    return url


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf of an exception group that is not a cancellation."""
    cancelled = anyio.get_cancelled_exc_class()
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            exc = _first_error(exc)
        if not isinstance(exc, cancelled):
            return exc
    return group.exceptions[0]


class _Reconnect(Exception):
    """Raised inside a connection to recycle it (watchdog, heartbeat, receive timeout)."""


class _Subscriber:
    __slots__ = ("send", "types")

    def __init__(self, send: MemoryObjectSendStream[Event], types: tuple[type, ...]) -> None:
        self.send = send
        self.types = types


class _Sink:
    def __init__(
        self,
        config: SinkConfig,
        accepts: frozenset[str],
        queue_size: int,
        spill: SpillFile | None = None,
    ) -> None:
        self.config = config
        self.accepts = accepts
        self.send, self.receive = anyio.create_memory_object_stream[Event](queue_size)
        self.status = SinkStatus(
            name=config.label, url=_redact_url(config.url), queue_size=queue_size
        )
        self.handle: Any = None
        self.done = anyio.Event()
        self.spill = spill

    def wants(self, kind: str) -> bool:
        return not self.accepts or kind in self.accepts


class _ConnectionRunner:
    """State of one planned connection (its subscriptions may change at run time)."""

    def __init__(self, plan: ConnectionPlan, venue: VenueInfo, context: VenueContext) -> None:
        self.plan = plan
        self.venue = venue
        self.context = context
        self.subscriptions: dict[tuple[str, str, str], Subscription] = {
            s.key: s for s in plan.subscriptions
        }
        self.status = ConnectionStatus(name=plan.name, venue=venue.name, url=_redact_url(plan.url))
        self.rate = _Rate()
        self.connection: Connection | None = None
        self.scope: anyio.CancelScope | None = None
        self.last_frame_mono = 0.0
        self.stopped = False


class Supervisor:
    """Runs venue connections, scheduled jobs and sinks from a :class:`Config`.

    Use as an async context manager; the host app keeps control::

        async with Supervisor(config) as sup:
            async for event in sup.events(Trade):
                ...

    Args:
        config: The configuration (``marketfeed.load_config``).
        plugins: Extra in-process plugins (tests, host apps) besides installed ones.
        entry_points: Load installed plugins from the ``marketfeed`` entry-point group.
        plugin_manager: Use this manager instead of building one (``plugins`` are added).
        transport: Use this WebSocket transport instead of ``supervisor.transport``.
        progress: Progress-bar factory for long jobs (the CLI passes a rich one).

    Raises:
        ConfigError: the config names an unknown venue, channel, sink or a bad option
            (on entering; the message names the key path and lists what is installed).
        PluginError: a plugin failed to load or conflicts with another.
    """

    def __init__(
        self,
        config: Config,
        *,
        plugins: Iterable[object] = (),
        entry_points: bool = True,
        plugin_manager: PluginManager | None = None,
        transport: Transport | None = None,
        progress: ProgressFactory | None = None,
    ) -> None:
        self.config = config
        if plugin_manager is None:
            plugin_manager = PluginManager(plugins, entry_points=entry_points)
        else:
            for plugin in plugins:
                plugin_manager.register(plugin)
        self.plugins = plugin_manager
        sup = config.supervisor
        self._transport = transport or get_transport(
            sup.transport, max_message_size=sup.max_message_size
        )
        self._progress = progress
        self.limiters = RateLimiters()
        self._contexts: dict[str, VenueContext] = {}
        self._runners: list[_ConnectionRunner] = []
        self._sinks: list[_Sink] = []
        self._subscribers: list[_Subscriber] = []
        self._sub_states: dict[tuple[str, str, str], SubscriptionState] = {}
        self._sub_index: dict[tuple[str, str, str], list[SubscriptionState]] = defaultdict(list)
        self._dead_letter_file = (
            DeadLetterFile(sup.dead_letter_path) if sup.dead_letter_path else None
        )
        self._dead_letters = 0
        self._errors: list[str] = []
        self._started = _now(_UTC)
        self._running = False
        self._stack: AsyncExitStack | None = None
        self._tg: TaskGroup | None = None
        self._conn_tg: TaskGroup | None = None
        self._conn_scope: anyio.CancelScope | None = None
        self._stopping = anyio.Event()
        self._scheduler: Any = None
        self._conn_stopped = anyio.Event()
        self._runner_send, self._runner_receive = anyio.create_memory_object_stream[
            _ConnectionRunner
        ](1000)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Supervisor:
        subscriptions = self._validate()
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            self._stack = stack
            for name in self._venue_names(subscriptions):
                self._contexts[name] = self.context(name)
                stack.push_async_callback(self._contexts[name].aclose)
            await self._open_sinks(stack)
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            for sink in self._sinks:
                self._tg.start_soon(self._sink_worker, sink, name=f"sink:{sink.config.label}")
            self._tg.start_soon(self._run_connections)
            await self._add(subscriptions)
            if self.config.supervisor.status_path:
                self._tg.start_soon(self._status_writer)
            if self.config.schedules:
                from ._scheduler import Scheduler

                self._scheduler = Scheduler(self)
                self._scheduler.start()
            if self.config.supervisor.metrics_port:
                from ._metrics import serve_metrics

                serve_metrics(self, self.config.supervisor.metrics_port)
            self._running = True
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop receiving, drain every sink queue, flush and close. Idempotent.

        Events still queued after ``supervisor.shutdown_timeout`` seconds (a sink that
        cannot store them) are written to the dead-letter file with the reason.
        """
        if self._stack is None:
            return
        stack, self._stack = self._stack, None
        self._running = False
        self._stopping.set()
        with anyio.CancelScope(shield=True):
            if self._scheduler is not None:
                self._scheduler.shutdown()
            if self._conn_scope is not None:
                self._conn_scope.cancel()
            self._runner_send.close()
            await self._conn_stopped.wait()
            for sink in self._sinks:
                sink.send.close()
            with anyio.move_on_after(self.config.supervisor.shutdown_timeout):
                for sink in self._sinks:
                    await sink.done.wait()
            for sink in self._sinks:
                if not sink.done.is_set():
                    self._spill_on_shutdown(sink)
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
            for sub in self._subscribers:
                sub.send.close()
            self._write_status()
        # outside the shield: the task group entered in __aenter__ must exit in nesting order
        await stack.__aexit__(None, None, None)

    async def run(self, duration: float | None = None, *, handle_signals: bool = True) -> None:
        """Wait until ``duration`` seconds passed, :meth:`request_stop` was called, or (when
        ``handle_signals``) SIGINT/SIGTERM arrived. Leaving the ``async with`` block then
        shuts down gracefully (drain and flush)::

            async with Supervisor(config) as sup:
                await sup.run()
        """
        async with anyio.create_task_group() as tg:
            if handle_signals:
                tg.start_soon(self._signal_watcher)
            with anyio.move_on_after(duration if duration is not None else math.inf):
                await self._stopping.wait()
            tg.cancel_scope.cancel()

    def request_stop(self) -> None:
        """Ask :meth:`run` to return and shut down (safe from any task)."""
        self._stopping.set()

    async def _signal_watcher(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("received %s: shutting down", signal.Signals(signum).name)
                self._stopping.set()
                return

    # ------------------------------------------------------------------ config

    def _venue_names(self, subscriptions: Sequence[Subscription]) -> list[str]:
        names = {s.venue for s in subscriptions} | {s.venue for s in self.config.schedules}
        return sorted(names)

    def _validate(self) -> list[Subscription]:
        """Check the config against installed plugins; expand subscription groups."""
        installed = self.plugins.venues
        subscriptions: list[Subscription] = []
        for i, group in enumerate(self.config.subscriptions):
            path = f"subscriptions[{i}]"
            info = self._venue_or_config_error(group.venue, f"{path}.venue", installed)
            for j, channel in enumerate(group.channels):
                if info.channels and channel not in info.channels:
                    raise ConfigError(
                        f"{path}.channels[{j}]",
                        f"venue {group.venue!r} has no channel {channel!r}; "
                        f"channels: {', '.join(info.channels)}",
                    )
                kind = info.channels.get(channel, "")
                timeout = group.silence_timeout
                if timeout is None:
                    timeout = info.default_silence_timeout.get(_family(kind))
                for symbol in group.symbols or ["*"]:
                    subscriptions.append(
                        Subscription(
                            venue=group.venue,
                            channel=channel,
                            symbol=symbol,
                            options=dict(group.options),
                            silence_timeout=timeout,
                        )
                    )
        for i, sched in enumerate(self.config.schedules):
            info = self._venue_or_config_error(sched.venue, f"schedules[{i}].venue", installed)
            if sched.job not in {j.name for j in info.jobs}:
                raise ConfigError(
                    f"schedules[{i}].job",
                    f"venue {sched.venue!r} has no job {sched.job!r}; jobs: "
                    f"{', '.join(j.name for j in info.jobs) or 'none'}",
                )
        for name in self.config.venues:
            self._venue_or_config_error(name, f"venues.{name}", installed)
        sinks = self.plugins.sinks
        for i, sink in enumerate(self.config.sinks):
            if sink.type not in sinks:
                raise ConfigError(
                    f"sinks[{i}].type",
                    f"no plugin provides sink {sink.type!r}; installed sinks: "
                    f"{', '.join(sorted(sinks)) or 'none'}",
                )
        return subscriptions

    def _venue_or_config_error(
        self, name: str, path: str, installed: dict[str, VenueInfo]
    ) -> VenueInfo:
        try:
            return installed[name]
        except KeyError:
            hint = self.plugins.broken.get(
                name, f"pip install marketfeed-{name.replace('_', '-')}?"
            )
            raise ConfigError(
                path,
                f"no plugin provides venue {name!r}; installed venues: "
                f"{', '.join(sorted(installed)) or 'none'} ({hint})",
            ) from None

    def context(self, venue: str) -> VenueContext:
        """The :class:`VenueContext` of ``venue`` (created on first use).

        Raises:
            PluginError: no plugin provides the venue.
            ConfigError: the venue's options do not match its schema (names the key).
        """
        if venue in self._contexts:
            return self._contexts[venue]
        info = self.plugins.venue(venue)
        vcfg = self.config.venues.get(venue)
        endpoints = dict(info.endpoints)
        options: dict[str, Any] = {}
        if vcfg is not None:
            for key, url in vcfg.endpoints.items():
                if info.endpoints and key not in info.endpoints:
                    raise ConfigError(
                        f"venues.{venue}.endpoints.{key}",
                        f"venue {venue!r} has no endpoint {key!r}; "
                        f"endpoints: {', '.join(info.endpoints)}",
                    )
                endpoints[key] = url
            options = dict(vcfg.options)
        if info.config_schema is not None:
            cfg: Any = convert_config(options, info.config_schema, path=f"venues.{venue}")
        elif options:
            raise ConfigError(
                f"venues.{venue}.{next(iter(options))}", f"venue {venue!r} takes no options"
            )
        else:
            cfg = None
        ctx = VenueContext(
            venue=venue,
            config=cfg,
            endpoints=endpoints,
            transport=self._transport,
            limiters=self.limiters,
            http=lambda: httpx.AsyncClient(
                timeout=httpx.Timeout(30.0, connect=10.0),
                headers={"User-Agent": "marketfeed (+https://github.com/marketfeed)"},
                follow_redirects=True,
            ),
            progress=self._progress,
        )
        self._contexts[venue] = ctx
        return ctx

    # ------------------------------------------------------------------ subscriptions

    async def add_subscriptions(self, subscriptions: Iterable[Subscription]) -> None:
        """Start collecting more subscriptions at run time (new connections as the venue
        plugin plans them).

        Raises:
            ConfigError: unknown venue or channel.
        """
        subs = list(subscriptions)
        installed = self.plugins.venues
        for s in subs:
            info = self._venue_or_config_error(s.venue, "subscription.venue", installed)
            if info.channels and s.channel not in info.channels:
                raise ConfigError(
                    "subscription.channel", f"venue {s.venue!r} has no channel {s.channel!r}"
                )
        await self._add(subs)

    async def remove_subscriptions(self, subscriptions: Iterable[Subscription]) -> None:
        """Stop collecting ``subscriptions``: unsubscribe frames are sent on their
        connection; a connection left without subscriptions is closed."""
        keys = {s.key for s in subscriptions}
        for runner in self._runners:
            gone = [runner.subscriptions.pop(k) for k in list(runner.subscriptions) if k in keys]
            if not gone:
                continue
            for sub in gone:
                state = self._sub_states.pop(sub.key, None)
                if state is not None:
                    fam_key = (sub.venue, self._sub_family(runner.venue, sub), sub.symbol)
                    with contextlib.suppress(ValueError):
                        self._sub_index[fam_key].remove(state)
            if not runner.subscriptions:
                runner.stopped = True
                if runner.scope is not None:
                    runner.scope.cancel()
            elif runner.connection is not None:
                frames = await _maybe_await(
                    self.plugins.hook.subscribe(
                        venue=runner.venue.name,
                        subscriptions=gone,
                        action="unsubscribe",
                        context=runner.context,
                    )
                )
                for frame in frames or ():
                    with contextlib.suppress(ConnectionClosed):
                        await runner.connection.send(frame)

    @staticmethod
    def _sub_family(venue: VenueInfo, sub: Subscription) -> str:
        """Status key part of a subscription: the event family, and for a candle channel
        with a declared timeframe ``candle:<timeframe>``."""
        timeframe = venue.channel_timeframes.get(sub.channel)
        if timeframe is not None:
            return f"candle:{timeframe}"
        return _family(venue.channels.get(sub.channel, sub.channel))

    async def _add(self, subscriptions: Sequence[Subscription]) -> None:
        by_venue: dict[str, list[Subscription]] = defaultdict(list)
        for s in subscriptions:
            by_venue[s.venue].append(s)
        for venue, subs in by_venue.items():
            info = self.plugins.venue(venue)
            ctx = self.context(venue)
            plans = self.plugins.hook.plan(venue=venue, subscriptions=subs, context=ctx)
            if not plans:
                raise PluginError(f"venue {venue!r}: no plugin planned connections")
            for plan in plans:
                if any(r.plan.name == plan.name for r in self._runners):
                    n = sum(1 for r in self._runners if r.plan.name.startswith(plan.name))
                    plan = msgspec.structs.replace(plan, name=f"{plan.name}+{n}")
                runner = _ConnectionRunner(plan, info, ctx)
                for sub in plan.subscriptions:
                    state = SubscriptionState(
                        venue=venue, channel=sub.channel, symbol=sub.symbol, connection=plan.name
                    )
                    self._sub_states[sub.key] = state
                    self._sub_index[(venue, self._sub_family(info, sub), sub.symbol)].append(state)
                self._runners.append(runner)
                await self._runner_send.send(runner)

    # ------------------------------------------------------------------ connections

    async def _run_connections(self) -> None:
        try:
            with anyio.CancelScope() as scope:
                self._conn_scope = scope
                async with anyio.create_task_group() as tg, self._runner_receive:
                    async for runner in self._runner_receive:
                        tg.start_soon(self._run_connection, runner, name=runner.plan.name)
                    # no more runners will come: wait for the running ones
        finally:
            self._conn_stopped.set()

    async def _run_connection(self, runner: _ConnectionRunner) -> None:
        rc = self.config.reconnect
        backoff = Backoff(rc.initial, rc.maximum, rc.multiplier, rc.jitter)
        outage_start: _dt.datetime | None = None
        outage_reason = ""
        attempt = 0
        with anyio.CancelScope() as scope:
            runner.scope = scope
            while not runner.stopped:
                reason = ""
                try:
                    self._set_state(runner, "connecting", attempt=attempt)
                    outage_start, outage_reason = await self._connection_session(
                        runner, backoff, outage_start, outage_reason
                    )
                except _Reconnect as exc:
                    reason = str(exc)
                except ConnectionClosed as exc:
                    reason = str(exc)
                except (OSError, TimeoutError, anyio.BrokenResourceError, TransportError) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                except Exception as exc:  # a plugin bug must not kill the supervisor
                    if isinstance(exc, (ConfigError, PluginError)):
                        raise
                    reason = f"{type(exc).__name__}: {exc}"
                    log.exception("connection %s failed", runner.plan.name)
                runner.connection = None
                if runner.stopped:
                    break
                runner.status.last_error = reason
                if runner.status.last_frame is not None and outage_start is None:
                    outage_start = runner.status.last_frame
                    outage_reason = reason
                attempt += 1
                if rc.max_attempts is not None and attempt > rc.max_attempts:
                    self._set_state(runner, "closed", reason=f"gave up: {reason}")
                    self._errors.append(f"{runner.plan.name}: gave up after {attempt - 1} attempts")
                    return
                delay = backoff.next()
                self._set_state(
                    runner, "backoff", reason=f"{reason}; retry in {delay:.1f}s", attempt=attempt
                )
                log.warning("%s: %s; reconnecting in %.1fs", runner.plan.name, reason, delay)
                await anyio.sleep(delay)
        self._set_state(runner, "closed")

    async def _connection_session(
        self,
        runner: _ConnectionRunner,
        backoff: Backoff,
        outage_start: _dt.datetime | None,
        outage_reason: str,
    ) -> tuple[_dt.datetime | None, str]:
        venue = runner.venue.name
        hook = self.plugins.hook
        cm = hook.connect(venue=venue, plan=runner.plan, context=runner.context)
        if cm is None:
            raise PluginError(f"venue {venue!r}: no plugin implements connect")
        async with cm as conn:
            runner.connection = conn
            normaliser: Normaliser | None = hook.normalise(
                venue=venue, plan=runner.plan, context=runner.context
            )
            if normaliser is None:
                raise PluginError(f"venue {venue!r}: no plugin implements normalise")
            subs = list(runner.subscriptions.values())
            frames = await _maybe_await(
                hook.subscribe(
                    venue=venue, subscriptions=subs, action="subscribe", context=runner.context
                )
            )
            for frame in frames or ():
                await conn.send(frame)
            for sub in subs:
                state = self._sub_states.get(sub.key)
                if state is not None and state.state != "failed":
                    state.state = "pending"
            now = _now(_UTC)
            self._set_state(runner, "connected")
            runner.last_frame_mono = time.monotonic()
            if outage_start is not None:
                runner.status.reconnects += 1
                await self._emit_gap(runner, outage_start, now, outage_reason)
                outage_start, outage_reason = None, ""
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._watchdog, runner, tg.cancel_scope)
                    if runner.plan.heartbeat is not None:
                        tg.start_soon(self._heartbeat, runner, conn)
                    await self._receive_loop(runner, conn, normaliser, backoff)
            except BaseExceptionGroup as group:
                # the watchdog, heartbeat or receive loop ended the connection: report why
                raise _first_error(group) from None
        return outage_start, outage_reason

    async def _receive_loop(
        self,
        runner: _ConnectionRunner,
        conn: Connection,
        normaliser: Normaliser,
        backoff: Backoff,
    ) -> None:
        status = runner.status
        rate = runner.rate
        receive_timeout = self.config.supervisor.receive_timeout
        healthy_after = 10  # frames on this connection before the backoff starts over
        session_frames = 0
        while True:
            if receive_timeout is not None:
                try:
                    with anyio.fail_after(receive_timeout):
                        frame: Frame = await conn.receive()
                except TimeoutError:
                    raise _Reconnect(f"no frame for {receive_timeout}s") from None
            else:
                frame = await conn.receive()
            received = _now(_UTC)
            mono = time.monotonic()
            runner.last_frame_mono = mono
            status.frames += 1
            status.bytes += len(frame)
            status.last_frame = received
            rate.add(1, mono)
            session_frames += 1
            if session_frames == healthy_after:
                backoff.reset()
            try:
                events = normaliser(frame, received)
            except Exception as exc:
                status.malformed += 1
                letter = dead_letter_for(
                    venue=runner.venue.name,
                    source=f"normalise:{runner.plan.name}",
                    reason=f"{type(exc).__name__}: {exc}",
                    payload=frame,
                )
                log.warning(
                    "%s: malformed frame dead-lettered: %s", runner.plan.name, letter.reason
                )
                await self._dead_letter([letter])
                continue
            if events:
                # Shielded: once a frame is received, all of its events are routed even if
                # the connection is being recycled or the supervisor is stopping.
                with anyio.CancelScope(shield=True):
                    await self._dispatch(runner, conn, events, received)

    async def _dispatch(
        self,
        runner: _ConnectionRunner,
        conn: Connection,
        events: Sequence[Event],
        received: _dt.datetime,
    ) -> None:
        index = self._sub_index
        for ev in events:
            t = type(ev)
            if t is SubscriptionStatus:
                self._on_subscription_status(ev)  # type: ignore[arg-type]
                await self._publish(ev)
                continue
            if t is ResyncRequest:
                await self._resync(runner, conn, ev)  # type: ignore[arg-type]
                await self._publish(ev)
                continue
            if t is SendFrame:
                payload = ev.payload  # type: ignore[union-attr]
                await conn.send(payload.encode() if ev.binary else payload)  # type: ignore[union-attr]
                continue
            native = getattr(ev, "native_symbol", None)
            if native is not None:
                venue = ev.venue
                if isinstance(ev, Candle):
                    states = index.get((venue, f"candle:{ev.timeframe}", native)) or index.get(
                        (venue, "candle", native)
                    )
                else:
                    states = index.get((venue, _type_family(t), native))
                if states:
                    for st in states:
                        st.events += 1
                        st.last_event = received
                        if st.state == "pending":
                            st.state = "active"
            await self._route(ev)

    def _on_subscription_status(self, ev: SubscriptionStatus) -> None:
        for key, state in self._sub_states.items():
            if key[0] != ev.venue or key[1] != ev.channel:
                continue
            if ev.native_symbol not in ("*", key[2]):
                continue
            if ev.state == "resyncing":
                state.resyncs += 1
            state.state = ev.state
            state.code = ev.code
            state.message = ev.message
            if ev.state == "failed":
                self._errors.append(
                    f"{ev.venue} {ev.channel} {key[2]}: failed ({ev.code}: {ev.message})"
                )

    async def _resync(self, runner: _ConnectionRunner, conn: Connection, ev: ResyncRequest) -> None:
        sub = runner.subscriptions.get((ev.venue, ev.channel, ev.native_symbol))
        if sub is None:
            matches = [s for s in runner.subscriptions.values() if s.channel == ev.channel]
            if len(matches) != 1 or matches[0].symbol != "*":
                log.warning(
                    "%s: resync for unknown subscription %s/%s",
                    runner.plan.name,
                    ev.channel,
                    ev.native_symbol,
                )
                return
            sub = msgspec.structs.replace(matches[0], symbol=ev.native_symbol)
        log.warning(
            "%s: resync %s %s: %s", runner.plan.name, ev.channel, ev.native_symbol, ev.reason
        )
        frames = await _maybe_await(
            self.plugins.hook.subscribe(
                venue=runner.venue.name,
                subscriptions=[sub],
                action="resubscribe",
                context=runner.context,
            )
        )
        for frame in frames or ():
            await conn.send(frame)

    async def _watchdog(self, runner: _ConnectionRunner, scope: anyio.CancelScope) -> None:
        timeouts = [
            (s, s.silence_timeout) for s in runner.subscriptions.values() if s.silence_timeout
        ]
        if not timeouts:
            return
        started = _now(_UTC)
        while True:
            await anyio.sleep(min(1.0, min(t for _, t in timeouts) / 4))
            now = _now(_UTC)
            for sub, limit in timeouts:
                state = self._sub_states.get(sub.key)
                if state is None or state.state == "failed":
                    continue
                last = state.last_event or started
                if last < started:
                    last = started
                silent = (now - last).total_seconds()
                if silent > limit:
                    raise _Reconnect(
                        f"watchdog: {sub.channel} {sub.symbol} silent for {silent:.1f}s "
                        f"(limit {limit}s)"
                    )

    async def _heartbeat(self, runner: _ConnectionRunner, conn: Connection) -> None:
        hb = runner.plan.heartbeat
        assert hb is not None
        while True:
            idle = time.monotonic() - runner.last_frame_mono
            if idle < hb.interval:
                await anyio.sleep(hb.interval - idle)
                continue
            sent_at = time.monotonic()
            await conn.send(hb.ping.encode() if hb.binary else hb.ping)
            await anyio.sleep(hb.timeout)
            if runner.last_frame_mono < sent_at:
                raise _Reconnect(f"heartbeat: no answer to {hb.ping!r} within {hb.timeout}s")

    def _set_state(
        self, runner: _ConnectionRunner, state: str, *, reason: str | None = None, attempt: int = 0
    ) -> None:
        runner.status.state = state
        if self._subscribers:
            ev = ConnectionState(
                venue=runner.venue.name,
                connection=runner.plan.name,
                state=state,  # type: ignore[arg-type]
                time=_now(_UTC),
                reason=reason,
                attempt=attempt,
            )
            for sub in self._subscribers:
                if not sub.types or ConnectionState in sub.types:
                    with contextlib.suppress(
                        anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError
                    ):
                        sub.send.send_nowait(ev)

    async def _emit_gap(
        self, runner: _ConnectionRunner, start: _dt.datetime, end: _dt.datetime, reason: str
    ) -> None:
        subs = list(runner.subscriptions.values())
        gap = Gap(
            venue=runner.venue.name,
            connection=runner.plan.name,
            start=start,
            end=end,
            channels=tuple(sorted({s.channel for s in subs})),
            symbols=tuple(sorted({s.symbol for s in subs})),
            reason=reason,
        )
        runner.status.gaps += 1
        log.warning("%s: gap %s .. %s (%s)", runner.plan.name, start, end, reason)
        await self._route(gap)
        if (
            runner.venue.backfill is not None
            and self.config.supervisor.backfill_on_gap
            and self._tg is not None
        ):
            request = BackfillRequest(subscriptions=tuple(subs), start=start, end=end)
            self._tg.start_soon(self._backfill, runner.venue, runner.context, request)

    async def _backfill(
        self, venue: VenueInfo, ctx: VenueContext, request: BackfillRequest
    ) -> None:
        assert venue.backfill is not None
        try:
            async for batch in venue.backfill(request, ctx):
                for ev in batch:
                    await self._route(ev)
        except Exception as exc:
            msg = f"backfill {venue.name} {request.start}..{request.end} failed: {exc}"
            log.warning(msg)
            self._errors.append(msg)

    # ------------------------------------------------------------------ routing

    async def _route(self, ev: Event) -> None:
        """Send one event to every subscriber and every sink that accepts it."""
        if self._subscribers:
            await self._publish(ev)
        t = type(ev)
        kind = _KIND.get(t) or _KIND.setdefault(t, event_kind(t))
        for sink in self._sinks:
            if sink.wants(kind):
                await self._enqueue(sink, ev)

    async def _enqueue(self, sink: _Sink, ev: Event) -> None:
        spill = sink.spill
        if spill is not None and spill.pending:
            spill.append((ev,))  # keep arrival order while anything is on disk
            return
        try:
            sink.send.send_nowait(ev)
        except anyio.WouldBlock:
            if spill is None:
                await self._blocking_send(sink, ev)
            else:
                spill.append((ev,))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            # routed after the sink was closed for shutdown (a late backfill or job batch)
            self._sink_dead_letters(sink, [(ev, f"shutdown: sink {sink.status.name} closed")])

    async def _blocking_send(self, sink: _Sink, ev: Event) -> None:
        """Backpressure: wait for room in a full sink queue. Shielded, so an accepted event
        is never dropped by a cancellation; once stopping, waits at most
        ``shutdown_timeout`` and then dead-letters the event."""
        started = anyio.current_time()
        with anyio.CancelScope(shield=True):
            while True:
                with anyio.move_on_after(0.5):
                    try:
                        await sink.send.send(ev)
                    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                        break
                    return
                waited = anyio.current_time() - started
                if self._stopping.is_set() and waited > self.config.supervisor.shutdown_timeout:
                    break
        self._sink_dead_letters(sink, [(ev, f"shutdown: sink {sink.status.name} queue full")])

    async def route(self, events: Iterable[Event]) -> None:
        """Route events produced outside a connection (jobs, backfills, host apps) to
        subscribers and sinks, exactly like received ones."""
        for ev in events:
            if isinstance(ev, DeadLetter):
                await self._dead_letter([ev])
            else:
                await self._route(ev)

    async def _publish(self, ev: Event) -> None:
        for sub in self._subscribers:
            if not sub.types or isinstance(ev, sub.types):
                try:
                    sub.send.send_nowait(ev)
                except anyio.WouldBlock:
                    await sub.send.send(ev)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass

    async def _dead_letter(self, letters: list[DeadLetter]) -> None:
        self._dead_letters += len(letters)
        routed = False
        for letter in letters:
            await self._publish(letter)
            for sink in self._sinks:
                if sink.wants("dead_letter"):
                    routed = True
                    await self._enqueue(sink, letter)
        if not routed:
            self._write_dead_letter_file(letters)

    def _write_dead_letter_file(self, letters: list[DeadLetter]) -> None:
        if self._dead_letter_file is None:
            for letter in letters:
                log.error("dead letter (no dead-letter file configured): %s", letter.reason)
            return
        try:
            self._dead_letter_file.write(letters)
        except OSError as exc:
            log.error("cannot write dead letters to %s: %s", self._dead_letter_file.path, exc)

    async def events(self, *types: type[Any], buffer: int = 10_000) -> AsyncIterator[Event]:
        """Iterate over events as they are routed (market, status and control events).

        Args:
            types: Only these model classes (e.g. ``Trade, Gap``); none means all.
            buffer: Events buffered for this iterator; when full the supervisor waits
                for the consumer (backpressure), so consume promptly.

        Yields:
            Events in routing order, only from valid books for book events.
        """
        send, receive = anyio.create_memory_object_stream[Event](buffer)
        subscriber = _Subscriber(send, tuple(types))
        self._subscribers.append(subscriber)
        try:
            async with receive:
                async for ev in receive:
                    yield ev
        finally:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(subscriber)
            send.close()

    # ------------------------------------------------------------------ sinks

    async def _open_sinks(self, stack: AsyncExitStack) -> None:
        sinks = self.plugins.sinks
        queue_size = self.config.supervisor.queue_size
        for i, cfg in enumerate(self.config.sinks):
            info = sinks[cfg.type]
            accepts = frozenset(cfg.events) or frozenset(info.accepts)
            unknown = set(cfg.events) - set(info.accepts) if info.accepts else set()
            if unknown:
                raise ConfigError(
                    f"sinks[{i}].events",
                    f"sink {cfg.type!r} does not store {sorted(unknown)}; it stores "
                    f"{', '.join(info.accepts)}",
                )
            spill = None
            if self.config.supervisor.overflow == "spill":
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in cfg.label)
                spill = SpillFile(Path(self.config.supervisor.spill_dir) / f"{i}-{safe}.jsonl")
                if spill.pending:
                    log.warning(
                        "sink %s: %d events spilled by an earlier run are stored first",
                        cfg.label,
                        spill.pending,
                    )
            sink = _Sink(cfg, accepts, queue_size, spill)
            cm = self.plugins.hook.open_sink(sink=cfg.type, url=cfg.url, options=dict(cfg.options))
            if cm is None:
                raise PluginError(f"sink {cfg.type!r}: no plugin implements open_sink")
            sink.handle = await stack.enter_async_context(cm)
            self._sinks.append(sink)

    async def _sink_worker(self, sink: _Sink) -> None:
        cfg = sink.config
        size = cfg.batch_size or self.config.supervisor.batch_size
        interval = cfg.batch_interval or self.config.supervisor.batch_interval
        receive = sink.receive
        spill = sink.spill
        batch: list[Event] = []
        try:
            while True:
                deadline = anyio.current_time() + interval
                closed = False
                while len(batch) < size:
                    try:
                        batch.append(receive.receive_nowait())
                        continue
                    except anyio.WouldBlock:
                        pass
                    except anyio.EndOfStream:
                        closed = True
                    if spill is not None and spill.pending:
                        # the queue is empty: what overflowed to disk comes next, in order
                        batch.extend(spill.read(size - len(batch)))
                        continue
                    if closed:
                        break
                    remaining = deadline - anyio.current_time()
                    if remaining <= 0:
                        break
                    with anyio.move_on_after(remaining):
                        try:
                            batch.append(await receive.receive())
                        except anyio.EndOfStream:
                            closed = True
                            break
                if batch:
                    await self._flush(sink, batch)
                    batch = []
                if closed and not (spill is not None and spill.pending):
                    return
        finally:
            if spill is not None:
                spill.close()
            sink.done.set()

    async def _flush(self, sink: _Sink, batch: list[Event]) -> None:
        status = sink.status
        attempts = 0
        backoff = Backoff(0.2, 30.0, 2.0, 0.5)
        max_attempts = self.config.supervisor.sink_retry_attempts
        while True:
            try:
                result: PersistResult | None = await _maybe_await(
                    self.plugins.hook.persist(
                        sink=sink.config.type, handle=sink.handle, batch=batch
                    )
                )
            except TransientSinkError as exc:
                attempts += 1
                status.retries += 1
                status.last_error = f"transient: {exc}"
                delay = backoff.next()
                log.warning("sink %s: %s; retry %d in %.1fs", status.name, exc, attempts, delay)
                await anyio.sleep(delay)
                continue
            except Exception as exc:
                attempts += 1
                status.retries += 1
                status.last_error = f"{type(exc).__name__}: {exc}"
                if attempts < max_attempts:
                    delay = backoff.next()
                    log.warning(
                        "sink %s failed (%s); retry %d/%d in %.1fs",
                        status.name,
                        status.last_error,
                        attempts,
                        max_attempts,
                        delay,
                    )
                    await anyio.sleep(delay)
                    continue
                log.error(
                    "sink %s: batch of %d dead-lettered after %d attempts: %s",
                    status.name,
                    len(batch),
                    attempts,
                    status.last_error,
                )
                reason = status.last_error
                self._sink_dead_letters(sink, [(ev, reason) for ev in batch], attempts=attempts)
                return
            break
        status.batches += 1
        status.last_flush = _now(_UTC)
        if result is not None:
            status.rows += result.stored
            if result.rejected:
                # a sink that stores dead letters has stored its rejected rows itself
                self._sink_dead_letters(
                    sink, result.rejected, write="dead_letter" not in sink.accepts
                )

    def _sink_dead_letters(
        self,
        sink: _Sink,
        failed: Sequence[tuple[Event, str]],
        *,
        attempts: int = 1,
        write: bool = True,
    ) -> None:
        """Count events a sink could not store and keep them in the dead-letter file."""
        sink.status.dead_letters += len(failed)
        self._dead_letters += len(failed)
        if write:
            self._write_dead_letter_file(
                [
                    dead_letter_for(
                        venue=getattr(ev, "venue", ""),
                        source=f"sink:{sink.status.name}",
                        reason=reason,
                        payload=ev,
                        attempts=attempts,
                    )
                    for ev, reason in failed
                ]
            )

    def _spill_on_shutdown(self, sink: _Sink) -> None:
        left: list[Event] = []
        while True:
            try:
                left.append(sink.receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
        if sink.spill is not None:
            sink.spill.append(left)
            if sink.spill.pending:
                log.warning(
                    "sink %s did not drain within %ss: %d events stay in %s for the next run",
                    sink.status.name,
                    self.config.supervisor.shutdown_timeout,
                    sink.spill.pending,
                    sink.spill.path,
                )
            sink.spill.close()
            return
        if left:
            reason = (
                f"shutdown: sink {sink.status.name} did not drain within "
                f"{self.config.supervisor.shutdown_timeout}s ({sink.status.last_error})"
            )
            log.error("%s; %d events written to the dead-letter file", reason, len(left))
            self._sink_dead_letters(sink, [(ev, reason) for ev in left])

    # ------------------------------------------------------------------ status

    def status(self) -> Status:
        """A snapshot of connections, subscriptions, sinks and errors."""
        mono = time.monotonic()
        conns = []
        for r in self._runners:
            r.status.rate = r.rate.per_second(mono)
            conns.append(msgspec.structs.replace(r.status))
        for sink in self._sinks:
            sink.status.queue_depth = sink.send.statistics().current_buffer_used
            if sink.spill is not None:
                sink.status.spilled = sink.spill.pending
                sink.status.spilled_total = sink.spill.written
        return Status(
            started=self._started,
            time=_now(_UTC),
            running=self._running,
            connections=conns,
            subscriptions=[msgspec.structs.replace(s) for s in self._sub_states.values()],
            sinks=[msgspec.structs.replace(s.status) for s in self._sinks],
            dead_letters=self._dead_letters,
            errors=list(self._errors[-50:]),
        )

    def _write_status(self) -> None:
        path = self.config.supervisor.status_path
        if not path:
            return
        import os
        import tempfile

        data = self.status().to_json()
        directory = os.path.dirname(os.path.abspath(path))
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".status-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot write status file %s: %s", path, exc)

    async def _status_writer(self) -> None:
        interval = self.config.supervisor.status_interval
        last_events: dict[tuple[str, str, str], tuple[int, float]] = {}
        while True:
            await anyio.sleep(interval)
            mono = time.monotonic()
            for key, st in self._sub_states.items():
                prev = last_events.get(key)
                if prev is not None and mono > prev[1]:
                    st.rate = (st.events - prev[0]) / (mono - prev[1])
                last_events[key] = (st.events, mono)
            self._write_status()

    @property
    def sinks(self) -> list[tuple[SinkConfig, Any]]:
        """``(config, handle)`` of every open sink (query helpers use the handle)."""
        return [(s.config, s.handle) for s in self._sinks]
