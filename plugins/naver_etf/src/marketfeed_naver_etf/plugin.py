"""The ``naver_etf`` plugin module (entry point ``naver_etf`` in group ``marketfeed``)."""

from __future__ import annotations

from marketfeed import Registry, VenueInfo, hookimpl

from ._config import NaverEtfConfig
from ._jobs import JOBS

__all__ = ["ENDPOINTS", "VENUE_INFO", "register"]

ENDPOINTS = {
    "list": "https://finance.naver.com",
    "mobile": "https://m.stock.naver.com",
    "wisereport": "https://navercomp.wisereport.co.kr",
}
"""Endpoint name -> base URL (paths are appended); ``[venues.naver_etf.endpoints]``
overrides each."""

VENUE_INFO = VenueInfo(
    name="naver_etf",
    description="Korean ETFs from Naver Finance: ETF list, constituents and their changes",
    endpoints=ENDPOINTS,
    config_schema=NaverEtfConfig,
    jobs=JOBS,
)


@hookimpl
def register(registry: Registry) -> None:
    """Declare the ``naver_etf`` venue (scheduled jobs only; no streaming channels)."""
    registry.venue(VENUE_INFO)
