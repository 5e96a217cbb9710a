"""marketfeed-upbit: the Upbit venue plugin for marketfeed.

Install with ``pip install marketfeed-upbit``; marketfeed finds it through the
``marketfeed`` entry point ``upbit``. The public API below is for host applications and
tests; the pluggy hooks live in :mod:`marketfeed_upbit.plugin`.
"""

from ._config import UpbitConfig
from ._normalise import SPEEDUPS, DecimalCache, TradeDedup, UnitCache, UpbitNormaliser, UpbitSession
from ._request import RequestBook, build_request
from ._rest import (
    RemainingReq,
    UpbitRest,
    candles_from_body,
    instruments_from_body,
    parse_remaining_req,
    trades_from_body,
)
from ._symbols import QUOTE_CURRENCIES, split_market, to_native, to_symbol
from ._timeframes import TIMEFRAMES, Timeframe
from .plugin import CHANNELS, ENDPOINTS, VENUE

__all__ = [
    "CHANNELS",
    "ENDPOINTS",
    "QUOTE_CURRENCIES",
    "SPEEDUPS",
    "TIMEFRAMES",
    "VENUE",
    "DecimalCache",
    "RemainingReq",
    "RequestBook",
    "Timeframe",
    "TradeDedup",
    "UnitCache",
    "UpbitConfig",
    "UpbitNormaliser",
    "UpbitRest",
    "UpbitSession",
    "build_request",
    "candles_from_body",
    "instruments_from_body",
    "parse_remaining_req",
    "split_market",
    "to_native",
    "to_symbol",
    "trades_from_body",
]
