"""The per-connection OKX normaliser: raw frames to marketfeed events (the hot path).

Source: OKX API v5, "WebSocket > Overview" (subscribe, acks, ``error`` events, ``ping``/
``pong``), "WebSocket > Public channels" (``tickers``, ``trades``, order book channels)
and "WebSocket > Business channels" (``candle<bar>``).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from types import ModuleType
from typing import Any, Final

import msgspec
from marketfeed import Candle, Event, Subscription, SubscriptionStatus, Ticker, Trade
from msgspec.structs import force_setattr

from ._books import BOOK_CHANNELS, OkxBooks
from ._decode import (
    CACHE_MAX,
    Arg,
    BookPush,
    EventFrame,
    LooseBookPush,
    book_decoder,
    cache_miss,
    cache_miss_or_none,
    candle_decoder,
    dec,
    dec_or_none,
    decimal_cache,
    envelope_decoder,
    event_decoder,
    fresh_dec_or_none,
    loose_book_decoder,
    ms_to_datetime,
    ticker_decoder,
    trade_decoder,
)
from ._symbols import normalise_symbol
from ._timeframes import BARS, normalise_timeframe

__all__ = ["SPEEDUPS", "OkxNormaliser", "candle_from_row", "candles_from_rows"]

_cokx: ModuleType | None
"""The C fast path (``marketfeed_okx._cokx``, built by ``pip install`` when a C compiler is
present) or ``None``. Read when a normaliser is created, so tests can switch it off."""
if os.environ.get("MARKETFEED_PURE_PYTHON", "") not in ("", "0"):
    _cokx = None
else:
    try:
        from . import _cokx
    except ImportError:  # built without a C compiler: the pure-Python path
        _cokx = None

_EXACT: Final = Context(
    prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[InvalidOperation, DivisionByZero, Overflow]
)
"""A context that never rounds: its ``create_decimal`` gives ``Decimal(text)`` for the plain
decimal texts the C fast path hands it (at most 32 characters, no exponent), a little cheaper
to call; anything invalid raises (``InvalidOperation`` is trapped) and goes to the Python path."""

SPEEDUPS: Final = _cokx is not None
"""Whether the C fast path was loaded at import (``False`` without a compiled
``marketfeed_okx._cokx`` or with the environment variable ``MARKETFEED_PURE_PYTHON=1``)."""

_PREFIX = '{"arg":{"channel":"'
_PREFIX_LEN = len(_PREFIX)
_SPOT_TYPES = frozenset({"SPOT", "MARGIN"})
_ERROR_ARG = re.compile(r"channel:\s*([\w-]+)\s*,\s*instId:\s*([\w-]+)")
_TOKENS = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]")
_IGNORED_EVENTS = frozenset({"login", "channel-conn-count"})

Handler = Callable[[str, _dt.datetime], list[Event]]


def candle_from_row(
    row: Sequence[str],
    *,
    venue: str,
    inst_id: str,
    symbol: str,
    timeframe: str,
    receive_time: _dt.datetime,
) -> Candle:
    """One OKX candle row as a :class:`Candle` (WebSocket push and REST alike).

    Rows are ``[ts, o, h, l, c, vol, volCcy]`` (before 2023) or
    ``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]``. ``ts`` is the bar's open
    time in epoch ms; OKX sends no separate update time, so ``event_time`` is the open
    time too. ``volume`` is ``vol`` (base currency for spot, contracts for derivatives);
    ``quote_volume`` is ``volCcyQuote``, or for a 7-field spot row ``volCcy`` (which is in
    quote currency for spot only); ``closed`` is ``confirm == "1"`` (a 7-field row gives
    ``False``: unknown).

    Source: OKX API v5, "Market data > Get candlesticks" (response parameters).

    Raises:
        ValueError: the row has fewer than 7 fields or a value is not a number.
    """
    if len(row) < 7:
        raise ValueError(f"candle row with {len(row)} fields (need 7 or 9): {row!r}")
    open_time = ms_to_datetime(int(row[0]))
    if len(row) >= 9:
        quote_volume = dec_or_none(row[7])
        closed = row[8] == "1"
    else:
        quote_volume = dec_or_none(row[6]) if inst_id.count("-") == 1 else None
        closed = False
    return Candle(
        venue=venue,
        symbol=symbol,
        native_symbol=inst_id,
        event_time=open_time,
        receive_time=receive_time,
        timeframe=timeframe,
        open_time=open_time,
        open=dec(row[1]),
        high=dec(row[2]),
        low=dec(row[3]),
        close=dec(row[4]),
        volume=dec(row[5]),
        quote_volume=quote_volume,
        closed=closed,
    )


def candles_from_rows(
    rows: Iterable[Sequence[str]],
    *,
    venue: str,
    inst_id: str,
    bar: str,
    receive_time: _dt.datetime,
) -> list[Candle]:
    """Candle rows of one instrument and bar (a push's ``data`` or a REST page) as
    :class:`Candle` s, in the given order (see :func:`candle_from_row`).

    Raises:
        ValueError: unknown bar, malformed row, or an instId that is not one.
    """
    timeframe = normalise_timeframe(bar)
    symbol = normalise_symbol(inst_id)
    return [
        candle_from_row(
            row,
            venue=venue,
            inst_id=inst_id,
            symbol=symbol,
            timeframe=timeframe,
            receive_time=receive_time,
        )
        for row in rows
    ]


class OkxNormaliser:
    """Turns the frames of one OKX connection into events. Call it per frame.

    Returns, per frame: ``Ticker``/``Trade``/``Candle`` events, ``BookSnapshot``/
    ``BookDelta`` for verified books, and control events: ``SubscriptionStatus``
    (``active`` on the first ack of a subscription, ``failed`` with OKX's code and
    message on an ``error`` event, ``resyncing`` when a book fails) and
    ``ResyncRequest`` (resubscribe that one instrument). ``pong`` and repeated acks give
    nothing.

    Args:
        venue: Venue name put on events (``"okx"``).
        subscriptions: The connection's subscriptions (their ``options`` set the book
            emission policy; unacknowledged ones are the candidates an ``error`` event
            without ``arg`` is matched against).
        checksum: Verify OKX's book checksum.
        log: Where venue notices go.

    Raises (from ``__call__``):
        ValueError, msgspec.ValidationError, msgspec.DecodeError: a malformed frame (not
            JSON, a missing field, a number that is not a number, an unknown channel).
            The connection's state is unchanged, so the next frame is handled normally.
    """

    def __init__(
        self,
        venue: str,
        subscriptions: Iterable[Subscription] = (),
        *,
        checksum: bool = True,
        log: logging.Logger | None = None,
    ) -> None:
        self.venue = venue
        self._log = log or logging.getLogger(f"marketfeed.venue.{venue}")
        subs = tuple(subscriptions)
        self._expected: dict[tuple[str, str], Subscription] = {
            (s.channel, s.symbol): s for s in subs
        }
        self._active: set[tuple[str, str]] = set()
        self._symbols: dict[str, str] = {}
        self._books = OkxBooks(venue, subs, checksum=checksum)
        self._last_ms = -1
        self._last_dt = ms_to_datetime(0)
        handlers: dict[str, Handler] = {"tickers": self._tickers, "trades": self._trades}
        for channel in BOOK_CHANNELS:
            handlers[channel] = self._book
        for bar in BARS:
            handlers[f"candle{bar}"] = self._candles
        self._handlers = handlers
        self._fast: Callable[[str | bytes, _dt.datetime], Any] | None = None
        self._dispatch = self._make_dispatch()
        if _cokx is not None:
            # The C fast path: a tickers/trades push becomes events, a book push goes to
            # its engine as (price, size) levels, as OkxBooks.on_parsed would feed it (a
            # push of several objects or with an error goes through on_parsed), any other
            # frame (or anything unusual) to the Python dispatch. self._fast is the same
            # reader without the callbacks (it returns the parsed book push, or None).
            args = (
                venue,
                Ticker,
                Trade,
                decimal_cache,
                CACHE_MAX,
                self._symbols,
                self._symbol,
                Decimal,
                frozenset(BOOK_CHANNELS),
            )
            exact = _EXACT.create_decimal
            self._fast = _cokx.Fast(*args, None, None, exact)
            self._dispatch = dispatch = _cokx.Fast(
                *args, self._dispatch, self._books.on_parsed, exact
            )
            dispatch.set_books(*self._books.direct())

    # ------------------------------------------------------------------ helpers

    def _symbol(self, inst_id: str) -> str:
        symbol = self._symbols.get(inst_id)
        if symbol is None:
            symbol = self._symbols[inst_id] = normalise_symbol(inst_id)
        return symbol

    # ------------------------------------------------------------------ entry point

    def __call__(self, frame: str | bytes, receive_time: _dt.datetime) -> Sequence[Event]:
        """Normalise one frame (text or UTF-8 bytes) received at ``receive_time`` (UTC)."""
        return self._dispatch(frame, receive_time)

    def function(self) -> Callable[[str | bytes, _dt.datetime], Sequence[Event]]:
        """This normaliser as a plain function (same state): what the ``normalise`` hook
        returns, because calling it skips the instance-call indirection of ``__call__``
        (about 0.3 µs per frame)."""
        return self._dispatch

    def _make_dispatch(self) -> Callable[[str | bytes, _dt.datetime], Sequence[Event]]:
        get_handler = self._handlers.get
        slow = self._slow
        prefix = _PREFIX
        start = _PREFIX_LEN

        def dispatch(frame: str | bytes, receive_time: _dt.datetime) -> Sequence[Event]:
            if not isinstance(frame, str):
                frame = bytes(frame).decode("utf-8")
            if frame.startswith(prefix):
                handler = get_handler(frame[start : frame.find('"', start)])
                if handler is not None:
                    return handler(frame, receive_time)
            if frame == "pong":
                return ()
            return slow(frame, receive_time)

        return dispatch

    def _slow(self, frame: str, receive_time: _dt.datetime) -> Sequence[Event]:
        envelope = envelope_decoder.decode(frame)
        if envelope.event is not None:
            return self._event(event_decoder.decode(frame), receive_time)
        if envelope.arg is None:
            raise ValueError("OKX frame with neither event nor arg")
        channel = envelope.arg.channel
        handler = self._handlers.get(channel)
        if handler is None and channel.startswith("candle"):
            handler = self._candles
        if handler is None:
            raise ValueError(f"frame of an unknown OKX channel {channel!r}")
        return handler(frame, receive_time)

    # ------------------------------------------------------------------ channels

    def _tickers(
        self,
        frame: str,
        receive_time: _dt.datetime,
        _decode: Any = ticker_decoder.decode,
        _get: Any = decimal_cache.get,
        _dec: Any = cache_miss_or_none,
        _ticker: Any = Ticker,
        _spot: frozenset[str] = _SPOT_TYPES,
        _set: Any = force_setattr,
        _fresh: Any = fresh_dec_or_none,
    ) -> list[Event]:
        # Hot path: module objects bound as defaults (local lookups), the last timestamp
        # cached inline, a decimal-cache hit is one C call (a miss, "" included, falls
        # through to cache_miss_or_none). A call with more than 15 keyword arguments compiles to
        # one that builds a dict first (CPython's stack-use guideline), about 0.7 µs
        # slower: Ticker gets 15 here, and a spot ticker's quote volume is set on the new
        # (not yet shared) event with msgspec's force_setattr, its documented use for
        # finishing a frozen struct. The 24 h volumes change on nearly every push: parsed
        # without the cache.
        out: list[Event] = []
        for d in _decode(frame).data:
            inst_id = d.instId
            if d.ts != self._last_ms:
                self._last_dt = ms_to_datetime(d.ts)
                self._last_ms = d.ts
            ticker = _ticker(
                venue=self.venue,
                symbol=self._symbols.get(inst_id) or self._symbol(inst_id),
                native_symbol=inst_id,
                event_time=self._last_dt,
                receive_time=receive_time,
                last=_get(d.last) or _dec(d.last),
                last_size=_get(d.lastSz) or _dec(d.lastSz),
                bid=_get(d.bidPx) or _dec(d.bidPx),
                bid_size=_get(d.bidSz) or _dec(d.bidSz),
                ask=_get(d.askPx) or _dec(d.askPx),
                ask_size=_get(d.askSz) or _dec(d.askSz),
                open_24h=_get(d.open24h) or _dec(d.open24h),
                high_24h=_get(d.high24h) or _dec(d.high24h),
                low_24h=_get(d.low24h) or _dec(d.low24h),
                volume_24h=_fresh(d.vol24h),
            )
            if d.instType in _spot or (not d.instType and inst_id.count("-") == 1):
                _set(ticker, "quote_volume_24h", _fresh(d.volCcy24h))
            out.append(ticker)
        return out

    def _trades(
        self,
        frame: str,
        receive_time: _dt.datetime,
        _decode: Any = trade_decoder.decode,
        _get: Any = decimal_cache.get,
        _dec: Any = cache_miss,
        _trade: Any = Trade,
    ) -> list[Event]:
        out: list[Event] = []
        for d in _decode(frame).data:
            inst_id = d.instId
            if d.ts != self._last_ms:
                self._last_dt = ms_to_datetime(d.ts)
                self._last_ms = d.ts
            out.append(
                _trade(
                    venue=self.venue,
                    symbol=self._symbols.get(inst_id) or self._symbol(inst_id),
                    native_symbol=inst_id,
                    event_time=self._last_dt,
                    receive_time=receive_time,
                    trade_id=d.tradeId,
                    price=_get(d.px) or _dec(d.px),
                    size=_get(d.sz) or _dec(d.sz),
                    side=d.side,
                    sequence=d.seqId,
                )
            )
        return out

    def _candles(self, frame: str, receive_time: _dt.datetime) -> list[Event]:
        push = candle_decoder.decode(frame)
        return list(
            candles_from_rows(
                push.data,
                venue=self.venue,
                inst_id=push.arg.instId,
                bar=push.arg.channel[6:],
                receive_time=receive_time,
            )
        )

    def _book(self, frame: str, receive_time: _dt.datetime) -> list[Event]:
        try:
            push: BookPush | LooseBookPush = book_decoder.decode(frame)
        except msgspec.ValidationError:
            push = loose_book_decoder.decode(frame)  # levels not of four strings
        return self._books.on_push(push, receive_time)

    # ------------------------------------------------------------------ events

    def _status(
        self, arg: Arg, state: Any, now: _dt.datetime, code: str = "", msg: str = ""
    ) -> SubscriptionStatus:
        return SubscriptionStatus(
            venue=self.venue,
            channel=arg.channel,
            native_symbol=arg.instId or "*",
            state=state,
            time=now,
            code=code or None,
            message=msg or None,
        )

    def _event(self, ev: EventFrame, now: _dt.datetime) -> Sequence[Event]:
        kind = ev.event
        if kind == "subscribe":
            if ev.arg is None:
                return ()
            key = (ev.arg.channel, ev.arg.instId)
            if key in self._active:
                return ()  # a repeated ack (cumulative subscribe requests)
            self._active.add(key)
            if self._books.resyncing(*key):
                return ()  # the book engine reports "active" once the snapshot passes
            return [self._status(ev.arg, "active", now)]
        if kind == "unsubscribe":
            if ev.arg is not None:
                self._active.discard((ev.arg.channel, ev.arg.instId))
                self._books.forget(ev.arg.channel, ev.arg.instId)
            return ()
        if kind == "error":
            return self._error(ev, now)
        if kind not in _IGNORED_EVENTS:
            self._log.warning("OKX %s event: code %s: %s", kind, ev.code, ev.msg)
        return ()

    def _error(self, ev: EventFrame, now: _dt.datetime) -> list[Event]:
        """Which subscriptions an ``error`` event concerns: its ``arg`` when present;
        else the ``channel:...,instId:...`` named in ``msg``; else the unacknowledged
        subscriptions whose instId appears in ``msg``; else all unacknowledged ones;
        else ``"*"``."""
        targets: list[Arg] = []
        if ev.arg is not None:
            targets = [ev.arg]
        else:
            pending = [key for key in self._expected if key not in self._active]
            named = _ERROR_ARG.search(ev.msg)
            if named:
                targets = [Arg(named.group(1), named.group(2))]
            else:
                tokens = set(_TOKENS.findall(ev.msg))
                targets = [Arg(ch, inst) for ch, inst in pending if inst in tokens]
                if not targets:
                    targets = [Arg(ch, inst) for ch, inst in pending]
        if not targets:
            targets = [Arg("*", "*")]
        for arg in targets:
            self._active.discard((arg.channel, arg.instId))
        return [self._status(arg, "failed", now, ev.code, ev.msg) for arg in targets]
