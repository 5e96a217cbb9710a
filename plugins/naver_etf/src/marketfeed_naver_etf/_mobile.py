"""Top-10 holdings with stock codes: ``GET https://m.stock.naver.com/api/stock/{code}/etfAnalysis``.

A UTF-8 JSON object of about 5 KB per ETF. Source: naver-etf.md section 2A.
"""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal

import msgspec

from ._errors import LayoutChanged, layout_error
from ._text import parse_count, parse_korean_amount, parse_percent

__all__ = ["MobileAnalysis", "MobileHolding", "mobile_path", "parse_etf_analysis"]


def mobile_path(code: str) -> str:
    """URL path of the etfAnalysis document of ETF ``code``."""
    return f"/api/stock/{code}/etfAnalysis"


class MobileHolding(msgspec.Struct, frozen=True, kw_only=True):
    """One row of ``etfTop10MajorConstituentAssets``.

    Attributes:
        seq: Rank as sent (1 = largest).
        code: Stock code, ``None`` when Naver sends ``""`` (foreign, cash, futures, bonds).
        name: Name as sent.
        shares: ``stockCount`` (shares or contracts per creation unit), ``None`` for ``"-"``.
        weight_pct: ``etfWeight`` in percent, ``None`` for ``"-"``.
    """

    seq: int
    code: str | None
    name: str
    shares: Decimal | None
    weight_pct: Decimal | None


class MobileAnalysis(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of etfAnalysis this plugin uses.

    Attributes:
        code, name: The ETF (``itemCode``, ``itemName``).
        reference_date: KST date the figures refer to (``returnPerformanceReferenceDate``,
            else ``navPerformanceReferenceDate``, else ``cumulativeNetInflowList.
            referenceDate``, ``YYYY.MM.DD``); ``None`` when the document has none.
        nav_krw: NAV per share, KRW.
        market_value_krw: AUM in KRW: ``marketValueRaw`` when sent, else ``marketValue``
            (a Korean unit string such as ``"25조 533억"``, so rounded to 1억).
        total_nav_krw: ``totalNav`` in KRW (rounded to 1억).
        holdings: The top-10 rows in served order.
    """

    code: str
    name: str
    reference_date: _dt.date | None
    nav_krw: Decimal | None
    market_value_krw: Decimal | None
    total_nav_krw: Decimal | None
    holdings: tuple[MobileHolding, ...]


class _Row(msgspec.Struct, frozen=True):
    seq: int
    itemCode: str
    itemName: str
    stockCount: str
    etfWeight: str


class _Inflow(msgspec.Struct, frozen=True):
    referenceDate: str | None = None


class _Doc(msgspec.Struct, frozen=True):
    itemCode: str
    itemName: str
    etfTop10MajorConstituentAssets: list[_Row]
    nav: Decimal | None = None
    marketValue: str | None = None
    marketValueRaw: str | None = None
    totalNav: str | None = None
    returnPerformanceReferenceDate: str | None = None
    navPerformanceReferenceDate: str | None = None
    cumulativeNetInflowList: _Inflow | None = None


_DECODER = msgspec.json.Decoder(_Doc)


def parse_etf_analysis(body: bytes | str, expected_code: str | None = None) -> MobileAnalysis:
    """Parse an etfAnalysis document.

    ``"-"`` weights and counts become ``None`` (never 0); ``"6,924"`` and ``"33.66%"``
    become exact decimals; an empty ``itemCode`` becomes ``None``. Weights are kept as
    sent: they need not sum to 100, and cash rows of inverse ETFs show ``100.00``.

    Args:
        body: The response body (UTF-8 JSON).
        expected_code: The requested ETF; a document about another ETF is an error.

    Raises:
        LayoutChanged: not JSON, ``etfTop10MajorConstituentAssets`` or a row field is
            missing or renamed, a number or date has an unknown format, or the document
            is about another ETF.
    """
    payload = body if isinstance(body, str) else body.decode("utf-8", "replace")
    try:
        doc = _DECODER.decode(body)
    except msgspec.DecodeError as exc:
        raise layout_error("mobile", exc, payload=payload) from None
    if expected_code is not None and doc.itemCode != expected_code:
        raise LayoutChanged(
            "mobile",
            "$.itemCode",
            f"asked for {expected_code}, got {doc.itemCode!r}",
            payload=payload,
        )
    holdings = []
    for i, row in enumerate(doc.etfTop10MajorConstituentAssets):
        where = f"$.etfTop10MajorConstituentAssets[{i}]"
        try:
            shares = parse_count(row.stockCount)
        except ValueError as exc:
            raise LayoutChanged("mobile", f"{where}.stockCount", str(exc), payload) from None
        try:
            weight = parse_percent(row.etfWeight)
        except ValueError as exc:
            raise LayoutChanged("mobile", f"{where}.etfWeight", str(exc), payload) from None
        holdings.append(
            MobileHolding(
                seq=row.seq,
                code=row.itemCode.strip() or None,
                name=row.itemName.strip(),
                shares=shares,
                weight_pct=weight,
            )
        )
    inflow = doc.cumulativeNetInflowList
    date_text = (
        doc.returnPerformanceReferenceDate
        or doc.navPerformanceReferenceDate
        or (inflow.referenceDate if inflow is not None else None)
    )
    return MobileAnalysis(
        code=doc.itemCode,
        name=doc.itemName,
        reference_date=_date(date_text, payload),
        nav_krw=doc.nav,
        market_value_krw=_raw_or_units(doc.marketValueRaw, doc.marketValue, payload),
        total_nav_krw=_amount(doc.totalNav, "$.totalNav", payload),
        holdings=tuple(holdings),
    )


def _date(text: str | None, payload: str) -> _dt.date | None:
    if not text or text == "-":
        return None
    try:
        return _dt.datetime.strptime(text.strip(), "%Y.%m.%d").date()
    except ValueError:
        raise LayoutChanged(
            "mobile", "reference date YYYY.MM.DD", f"got {text!r}", payload
        ) from None


def _amount(text: str | None, where: str, payload: str) -> Decimal | None:
    if text is None:
        return None
    try:
        return parse_korean_amount(text)
    except ValueError as exc:
        raise LayoutChanged("mobile", where, str(exc), payload) from None


def _raw_or_units(raw: str | None, units: str | None, payload: str) -> Decimal | None:
    if raw and raw.strip().lstrip("-").isdigit():
        return Decimal(raw.strip())
    return _amount(units, "$.marketValue", payload)
