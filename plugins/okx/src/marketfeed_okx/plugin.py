"""The OKX venue plugin: pluggy hook implementations (entry point ``okx``).

Connections (source: OKX API v5, "WebSocket > Overview"): public market data on
``wss://ws.okx.com:8443/ws/v5/public``, candles on ``/ws/v5/business``. OKX closes a
connection that receives nothing for 30 s, so every connection pings with the text
``ping`` after 25 s of silence and expects ``pong``. Connection attempts are paced to
``connect_rate`` per second (OKX: 3 per second per IP).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import msgspec
from marketfeed import (
    ConfigError,
    Connection,
    ConnectionPlan,
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

from ._backfill import backfill, instruments_job
from ._books import BOOK_CHANNELS, book_options
from ._config import OkxConfig
from ._login import login
from ._normalise import OkxNormaliser
from ._symbols import normalise_symbol
from ._timeframes import BARS, normalise_timeframe
from .demo import DEMO

__all__ = [
    "CHANNELS",
    "ENDPOINTS",
    "VENUE",
    "connect",
    "endpoint_for",
    "normalise",
    "plan",
    "register",
    "subscribe",
    "subscribe_frames",
]

VENUE = "okx"

ENDPOINTS = {
    "public": "wss://ws.okx.com:8443/ws/v5/public",
    "business": "wss://ws.okx.com:8443/ws/v5/business",
    "rest": "https://www.okx.com",
}
"""Endpoint name -> live URL; each can be overridden in ``[venues.okx.endpoints]``."""

_BOOK_KINDS = {
    "books": "book_delta",
    "books-l2-tbt": "book_delta",
    "books50-l2-tbt": "book_delta",
    "books5": "book_snapshot",
    "bbo-tbt": "book_snapshot",
}

CHANNELS: dict[str, str] = {"tickers": "ticker", "trades": "trade", **_BOOK_KINDS}
CHANNELS.update({f"candle{bar}": "candle" for bar in BARS})
"""Channel -> event kind it yields."""

_MAX_REQUEST_BYTES = 60_000  # OKX: a request's channels may total at most 64 KB

INFO = VenueInfo(
    name=VENUE,
    description="OKX (v5): tickers, trades, L2 books with checksum/sequence checks, "
    "candles of every timeframe; REST instruments, candle and trade backfill",
    channels=CHANNELS,
    channel_timeframes={f"candle{bar}": normalise_timeframe(bar) for bar in BARS},
    endpoints=ENDPOINTS,
    config_schema=OkxConfig,
    backfill=backfill,
    jobs=(
        Job(
            name="instruments",
            description="OKX instrument reference data (tick/lot sizes, expiries)",
            cron="0 0 * * *",
            run=instruments_job,
        ),
    ),
    default_silence_timeout={"ticker": 120.0, "book": 120.0},
    demo=DEMO,
)


def _config(context: VenueContext) -> OkxConfig:
    cfg = context.config
    return cfg if isinstance(cfg, OkxConfig) else OkxConfig()


def endpoint_for(channel: str) -> str:
    """The endpoint name serving ``channel``: ``"business"`` for candles, else
    ``"public"``.

    Raises:
        ConfigError: OKX has no such channel here.
    """
    kind = CHANNELS.get(channel)
    if kind is None:
        raise ConfigError(
            "subscriptions",
            f"venue 'okx' has no channel {channel!r}; channels: {', '.join(CHANNELS)}",
        )
    return "business" if kind == "candle" else "public"


@hookimpl
def register(registry: Registry) -> None:
    """Declare the ``okx`` venue."""
    registry.venue(INFO)


@hookimpl
def plan(
    venue: str, subscriptions: Sequence[Subscription], context: VenueContext
) -> list[ConnectionPlan] | None:
    """Group subscriptions by endpoint (``public``, ``business``) into connections of at
    most ``max_subscriptions_per_connection`` each, named ``okx/public/0``, ...

    Raises:
        ConfigError: unknown channel, ``"*"`` or a malformed instId as symbol, a bad book
            option, or ``login = true`` without credentials.
    """
    if venue != VENUE:
        return None
    config = _config(context)
    groups: dict[str, dict[tuple[str, str], Subscription]] = {"public": {}, "business": {}}
    for i, sub in enumerate(subscriptions):
        endpoint = endpoint_for(sub.channel)
        try:
            normalise_symbol(sub.symbol)
        except ValueError:
            raise ConfigError(
                f"subscriptions[{i}].symbols",
                f"okx needs instrument ids such as 'BTC-USDT' or 'BTC-USDT-SWAP', not "
                f"{sub.symbol!r}",
            ) from None
        if sub.channel in BOOK_CHANNELS:
            try:
                book_options(sub.options)
            except ValueError as exc:
                raise ConfigError(f"subscriptions[{i}].options", str(exc)) from None
        groups[endpoint].setdefault((sub.channel, sub.symbol), sub)
    if config.login and config.credentials() is None:
        raise ConfigError(
            "venues.okx.login",
            "login = true needs api_key, secret_key and passphrase (or the environment "
            "variables OKX_API_KEY, OKX_API_SECRET, OKX_API_PASSPHRASE)",
        )
    heartbeat = Heartbeat(
        interval=config.heartbeat_interval, ping="ping", timeout=config.heartbeat_timeout
    )
    cap = config.max_subscriptions_per_connection
    plans: list[ConnectionPlan] = []
    for endpoint, subs in groups.items():
        items = list(subs.values())
        for n, start in enumerate(range(0, len(items), cap)):
            plans.append(
                ConnectionPlan(
                    name=f"{venue}/{endpoint}/{n}",
                    url=context.endpoint(endpoint),
                    subscriptions=tuple(items[start : start + cap]),
                    heartbeat=heartbeat,
                )
            )
    return plans


def subscribe_frames(op: str, subscriptions: Sequence[Subscription]) -> list[str]:
    """``{"op": op, "args": [{"channel", "instId"}, ...]}`` frames, split so that each
    stays under OKX's 64 KB request limit.

    Source: OKX API v5, "WebSocket > Subscribe" / "Unsubscribe".
    """
    frames: list[str] = []
    args: list[dict[str, str]] = []
    size = 0
    for sub in subscriptions:
        arg = {"channel": sub.channel, "instId": sub.symbol}
        n = len(sub.channel) + len(sub.symbol) + 32
        if args and size + n > _MAX_REQUEST_BYTES:
            frames.append(msgspec.json.encode({"op": op, "args": args}).decode())
            args, size = [], 0
        args.append(arg)
        size += n
    if args:
        frames.append(msgspec.json.encode({"op": op, "args": args}).decode())
    return frames


@hookimpl
def subscribe(
    venue: str,
    subscriptions: Sequence[Subscription],
    action: SubscribeAction,
    context: VenueContext,
) -> Sequence[Frame] | None:
    """Subscribe, unsubscribe, or resubscribe (unsubscribe then subscribe, which makes
    OKX send a fresh book snapshot for that instrument)."""
    if venue != VENUE:
        return None
    if action == "subscribe":
        return subscribe_frames("subscribe", subscriptions)
    if action == "unsubscribe":
        return subscribe_frames("unsubscribe", subscriptions)
    if action == "resubscribe":
        return subscribe_frames("unsubscribe", subscriptions) + subscribe_frames(
            "subscribe", subscriptions
        )
    raise ValueError(f"unknown subscribe action {action!r}")


@hookimpl
def normalise(venue: str, plan: ConnectionPlan, context: VenueContext) -> Normaliser | None:
    """A fresh :class:`OkxNormaliser` for the connection (its books start empty), as a
    plain function (:meth:`OkxNormaliser.function`)."""
    if venue != VENUE:
        return None
    normaliser = OkxNormaliser(
        venue, plan.subscriptions, checksum=_config(context).checksum, log=context.log
    )
    return normaliser.function()


@hookimpl
def connect(
    venue: str, plan: ConnectionPlan, context: VenueContext
) -> AbstractAsyncContextManager[Connection] | None:
    """Open the connection after waiting for the connect rate limiter (OKX allows 3
    connection attempts per second per IP); log in on ``business`` connections when
    ``login = true``.

    Raises (on entering): TransportError, VenueError (login refused, no secrets in it).
    """
    if venue != VENUE:
        return None
    config = _config(context)
    limiter = context.limiters.get("okx:ws:connect", config.connect_rate, 1.0)
    needs_login = config.login and plan.url == context.endpoints.get("business")

    @asynccontextmanager
    async def _open() -> AsyncIterator[Any]:
        async with limiter:
            pass
        async with context.transport.connect(plan.url, headers=plan.headers) as conn:
            if needs_login:
                credentials = config.credentials()
                if credentials is None:
                    raise ConfigError("venues.okx.login", "no credentials for login")
                await login(conn, credentials, venue=venue)
            yield conn

    return _open()
