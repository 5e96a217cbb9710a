"""The ``sql`` sink: SQLite by default, month-partitioned PostgreSQL, idempotent bulk
upserts, dead letters, and query helpers for host apps.

Use it through config (``[[sinks]] type = "sql"``) or directly::

    async with open_sql_sink("sqlite:///marketfeed.db") as sink:
        result = await sink.persist(events)
    history = candles("sqlite:///marketfeed.db", "okx", "BTC-USDT", "1m", start, end)
"""

from ._engine import DEFAULT_URL, make_engine
from ._handle import SqlSinkHandle, open_sql_sink, parse_options
from ._postgres import partition_name
from ._queries import candles, dead_letters, etf_changes, etf_holdings, latest_ticker, trades
from ._schema import MIGRATIONS, SchemaVersionError, ensure_schema, read_schema_version
from ._tables import (
    METADATA,
    SCHEMA_VERSION,
    SKIPPED_KINDS,
    TABLES,
    BookTopRow,
    CandleRow,
    DailyBarRow,
    DeadLetterRow,
    EtfHoldingChangeRow,
    EtfHoldingRow,
    GapRow,
    InstrumentRow,
    InvestorFlowRow,
    SchemaVersionRow,
    TickerRow,
    TradeRow,
    constituent_key,
    payload_hash,
)
from ._writer import SqlOptions

__all__ = [
    "DEFAULT_URL",
    "METADATA",
    "MIGRATIONS",
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
    "SchemaVersionError",
    "SchemaVersionRow",
    "SqlOptions",
    "SqlSinkHandle",
    "TickerRow",
    "TradeRow",
    "candles",
    "constituent_key",
    "dead_letters",
    "ensure_schema",
    "etf_changes",
    "etf_holdings",
    "latest_ticker",
    "make_engine",
    "open_sql_sink",
    "parse_options",
    "partition_name",
    "payload_hash",
    "read_schema_version",
    "trades",
]
