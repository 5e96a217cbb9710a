"""marketfeed plugin for Kiwoom Securities' REST API (키움 REST API).

The plugin itself is :mod:`marketfeed_kiwoom.plugin` (entry point ``kiwoom``). This package
also exposes the building blocks for host applications and tests: the rate-limited client,
the data fetchers, the parsers and the trading-day calendar.
"""

from __future__ import annotations

from ._auth import KST, TokenManager, parse_expires_dt
from ._client import (
    CircuitBreaker,
    KiwoomClient,
    Page,
    Priority,
    PriorityGate,
    client_for,
    config_of,
)
from ._config import ENV_APP_KEY, ENV_SECRET_KEY, KiwoomConfig
from ._data import (
    AdjustmentEvent,
    AdjustmentTracker,
    apply_adjustment,
    basic_info,
    daily_bars,
    daily_trading,
    investor_flows,
    merge_flows,
    minute_bars,
    stock_list,
    tracker_for,
)
from ._errors import (
    CircuitOpenError,
    KiwoomAuthError,
    KiwoomError,
    KiwoomRateLimitError,
    KiwoomRequestError,
    KiwoomSymbolError,
    KiwoomUnavailableError,
    KiwoomUnsupportedError,
    classify,
)
from ._parse import RowError, bar_row, signed, unsigned
from ._realtime import KiwoomNormaliser, subscribe_frames
from ._schedule import cron_at, jobs_for, trading_day

__all__ = [
    "ENV_APP_KEY",
    "ENV_SECRET_KEY",
    "KST",
    "AdjustmentEvent",
    "AdjustmentTracker",
    "CircuitBreaker",
    "CircuitOpenError",
    "KiwoomAuthError",
    "KiwoomClient",
    "KiwoomConfig",
    "KiwoomError",
    "KiwoomNormaliser",
    "KiwoomRateLimitError",
    "KiwoomRequestError",
    "KiwoomSymbolError",
    "KiwoomUnavailableError",
    "KiwoomUnsupportedError",
    "Page",
    "Priority",
    "PriorityGate",
    "RowError",
    "TokenManager",
    "apply_adjustment",
    "bar_row",
    "basic_info",
    "classify",
    "client_for",
    "config_of",
    "cron_at",
    "daily_bars",
    "daily_trading",
    "investor_flows",
    "jobs_for",
    "merge_flows",
    "minute_bars",
    "parse_expires_dt",
    "signed",
    "stock_list",
    "subscribe_frames",
    "tracker_for",
    "trading_day",
    "unsigned",
]
