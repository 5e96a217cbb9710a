"""The per-connection Upbit normaliser: one WebSocket frame -> marketfeed events.

Hot path. Every frame is decoded once by msgspec straight into a generated Struct
(:mod:`._wire`), with prices and sizes as exact :class:`~decimal.Decimal`. Text and binary
frames are handled alike (Upbit sends binary frames), in the SIMPLE and DEFAULT formats.
Frames whose first 12 bytes name a trade or an orderbook take a fast dispatch: trades go
to their own typed decoder; an orderbook's unit list is cut out of the frame, the rest
decoded by msgspec and each unit's text looked up in a cache of levels (see
``_book_handlers``). Anything the fast path does not expect goes to the full decode, so
events and errors are the same either way (``tests/upbit/test_upbit_fastpath.py``).

* ``trade`` -> :class:`~marketfeed.Trade`, once per ``(market, sequential_id)``: sequential
  ids repeat across markets, and a snapshot after a reconnect repeats the last trade.
* ``orderbook`` -> :class:`~marketfeed.BookSnapshot`: every Upbit orderbook frame is a full
  top-N replacement, best level first, with Upbit's total bid/ask sizes. A crossed book
  (best bid >= best ask) is rejected as malformed.
* ``ticker`` -> :class:`~marketfeed.Ticker`; ``candle.*`` -> :class:`~marketfeed.Candle`.
* ``{"status":"UP"}`` (answer to ``PING``) -> nothing.
* ``{"error":{"name","message"}}`` -> :class:`~marketfeed.SubscriptionStatus` ``failed``
  for every subscription of the connection (Upbit does not say which one failed; errors
  answer the connection's request).
* The first frame of each (type, market) -> :class:`~marketfeed.SubscriptionStatus`
  ``active`` (Upbit sends no acknowledgement; data is the acknowledgement).

Sources: Upbit Open API reference, WebSocket ticker/trade/orderbook/candle pages and
"WebSocket 사용 및 에러 안내" (error frames, ``PING``/``UP``).
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
from collections import deque
from collections.abc import Callable, Sequence
from decimal import Decimal
from operator import itemgetter
from types import ModuleType
from typing import Any, Final, cast

import msgspec
from marketfeed import (
    BookSnapshot,
    ConnectionPlan,
    Event,
    Frame,
    SubscriptionStatus,
    Ticker,
    Trade,
)

from ._symbols import split_market
from ._timeframes import TIMEFRAMES, Timeframe, candle_event
from ._wire import (
    BOOK_DECODERS,
    BOOK_HEADS,
    BOOK_UNITS_KEYS,
    DEFAULT_DECODER,
    DEFAULT_KINDS,
    KINDS,
    OTHER_DECODER,
    SIMPLE_DECODER,
    TRADE_DECODERS,
    TRADE_HEADS,
    UNIT_LIST_DECODERS,
    UNIT_TYPES,
)

__all__ = [
    "SPEEDUPS",
    "DecimalCache",
    "TradeDedup",
    "UnitCache",
    "UpbitNormaliser",
    "UpbitSession",
    "unit_levels",
]

_cupbit: ModuleType | None
"""The C fast path (``marketfeed_upbit._cupbit``, built by ``pip install`` when a C compiler
is present) or ``None``. Read when a normaliser is created, so tests can switch it off."""
if os.environ.get("MARKETFEED_PURE_PYTHON", "") not in ("", "0"):
    _cupbit = None
else:
    try:
        from . import _cupbit
    except ImportError:  # built without a C compiler: the pure-Python path
        _cupbit = None

SPEEDUPS: Final = _cupbit is not None
"""Whether the C fast path was loaded at import (``False`` without a compiled
``marketfeed_upbit._cupbit`` or with the environment variable ``MARKETFEED_PURE_PYTHON=1``)."""

_UTC = _dt.UTC
_fromtimestamp = _dt.datetime.fromtimestamp
_SIMPLE_HEADS = (b'{"ty":', '{"ty":')
_DEFAULT_HEADS = (b'{"type', '{"type')
_NO_EVENTS: tuple[Event, ...] = ()
_EMPTY_LIST = msgspec.Raw(b"[]")
_UNIT_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, ValueError)


def _utc_ms(ms: int) -> _dt.datetime:
    return _fromtimestamp(ms / 1000, _UTC)


def _utc_millis() -> Callable[[int], _dt.datetime]:
    """A converter epoch milliseconds -> aware UTC datetime, equal to
    ``datetime.fromtimestamp(ms / 1000, UTC)``: the whole second is built once and the
    milliseconds added (consecutive frames mostly fall in the same second)."""
    last_second, base = -1, _EPOCH

    def utc(ms: int) -> _dt.datetime:
        nonlocal last_second, base
        second, milli = divmod(ms, 1000)
        if second != last_second:
            last_second, base = second, _EPOCH + _dt.timedelta(seconds=second)
        return base + _MILLIS[milli]

    return utc


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_UTC)
_MILLIS = tuple(_dt.timedelta(milliseconds=i) for i in range(1000))


class TradeDedup:
    """Remembers the last ``window`` trade ids per market; answers "seen before?".

    Upbit's ``sequential_id`` is unique per trade *within a market* only, so the key is
    ``(market code, sequential_id)``. Memory is bounded: per market a set and a FIFO of at
    most ``window`` ids.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self._markets: dict[str, tuple[set[int], deque[int]]] = {}

    def market(self, market: str) -> tuple[set[int], deque[int]]:
        """The ``(ids, fifo)`` pair of ``market`` (created empty), for inlined checks."""
        entry = self._markets.get(market)
        if entry is None:
            entry = self._markets[market] = (set(), deque())
        return entry

    def is_new(self, market: str, sid: int) -> bool:
        """``True`` the first time ``(market, sid)`` is offered (within the window)."""
        seen, order = self.market(market)
        if sid in seen:
            return False
        seen.add(sid)
        order.append(sid)
        if len(order) > self.window:
            seen.discard(order.popleft())
        return True

    def __len__(self) -> int:
        return sum(len(order) for _, order in self._markets.values())


