"""Typed shapes of OKX WebSocket frames and fast value conversions (the hot path).

Every frame is decoded once, with a :class:`msgspec.json.Decoder` for the channel's push
shape. The shapes are ``gc=False`` Structs (decoded frames never form reference cycles, so
the garbage collector need not track them: measured ~10 % faster decoding). Numbers arrive
as JSON strings (``"30238.8"``): they are decoded as ``str`` and turned into
:class:`~decimal.Decimal` through a bounded cache (prices and sizes repeat a lot, and a
dict lookup is several times cheaper than parsing). ``""`` means absent.

Source: OKX API v5, "WebSocket > Public channels" (tickers, trades, order book) and
"WebSocket > Business channels" (candlesticks); shapes confirmed on the recordings in
``tests/okx/data`` (see the README there).
"""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal
from typing import Literal

import msgspec

__all__ = [
    "CACHE_MAX",
    "Arg",
    "BookData",
    "BookPush",
    "LooseBookPush",
    "CandlePush",
    "EventFrame",
    "Envelope",
    "TickerData",
    "TickerPush",
    "TradeData",
    "TradePush",
    "dec",
    "decimal_cache",
    "dec_or_none",
    "cache_miss",
    "cache_miss_or_none",
    "fresh_dec_or_none",
    "ms_to_datetime",
]


class Arg(msgspec.Struct, frozen=True, gc=False):
    """``arg`` of a push or event: the channel and instrument it concerns."""

    channel: str
    instId: str = ""


class TickerData(msgspec.Struct, gc=False):
    """One ``tickers`` data object (``sodUtc0``/``sodUtc8`` are skipped)."""

    instId: str
    ts: int
    instType: str = ""
    last: str = ""
    lastSz: str = ""
    askPx: str = ""
    askSz: str = ""
    bidPx: str = ""
    bidSz: str = ""
    open24h: str = ""
    high24h: str = ""
    low24h: str = ""
    volCcy24h: str = ""
    vol24h: str = ""


class TickerPush(msgspec.Struct, gc=False):
    arg: Arg
    data: list[TickerData]


class TradeData(msgspec.Struct, gc=False):
    """One ``trades`` data object; ``side`` is the taker side."""

    instId: str
    tradeId: str
    px: str
    sz: str
    side: Literal["buy", "sell"]
    ts: int
    seqId: int | None = None


class TradePush(msgspec.Struct, gc=False):
    arg: Arg
    data: list[TradeData]


class CandlePush(msgspec.Struct, gc=False):
    """``candle<bar>`` push: rows ``[ts,o,h,l,c,vol,volCcy(,volCcyQuote,confirm)]``."""

    arg: Arg
    data: list[list[str]]


Level = tuple[str, str, str, str]
"""An OKX book level ``(px, sz, "0", numOrders)``: the third field is the deprecated
liquidated-orders count. Fixed-size tuples decode about 30 % faster than lists."""


class BookData(msgspec.Struct, gc=False):
    """One order book data object. Levels are ``[px, sz, "0", numOrders]`` strings."""

    ts: int
    asks: list[Level] = []
    bids: list[Level] = []
    checksum: int | None = None
    seqId: int | None = None
    prevSeqId: int | None = None
    instId: str = ""


class BookPush(msgspec.Struct, gc=False):
    """``books``/``books-l2-tbt``/``books50-l2-tbt`` (with ``action``), ``books5`` and
    ``bbo-tbt`` (full snapshots, no ``action``)."""

    arg: Arg
    data: list[BookData]
    action: str = "snapshot"


class LooseBookData(msgspec.Struct, gc=False):
    """:class:`BookData` accepting levels of any length (used when a level is not the
    usual four strings; the book engine then checks price and size)."""

    ts: int
    asks: list[list[str]] = []
    bids: list[list[str]] = []
    checksum: int | None = None
    seqId: int | None = None
    prevSeqId: int | None = None
    instId: str = ""


class LooseBookPush(msgspec.Struct, gc=False):
    arg: Arg
    data: list[LooseBookData]
    action: str = "snapshot"


class EventFrame(msgspec.Struct, gc=False):
    """``{"event": ..., "arg"?, "code"?, "msg"?, "connId"?}``: acks, errors, notices."""

    event: str
    arg: Arg | None = None
    code: str = ""
    msg: str = ""


class Envelope(msgspec.Struct, gc=False):
    """Any frame, data left undecoded: used only when the fast path cannot tell the
    channel from the frame's first bytes."""

    arg: Arg | None = None
    event: str | None = None
    data: msgspec.Raw = msgspec.Raw()


# ``strict=False`` lets ``"ts":"1652459225393"`` decode straight into ``int``.
ticker_decoder = msgspec.json.Decoder(TickerPush, strict=False)
trade_decoder = msgspec.json.Decoder(TradePush, strict=False)
candle_decoder = msgspec.json.Decoder(CandlePush)
book_decoder = msgspec.json.Decoder(BookPush, strict=False)
loose_book_decoder = msgspec.json.Decoder(LooseBookPush, strict=False)
event_decoder = msgspec.json.Decoder(EventFrame, strict=False)
envelope_decoder = msgspec.json.Decoder(Envelope)

_CACHE_MAX = CACHE_MAX = 200_000
_cache: dict[str, Decimal] = {}
decimal_cache = _cache
"""Text -> Decimal cache shared by the hot paths (``decimal_cache.get(text)`` is a hit or
``None``; bounded: cleared when it reaches 200,000 entries)."""


def _parse(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise ValueError(f"not a decimal: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite decimal: {text!r}")
    return value


def dec(text: str) -> Decimal:
    """Exact :class:`Decimal` of a numeric string (cached).

    Raises:
        ValueError: ``text`` is empty, not a number, or not finite.
    """
    value = _cache.get(text)
    return value if value is not None else cache_miss(text)


def cache_miss(text: str) -> Decimal:
    """:func:`dec` for a text that ``decimal_cache.get`` just missed: parse and keep it
    (hot paths call ``decimal_cache.get(text) or cache_miss(text)``).

    Raises:
        ValueError: ``text`` is empty, not a number, or not finite.
    """
    value = _parse(text)
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[text] = value
    return value


def cache_miss_or_none(text: str) -> Decimal | None:
    """:func:`cache_miss`, but ``""`` (absent) gives ``None``."""
    return cache_miss(text) if text else None


def dec_or_none(text: str) -> Decimal | None:
    """Like :func:`dec`, but OKX's ``""`` (absent) gives ``None``."""
    if not text:
        return None
    value = _cache.get(text)
    return value if value is not None else cache_miss(text)


def fresh_dec_or_none(text: str) -> Decimal | None:
    """Like :func:`dec_or_none` without the cache, for values that rarely repeat (a
    ticker's 24 h volumes change on almost every push: caching them costs a failed
    lookup and an insert each time, and crowds out the prices).

    Raises:
        ValueError: ``text`` is not a number or not finite.
    """
    return _parse(text) if text else None


def ms_to_datetime(ms: int) -> _dt.datetime:
    """UTC datetime of epoch milliseconds (exact: a millisecond count divided by 1000
    is within a fraction of a microsecond of the true value, and ``fromtimestamp``
    rounds to the microsecond)."""
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.UTC)
