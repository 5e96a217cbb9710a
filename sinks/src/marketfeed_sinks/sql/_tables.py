"""The tables (SQLModel classes) and how each marketfeed event becomes a row.

Every table has a natural primary key, so writing the same event twice (a replayed
batch, a backfill overlapping live data) never duplicates it. ``TABLES`` maps each stored
event kind to a :class:`TableSpec`: the columns in order, the conflict key, what an
``ON CONFLICT`` does, and a ``row(event) -> tuple`` function producing the column values as
Python objects (Decimal, aware datetime, date, str, int, bool; JSON columns as text).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Callable
from decimal import Decimal
from operator import attrgetter
from typing import Any

import marketfeed as mf
import msgspec
from sqlalchemy import BigInteger, Boolean, Integer, MetaData, Table, Text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from ._types import ExactDecimal, IsoDate, UtcDateTime

__all__ = [
    "METADATA",
    "SCHEMA_VERSION",
    "SKIPPED_KINDS",
    "TABLES",
    "BookTopRow",
    "CandleRow",
    "DailyBarRow",
    "DeadLetterRow",
    "EtfHoldingChangeRow",
    "EtfHoldingRow",
    "GapRow",
    "InstrumentRow",
    "InvestorFlowRow",
    "SchemaVersionRow",
    "TableSpec",
    "TickerRow",
    "TradeRow",
    "constituent_key",
    "payload_hash",
]

SCHEMA_VERSION = 1
"""Version of the table layout this code writes. Bumped with every layout change, together
with a migration step in ``_schema.MIGRATIONS``."""

METADATA = MetaData()
"""Our own metadata (not ``SQLModel.metadata``), so a host app's SQLModel tables never mix
with ours."""

_registry = registry(metadata=METADATA)


class _Base(SQLModel, registry=_registry):
    """Base of the marketfeed tables (own registry and metadata)."""


def _key(sa_type: Any) -> Any:
    return Field(sa_type=sa_type, primary_key=True)


def _req(sa_type: Any) -> Any:
    return Field(sa_type=sa_type, nullable=False)


def _opt(sa_type: Any) -> Any:
    return Field(default=None, sa_type=sa_type, nullable=True)


class SchemaVersionRow(_Base, table=True):
    """``schema_version``: one row (``id = 1``) holding the layout version in the database."""

    __tablename__ = "schema_version"
    id: int = Field(default=1, sa_type=Integer, primary_key=True)
    version: int = _req(Integer)
    updated_at: _dt.datetime = _req(UtcDateTime)


class InstrumentRow(_Base, table=True):
    """``instrument``: reference data, key ``(venue, native_symbol)``; a newer ``as_of``
    replaces an older one. ``extra`` is a JSON object of strings."""

    __tablename__ = "instrument"
    venue: str = _key(Text)
    native_symbol: str = _key(Text)
    symbol: str = _req(Text)
    kind: str = _req(Text)
    as_of: _dt.datetime = _req(UtcDateTime)
    base: str | None = _opt(Text)
    quote: str | None = _opt(Text)
    settle: str | None = _opt(Text)
    name: str | None = _opt(Text)
    tick_size: Decimal | None = _opt(ExactDecimal)
    lot_size: Decimal | None = _opt(ExactDecimal)
    min_size: Decimal | None = _opt(ExactDecimal)
    contract_value: Decimal | None = _opt(ExactDecimal)
    expiry: _dt.datetime | None = _opt(UtcDateTime)
    strike: Decimal | None = _opt(ExactDecimal)
    option_type: str | None = _opt(Text)
    status: str | None = _opt(Text)
    extra: str = _req(Text)


class CandleRow(_Base, table=True):
    """``candle``: key ``(venue, symbol, timeframe, open_time)``; PostgreSQL partitions it
    by month of ``open_time``."""

    __tablename__ = "candle"
    __table_args__ = {"postgresql_partition_by": "RANGE (open_time)"}
    venue: str = _key(Text)
    symbol: str = _key(Text)
    timeframe: str = _key(Text)
    open_time: _dt.datetime = _key(UtcDateTime)
    native_symbol: str = _req(Text)
    event_time: _dt.datetime = _req(UtcDateTime)
    receive_time: _dt.datetime = _req(UtcDateTime)
    open: Decimal = _req(ExactDecimal)
    high: Decimal = _req(ExactDecimal)
    low: Decimal = _req(ExactDecimal)
    close: Decimal = _req(ExactDecimal)
    volume: Decimal = _req(ExactDecimal)
    quote_volume: Decimal | None = _opt(ExactDecimal)
    closed: bool = _req(Boolean)


class TradeRow(_Base, table=True):
    """``trade``: key ``(venue, symbol, event_time, trade_id)``. The natural key is
    ``(venue, symbol, trade_id)``; ``event_time`` is part of the primary key because
    PostgreSQL requires the partition column in it (a venue never changes a trade's time,
    so a replayed trade still conflicts), and its position makes the key serve time-range
    queries too. PostgreSQL partitions it by month of ``event_time``."""

    __tablename__ = "trade"
    __table_args__ = {"postgresql_partition_by": "RANGE (event_time)"}
    venue: str = _key(Text)
    symbol: str = _key(Text)
    event_time: _dt.datetime = _key(UtcDateTime)
    trade_id: str = _key(Text)
    native_symbol: str = _req(Text)
    receive_time: _dt.datetime = _req(UtcDateTime)
    price: Decimal = _req(ExactDecimal)
    size: Decimal = _req(ExactDecimal)
    side: str | None = _opt(Text)
    sequence: int | None = _opt(BigInteger)


class TickerRow(_Base, table=True):
    """``ticker``: key ``(venue, symbol, event_time)``."""

    __tablename__ = "ticker"
    venue: str = _key(Text)
    symbol: str = _key(Text)
    event_time: _dt.datetime = _key(UtcDateTime)
    native_symbol: str = _req(Text)
    receive_time: _dt.datetime = _req(UtcDateTime)
    last: Decimal | None = _opt(ExactDecimal)
    last_size: Decimal | None = _opt(ExactDecimal)
    bid: Decimal | None = _opt(ExactDecimal)
    bid_size: Decimal | None = _opt(ExactDecimal)
    ask: Decimal | None = _opt(ExactDecimal)
    ask_size: Decimal | None = _opt(ExactDecimal)
    open_24h: Decimal | None = _opt(ExactDecimal)
    high_24h: Decimal | None = _opt(ExactDecimal)
    low_24h: Decimal | None = _opt(ExactDecimal)
    volume_24h: Decimal | None = _opt(ExactDecimal)
    quote_volume_24h: Decimal | None = _opt(ExactDecimal)


class BookTopRow(_Base, table=True):
    """``book_top``: top-N snapshots, key ``(venue, symbol, event_time)``. ``bids`` and
    ``asks`` are JSON text of ``[price, size]`` string pairs, best first
    (``[["30238.8","0.5"],...]``), exact as sent; ``depth`` is how many levels per side
    were kept."""

    __tablename__ = "book_top"
    venue: str = _key(Text)
    symbol: str = _key(Text)
    event_time: _dt.datetime = _key(UtcDateTime)
    native_symbol: str = _req(Text)
    receive_time: _dt.datetime = _req(UtcDateTime)
    depth: int = _req(Integer)
    bids: str = _req(Text)
    asks: str = _req(Text)
    sequence: int | None = _opt(BigInteger)
    checksum: int | None = _opt(BigInteger)
    verified: bool = _req(Boolean)
    total_bid_size: Decimal | None = _opt(ExactDecimal)
    total_ask_size: Decimal | None = _opt(ExactDecimal)


class DailyBarRow(_Base, table=True):
    """``daily_bar``: raw OHLCV + ``adj_factor``, key ``(venue, symbol, date)``; a later
    row (e.g. a rewritten adjustment factor) replaces the earlier one."""

    __tablename__ = "daily_bar"
    venue: str = _key(Text)
    symbol: str = _key(Text)
    date: _dt.date = _key(IsoDate)
    native_symbol: str = _req(Text)
    open: Decimal = _req(ExactDecimal)
    high: Decimal = _req(ExactDecimal)
    low: Decimal = _req(ExactDecimal)
    close: Decimal = _req(ExactDecimal)
    volume: Decimal = _req(ExactDecimal)
    turnover: Decimal | None = _opt(ExactDecimal)
    turnover_unit: str | None = _opt(Text)
    adj_factor: Decimal = _req(ExactDecimal)
    receive_time: _dt.datetime = _req(UtcDateTime)


class InvestorFlowRow(_Base, table=True):
    """``investor_flow``: key ``(venue, symbol, date, measure)``; ``breakdown`` is a JSON
    object of decimal strings."""

    __tablename__ = "investor_flow"
    venue: str = _key(Text)
    symbol: str = _key(Text)
    date: _dt.date = _key(IsoDate)
    measure: str = _key(Text)
    native_symbol: str = _req(Text)
    unit: str = _req(Text)
    individual: Decimal | None = _opt(ExactDecimal)
    foreign: Decimal | None = _opt(ExactDecimal)
    institution: Decimal | None = _opt(ExactDecimal)
    breakdown: str = _req(Text)
    receive_time: _dt.datetime = _req(UtcDateTime)


class EtfHoldingRow(_Base, table=True):
    """``etf_holding``: key ``(etf_symbol, as_of, constituent_key)`` where
    ``constituent_key`` is the constituent's code, or its name for name-only rows."""

    __tablename__ = "etf_holding"
    etf_symbol: str = _key(Text)
    as_of: _dt.date = _key(IsoDate)
    constituent_key: str = _key(Text)
    venue: str = _req(Text)
    constituent_symbol: str | None = _opt(Text)
    constituent_name: str = _req(Text)
    weight_pct: Decimal | None = _opt(ExactDecimal)
    shares: Decimal | None = _opt(ExactDecimal)
    value: Decimal | None = _opt(ExactDecimal)
    source: str = _req(Text)
    receive_time: _dt.datetime = _req(UtcDateTime)


