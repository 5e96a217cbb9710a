"""The full creation-unit basket from WiseReport.

``GET https://navercomp.wisereport.co.kr/v2/ETF/index.aspx?cmp_cd={code}`` returns a UTF-8
HTML page (57-72 KB) whose ``<script>`` blocks carry ``var NAME = {JSON};`` lines. The basket
is ``var CU_data = {"grid_data": [...], "chart_data": [...]}``: names, shares per creation
unit and weights, without stock codes. Source: naver-etf.md section 2B.

The page is parsed with selectolax and the object with a JSON decoder; page script is
never evaluated.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from decimal import Decimal
from typing import Any

import msgspec
from selectolax.lexbor import LexborHTMLParser

from ._errors import LayoutChanged, layout_error

__all__ = ["WISEREPORT_PATH", "CuRow", "WiseReport", "parse_wisereport", "wisereport_params"]

WISEREPORT_PATH = "/v2/ETF/index.aspx"


def wisereport_params(code: str) -> dict[str, str]:
    """Query parameters of the WiseReport ETF page of ``code``."""
    return {"cmp_cd": code}


class CuRow(msgspec.Struct, frozen=True, kw_only=True):
    """One ``CU_data.grid_data`` row.

    Attributes:
        as_of: ``TRD_DT``, the basket's KST reference date.
        name: ``STK_NM_KOR``, as published (no stock code exists in this source).
        shares: ``AGMT_STK_CNT``: shares, contracts or face amount per creation unit,
            exact as sent; may be fractional (foreign stocks), negative (short futures
            legs) or ``0`` (cash and bond rows whose quantity is not published).
        weight_pct: ``ETF_WEIGHT`` in percent, ``None`` when null (foreign, bond, gold).
    """

    as_of: _dt.date
    name: str
    shares: Decimal
    weight_pct: Decimal | None


class WiseReport(msgspec.Struct, frozen=True, kw_only=True):
    """What the page yields.

    Attributes:
        code: ``summary_data.CMP_CD`` when the page has it, else ``None``.
        name: ``summary_data.CMP_KOR`` when present.
        rows: The basket rows in served order.
    """

    code: str | None
    name: str | None
    rows: tuple[CuRow, ...]

    @property
    def as_of(self) -> _dt.date | None:
        """The latest ``TRD_DT`` of the rows (they share one date), ``None`` if no rows."""
        return max((row.as_of for row in self.rows), default=None)


class _GridRow(msgspec.Struct, frozen=True):
    TRD_DT: _dt.date
    AGMT_STK_CNT: Decimal
    STK_NM_KOR: str
    ETF_WEIGHT: Decimal | None


class _CuData(msgspec.Struct, frozen=True):
    grid_data: list[_GridRow]


class _Summary(msgspec.Struct, frozen=True):
    CMP_CD: str | None = None
    CMP_KOR: str | None = None


_JSON = json.JSONDecoder(parse_float=Decimal, parse_int=Decimal)


def _find_var(scripts: list[str], name: str) -> tuple[Any, str] | None:
    """The JSON object assigned by ``var NAME = {...};`` in one of ``scripts``.

    Locates the assignment with a regular expression and decodes the object with a JSON
    decoder that stops at its closing brace (so ``};`` inside strings is harmless).
    Returns ``(object, text)`` or ``None`` when no script assigns ``name``.

    Raises:
        LayoutChanged: the assignment exists but its value is not a JSON object.
    """
    pattern = re.compile(rf"\bvar\s+{re.escape(name)}\s*=\s*")
    for text in scripts:
        m = pattern.search(text)
        if m is None:
            continue
        try:
            value, end = _JSON.raw_decode(text, m.end())
        except json.JSONDecodeError as exc:
            raise LayoutChanged(
                "wisereport", f"var {name} as a JSON object", str(exc), payload=text
            ) from None
        if not isinstance(value, dict):
            raise LayoutChanged(
                "wisereport", f"var {name} as a JSON object", f"got {type(value).__name__}"
            )
        return value, text[m.start() : end]
    return None


def parse_wisereport(html: str, expected_code: str | None = None) -> WiseReport:
    """Parse a WiseReport ETF page into its creation-unit basket.

    Args:
        html: The page text (UTF-8 decoded).
        expected_code: The requested ETF; a page whose ``summary_data.CMP_CD`` names
            another ETF is an error.

    Returns:
        The basket (rows as published; weights ``None`` where the page has null).

    Raises:
        LayoutChanged: no ``<script>`` assigns ``var CU_data``; its value is not JSON;
            ``grid_data`` or a row field (``TRD_DT``, ``AGMT_STK_CNT``, ``STK_NM_KOR``,
            ``ETF_WEIGHT``) is missing, renamed or of another type; or the page is about
            another ETF. The error names what is missing.
    """
    tree = LexborHTMLParser(html)
    scripts = [node.text(deep=True) for node in tree.css("script")]
    scripts = [text for text in scripts if "var " in text]
    found = _find_var(scripts, "CU_data")
    if found is None:
        detail = f"{len(scripts)} script(s) with variables, none assigns CU_data"
        raise LayoutChanged("wisereport", "var CU_data", detail, payload=html)
    obj, cu_text = found
    try:
        cu = msgspec.convert(obj, _CuData, strict=False)
    except msgspec.ValidationError as exc:
        raise layout_error("wisereport", exc, payload=cu_text) from None
    code = name = None
    summary = _find_var(scripts, "summary_data")
    if summary is not None:
        try:
            info = msgspec.convert(summary[0], _Summary, strict=False)
        except msgspec.ValidationError as exc:
            raise layout_error("wisereport", exc, payload=summary[1]) from None
        code, name = info.CMP_CD, info.CMP_KOR
        if expected_code is not None and code is not None and code != expected_code:
            raise LayoutChanged(
                "wisereport",
                "summary_data.CMP_CD",
                f"asked for {expected_code}, got {code!r}",
                payload=summary[1],
            )
    rows = tuple(
        CuRow(
            as_of=row.TRD_DT,
            name=row.STK_NM_KOR.strip(),
            shares=row.AGMT_STK_CNT,
            weight_pct=row.ETF_WEIGHT,
        )
        for row in cu.grid_data
    )
    return WiseReport(code=code, name=name, rows=rows)
