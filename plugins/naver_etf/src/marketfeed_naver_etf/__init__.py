"""marketfeed plugin for Korean ETFs from Naver Finance.

Collects the ETF list (``finance.naver.com``), each ETF's constituents from the mobile
JSON (``m.stock.naver.com``, top 10 with codes) and the WiseReport page
(``navercomp.wisereport.co.kr``, the full creation-unit basket), merges them into
:class:`marketfeed.EtfHolding` rows and emits :class:`marketfeed.EtfHoldingChange` events
against the previous snapshot. Scheduled jobs ``etf_list`` and ``etf_holdings``.
"""

from __future__ import annotations

from ._client import Fetched, NaverClient, default_user_agent
from ._config import NaverEtfConfig
from ._errors import LayoutChanged, NaverHttpError
from ._etf_list import CATEGORIES, parse_etf_list
from ._history import Snapshot, StateStore, diff_snapshots, snapshot_of
from ._jobs import (
    ETF_HOLDINGS_JOB,
    ETF_LIST_JOB,
    is_krx_trading_day,
    run_etf_holdings,
    run_etf_list,
)
from ._merge import MergeResult, holding_key, merge_holdings
from ._mobile import MobileAnalysis, MobileHolding, parse_etf_analysis
from ._text import decode_body, normalise_name, parse_korean_amount
from ._wisereport import CuRow, WiseReport, parse_wisereport
from .plugin import ENDPOINTS, VENUE_INFO

__all__ = [
    "CATEGORIES",
    "ENDPOINTS",
    "ETF_HOLDINGS_JOB",
    "ETF_LIST_JOB",
    "VENUE_INFO",
    "CuRow",
    "Fetched",
    "LayoutChanged",
    "MergeResult",
    "MobileAnalysis",
    "MobileHolding",
    "NaverClient",
    "NaverEtfConfig",
    "NaverHttpError",
    "Snapshot",
    "StateStore",
    "WiseReport",
    "decode_body",
    "default_user_agent",
    "diff_snapshots",
    "holding_key",
    "is_krx_trading_day",
    "merge_holdings",
    "normalise_name",
    "parse_etf_analysis",
    "parse_etf_list",
    "parse_korean_amount",
    "parse_wisereport",
    "run_etf_holdings",
    "run_etf_list",
    "snapshot_of",
]
