"""Query helpers for host apps: read stored data back as marketfeed models.

Every helper takes a URL (``sqlite:///...``, ``postgresql://...``) or a SQLAlchemy engine
(e.g. ``SqlSinkHandle.engine`` or :func:`make_engine`), is synchronous (call it through
``anyio.to_thread.run_sync`` from async code) and returns core models with exact Decimals
and UTC datetimes. Time ranges are half-open ``[start, end)``; date ranges are inclusive.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypeVar

import marketfeed as mf
import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ._engine import make_engine
from ._tables import (
    CandleRow,
    DeadLetterRow,
    EtfHoldingChangeRow,
    EtfHoldingRow,
    TickerRow,
    TradeRow,
)

__all__ = ["candles", "dead_letters", "etf_changes", "etf_holdings", "latest_ticker", "trades"]

M = TypeVar("M", bound=msgspec.Struct)


@contextmanager
def _engine(url_or_engine: str | Engine, schema: str | None) -> Iterator[Engine]:
    if isinstance(url_or_engine, Engine):
        yield url_or_engine
        return
    engine = make_engine(url_or_engine, schema=schema)
    try:
        yield engine
    finally:
        engine.dispose()


def _table(model: Any) -> sa.Table:
    return model.__table__  # type: ignore[no-any-return]


def _fetch(
    url_or_engine: str | Engine, schema: str | None, stmt: sa.Select[Any], model: type[M]
) -> list[M]:
    fields = {f.name for f in msgspec.structs.fields(model)}
    with _engine(url_or_engine, schema) as engine, engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return [model(**{k: v for k, v in row.items() if k in fields}) for row in rows]


def candles(
    url_or_engine: str | Engine,
    venue: str,
    symbol: str,
    timeframe: str,
    start: _dt.datetime,
    end: _dt.datetime,
    *,
    schema: str | None = None,
) -> list[mf.Candle]:
    """Candles of one instrument and timeframe with ``start <= open_time < end``, oldest
    first.

    Args:
        venue, symbol: As stored (normalised symbol, e.g. ``"BTC-USDT"``).
        timeframe: ``"1m"``, ``"1h"``, ``"1d+08:00"``, ... as the venue plugin emits it.
        start, end: UTC datetimes (naive ones are taken as UTC).
        schema: PostgreSQL schema when a URL is given (see ``make_engine``).

    Raises:
        sqlalchemy.exc.OperationalError: the database cannot be reached.
    """
    t = _table(CandleRow)
    stmt = (
        sa.select(t)
        .where(
            t.c.venue == venue,
            t.c.symbol == symbol,
            t.c.timeframe == timeframe,
            t.c.open_time >= start,
            t.c.open_time < end,
        )
        .order_by(t.c.open_time)
    )
    return _fetch(url_or_engine, schema, stmt, mf.Candle)


def trades(
    url_or_engine: str | Engine,
    venue: str,
    symbol: str,
    start: _dt.datetime,
    end: _dt.datetime,
    *,
    limit: int | None = None,
    schema: str | None = None,
) -> list[mf.Trade]:
    """Trades of one instrument with ``start <= event_time < end``, oldest first (ties by
    trade id); at most ``limit`` when given.

    Raises:
        sqlalchemy.exc.OperationalError: the database cannot be reached.
    """
    t = _table(TradeRow)
    stmt = (
        sa.select(t)
        .where(
            t.c.venue == venue,
            t.c.symbol == symbol,
            t.c.event_time >= start,
            t.c.event_time < end,
        )
        .order_by(t.c.event_time, t.c.trade_id)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return _fetch(url_or_engine, schema, stmt, mf.Trade)


def latest_ticker(
    url_or_engine: str | Engine, venue: str, symbol: str, *, schema: str | None = None
) -> mf.Ticker | None:
    """The stored ticker with the latest venue event time, or ``None``.

    Raises:
        sqlalchemy.exc.OperationalError: the database cannot be reached.
    """
    t = _table(TickerRow)
    stmt = (
        sa.select(t)
        .where(t.c.venue == venue, t.c.symbol == symbol)
        .order_by(t.c.event_time.desc())
        .limit(1)
    )
    found = _fetch(url_or_engine, schema, stmt, mf.Ticker)
    return found[0] if found else None


def _by_weight(h: mf.EtfHolding) -> tuple[bool, Decimal, str]:
    return (h.weight_pct is None, -(h.weight_pct or Decimal(0)), h.constituent_name)


def etf_holdings(
    url_or_engine: str | Engine,
    etf: str,
    as_of: _dt.date,
    *,
    schema: str | None = None,
) -> list[mf.EtfHolding]:
    """The ETF's basket as of ``as_of``: every constituent of the most recent stored
    snapshot dated on or before ``as_of``, largest weight first (rows without a weight
    last, by name). Empty when nothing is stored that early.

    Raises:
        sqlalchemy.exc.OperationalError: the database cannot be reached.
    """
    t = _table(EtfHoldingRow)
    latest = (
        sa.select(sa.func.max(t.c.as_of))
        .where(t.c.etf_symbol == etf, t.c.as_of <= as_of)
        .scalar_subquery()
    )
    stmt = sa.select(t).where(t.c.etf_symbol == etf, t.c.as_of == latest)
    return sorted(_fetch(url_or_engine, schema, stmt, mf.EtfHolding), key=_by_weight)


def etf_changes(
    url_or_engine: str | Engine,
    etf: str,
    start: _dt.date,
    end: _dt.date,
    *,
    schema: str | None = None,
) -> list[mf.EtfHoldingChange]:
    """Basket changes of the ETF with ``start <= as_of <= end``, oldest first.

    Raises:
        sqlalchemy.exc.OperationalError: the database cannot be reached.
    """
    t = _table(EtfHoldingChangeRow)
    stmt = (
        sa.select(t)
        .where(t.c.etf_symbol == etf, t.c.as_of >= start, t.c.as_of <= end)
        .order_by(t.c.as_of, t.c.constituent_key)
    )
    return _fetch(url_or_engine, schema, stmt, mf.EtfHoldingChange)


def dead_letters(
    url_or_engine: str | Engine,
    *,
    venue: str | None = None,
    schema: str | None = None,
) -> list[mf.DeadLetter]:
    """Stored dead letters (optionally of one venue), oldest first failure first.

    ``payload`` of an event rejected by a sink decodes with
    ``msgspec.json.decode(payload, type=marketfeed.Event)``.

    Raises:
        sqlalchemy.exc.OperationalError: the database cannot be reached.
    """
    t = _table(DeadLetterRow)
    stmt = sa.select(t).order_by(t.c.first_failure, t.c.payload_hash)
    if venue is not None:
        stmt = stmt.where(t.c.venue == venue)
    return _fetch(url_or_engine, schema, stmt, mf.DeadLetter)
