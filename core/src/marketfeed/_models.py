"""The typed data model: every event that flows from a venue to a sink.

All models are frozen :class:`msgspec.Struct` types with keyword-only fields and a
``type`` tag, so a mixed stream of events round-trips through ``msgspec.json`` /
``msgspec.msgpack`` as ``Event`` (a tagged union).

Conventions shared by every model:

* **Prices, sizes, amounts** are :class:`decimal.Decimal`, exactly as the venue sent
  them (``Decimal("30238.8")`` from OKX's ``"30238.8"``, ``Decimal("2.2E-7")`` from
  Upbit's ``2.2E-7``). Never binary floats.
* **Times** are timezone-aware :class:`datetime.datetime` in UTC. Every market event
  carries ``event_time`` (the venue's own timestamp) and ``receive_time`` (the local
  clock when the frame arrived).
* **Symbols**: ``symbol`` is the normalised ``BASE-QUOTE`` form (Upbit ``KRW-BTC``
  becomes ``BTC-KRW``; derivatives keep a readable normalised form chosen by the venue
  plugin, e.g. ``BTC-USDT-SWAP``); ``native_symbol`` is the venue's own identifier.
"""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal
from typing import Any, Literal, Union

import msgspec

__all__ = [
    "BookDelta",
    "BookLevel",
    "BookSnapshot",
    "Candle",
    "ConnectionState",
    "DailyBar",
    "DeadLetter",
    "EtfHolding",
    "EtfHoldingChange",
    "Event",
    "Gap",
    "Instrument",
    "InstrumentKind",
    "InvestorFlow",
    "MarketEvent",
    "ResyncRequest",
    "SendFrame",
    "Side",
    "SubscriptionStatus",
    "Ticker",
    "Trade",
    "CONTROL_EVENTS",
    "STATUS_EVENTS",
    "event_kind",
]

Side = Literal["buy", "sell"]
"""Taker (aggressor) side of a trade: ``"buy"`` means the buyer lifted the ask."""

InstrumentKind = Literal["spot", "swap", "futures", "option", "stock", "etf", "index", "other"]

BookLevel = tuple[Decimal, Decimal]
"""One L2 level: ``(price, size)``. In a delta a size of ``0`` deletes the level."""


class _Base(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=False):
    """Shared configuration of every model (frozen, keyword-only, tagged by ``type``)."""


class MarketEvent(_Base, frozen=True, kw_only=True):
    """Fields every market-data event carries.

    Attributes:
        venue: Venue name as registered by its plugin, e.g. ``"okx"``.
        symbol: Normalised ``BASE-QUOTE`` symbol, e.g. ``"BTC-USDT"``.
        native_symbol: The venue's own identifier, e.g. ``"KRW-BTC"`` on Upbit.
        event_time: The venue's timestamp of the event, UTC.
        receive_time: Local clock when the frame carrying the event arrived, UTC.
    """

    venue: str
    symbol: str
    native_symbol: str
    event_time: _dt.datetime
    receive_time: _dt.datetime


class Trade(MarketEvent, frozen=True, kw_only=True, tag="trade"):
    """One executed trade (public tape).

    Attributes:
        trade_id: The venue's trade id as a string (unique per venue and instrument).
        price: Execution price in quote currency.
        size: Executed quantity in base currency (or contracts for derivatives).
        side: Taker side, ``None`` when the venue does not say.
        sequence: The venue's sequence number when it sends one (Upbit ``sequential_id``).
    """

    trade_id: str
    price: Decimal
    size: Decimal
    side: Side | None = None
    sequence: int | None = None


class Ticker(MarketEvent, frozen=True, kw_only=True, tag="ticker"):
    """Top-of-book and 24 h statistics. Absent values (OKX ``""``) are ``None``.

    Attributes:
        last, last_size: Last trade price (quote) and size (base).
        bid, bid_size, ask, ask_size: Best bid/ask price (quote) and size (base).
        open_24h, high_24h, low_24h: Rolling 24 h prices (quote).
        volume_24h: Rolling 24 h volume in base currency (or contracts).
        quote_volume_24h: Rolling 24 h volume in quote currency.
    """

    last: Decimal | None = None
    last_size: Decimal | None = None
    bid: Decimal | None = None
    bid_size: Decimal | None = None
    ask: Decimal | None = None
    ask_size: Decimal | None = None
    open_24h: Decimal | None = None
    high_24h: Decimal | None = None
    low_24h: Decimal | None = None
    volume_24h: Decimal | None = None
    quote_volume_24h: Decimal | None = None