_Level = tuple[Decimal, Decimal]
_Unit = tuple["_Level | None", "_Level | None"]


class DecimalCache(dict[str, Decimal]):
    """Number text -> :class:`~decimal.Decimal`, for msgspec's ``float_hook``.

    97 % of the numbers in the units of the 2021 capture had been seen before in the same
    session. Bounded: cleared once it holds ``capacity`` numbers. (:class:`UnitCache` now
    uses a C-level LRU instead, which measured faster; this class stays for callers.)
    """

    def __init__(self, capacity: int = 65536) -> None:
        super().__init__()
        self._capacity = capacity

    def __missing__(self, text: str) -> Decimal:
        if len(self) >= self._capacity:
            self.clear()
        value = self[text] = Decimal(text)
        return value


class UnitCache(dict[bytes, "_Level | None"]):
    """Order book unit text -> its ask level; its bid level is in :attr:`bids`. An empty side
    (a zero price or size) is ``None``.

    Consecutive top-N books of a market share most of their units byte for byte (86 % of
    the units in the 2021 capture), so a unit's levels are built once and reused. Keys
    are the text between the braces of one unit object (``"ap":41.4,"bp":41.2,...``); a
    miss decodes ``{`` + key + ``}`` with msgspec, which raises on anything that is not
    exactly one unit object, and takes its numbers from :attr:`numbers`, a bounded LRU
    cache (:func:`functools.lru_cache`, 65536 texts) of number text -> ``Decimal`` whose
    misses call ``Decimal`` without a Python frame. Asks and bids are kept apart so that
    one :func:`operator.itemgetter` of a frame's unit texts reads each side as a tuple in
    one call. Keys of units with an empty side are kept in :attr:`empty_keys` so the hot
    path filters only when needed. Bounded: once ``capacity`` units are held, both sides
    are cleared (counted in :attr:`clears`, so a caller whose lookups straddle a clear
    filters too).
    """

    def __init__(
        self,
        unit_type: type[msgspec.Struct],
        list_decoder: msgspec.json.Decoder[Any],
        capacity: int = 8192,
    ) -> None:
        super().__init__()
        # number text -> Decimal, bounded LRU; a miss calls Decimal directly (no Python frame)
        self.numbers = functools.lru_cache(maxsize=65536)(Decimal)
        self._decode = msgspec.json.Decoder(unit_type, float_hook=self.numbers).decode
        self.list_decoder = list_decoder
        self._capacity = capacity
        self.bids = _Bids(self)
        self.empty_keys: set[bytes] = set()
        self.clears = 0

    def __missing__(self, key: bytes) -> _Level | None:
        u: Any = self._decode(b"{" + key + b"}")
        ap, asz, bp, bsz = u.ask_price, u.ask_size, u.bid_price, u.bid_size
        if ap.__class__ is Decimal and asz.__class__ is Decimal and bp.__class__ is Decimal:
            if bsz.__class__ is not Decimal:
                bsz = _number(bsz)
            ask = (ap, asz) if ap and asz else None
            bid = (bp, bsz) if bp and bsz else None
        else:
            ask, bid = unit_levels(u)
        if len(self) >= self._capacity:
            self.clear()
            self.bids.clear()
            self.clears += 1
            if len(self.empty_keys) > self._capacity:
                self.empty_keys.clear()
        if ask is None or bid is None:
            self.empty_keys.add(key)
        self[key] = ask
        self.bids[key] = bid
        return ask

    def pieces_levels(self, pieces: list[bytes]) -> tuple[tuple[_Level, ...], tuple[_Level, ...]]:
        """``(asks, bids)`` of unit texts already cut at ``},{`` (see :meth:`levels`).

        Raises:
            msgspec.DecodeError, msgspec.ValidationError, ValueError: a piece is not one
                unit object (the caller then decodes the whole frame the slow way).
        """
        clears = self.clears
        if len(pieces) > 1:
            side = itemgetter(*pieces)
            asks, bids = side(self), side(self.bids)
        else:
            asks, bids = (self[pieces[0]],), (self.bids[pieces[0]],)
        if clears != self.clears or (self.empty_keys and not self.empty_keys.isdisjoint(pieces)):
            return _drop_empty(asks), _drop_empty(bids)
        return asks, bids

    def levels(self, raw: msgspec.Raw) -> tuple[tuple[_Level, ...], tuple[_Level, ...]]:
        """``(asks, bids)`` of a raw ``orderbook_units`` list, best first, empty sides dropped.

        The list text ``[{...},{...}]`` is cut at ``},{`` (units are flat objects of
        numbers, so a cut cannot fall inside one); if a piece is not one unit object
        (whitespace, an unexpected shape) the whole list is decoded the slow way.
        """
        body = bytes(raw)
        try:
            return self.pieces_levels(body[2:-2].split(b"},{"))
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            return self._levels_slow(body)

    def _levels_slow(self, body: bytes) -> tuple[tuple[_Level, ...], tuple[_Level, ...]]:
        units = self.list_decoder.decode(body)
        if not units:
            return (), ()
        asks, bids = zip(*map(unit_levels, units), strict=True)
        return _drop_empty(asks), _drop_empty(bids)


