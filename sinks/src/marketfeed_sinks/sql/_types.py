"""Column types that keep values exact on both backends.

PostgreSQL stores decimals as ``NUMERIC`` (unconstrained: any precision and scale),
times as ``timestamptz`` and dates as ``date``. SQLite has no exact decimal type (a column
declared ``NUMERIC`` turns ``"0.1"`` into a binary float), so there decimals are stored as
``TEXT`` in the exact form the venue sent (``str(Decimal)``), times as fixed-width ISO text
in UTC (``2022-05-13 16:27:05.298000+00:00``, which sorts correctly as text) and dates as
``YYYY-MM-DD`` text. The converters below are shared by the bulk writers and by the
SQLAlchemy type decorators the query helpers read through, so both agree byte for byte.
"""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, DateTime, Numeric, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "ExactDecimal",
    "IsoDate",
    "UtcDateTime",
    "date_text",
    "decimal_text",
    "timestamp_text",
]

UTC = _dt.UTC


def timestamp_text(value: _dt.datetime) -> str:
    """SQLite text of a timestamp: UTC, microseconds, fixed width.

    A naive datetime is taken as UTC (the marketfeed models are UTC throughout); an aware
    one in another zone is converted.
    """
    tz = value.tzinfo
    if tz is not UTC:
        value = value.replace(tzinfo=UTC) if tz is None else value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")


def decimal_text(value: Decimal) -> str:
    """SQLite text of a decimal: exactly ``str(value)`` (``"2.2E-7"``, ``"0E-8"``)."""
    if not isinstance(value, Decimal):
        # A float or int slipped in: keep its shortest exact text rather than guessing.
        value = Decimal(str(value))
    return str(value)


def date_text(value: _dt.date) -> str:
    """SQLite text of a date: ``YYYY-MM-DD``."""
    return value.isoformat()


class ExactDecimal(TypeDecorator[Decimal]):
    """``NUMERIC`` on PostgreSQL, exact ``TEXT`` on SQLite; always reads back a Decimal."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return decimal_text(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        return Decimal(str(value))


class UtcDateTime(TypeDecorator[_dt.datetime]):
    """``timestamptz`` on PostgreSQL, fixed-width UTC ISO ``TEXT`` on SQLite; reads back an
    aware UTC datetime."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return timestamp_text(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> _dt.datetime | None:
        if value is None:
            return None
        parsed: _dt.datetime = (
            _dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        )
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


class IsoDate(TypeDecorator[_dt.date]):
    """``date`` on PostgreSQL, ``YYYY-MM-DD`` ``TEXT`` on SQLite."""

    impl = Date
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(Date())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return date_text(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> _dt.date | None:
        if value is None:
            return None
        parsed: _dt.date = _dt.date.fromisoformat(value) if isinstance(value, str) else value
        return parsed