class EtfHoldingChangeRow(_Base, table=True):
    """``etf_holding_change``: key ``(etf_symbol, as_of, constituent_key)``."""

    __tablename__ = "etf_holding_change"
    etf_symbol: str = _key(Text)
    as_of: _dt.date = _key(IsoDate)
    constituent_key: str = _key(Text)
    venue: str = _req(Text)
    previous_as_of: _dt.date | None = _opt(IsoDate)
    constituent_name: str = _req(Text)
    change: str = _req(Text)
    old_weight_pct: Decimal | None = _opt(ExactDecimal)
    new_weight_pct: Decimal | None = _opt(ExactDecimal)
    receive_time: _dt.datetime = _req(UtcDateTime)


class GapRow(_Base, table=True):
    """``gap``: connection outages, key ``(venue, connection, start_time)``; ``channels``
    and ``symbols`` are JSON arrays. A later report of the same outage widens ``end_time``."""

    __tablename__ = "gap"
    venue: str = _key(Text)
    connection: str = _key(Text)
    start_time: _dt.datetime = _key(UtcDateTime)
    end_time: _dt.datetime = _req(UtcDateTime)
    channels: str = _req(Text)
    symbols: str = _req(Text)
    reason: str = _req(Text)


class DeadLetterRow(_Base, table=True):
    """``dead_letter``: what could not be normalised or stored, key
    ``(venue, payload_hash)`` (SHA-256 hex of ``payload``), so a payload failing again
    bumps ``attempts`` and ``last_failure`` instead of adding a row."""

    __tablename__ = "dead_letter"
    venue: str = _key(Text)
    payload_hash: str = _key(Text)
    source: str = _req(Text)
    reason: str = _req(Text)
    payload: str = _req(Text)
    first_failure: _dt.datetime = _req(UtcDateTime)
    last_failure: _dt.datetime = _req(UtcDateTime)
    attempts: int = _req(Integer)


