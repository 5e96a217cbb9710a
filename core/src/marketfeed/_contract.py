"""The plugin contract: what venue and sink plugins declare and receive.

Plugins declare a :class:`VenueInfo` or :class:`SinkInfo` through the ``register`` hook.
The supervisor builds :class:`Subscription` objects from config, asks the venue's
``plan`` hook to group them into :class:`ConnectionPlan` s, opens each connection through
``connect``, sends the frames the ``subscribe`` hook returns, and feeds every received frame
to the :data:`Normaliser` that the ``normalise`` hook returned for that connection.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import msgspec

from ._models import Event

if TYPE_CHECKING:
    import httpx

    from ._ratelimit import RateLimiters
    from ._transport import Transport

__all__ = [
    "BackfillRequest",
    "Connection",
    "ConnectionPlan",
    "Demo",
    "Heartbeat",
    "Job",
    "Normaliser",
    "PersistResult",
    "Progress",
    "SinkInfo",
    "Subscription",
    "VenueContext",
    "VenueInfo",
]

Frame = str | bytes
"""A WebSocket message: ``str`` for text frames, ``bytes`` for binary frames."""


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    """One venue channel for one instrument, as configured.

    Attributes:
        venue: Venue name.
        channel: The venue's channel name as declared in :attr:`VenueInfo.channels`
            (e.g. OKX ``"books"``, ``"candle1m"``; Upbit ``"orderbook"``).
        symbol: The venue's native symbol (``"KRW-BTC"`` on Upbit, ``"BTC-USDT"`` on OKX).
        options: Channel options from config (e.g. ``{"book_emit": "both"}``), strings,
            numbers or booleans.
        silence_timeout: Seconds without an event before the watchdog reconnects the
            connection; ``None`` disables the watchdog for this subscription.
    """

    venue: str
    channel: str
    symbol: str
    options: Mapping[str, Any] = msgspec.field(default_factory=dict)
    silence_timeout: float | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """``(venue, channel, symbol)``: identity of the subscription in status."""
        return (self.venue, self.channel, self.symbol)


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """Application-level keep-alive the supervisor drives for a connection.

    When nothing was received for ``interval`` seconds the supervisor sends ``ping``; when
    nothing at all arrives within ``timeout`` seconds after that, the connection is
    considered dead and is reconnected.

    Attributes:
        interval: Seconds of silence before a ping (OKX documents 30 s: use < 30).
        ping: The frame to send (OKX ``"ping"``, Upbit ``"PING"``).
        timeout: Seconds to wait for any frame (the pong) after the ping.
        binary: Send ``ping`` as a binary frame.
    """

    interval: float
    ping: str
    timeout: float = 10.0
    binary: bool = False


class ConnectionPlan(msgspec.Struct, frozen=True, kw_only=True):
    """One connection the supervisor keeps open, as planned by the venue plugin.

    Attributes:
        name: Unique, readable name, e.g. ``"okx/public/0"``.
        url: WebSocket URL (config overrides already applied).
        subscriptions: What this connection carries.
        heartbeat: Application heartbeat, or ``None`` (WebSocket pings only).
        headers: Extra HTTP headers for the WebSocket handshake (no secrets in logs).
    """

    name: str
    url: str
    subscriptions: tuple[Subscription, ...]
    heartbeat: Heartbeat | None = None
    headers: Mapping[str, str] = msgspec.field(default_factory=dict)


class BackfillRequest(msgspec.Struct, frozen=True, kw_only=True):
    """REST history wanted for some subscriptions over ``[start, end]`` (UTC)."""

    subscriptions: tuple[Subscription, ...]
    start: _dt.datetime
    end: _dt.datetime


@runtime_checkable
class Connection(Protocol):
    """An open WebSocket connection, as yielded by the ``connect`` hook.

    Guarantees: ``receive`` returns one whole message (``str`` for text, ``bytes`` for
    binary) and raises :class:`marketfeed.ConnectionClosed` once the peer closed or the
    connection broke; ``send`` raises the same after close.
    """

    async def send(self, frame: Frame) -> None:
        """Send one text (``str``) or binary (``bytes``) message."""

    async def receive(self) -> Frame:
        """Wait for the next message.

        Raises:
            ConnectionClosed: the connection is gone (code and reason in the exception).
        """
        ...

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (idempotent)."""