class Candle(MarketEvent, frozen=True, kw_only=True, tag="candle"):
    """One OHLCV bar of a timeframe. ``event_time`` is the venue's update time.

    A candle is updated in place until it closes: sinks key it on
    ``(venue, symbol, timeframe, open_time)``; a later update replaces an earlier one and a
    closed candle is never replaced by an unclosed one.

    Attributes:
        timeframe: ``<n><unit>`` with unit ``s`` (second), ``m`` (minute), ``h``, ``d``,
            ``w`` or ``M`` (month), e.g. ``"1m"``, ``"4h"``, ``"1d"``. A bar aligned to a
            non-UTC day boundary carries the offset, e.g. OKX ``1D`` is ``"1d+08:00"``.
        open_time: Start of the bar, UTC.
        open, high, low, close: Prices in quote currency.
        volume: Traded quantity in base currency (or contracts).
        quote_volume: Traded value in quote currency, when the venue sends it.
        closed: ``True`` once the venue confirms the bar is final (OKX ``confirm="1"``).
    """

    timeframe: str
    open_time: _dt.datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal | None = None
    closed: bool = False


class BookSnapshot(MarketEvent, frozen=True, kw_only=True, tag="book_snapshot"):
    """A full (or top-N) L2 order book, only ever emitted for a valid book.

    Attributes:
        bids: Levels ``(price, size)`` best first (price descending).
        asks: Levels best first (price ascending).
        depth: ``N`` when this is a top-N view cut from a deeper book, else ``None``.
        sequence: The venue's sequence id of the last applied message, when sent.
        checksum: The venue's checksum of the last applied message, when sent.
        verified: ``True`` when the checksum (or sequence) was checked and passed.
        total_bid_size, total_ask_size: Venue-reported totals (Upbit), base currency.
    """

    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    depth: int | None = None
    sequence: int | None = None
    checksum: int | None = None
    verified: bool = False
    total_bid_size: Decimal | None = None
    total_ask_size: Decimal | None = None


class BookDelta(MarketEvent, frozen=True, kw_only=True, tag="book_delta"):
    """Changed L2 levels, emitted only after they applied to a valid book.

    Attributes:
        bids, asks: Changed levels ``(price, size)``; size ``0`` deletes the level.
        sequence: The venue's sequence id (OKX ``seqId``) when sent.
        prev_sequence: The venue's previous sequence id (OKX ``prevSeqId``) when sent.
        checksum: The venue's checksum for the book after this delta, when sent.
        verified: ``True`` when the checksum (or sequence) was checked and passed.
    """

    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    sequence: int | None = None
    prev_sequence: int | None = None
    checksum: int | None = None
    verified: bool = False


class Instrument(_Base, frozen=True, kw_only=True, tag="instrument"):
    """Reference data of a tradeable instrument (crypto pair, derivative, stock, ETF).

    Attributes:
        venue, symbol, native_symbol: As on market events.
        kind: Instrument kind (OKX ``instType`` lower-cased; ``stock``/``etf`` for KRX).
        base, quote: Currencies (``None`` where meaningless, e.g. a KRX stock quote is KRW).
        settle: Settlement currency of derivatives.
        name: Human-readable name (Korean names kept as sent).
        tick_size: Minimum price increment (quote).
        lot_size: Minimum size increment (base or contracts).
        min_size: Minimum order size.
        contract_value: Contract multiplier of derivatives.
        expiry: Expiry time of futures/options, UTC.
        strike: Option strike price.
        option_type: ``"C"`` or ``"P"``.
        status: Venue trading status (e.g. ``"live"``, ``"halted"``, ``"delisted"``).
        as_of: When this reference data was fetched, UTC.
        extra: Other documented venue fields, as strings (e.g. NAV, market cap).
    """

    venue: str
    symbol: str
    native_symbol: str
    kind: InstrumentKind
    as_of: _dt.datetime
    base: str | None = None
    quote: str | None = None
    settle: str | None = None
    name: str | None = None
    tick_size: Decimal | None = None
    lot_size: Decimal | None = None
    min_size: Decimal | None = None
    contract_value: Decimal | None = None
    expiry: _dt.datetime | None = None
    strike: Decimal | None = None
    option_type: str | None = None
    status: str | None = None
    extra: dict[str, str] = {}


