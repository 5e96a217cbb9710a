"""marketfeed-okx: the OKX venue plugin for marketfeed.

Install it next to ``marketfeed`` and it registers the venue ``okx`` (entry point
``marketfeed_okx.plugin``). The public API below is for host apps and tests that want the
pieces directly: the normaliser, the checksum, symbol and timeframe mapping, the REST
client and the login signature.
"""

from __future__ import annotations

from ._books import BOOK_CHANNELS, book_checksum, book_checksum_columns, book_checksum_crc
from ._checksum import CHECKSUM_DEPTH, checksum_text, okx_checksum
from ._config import OkxConfig, OkxCredentials
from ._login import login, login_frame, sign
from ._normalise import SPEEDUPS, OkxNormaliser, candle_from_row, candles_from_rows
from ._rest import OkxRest, datetime_to_ms
from ._symbols import (
    InstrumentId,
    instrument_from_rest,
    instrument_kind,
    normalise_symbol,
    parse_inst_id,
)
from ._timeframes import BARS, bar_duration, normalise_timeframe
from .plugin import CHANNELS, ENDPOINTS, VENUE, endpoint_for, subscribe_frames

__all__ = [
    "BARS",
    "BOOK_CHANNELS",
    "CHANNELS",
    "CHECKSUM_DEPTH",
    "ENDPOINTS",
    "VENUE",
    "InstrumentId",
    "OkxConfig",
    "OkxCredentials",
    "OkxNormaliser",
    "OkxRest",
    "SPEEDUPS",
    "bar_duration",
    "book_checksum",
    "book_checksum_columns",
    "book_checksum_crc",
    "candle_from_row",
    "candles_from_rows",
    "checksum_text",
    "datetime_to_ms",
    "endpoint_for",
    "instrument_from_rest",
    "instrument_kind",
    "login",
    "login_frame",
    "normalise_symbol",
    "normalise_timeframe",
    "okx_checksum",
    "parse_inst_id",
    "sign",
    "subscribe_frames",
]
