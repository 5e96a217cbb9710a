"""Options of the ``naver_etf`` venue (``[venues.naver_etf]`` in the TOML config)."""

from __future__ import annotations

import re
from typing import Literal

import msgspec

__all__ = ["DEFAULT_CONTACT_URL", "ETF_CODE", "NaverEtfConfig"]

DEFAULT_CONTACT_URL = "https://github.com/marketfeed/marketfeed"
"""Contact URL put in the default User-Agent; set ``contact_url`` to your own."""

ETF_CODE = re.compile(r"[0-9A-Z]{6}")
"""A KRX short code: 6 characters, digits or upper-case letters (``069500``, ``0193T0``)."""

Source = Literal["mobile", "wisereport"]


class NaverEtfConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of the Naver ETF plugin. Every key is optional.

    Attributes:
        etfs: ETF codes to collect constituents for (``["069500", "0193T0"]``), or
            ``"all"`` (default): every ETF of the Naver ETF list.
        sources: Constituent sources: ``"mobile"`` (m.stock.naver.com etfAnalysis, top 10
            with stock codes) and ``"wisereport"`` (the full creation-unit basket, names
            only). An ETF is stored only when every listed source answered.
        weight_threshold: A constituent whose weight moved by more than this many
            percentage points between two snapshots yields an ``EtfHoldingChange`` of
            kind ``"weight"``.
        rate: Requests per second allowed per host (default 1: at most one request a
            second to each of the three Naver hosts, requests spaced ``1/rate`` s apart).
        user_agent: Full User-Agent header; ``None`` builds
            ``marketfeed-naver-etf/<version> (+<contact_url>)``.
        contact_url: Where a site operator can reach you (put in the default User-Agent).
        state_dir: Directory of the change-detection state, one JSON file per ETF
            (relative paths are relative to the working directory).
        timeout: Seconds allowed per HTTP request.
        retry_attempts: Attempts per request on 5xx answers, timeouts and network errors.
        retry_wait_initial, retry_wait_max: Exponential backoff between attempts, seconds.
    """

    etfs: list[str] | Literal["all"] = "all"
    sources: list[Source] = msgspec.field(default_factory=lambda: ["mobile", "wisereport"])
    weight_threshold: float = 0.5
    rate: float = 1.0
    user_agent: str | None = None
    contact_url: str = DEFAULT_CONTACT_URL
    state_dir: str = ".marketfeed/naver_etf"
    timeout: float = 20.0
    retry_attempts: int = 4
    retry_wait_initial: float = 1.0
    retry_wait_max: float = 30.0

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be > 0 (requests per second per host)")
        if self.weight_threshold < 0:
            raise ValueError("weight_threshold must be >= 0 (percentage points)")
        if self.retry_attempts < 1:
            raise ValueError("retry_attempts must be >= 1")
        if not self.sources:
            raise ValueError("sources must name at least one of 'mobile', 'wisereport'")
        if self.etfs != "all":
            bad = [code for code in self.etfs if not ETF_CODE.fullmatch(code)]
            if bad:
                raise ValueError(f"etfs: not 6-character KRX codes: {bad}")
