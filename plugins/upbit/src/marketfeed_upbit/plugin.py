"""The ``upbit`` venue plugin: pluggy hook implementations (entry point ``upbit``).

* ``register``: declares the venue (channels, endpoints, config schema, candle and trade
  backfill and an ``instruments`` job).
* ``plan``: one connection per ``max_codes_per_connection`` subscriptions on
  ``wss://api.upbit.com/websocket/v1``, with the text ``PING`` heartbeat.
* ``connect``: opens the connection through the configured transport at Upbit's connect
  rate (5 per second) and throttles what is sent on it (5 messages per second, 100 per
  minute, per connection).
* ``subscribe``: the request frame (see :mod:`marketfeed_upbit._request`).
* ``normalise``: :class:`~marketfeed_upbit.UpbitNormaliser`, sharing trade dedup across
  reconnects.

Source: Upbit Open API reference (WebSocket guide, rate limits, quotation REST).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiolimiter import AsyncLimiter
from marketfeed import (
    Connection,
    ConnectionPlan,
    Event,
    Frame,
    Heartbeat,
    Job,
    Normaliser,
    Registry,
    SubscribeAction,
    Subscription,
    VenueContext,
    VenueInfo,
    hookimpl,
)

from ._backfill import backfill
from ._config import UpbitConfig
from ._normalise import UpbitNormaliser, UpbitSession
from ._request import STREAM_CHANNELS, RequestBook, build_request, check_subscription
from ._rest import UpbitRest
from ._timeframes import TIMEFRAMES
from .demo import DEMO

__all__ = [
    "CHANNELS",
    "ENDPOINTS",
    "VENUE",
    "connect",
    "normalise",
    "plan",
    "register",
    "subscribe",
]

VENUE = "upbit"

ENDPOINTS: dict[str, str] = {
    "ws": "wss://api.upbit.com/websocket/v1",
    "rest": "https://api.upbit.com",
}
"""Endpoint name -> live URL (override under ``[venues.upbit.endpoints]``)."""

CHANNELS: dict[str, str] = {
    **STREAM_CHANNELS,
    **{tf.channel: "candle" for tf in TIMEFRAMES.values() if not tf.streamable},
}
"""Channel -> event kind: ``ticker``, ``trade``, ``orderbook``, ``candle.1s`` ..
``candle.240m`` (streamed) and ``candle.1d``, ``candle.1w``, ``candle.1M`` (backfill only)."""


class _VenueState:
    """Per venue context: what each connection requested and the shared session."""

    def __init__(self, config: UpbitConfig) -> None:
        self.requests = RequestBook()
        self.session = UpbitSession(config.dedup_window)


_states: weakref.WeakKeyDictionary[VenueContext, _VenueState] = weakref.WeakKeyDictionary()


def _config(context: VenueContext) -> UpbitConfig:
    cfg = context.config
    return cfg if isinstance(cfg, UpbitConfig) else UpbitConfig()


def _state(context: VenueContext) -> _VenueState:
    state = _states.get(context)
    if state is None:
        state = _states[context] = _VenueState(_config(context))
    return state


async def _instruments_job(
    context: VenueContext, options: Mapping[str, Any]
) -> AsyncIterator[Sequence[Event]]:
    """Fetch every Upbit market (``/v1/market/all?is_details=true``) as instruments."""
    yield await UpbitRest(context).instruments(details=bool(options.get("details", True)))


@hookimpl
def register(registry: Registry) -> None:
    """Declare the ``upbit`` venue."""
    registry.venue(
        VenueInfo(
            name=VENUE,
            description=(
                "Upbit (Korea) spot: ticker, trade, top-N order book and candles over "
                "WebSocket (SIMPLE or DEFAULT format); instruments, candle and trade backfill "
                "over REST"
            ),
            channels=CHANNELS,
            channel_timeframes={
                tf.channel: tf.timeframe for tf in TIMEFRAMES.values() if tf.streamable
            },
            endpoints=ENDPOINTS,
            config_schema=UpbitConfig,
            backfill=backfill,
            jobs=(
                Job(
                    name="instruments",
                    description="Upbit markets with their alerts (/v1/market/all) as instruments",
                    cron="0 0 * * *",
                    run=_instruments_job,
                ),
            ),
            demo=DEMO,
        )
    )


@hookimpl
def plan(
    venue: str, subscriptions: Sequence[Subscription], context: VenueContext
) -> list[ConnectionPlan] | None:
    """Split ``subscriptions`` into connections of at most ``max_codes_per_connection``.

    Raises:
        ConfigError: a channel Upbit cannot stream or a bad market code.
    """
    if venue != VENUE:
        return None
    cfg = _config(context)
    for sub in subscriptions:
        check_subscription(sub)
    url = context.endpoint("ws")
    heartbeat = Heartbeat(
        interval=cfg.heartbeat_interval, ping="PING", timeout=cfg.heartbeat_timeout
    )
    size = cfg.max_codes_per_connection
    return [
        ConnectionPlan(
            name=f"{VENUE}/{i // size}",
            url=url,
            subscriptions=tuple(subscriptions[i : i + size]),
            heartbeat=heartbeat,
        )
        for i in range(0, len(subscriptions), size)
    ]


class _ThrottledConnection:
    """A connection whose ``send`` respects Upbit's per-connection message limits;
    ``receive`` is the wrapped connection's own method (no overhead per frame)."""

    def __init__(self, conn: Connection, config: UpbitConfig) -> None:
        self._conn = conn
        self.receive = conn.receive
        self.aclose = conn.aclose
        self._per_second = AsyncLimiter(config.ws_message_rate, 1.0)
        self._per_minute = AsyncLimiter(config.ws_message_rate_per_minute, 60.0)

    async def send(self, frame: Frame) -> None:
        await self._per_minute.acquire()
        await self._per_second.acquire()
        await self._conn.send(frame)

    def __getattr__(self, name: str) -> Any:  # ping() and transport extras
        return getattr(self._conn, name)


