"""The ETF list: ``GET https://finance.naver.com/api/sise/etfItemList.nhn``.

One response holds every Korean-listed ETF (about 1,150 rows, 262 KB), served as JSON
with ``Content-Type: text/plain;charset=EUC-KR``. Source: naver-etf.md section 1.
"""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal

import msgspec
from marketfeed import Instrument, VenueError

from ._errors import LayoutChanged, layout_error
from ._text import decode_body

__all__ = ["CATEGORIES", "LIST_PARAMS", "LIST_PATH", "parse_etf_list"]

LIST_PATH = "/api/sise/etfItemList.nhn"
LIST_PARAMS = {"etfType": "0", "targetColumn": "market_sum", "sortOrder": "desc"}
"""What the finance.naver.com/sise/etf page itself sends (the bare URL also works)."""

VENUE = "naver_etf"

CATEGORIES = {
    1: "domestic_index",
    2: "domestic_sector_theme",
    3: "domestic_derivatives",
    4: "foreign_equity",
    5: "commodities",
    6: "bonds",
    7: "other",
}
"""``etfTabCode`` -> category (naver-etf.md section 1, row fields)."""

_HUNDRED_MILLION = Decimal(100_000_000)


class _Row(msgspec.Struct, frozen=True):
    # Every documented field is required (nullable ones may be null but must be
    # present): a renamed field raises LayoutChanged instead of silently emptying.
    itemcode: str
    etfTabCode: int
    itemname: str
    nowVal: Decimal
    risefall: str
    changeVal: Decimal
    changeRate: Decimal
    nav: Decimal | None
    threeMonthEarnRate: Decimal | None
    quant: Decimal
    amonut: Decimal  # sic: the server's spelling
    marketSum: Decimal


class _Result(msgspec.Struct, frozen=True):
    etfItemList: list[_Row]


class _Envelope(msgspec.Struct, frozen=True):
    resultCode: str
    result: _Result | None = None


_DECODER = msgspec.json.Decoder(_Envelope)


def parse_etf_list(
    body: bytes, content_type: str | None, receive_time: _dt.datetime
) -> list[Instrument]:
    """Decode the ETF list into :class:`marketfeed.Instrument` records, in served order.

    Args:
        body: The response bytes (EUC-KR or UTF-8; see :func:`decode_body`).
        content_type: The response's Content-Type header (its charset is honoured).
        receive_time: When the response arrived (UTC), stored as ``Instrument.as_of``.

    Returns:
        One ``Instrument`` per row: ``venue="naver_etf"``, ``kind="etf"``,
        ``native_symbol`` the 6-character code (may be alphanumeric, ``0193T0``),
        ``symbol`` ``"<code>-KRW"``, ``base`` the code, ``quote`` ``"KRW"``, ``name`` the
        Korean name. ``extra`` holds, as exact decimal strings with the unit in the key:
        ``category_code`` (``etfTabCode``), ``category`` (see :data:`CATEGORIES`),
        ``price_krw`` (``nowVal``), ``change_krw`` (``changeVal``, signed),
        ``change_pct`` (``changeRate``), ``direction_code`` (``risefall``: 2 up,
        3 unchanged, 5 down), ``nav_krw`` (absent when null), ``return_3m_pct`` (absent
        when null), ``volume_shares`` (``quant``), ``traded_value_krw_million``
        (``amonut``), ``market_cap_krw_100m`` (``marketSum``, 억원) and
        ``market_cap_krw`` (the same in KRW).

    Raises:
        LayoutChanged: the body is not the documented envelope or a row lacks a field.
        marketfeed.VenueError: ``resultCode`` is not ``success`` (any case).
        UnicodeDecodeError: the bytes are neither the declared charset, UTF-8 nor cp949.
    """
    text = decode_body(body, content_type, default="cp949")
    try:
        envelope = _DECODER.decode(text)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise layout_error("etf_list", exc, payload=text) from None
    if envelope.resultCode.lower() != "success":
        raise VenueError(VENUE, "etfItemList answered an error", code=envelope.resultCode)
    if envelope.result is None:
        raise LayoutChanged("etf_list", "$.result", "resultCode is success", payload=text)
    return [_instrument(row, receive_time) for row in envelope.result.etfItemList]


def _instrument(row: _Row, receive_time: _dt.datetime) -> Instrument:
    extra = {
        "category_code": str(row.etfTabCode),
        "category": CATEGORIES.get(row.etfTabCode, "unknown"),
        "price_krw": str(row.nowVal),
        "change_krw": str(row.changeVal),
        "change_pct": str(row.changeRate),
        "direction_code": row.risefall,
        "volume_shares": str(row.quant),
        "traded_value_krw_million": str(row.amonut),
        "market_cap_krw_100m": str(row.marketSum),
        "market_cap_krw": str(row.marketSum * _HUNDRED_MILLION),
    }
    if row.nav is not None:
        extra["nav_krw"] = str(row.nav)
    if row.threeMonthEarnRate is not None:
        extra["return_3m_pct"] = str(row.threeMonthEarnRate)
    code = row.itemcode.strip()
    return Instrument(
        venue=VENUE,
        symbol=f"{code}-KRW",
        native_symbol=code,
        kind="etf",
        as_of=receive_time,
        base=code,
        quote="KRW",
        name=row.itemname,
        extra=extra,
    )