class DailyBar(_Base, frozen=True, kw_only=True, tag="daily_bar"):
    """One trading day's raw OHLCV with the adjustment factor (KRX stocks).

    ``adj_factor`` is adjusted price / raw price for that day (``1`` without corporate
    actions), so adjusted history is ``raw * adj_factor`` and an adjustment event only
    rewrites factors, never raw data.

    Attributes:
        date: Trading date (exchange-local calendar date, KST for KRX).
        open, high, low, close: Raw prices in quote currency (KRW for KRX).
        volume: Shares traded.
        turnover: Traded value, in ``turnover_unit`` (Kiwoom: million KRW).
        adj_factor: Adjusted / raw close, exact decimal.
        receive_time: Local clock when fetched, UTC.
    """

    venue: str
    symbol: str
    native_symbol: str
    date: _dt.date
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    receive_time: _dt.datetime
    turnover: Decimal | None = None
    turnover_unit: str | None = None
    adj_factor: Decimal = Decimal(1)


class InvestorFlow(_Base, frozen=True, kw_only=True, tag="investor_flow"):
    """Net buying by investor type for one instrument and day (KRX).

    Attributes:
        date: Trading date (KST calendar date).
        measure: ``"quantity"`` (values in shares) or ``"amount"`` (values in ``unit``).
        unit: ``"shares"`` or ``"KRW million"`` (Kiwoom amounts are in million KRW).
        individual, foreign, institution: Net buying (buy minus sell); ``None`` when absent.
        breakdown: Further investor categories (e.g. ``pension_fund``), same unit.
        receive_time: Local clock when fetched, UTC.
    """

    venue: str
    symbol: str
    native_symbol: str
    date: _dt.date
    measure: Literal["quantity", "amount"]
    unit: str
    receive_time: _dt.datetime
    individual: Decimal | None = None
    foreign: Decimal | None = None
    institution: Decimal | None = None
    breakdown: dict[str, Decimal] = {}


class EtfHolding(_Base, frozen=True, kw_only=True, tag="etf_holding"):
    """One constituent of an ETF basket on a date.

    Attributes:
        etf_symbol: The ETF's code (e.g. ``"069500"``).
        as_of: Basket reference date (KST calendar date).
        constituent_symbol: Constituent code when known (``None`` for name-only rows).
        constituent_name: Constituent name as published.
        weight_pct: Weight in percent (``Decimal("30.12")`` is 30.12 %), ``None`` if absent.
        shares: Units per creation unit (may be negative for short legs).
        value: Market value in KRW, when published.
        source: Where the row came from (e.g. ``"naver-mobile"``, ``"wisereport"``).
        receive_time: Local clock when fetched, UTC.
    """

    venue: str
    etf_symbol: str
    as_of: _dt.date
    constituent_name: str
    source: str
    receive_time: _dt.datetime
    constituent_symbol: str | None = None
    weight_pct: Decimal | None = None
    shares: Decimal | None = None
    value: Decimal | None = None


class EtfHoldingChange(_Base, frozen=True, kw_only=True, tag="etf_holding_change"):
    """A change between two consecutive basket snapshots of an ETF.

    Attributes:
        change: ``"added"``, ``"removed"`` or ``"weight"`` (weight moved by more than the
            configured threshold, in percentage points).
        old_weight_pct, new_weight_pct: Weights in percent before/after (``None`` if absent).
        previous_as_of: Date of the snapshot compared against.
    """

    venue: str
    etf_symbol: str
    as_of: _dt.date
    previous_as_of: _dt.date | None
    constituent_key: str
    constituent_name: str
    change: Literal["added", "removed", "weight"]
    receive_time: _dt.datetime
    old_weight_pct: Decimal | None = None
    new_weight_pct: Decimal | None = None


# --------------------------------------------------------------------------- status


class ConnectionState(_Base, frozen=True, kw_only=True, tag="connection_state"):
    """A venue connection changed state (emitted by the supervisor).

    Attributes:
        connection: Connection name, e.g. ``"okx/public/0"``.
        state: ``connecting``, ``connected``, ``disconnected``, ``backoff`` or ``closed``.
        reason: Why (exception text, close code), secrets never included.
        attempt: Reconnect attempt number (0 for the first connect).
        time: When, UTC.
    """

    venue: str
    connection: str
    state: Literal["connecting", "connected", "disconnected", "backoff", "closed"]
    time: _dt.datetime
    reason: str | None = None
    attempt: int = 0


