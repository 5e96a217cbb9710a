"""Binance USD-M futures combined streams to marketfeed models (example third-party plugin).

Source: Binance USD-M Futures API docs, "WebSocket Market Streams": combined streams at
``wss://fstream.binance.com/stream?streams=<symbol>@aggTrade/<symbol>@bookTicker/...``,
each message ``{"stream": name, "data": payload}``. ``aggTrade``: ``a`` aggregate trade id,
``p`` price, ``q`` quantity, ``T`` trade time (ms), ``m`` buyer is maker (so the taker
sold). ``bookTicker``: ``b``/``B`` best bid price/qty, ``a``/``A`` best ask, ``E`` event
time. ``kline``: ``k`` with ``t`` open time, ``i`` interval, ``o h l c v q``, ``x`` closed.
Depth streams need a REST snapshot and are not handled by this example (they yield nothing).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import marketfeed
import msgspec
from marketfeed import Candle, ConnectionPlan, Subscription, Ticker, Trade, VenueContext

__all__ = ["VENUE", "normalise", "plan", "register", "subscribe"]

VENUE = "binance_mini"
_QUOTES = ("USDT", "BUSD", "USDC")


@marketfeed.hookimpl
def register(registry: marketfeed.Registry) -> None:
    """Declare the venue."""
    registry.venue(
        marketfeed.VenueInfo(
            name=VENUE,
            description="Binance USD-M futures (example third-party plugin)",
            channels={
                "aggTrade": "trade",
                "bookTicker": "ticker",
                "kline_1m": "candle",
                "kline_5m": "candle",
            },
            channel_timeframes={"kline_1m": "1m", "kline_5m": "5m"},
            endpoints={"ws": "wss://fstream.binance.com"},
        )
    )


@marketfeed.hookimpl
def plan(
    venue: str, subscriptions: Sequence[Subscription], context: VenueContext
) -> list[ConnectionPlan] | None:
    """One combined-stream connection; the streams are named in the URL."""
    if venue != VENUE:
        return None
    streams = "/".join(f"{s.symbol.lower()}@{s.channel}" for s in subscriptions)
    return [
        ConnectionPlan(
            name=f"{VENUE}/0",
            url=f"{context.endpoint('ws')}/stream?streams={streams}",
            subscriptions=tuple(subscriptions),
        )
    ]


@marketfeed.hookimpl
def subscribe(
    venue: str, subscriptions: Sequence[Subscription], action: str, context: VenueContext
) -> list[str] | None:
    """Nothing to send: combined streams subscribe through the URL."""
    return [] if venue == VENUE else None


class _Kline(msgspec.Struct):
    t: int
    i: str
    o: str
    h: str
    l: str  # noqa: E741 - Binance's field name
    c: str
    v: str
    q: str
    x: bool


class _Data(msgspec.Struct):
    e: str
    s: str
    E: int = 0
    T: int = 0
    a: Any = None  # aggTrade id (int) or bookTicker best ask (str) or depth asks (list)
    p: str | None = None
    q: str | None = None
    m: bool = False
    b: Any = None  # bookTicker best bid (str) or depth bids (list)
    B: str | None = None
    A: str | None = None
    k: _Kline | None = None


class _Message(msgspec.Struct):
    stream: str
    data: _Data


def _symbol(native: str) -> str:
    for quote in _QUOTES:
        if native.endswith(quote):
            return f"{native[: -len(quote)]}-{quote}"
    return native


def _ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


class _Normaliser:
    def __init__(self) -> None:
        self._decode = msgspec.json.Decoder(_Message).decode

    def __call__(self, frame: str | bytes, received: dt.datetime) -> list[marketfeed.Event]:
        d = self._decode(frame).data
        native = d.s
        if d.e == "aggTrade":
            return [
                Trade(
                    venue=VENUE,
                    symbol=_symbol(native),
                    native_symbol=native,
                    event_time=_ms(d.T),
                    receive_time=received,
                    trade_id=str(d.a),
                    price=Decimal(d.p or ""),
                    size=Decimal(d.q or ""),
                    side="sell" if d.m else "buy",
                )
            ]
        if d.e == "bookTicker":
            assert isinstance(d.b, str) and isinstance(d.a, str)
            return [
                Ticker(
                    venue=VENUE,
                    symbol=_symbol(native),
                    native_symbol=native,
                    event_time=_ms(d.E),
                    receive_time=received,
                    bid=Decimal(d.b),
                    bid_size=Decimal(d.B or ""),
                    ask=Decimal(d.a),
                    ask_size=Decimal(d.A or ""),
                )
            ]
        if d.e == "kline" and d.k is not None:
            k = d.k
            return [
                Candle(
                    venue=VENUE,
                    symbol=_symbol(native),
                    native_symbol=native,
                    event_time=_ms(d.E),
                    receive_time=received,
                    timeframe=k.i,
                    open_time=_ms(k.t),
                    open=Decimal(k.o),
                    high=Decimal(k.h),
                    low=Decimal(k.l),
                    close=Decimal(k.c),
                    volume=Decimal(k.v),
                    quote_volume=Decimal(k.q),
                    closed=k.x,
                )
            ]
        return []


@marketfeed.hookimpl
def normalise(venue: str, plan: ConnectionPlan, context: VenueContext) -> _Normaliser | None:
    """A normaliser for one connection."""
    return _Normaliser() if venue == VENUE else None