class _Bids(dict[bytes, "_Level | None"]):
    """Unit text -> bid level, filled by :class:`UnitCache` (a miss parses the unit there)."""

    def __init__(self, units: UnitCache) -> None:
        super().__init__()
        self._units = units

    def __missing__(self, key: bytes) -> _Level | None:
        self._units.__missing__(key)
        return self[key]


def _drop_empty(levels: tuple[_Level | None, ...]) -> tuple[_Level, ...]:
    return tuple(level for level in levels if level is not None)


def _number(value: Any) -> Decimal:
    if value.__class__ is Decimal:
        return value
    if value.__class__ is int:
        return Decimal(value)
    raise ValueError(f"expected a number in an Upbit orderbook unit, got {value!r}")


def unit_levels(u: Any) -> _Unit:
    """``(ask level, bid level)`` of a decoded unit; a side with a zero price or size is
    empty (``None``).

    Raises:
        ValueError: a price or size is not a number.
    """
    ap, asz, bp, bsz = u.ask_price, u.ask_size, u.bid_price, u.bid_size
    if not (
        ap.__class__ is Decimal
        and asz.__class__ is Decimal
        and bp.__class__ is Decimal
        and bsz.__class__ is Decimal
    ):
        ap, asz, bp, bsz = map(_number, (ap, asz, bp, bsz))
    return ((ap, asz) if ap and asz else None), ((bp, bsz) if bp and bsz else None)