class Gap(_Base, frozen=True, kw_only=True, tag="gap"):
    """An outage of a connection: data between ``start`` and ``end`` may be missing.

    Attributes:
        connection: Connection name.
        start: Receive time of the last frame before the outage, UTC.
        end: Time the connection was subscribed again, UTC.
        channels: Venue channel names of the affected subscriptions.
        symbols: Native symbols of the affected subscriptions.
        reason: What ended the connection.
    """

    venue: str
    connection: str
    start: _dt.datetime
    end: _dt.datetime
    channels: tuple[str, ...]
    symbols: tuple[str, ...]
    reason: str


class SubscriptionStatus(_Base, frozen=True, kw_only=True, tag="subscription_status"):
    """A plugin reports the state of one subscription (ack, error, resync).

    Attributes:
        channel: Venue channel name, e.g. ``"books"``.
        native_symbol: Venue symbol, or ``"*"`` for every symbol of the channel.
        state: ``active`` (acknowledged), ``failed`` (venue refused), ``resyncing``.
        code, message: The venue's error code and message, when failed.
        time: When, UTC.
    """

    venue: str
    channel: str
    native_symbol: str
    state: Literal["pending", "active", "failed", "resyncing"]
    time: _dt.datetime
    code: str | None = None
    message: str | None = None


class ResyncRequest(_Base, frozen=True, kw_only=True, tag="resync_request"):
    """A plugin asks the supervisor to resubscribe one instrument's channel.

    Emitted when a book fails its sequence, checksum or crossed-book check. The
    supervisor answers by calling the ``subscribe`` hook with ``action="resubscribe"`` for
    that subscription alone; other subscriptions keep running.
    """

    venue: str
    channel: str
    native_symbol: str
    reason: str
    time: _dt.datetime


class SendFrame(_Base, frozen=True, kw_only=True, tag="send_frame"):
    """A plugin asks the supervisor to send a frame on the connection (e.g. echo a PING).

    Attributes:
        payload: Frame text (UTF-8 text of the payload when ``binary``).
        binary: Send as a binary WebSocket message instead of text.
    """

    venue: str
    payload: str
    binary: bool = False


class DeadLetter(_Base, frozen=True, kw_only=True, tag="dead_letter"):
    """Something that could not be normalised or stored, kept with its reason.

    Attributes:
        venue: Venue (or sink) the payload belongs to.
        source: Where it failed, e.g. ``"normalise:okx/public/0"`` or ``"sink:sql"``.
        reason: Exception type and message.
        payload: The raw frame text, or the event encoded as JSON.
        first_failure, last_failure: Times of the first and last failed attempt, UTC.
        attempts: How many times it was tried.
    """

    venue: str
    source: str
    reason: str
    payload: str
    first_failure: _dt.datetime
    last_failure: _dt.datetime
    attempts: int = 1


Event = Union[
    Trade,
    Ticker,
    Candle,
    BookSnapshot,
    BookDelta,
    Instrument,
    DailyBar,
    InvestorFlow,
    EtfHolding,
    EtfHoldingChange,
    ConnectionState,
    Gap,
    SubscriptionStatus,
    ResyncRequest,
    SendFrame,
    DeadLetter,
]
"""Every event type, a tagged union (``type`` field) for ``msgspec`` decoding."""

CONTROL_EVENTS: tuple[type[Any], ...] = (SubscriptionStatus, ResyncRequest, SendFrame)
"""Events the supervisor consumes itself; never routed to sinks."""

STATUS_EVENTS: tuple[type[Any], ...] = (ConnectionState, Gap)
"""Supervisor status events; sent to ``Supervisor.events`` and to sinks that accept them."""


def event_kind(event_type: type[Any]) -> str:
    """The ``type`` tag of a model class, e.g. ``event_kind(Trade) == "trade"``.

    Raises:
        TypeError: ``event_type`` is not a marketfeed model.
    """
    tag = getattr(getattr(event_type, "__struct_config__", None), "tag", None)
    if not isinstance(tag, str):
        raise TypeError(f"{event_type!r} is not a marketfeed event model")
    return tag