# --------------------------------------------------------------------------- row builders

_json = msgspec.json.Encoder(decimal_format="string")


def payload_hash(payload: str) -> str:
    """SHA-256 hex digest of a dead letter's payload text (its key with the venue)."""
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def constituent_key(symbol: str | None, name: str) -> str:
    """Key of an ETF constituent: its code when known, else its published name."""
    return symbol if symbol else name


def _json_text(value: Any) -> str:
    return _json.encode(value).decode()


def _instrument_row(e: mf.Instrument) -> tuple[Any, ...]:
    return (
        e.venue,
        e.native_symbol,
        e.symbol,
        e.kind,
        e.as_of,
        e.base,
        e.quote,
        e.settle,
        e.name,
        e.tick_size,
        e.lot_size,
        e.min_size,
        e.contract_value,
        e.expiry,
        e.strike,
        e.option_type,
        e.status,
        _json_text(e.extra),
    )


def book_top_row(e: mf.BookSnapshot, depth: int) -> tuple[Any, ...]:
    """Row of ``book_top`` keeping the best ``depth`` levels per side."""
    bids = e.bids[:depth]
    asks = e.asks[:depth]
    return (
        e.venue,
        e.symbol,
        e.event_time,
        e.native_symbol,
        e.receive_time,
        max(len(bids), len(asks)),
        _json_text(bids),
        _json_text(asks),
        e.sequence,
        e.checksum,
        e.verified,
        e.total_bid_size,
        e.total_ask_size,
    )