class UpbitSession:
    """State that outlives one connection of a plan: trade dedup and unit caches.

    The supervisor builds a new normaliser on every reconnect; sharing this object keeps
    trades that were already emitted from being emitted again when Upbit (or a replay)
    sends them once more, and keeps the order book units already parsed (``units``: the
    Python path's ``UnitCache`` per format; ``indexes``: the C fast path's unit indexes,
    ``None`` without it).
    """

    def __init__(self, dedup_window: int = 1000) -> None:
        self.dedup = TradeDedup(dedup_window)
        self.units = (
            UnitCache(UNIT_TYPES[0], UNIT_LIST_DECODERS[0]),
            UnitCache(UNIT_TYPES[1], UNIT_LIST_DECODERS[1]),
        )
        self.indexes = None if _cupbit is None else (_cupbit.UnitIndex(), _cupbit.UnitIndex())


class UpbitNormaliser:
    """Callable ``(frame, receive_time) -> events`` for one Upbit connection.

    Args:
        plan: The connection's plan (its subscriptions get the ``failed`` status when Upbit
            answers with an error frame).
        venue: Venue name put on every event.
        session: Shared state across reconnects of the plan (a fresh one if ``None``).

    Raises (per frame, the supervisor dead-letters the frame):
        msgspec.DecodeError: not JSON.
        msgspec.ValidationError: a known frame type with a missing or mistyped field, or an
            unknown ``ty``/``type``.
        ValueError: an unrecognised frame, a bad market code or a crossed book.
    """

    def __init__(
        self, plan: ConnectionPlan, *, venue: str = "upbit", session: UpbitSession | None = None
    ) -> None:
        self.plan = plan
        self.venue = venue
        self.session = session if session is not None else UpbitSession()
        self._pending: list[Event] = []  # "active" statuses of markets seen for the first time
        self._fast: dict[Frame, _FrameHandler] = {}
        self._handlers: dict[type[Any], _Handler] = {
            cls: self._handler(kind, cls in DEFAULT_KINDS) for cls, kind in KINDS.items()
        }

    # -- dispatch ------------------------------------------------------------------------

    def __call__(self, frame: Frame, receive_time: _dt.datetime) -> Sequence[Event]:
        """Normalise one frame (UTF-8 bytes or text) received at ``receive_time`` (UTC)."""
        fast = self._fast.get(frame[:12])
        if fast is not None:
            events = fast(frame, receive_time)
            if events is not None:
                return self._flush(events) if self._pending else events
        return self._decode(frame, receive_time)

    def function(self) -> Callable[[Frame, _dt.datetime], Sequence[Event]]:
        """This normaliser as a plain callable (same state, same results): what the
        ``normalise`` hook returns. With the C fast path it is a ``_cupbit.Dispatch``, which
        picks a frame's reader without the Python frame of :meth:`__call__` (about 0.1 µs
        per frame); else the bound :meth:`__call__`."""
        if _cupbit is None:
            return self.__call__
        return cast(
            "Callable[[Frame, _dt.datetime], Sequence[Event]]",
            _cupbit.Dispatch(dict(self._fast), self._decode, self._flush, self._pending),
        )

    def _decode(self, frame: Frame, receive_time: _dt.datetime) -> Sequence[Event]:
        """Every frame the fast readers do not take: the full msgspec decode."""
        head = frame[:6]
        if head in _SIMPLE_HEADS:
            msg = SIMPLE_DECODER.decode(frame)
        elif head in _DEFAULT_HEADS:
            msg = DEFAULT_DECODER.decode(frame)
        else:
            return self._other(frame, receive_time)
        events = self._handlers[msg.__class__](msg, receive_time)
        return self._flush(events) if self._pending else events

    def _flush(self, events: Sequence[Event]) -> list[Event]:
        out = [*self._pending, *events]
        self._pending.clear()
        return out

    def _other(self, frame: Frame, receive_time: _dt.datetime) -> Sequence[Event]:
        other = OTHER_DECODER.decode(frame)
        if other.error is not None:
            return self._failed(other.error.name, other.error.message, receive_time)
        if other.ty is not None:
            msg = SIMPLE_DECODER.decode(frame)
        elif other.type is not None:
            msg = DEFAULT_DECODER.decode(frame)
        elif other.status is not None:
            return _NO_EVENTS  # {"status":"UP"}: Upbit's answer to PING
        else:
            text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
            raise ValueError(f"unrecognised Upbit frame: {text[:200]!r}")
        return self._flush(self._handlers[msg.__class__](msg, receive_time))

    def _failed(
        self, name: str | None, message: str | None, receive_time: _dt.datetime
    ) -> list[Event]:
        return [
            SubscriptionStatus(
                venue=self.venue,
                channel=sub.channel,
                native_symbol=sub.symbol,
                state="failed",
                time=receive_time,
                code=name,
                message=message,
            )
            for sub in self.plan.subscriptions
        ]

    # -- per type ------------------------------------------------------------------------

    def _handler(self, kind: str, default: bool) -> _Handler:
        """The handler of one frame class. Each keeps its own ``markets`` map (Upbit code
        -> ``(symbol, native code)``); a code's first frame resolves it and queues the
        ``active`` status of that (type, market)."""
        markets: dict[str, tuple[str, str]] = {}
        venue, pending = self.venue, self._pending

        def market(code: str, receive_time: _dt.datetime) -> tuple[str, str]:
            base, quote = split_market(code)
            native = f"{quote}-{base}"
            markets[code] = entry = (f"{base}-{quote}", native)
            pending.append(
                SubscriptionStatus(
                    venue=venue,
                    channel=kind,
                    native_symbol=native,
                    state="active",
                    time=receive_time,
                )
            )
            return entry

        if kind == "trade":
            ids: dict[str, tuple[set[int], deque[int]]] = {}  # code -> the market's dedup
            handler = self._trade_handler(markets, market, ids)
            if _cupbit is not None:
                # The C fast path: a trade of a market seen before becomes its event (or
                # nothing, when already seen), with the same dedup; anything else (a market's
                # first trade included) goes to the full decode and `handler`.
                reader = _cupbit.Trade(
                    default, self.venue, Trade, markets, ids, self.session.dedup.window, Decimal
                )
                self._fast[TRADE_HEADS[default]] = reader
                self._fast[TRADE_HEADS[default].decode()] = reader
                return handler
            decode = TRADE_DECODERS[default].decode

            def trade_frame(frame: Any, receive_time: _dt.datetime) -> Sequence[Event] | None:
                try:
                    m = decode(frame)
                except _UNIT_ERRORS:
                    return None  # the full decode raises what is wrong, as for any frame
                return handler(m, receive_time)

            self._fast[TRADE_HEADS[default]] = trade_frame
            self._fast[TRADE_HEADS[default].decode()] = trade_frame
            return handler
        if kind == "orderbook":
            units = self.session.units[default]
            handler, fast = self._book_handlers(markets, market, units, default)
            head = BOOK_HEADS[default]
            if _cupbit is not None:
                # The C fast path: the same parse and event as `fast`, text and binary
                # frames alike, with the session's C unit index (bounded by the
                # UnitCache's capacity); anything it does not take goes to the full decode.
                indexes = self.session.indexes
                index = _cupbit.UnitIndex() if indexes is None else indexes[default]
                book = _cupbit.Book(
                    default, self.venue, BookSnapshot, units, index, markets, market, Decimal
                )
                self._fast[head] = self._fast[head.decode()] = book
                return handler
            self._fast[head] = fast
            self._fast[head.decode()] = lambda text, t: fast(text.encode(), t)  # text frames
            return handler
        if kind == "ticker":
            return self._ticker_handler(markets, market)
        return self._candle_handler(markets, market, TIMEFRAMES[kind])

    def _trade_handler(
        self, markets: _Markets, market: _MarketFn, ids: dict[str, tuple[set[int], deque[int]]]
    ) -> _Handler:
        venue = self.venue
        dedup = self.session.dedup
        window = dedup.window
        last_ms, last_time = -1, _dt.datetime.min

        def trade(m: Any, receive_time: _dt.datetime) -> Sequence[Event]:
            nonlocal last_ms, last_time
            code = m.code
            sym = markets.get(code)
            if sym is None:
                sym = market(code, receive_time)
                ids[code] = dedup.market(sym[1])
            sid = m.sequential_id
            seen, order = ids[code]
            if sid in seen:  # a repeat: snapshot after a reconnect, a replayed segment
                return _NO_EVENTS
            seen.add(sid)
            order.append(sid)
            if len(order) > window:
                seen.discard(order.popleft())
            ms = m.trade_timestamp
            if ms != last_ms:  # consecutive trades often share their (whole-second) time
                last_ms, last_time = ms, _fromtimestamp(ms / 1000, _UTC)
            ab = m.ask_bid
            return [
                Trade(
                    venue=venue,
                    symbol=sym[0],
                    native_symbol=sym[1],
                    event_time=last_time,
                    receive_time=receive_time,
                    trade_id=str(sid),
                    price=m.trade_price,
                    size=m.trade_volume,
                    side="buy" if ab == "BID" else "sell" if ab == "ASK" else None,
                    sequence=sid,
                )
            ]

        return trade

    def _book_handlers(
        self, markets: _Markets, market: _MarketFn, units: UnitCache, default: bool
    ) -> tuple[_Handler, _FrameHandler]:
        """``(handler of a decoded frame, handler of a raw frame)`` of orderbooks.

        The raw-frame handler is the hot path: it cuts the unit list out of the frame
        (between ``"obu":[{`` and the first ``}]``), decodes the rest with msgspec (the cut
        list reads as ``[]``) and looks each unit's text up in ``units``: every unit text
        is validated as one JSON object once (a cache miss decodes it with msgspec), so the
        frame as a whole is checked as the slow path would. It answers ``None`` (then the
        whole frame is decoded the slow way, raising what is wrong) when the cut does not
        fit: no such key, a key that is not the frame's own, or a piece that is not a unit.
        """
        venue = self.venue
        levels = units.levels
        empty_keys, unit_bids = units.empty_keys, units.bids
        decode = BOOK_DECODERS[default].decode
        key = BOOK_UNITS_KEYS[default]
        klen = len(key)
        name = key[:-2]  # '"obu":'
        split_units = bytes.split
        times = _utc_millis()

        def event(
            m: Any,
            asks: tuple[_Level, ...],
            bids: tuple[_Level, ...],
            depth: int,
            receive_time: _dt.datetime,
        ) -> list[Event]:
            code = m.code
            sym = markets.get(code) or market(code, receive_time)
            if asks and bids and bids[0][0] >= asks[0][0]:
                raise ValueError(
                    f"crossed Upbit book {code}: best bid {bids[0][0]} >= best ask {asks[0][0]}"
                )
            return [
                BookSnapshot(
                    venue=venue,
                    symbol=sym[0],
                    native_symbol=sym[1],
                    event_time=times(m.timestamp),
                    receive_time=receive_time,
                    bids=bids,
                    asks=asks,
                    depth=depth,
                    total_bid_size=m.total_bid_size,
                    total_ask_size=m.total_ask_size,
                )
            ]

        def orderbook(m: Any, receive_time: _dt.datetime) -> Sequence[Event]:
            asks, bids = levels(m.units)
            return event(m, asks, bids, max(len(asks), len(bids)), receive_time)

        second, base = -1, _EPOCH  # the event time's whole second, as a datetime

        def orderbook_frame(frame: Any, receive_time: _dt.datetime) -> Sequence[Event] | None:
            nonlocal second, base
            start = frame.find(key) + klen  # the first unit's text starts here
            if start < klen or frame[start - klen - 1] not in b",{":
                return None  # no unit list, or the key is part of another string
            end = frame.rfind(b"}]", start)
            if end < 0 or frame.find(name, end) >= 0:
                return None  # no end, or a later duplicate key (msgspec keeps the last one)
            try:
                m = decode(frame[: start - 1] + frame[end + 1 :])
                if m.units != _EMPTY_LIST:  # not the list we cut
                    return None
                pieces = split_units(frame[start:end], b"},{")
                clears = units.clears
                if len(pieces) > 1:
                    side = itemgetter(*pieces)
                    asks, bids = side(units), side(unit_bids)
                else:
                    asks, bids = (units[pieces[0]],), (unit_bids[pieces[0]],)
            except _UNIT_ERRORS:
                return None
            if clears != units.clears or (empty_keys and not empty_keys.isdisjoint(pieces)):
                asks, bids = _drop_empty(asks), _drop_empty(bids)
                return event(m, asks, bids, max(len(asks), len(bids)), receive_time)
            code = m.code
            sym = markets.get(code) or market(code, receive_time)
            if bids[0][0] >= asks[0][0]:
                raise ValueError(
                    f"crossed Upbit book {code}: best bid {bids[0][0]} >= best ask {asks[0][0]}"
                )
            s, milli = divmod(m.timestamp, 1000)  # == fromtimestamp(ms / 1000, UTC)
            if s != second:
                second, base = s, _EPOCH + _dt.timedelta(seconds=s)
            return [
                BookSnapshot(
                    venue=venue,
                    symbol=sym[0],
                    native_symbol=sym[1],
                    event_time=base + _MILLIS[milli],
                    receive_time=receive_time,
                    bids=bids,
                    asks=asks,
                    depth=len(pieces),
                    total_bid_size=m.total_bid_size,
                    total_ask_size=m.total_ask_size,
                )
            ]

        return orderbook, orderbook_frame

    def _ticker_handler(self, markets: _Markets, market: _MarketFn) -> _Handler:
        venue = self.venue

        def ticker(m: Any, receive_time: _dt.datetime) -> Sequence[Event]:
            sym = markets.get(m.code) or market(m.code, receive_time)
            return [
                Ticker(
                    venue=venue,
                    symbol=sym[0],
                    native_symbol=sym[1],
                    event_time=_fromtimestamp(m.timestamp / 1000, _UTC),
                    receive_time=receive_time,
                    last=m.trade_price,
                    last_size=m.trade_volume,
                    volume_24h=m.acc_trade_volume_24h,
                    quote_volume_24h=m.acc_trade_price_24h,
                )
            ]

        return ticker

    def _candle_handler(self, markets: _Markets, market: _MarketFn, tf: Timeframe) -> _Handler:
        venue = self.venue

        def candle(m: Any, receive_time: _dt.datetime) -> Sequence[Event]:
            sym = markets.get(m.code) or market(m.code, receive_time)
            # Upbit's `timestamp` on a streamed candle is the time it was sent: the candle
            # is final once that is past the end of its period.
            return [candle_event(venue, sym, tf, m, receive_time, closed_by=None)]

        return candle


_Handler = Callable[[Any, _dt.datetime], Sequence[Event]]
_FrameHandler = Callable[[Any, _dt.datetime], "Sequence[Event] | None"]
_Markets = dict[str, tuple[str, str]]
_MarketFn = Callable[[str, _dt.datetime], tuple[str, str]]