Normaliser = Callable[[Frame, _dt.datetime], Sequence[Event]]
"""Per-connection hot-path callable: ``(frame, receive_time) -> events``.

Returned once per connection by the ``normalise`` hook and then called directly for every
received frame (no pluggy dispatch per frame). It may keep state (order books, acks). It
returns market events, status/control events (:class:`SubscriptionStatus`,
:class:`ResyncRequest`, :class:`SendFrame`) or nothing (pong, ack already reported).
Raising any exception marks the frame malformed: the supervisor counts and dead-letters it
with the exception as reason and keeps the connection.
"""


class PersistResult(msgspec.Struct, kw_only=True):
    """What a sink did with a batch.

    Attributes:
        stored: Rows written (upserts included).
        rejected: Events that can never be stored, each with its reason; the supervisor
            dead-letters them. The rest of the batch must be stored.
    """

    stored: int = 0
    rejected: list[tuple[Event, str]] = msgspec.field(default_factory=list)


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A scheduled (polled) job a venue plugin offers, e.g. Naver ETF constituents.

    Attributes:
        name: Job name, unique within the venue (``"etf_holdings"``).
        description: One line for ``marketfeed plugins``.
        cron: Default crontab (5 fields) in ``timezone``.
        timezone: IANA zone of ``cron`` (``"Asia/Seoul"`` for KRX jobs).
        run: ``run(context, options) -> async iterator of event batches``.
        trading_days: Optional ``predicate(date) -> bool``; the scheduler skips days
            where it is false (weekends, exchange holidays).
    """

    name: str
    description: str
    cron: str
    run: Callable[[VenueContext, Mapping[str, Any]], AsyncIterator[Sequence[Event]]]
    timezone: str = "UTC"
    trading_days: Callable[[_dt.date], bool] | None = None


class Demo(msgspec.Struct, frozen=True, kw_only=True):
    """Real captures a venue plugin bundles for ``marketfeed demo`` (offline).

    Attributes:
        ws: Replay-server URL path -> capture file (JSON Lines, package data), e.g.
            ``{"/ws/v5/public": ".../okx.20220513.ws.1.jsonl"}``.
        http: HTTP capture files served on the same server.
        endpoints: Endpoint name -> URL path on the replay server (``"/ws/v5/public"``
            becomes ``ws://127.0.0.1:PORT/ws/v5/public``; REST endpoints map to ``""``).
        subscriptions: ``[[subscriptions]]`` tables (``venue`` filled in) matching the
            captures.
        options: Venue options for the demo.
    """

    ws: Mapping[str, str]
    endpoints: Mapping[str, str]
    subscriptions: tuple[Mapping[str, Any], ...]
    http: tuple[str, ...] = ()
    options: Mapping[str, Any] = msgspec.field(default_factory=dict)


class VenueInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a venue plugin provides, declared through the ``register`` hook.

    Attributes:
        name: Venue name used in config and events (``"okx"``); unique across plugins.
        description: One line for ``marketfeed plugins``.
        channels: Channel name -> event kind it yields (``{"trades": "trade"}``).
        endpoints: Endpoint name -> default (live) URL; config may override each.
        config_schema: msgspec Struct type of the venue's own options, or ``None``.
        backfill: ``backfill(request, context) -> async iterator of event batches`` when
            the venue has REST history (used after a reconnect gap and by
            ``marketfeed backfill``), else ``None``.
        jobs: Scheduled jobs the venue offers.
        default_silence_timeout: Watchdog seconds per event kind when config gives none.
        channel_timeframes: Candle channel -> the :attr:`Candle.timeframe` its events carry
            (``{"candle1H": "1h"}``), so status counts each candle subscription of one
            instrument separately.
        demo: Bundled captures for ``marketfeed demo``, or ``None``.
    """

    name: str
    description: str = ""
    channels: Mapping[str, str] = msgspec.field(default_factory=dict)
    endpoints: Mapping[str, str] = msgspec.field(default_factory=dict)
    config_schema: type[msgspec.Struct] | None = None
    backfill: Callable[[BackfillRequest, VenueContext], AsyncIterator[Sequence[Event]]] | None = (
        None
    )
    jobs: tuple[Job, ...] = ()
    default_silence_timeout: Mapping[str, float] = msgspec.field(default_factory=dict)
    channel_timeframes: Mapping[str, str] = msgspec.field(default_factory=dict)
    demo: Demo | None = None

    @property
    def capabilities(self) -> tuple[str, ...]:
        """``"stream"``, ``"backfill"``, ``"scheduled"``, as far as provided."""
        caps = []
        if self.channels:
            caps.append("stream")
        if self.backfill is not None:
            caps.append("backfill")
        if self.jobs:
            caps.append("scheduled")
        return tuple(caps)


class SinkInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a sink plugin provides, declared through the ``register`` hook.

    Attributes:
        name: Sink type used in config (``"sql"``); unique across plugins.
        description: One line for ``marketfeed plugins``.
        url_schemes: URL schemes the sink accepts (``("sqlite", "postgresql")``).
        accepts: Event kinds it stores (``event_kind`` tags); empty means all.
    """

    name: str
    description: str = ""
    url_schemes: tuple[str, ...] = ()
    accepts: tuple[str, ...] = ()


class Progress(Protocol):
    """A progress bar handle returned by :meth:`VenueContext.progress`."""

    def advance(self, n: int = 1) -> None:
        """Mark ``n`` more units done."""

    def close(self) -> None:
        """Finish the bar."""


class _NoProgress:
    def advance(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


ProgressFactory = Callable[[str, "int | None"], Progress]


class VenueContext:
    """Everything a venue plugin gets from the supervisor for one venue.

    Attributes:
        venue: Venue name.
        config: The venue's options, an instance of :attr:`VenueInfo.config_schema` (or
            ``None`` when the venue declares no schema).
        endpoints: Endpoint name -> URL, defaults with config overrides applied.
        transport: WebSocket transport selected in config.
        limiters: Process-wide named rate limiters (one owner per endpoint).
        log: Logger named ``marketfeed.venue.<name>``; never log secrets.
    """

    def __init__(
        self,
        *,
        venue: str,
        config: Any,
        endpoints: Mapping[str, str],
        transport: Transport,
        limiters: RateLimiters,
        http: Callable[[], httpx.AsyncClient],
        progress: ProgressFactory | None = None,
    ) -> None:
        self.venue = venue
        self.config = config
        self.endpoints = dict(endpoints)
        self.transport = transport
        self.limiters = limiters
        self._http_factory = http
        self._http: httpx.AsyncClient | None = None
        self.log = logging.getLogger(f"marketfeed.venue.{venue}")
        self._progress = progress
        self._on_close: list[Callable[[], Awaitable[None]]] = []

    def progress(self, description: str, total: int | None = None) -> Progress:
        """A progress bar for long work (backfills, job runs over many items): the CLI shows
        a rich bar, the embedded supervisor a no-op. Call ``advance()`` per item and
        ``close()`` at the end."""
        if self._progress is None:
            return _NoProgress()
        return self._progress(description, total)

    @property
    def http(self) -> httpx.AsyncClient:
        """A shared ``httpx.AsyncClient`` for the venue's REST calls (lazily created)."""
        if self._http is None:
            self._http = self._http_factory()
        return self._http

    def on_close(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``await callback()`` when the supervisor shuts the venue down (e.g. revoke an
        access token), before the HTTP client closes. Callbacks run in reverse order of
        registration; an exception is logged and the others still run."""
        self._on_close.append(callback)

    async def aclose(self) -> None:
        """Run the :meth:`on_close` callbacks, then close the HTTP client if one was
        created."""
        while self._on_close:
            callback = self._on_close.pop()
            try:
                await callback()
            except Exception:
                self.log.exception("venue %s: close callback failed", self.venue)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def endpoint(self, name: str) -> str:
        """URL of endpoint ``name``.

        Raises:
            KeyError: the venue declares no such endpoint.
        """
        try:
            return self.endpoints[name]
        except KeyError:
            raise KeyError(
                f"venue {self.venue!r} has no endpoint {name!r}; known: {sorted(self.endpoints)}"
            ) from None


SubscribeAction = Literal["subscribe", "unsubscribe", "resubscribe"]

MaybeAwaitable = Awaitable[Any] | Any