def _investor_flow_row(e: mf.InvestorFlow) -> tuple[Any, ...]:
    return (
        e.venue,
        e.symbol,
        e.date,
        e.measure,
        e.native_symbol,
        e.unit,
        e.individual,
        e.foreign,
        e.institution,
        _json_text(e.breakdown),
        e.receive_time,
    )


def _etf_holding_row(e: mf.EtfHolding) -> tuple[Any, ...]:
    return (
        e.etf_symbol,
        e.as_of,
        constituent_key(e.constituent_symbol, e.constituent_name),
        e.venue,
        e.constituent_symbol,
        e.constituent_name,
        e.weight_pct,
        e.shares,
        e.value,
        e.source,
        e.receive_time,
    )


def _gap_row(e: mf.Gap) -> tuple[Any, ...]:
    return (
        e.venue,
        e.connection,
        e.start,
        e.end,
        _json_text(e.channels),
        _json_text(e.symbols),
        e.reason,
    )


def _dead_letter_row(e: mf.DeadLetter) -> tuple[Any, ...]:
    return (
        e.venue,
        payload_hash(e.payload),
        e.source,
        e.reason,
        e.payload,
        e.first_failure,
        e.last_failure,
        e.attempts,
    )


class TableSpec:
    """How one event kind is written.

    Attributes:
        kind: The event kind (``event_kind`` tag) stored here.
        table: The SQLAlchemy table.
        columns: Column names in the order ``row`` produces values.
        key: Conflict target (the primary key columns).
        update: Columns set from the new row on conflict; empty means ``DO NOTHING``.
        update_where: Optional condition (SQL, ``{t}`` = table name) for the update.
        custom_set: Column -> SQL expression per dialect for non-plain updates.
        partition: Time column PostgreSQL range-partitions the table by (month), or None.
        row: ``row(event) -> tuple`` of column values.
        dedupe: Within one batch keep one row per key (needed for ``DO UPDATE`` with a
            multi-row insert); ``merge(old, new) -> row`` applies the conflict rule in
            Python (default: the later row wins).
        kinds: Per column ``"dec"``, ``"ts"``, ``"date"`` or ``""`` (stored as is).
    """

    def __init__(
        self,
        kind: str,
        model: type[_Base],
        row: Callable[[Any], tuple[Any, ...]],
        *,
        update: tuple[str, ...] | None = None,
        update_where: str | None = None,
        custom_set: dict[str, dict[str, str]] | None = None,
        partition: str | None = None,
        merge: Callable[[tuple[Any, ...], tuple[Any, ...]], tuple[Any, ...]] | None = None,
    ) -> None:
        table: Table = model.__table__  # type: ignore[attr-defined]
        self.kind = kind
        self.model = model
        self.table = table
        self.name: str = table.name
        self.columns: tuple[str, ...] = tuple(c.name for c in table.columns)
        self.key: tuple[str, ...] = tuple(c.name for c in table.primary_key.columns)
        non_key = tuple(c for c in self.columns if c not in self.key)
        self.update: tuple[str, ...] = non_key if update is None else update
        self.update_where = update_where
        self.custom_set = custom_set or {}
        self.partition = partition
        self.row = row
        self.merge = merge
        self.dedupe = bool(self.update)
        kinds = []
        for c in table.columns:
            t = c.type
            kinds.append(
                "dec"
                if isinstance(t, ExactDecimal)
                else "ts"
                if isinstance(t, UtcDateTime)
                else "date"
                if isinstance(t, IsoDate)
                else ""
            )
        self.kinds: tuple[str, ...] = tuple(kinds)
        self.key_index: tuple[int, ...] = tuple(self.columns.index(k) for k in self.key)

    def __repr__(self) -> str:
        return f"TableSpec({self.kind!r} -> {self.name!r})"