@hookimpl
def connect(venue: str, plan: ConnectionPlan, context: VenueContext) -> Any:
    """Open ``plan.url`` with the configured transport, at most ``ws_connect_rate``
    connections per second (process-wide), and throttle sends on it."""
    if venue != VENUE:
        return None
    cfg = _config(context)

    @asynccontextmanager
    async def _open() -> AsyncIterator[Connection]:
        await context.limiters.get("upbit:ws:connect", cfg.ws_connect_rate, 1.0).acquire()
        async with context.transport.connect(plan.url, headers=plan.headers) as conn:
            yield _ThrottledConnection(conn, cfg)

    return _open()


@hookimpl
def subscribe(
    venue: str,
    subscriptions: Sequence[Subscription],
    action: SubscribeAction,
    context: VenueContext,
) -> list[Frame] | None:
    """The request frame for ``action``; Upbit requests replace a connection's whole set,
    so ``unsubscribe`` and ``resubscribe`` send the connection's full remaining set.

    Raises:
        ConfigError: a channel Upbit cannot stream or a bad market code.
    """
    if venue != VENUE:
        return None
    book = _state(context).requests
    if action == "subscribe":
        subs = book.subscribe(subscriptions)
    elif action == "unsubscribe":
        subs = book.unsubscribe(subscriptions)
    else:
        subs = book.resubscribe(subscriptions)
    if not subs:
        return []
    return [build_request(subs, _config(context))]


@hookimpl
def normalise(venue: str, plan: ConnectionPlan, context: VenueContext) -> Normaliser | None:
    """The connection's normaliser (:meth:`UpbitNormaliser.function`: with the C fast path a
    C dispatcher); trade dedup is shared by every connection of the venue and survives
    reconnects."""
    if venue != VENUE:
        return None
    return UpbitNormaliser(plan, venue=venue, session=_state(context).session).function()