def _candle_merge(old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
    # A closed candle is never replaced by an unclosed one; otherwise the later one wins.
    return old if old[_CANDLE_CLOSED] and not new[_CANDLE_CLOSED] else new


def _dead_letter_merge(old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
    # The same payload failing twice in one batch: one row, attempts summed.
    first, last, attempts = _DL_FIRST, _DL_LAST, _DL_ATTEMPTS
    merged = list(new)
    merged[first] = min(old[first], new[first])
    merged[last] = max(old[last], new[last])
    merged[attempts] = old[attempts] + new[attempts]
    return tuple(merged)


def _column_index(model: type[_Base], name: str) -> int:
    return list(model.__table__.columns.keys()).index(name)  # type: ignore[attr-defined]


_CANDLE_CLOSED = _column_index(CandleRow, "closed")
_DL_FIRST = _column_index(DeadLetterRow, "first_failure")
_DL_LAST = _column_index(DeadLetterRow, "last_failure")
_DL_ATTEMPTS = _column_index(DeadLetterRow, "attempts")

TABLES: dict[str, TableSpec] = {
    spec.kind: spec
    for spec in (
        TableSpec(
            "trade",
            TradeRow,
            attrgetter(
                "venue",
                "symbol",
                "event_time",
                "trade_id",
                "native_symbol",
                "receive_time",
                "price",
                "size",
                "side",
                "sequence",
            ),
            update=(),
            partition="event_time",
        ),
        TableSpec(
            "candle",
            CandleRow,
            attrgetter(
                "venue",
                "symbol",
                "timeframe",
                "open_time",
                "native_symbol",
                "event_time",
                "receive_time",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "quote_volume",
                "closed",
            ),
            update_where='NOT ("candle"."closed" AND NOT excluded."closed")',
            partition="open_time",
            merge=_candle_merge,
        ),
        TableSpec(
            "ticker",
            TickerRow,
            attrgetter(
                "venue",
                "symbol",
                "event_time",
                "native_symbol",
                "receive_time",
                "last",
                "last_size",
                "bid",
                "bid_size",
                "ask",
                "ask_size",
                "open_24h",
                "high_24h",
                "low_24h",
                "volume_24h",
                "quote_volume_24h",
            ),
        ),
        TableSpec("book_snapshot", BookTopRow, lambda e: book_top_row(e, 10)),
        TableSpec(
            "instrument",
            InstrumentRow,
            _instrument_row,
            update_where='excluded."as_of" >= "instrument"."as_of"',
        ),
        TableSpec(
            "daily_bar",
            DailyBarRow,
            attrgetter(
                "venue",
                "symbol",
                "date",
                "native_symbol",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "turnover",
                "turnover_unit",
                "adj_factor",
                "receive_time",
            ),
        ),
        TableSpec("investor_flow", InvestorFlowRow, _investor_flow_row),
        TableSpec("etf_holding", EtfHoldingRow, _etf_holding_row),
        TableSpec(
            "etf_holding_change",
            EtfHoldingChangeRow,
            attrgetter(
                "etf_symbol",
                "as_of",
                "constituent_key",
                "venue",
                "previous_as_of",
                "constituent_name",
                "change",
                "old_weight_pct",
                "new_weight_pct",
                "receive_time",
            ),
        ),
        TableSpec(
            "gap",
            GapRow,
            _gap_row,
            update=("end_time", "channels", "symbols", "reason"),
            custom_set={
                "end_time": {
                    "sqlite": 'max("gap"."end_time", excluded."end_time")',
                    "postgresql": 'GREATEST("gap"."end_time", excluded."end_time")',
                }
            },
        ),
        TableSpec(
            "dead_letter",
            DeadLetterRow,
            _dead_letter_row,
            update=("source", "reason", "last_failure", "attempts", "first_failure"),
            merge=_dead_letter_merge,
            custom_set={
                "attempts": {"": '"dead_letter"."attempts" + excluded."attempts"'},
                "first_failure": {
                    "sqlite": 'min("dead_letter"."first_failure", excluded."first_failure")',
                    "postgresql": 'LEAST("dead_letter"."first_failure", excluded."first_failure")',
                },
                "last_failure": {
                    "sqlite": 'max("dead_letter"."last_failure", excluded."last_failure")',
                    "postgresql": (
                        'GREATEST("dead_letter"."last_failure", excluded."last_failure")'
                    ),
                },
            },
        ),
    )
}
"""Event kind -> how it is stored. Kinds not listed here are not stored."""

SKIPPED_KINDS = ("book_delta", "connection_state")
"""Market/status kinds that may be routed here but are deliberately not stored: deltas are
only meaningful against a book (``book_top`` keeps snapshots), connection states are
status, and outages that matter arrive as ``gap``."""
