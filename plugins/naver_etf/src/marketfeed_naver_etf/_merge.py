"""Merge the two constituent sources into :class:`marketfeed.EtfHolding` rows.

Rules (also in the plugin README, "Merge rules"):

1. **Basket.** When the WiseReport basket (``CU_data``) is available it *is* the basket:
   one row per ``grid_data`` row, ``as_of`` its ``TRD_DT``. Without it, the mobile top 10
   is the basket, ``as_of`` its reference date (or ``fallback_date`` when the document
   carries none).
2. **Codes.** A WiseReport row gets a code from ``name_codes`` (normalised name -> code,
   e.g. a stock list) when given, else from the mobile row it matches. Mobile rows with
   an empty ``itemCode`` (foreign stocks, cash, futures, bonds) have no code.
3. **Matching** a mobile row to a WiseReport row: by code when both have one, then by
   normalised name (:func:`normalise_name`: NFKC, no spaces/brackets/dots, upper case,
   ``(우)`` kept as ``우``). A mobile row matches at most one basket row.
4. **Weights** are percent as published, never renormalised (they need not sum to 100; cash
   rows of inverse ETFs show 100). WiseReport's ``ETF_WEIGHT`` wins; when it is null the
   matched mobile weight is used; a mobile ``"-"`` is ``None``, never 0.
5. **Shares**: WiseReport's ``AGMT_STK_CNT`` exact as sent (fractional for foreign stocks,
   negative for short futures legs), except ``0`` (what it shows for cash and bond rows
   whose quantity it does not publish), which becomes the matched mobile count or
   ``None``. Mobile ``"-"`` counts are ``None``.
6. **Value** (KRW) is ``None``: neither source publishes a per-row market value.
7. **Source**: ``"wisereport"``, ``"naver-mobile"``, or ``"wisereport+naver-mobile"`` when
   a basket row was enriched by a matched mobile row.
8. **Unmatched mobile rows** are not added to a WiseReport basket (the basket is complete;
   an unmatched top-10 row means differently spelled names or a different date): they are
   returned in :attr:`MergeResult.unmatched` for logging.
9. **Duplicates**: rows with the same key (code, else normalised name) in one basket are
   combined: shares and weights summed (``None`` counts as absent).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from decimal import Decimal

import msgspec
from marketfeed import EtfHolding

from ._mobile import MobileAnalysis, MobileHolding
from ._text import normalise_name
from ._wisereport import WiseReport

__all__ = [
    "SOURCE_MERGED",
    "SOURCE_MOBILE",
    "SOURCE_WISEREPORT",
    "MergeResult",
    "holding_key",
    "merge_holdings",
]

SOURCE_MOBILE = "naver-mobile"
SOURCE_WISEREPORT = "wisereport"
SOURCE_MERGED = "wisereport+naver-mobile"


def holding_key(holding: EtfHolding) -> str:
    """The identity of a constituent across snapshots: its code when known, else
    ``"name:" + normalise_name(name)`` (cash, futures, bonds, foreign stocks)."""
    if holding.constituent_symbol:
        return holding.constituent_symbol
    return "name:" + normalise_name(holding.constituent_name)


class MergeResult(msgspec.Struct, frozen=True, kw_only=True):
    """Merged basket of one ETF.

    Attributes:
        as_of: The basket's reference date (KST).
        holdings: One row per constituent key, in basket order.
        unmatched: Mobile rows that matched no WiseReport row (rule 8).
    """

    as_of: _dt.date
    holdings: tuple[EtfHolding, ...]
    unmatched: tuple[MobileHolding, ...] = ()


def _add(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def merge_holdings(
    etf_code: str,
    *,
    venue: str,
    mobile: MobileAnalysis | None,
    wisereport: WiseReport | None,
    receive_time: _dt.datetime,
    fallback_date: _dt.date,
    name_codes: Mapping[str, str] | None = None,
) -> MergeResult:
    """Merge the mobile top 10 and the WiseReport basket of ETF ``etf_code``.

    See the module docstring for the rules. ``name_codes`` maps
    :func:`normalise_name` keys to stock codes (optional). ``receive_time`` (UTC) is
    stored on every row.

    Raises:
        ValueError: both sources are ``None``.
    """
    if mobile is None and wisereport is None:
        raise ValueError("merge_holdings needs at least one source")
    codes = name_codes or {}
    rows: list[EtfHolding] = []
    unmatched: tuple[MobileHolding, ...] = ()
    if wisereport is not None:
        as_of = wisereport.as_of or (mobile and mobile.reference_date) or fallback_date
        pending = list(mobile.holdings) if mobile is not None else []
        for cu in wisereport.rows:
            norm = normalise_name(cu.name)
            code = codes.get(norm)
            match = _take_match(pending, code, norm)
            if match is not None and code is None:
                code = match.code
            weight = cu.weight_pct
            shares: Decimal | None = cu.shares
            if weight is None and match is not None:
                weight = match.weight_pct
            if shares == 0:
                shares = match.shares if match is not None else None
            rows.append(
                EtfHolding(
                    venue=venue,
                    etf_symbol=etf_code,
                    as_of=as_of,
                    constituent_symbol=code,
                    constituent_name=cu.name,
                    weight_pct=weight,
                    shares=shares,
                    value=None,
                    source=SOURCE_MERGED if match is not None else SOURCE_WISEREPORT,
                    receive_time=receive_time,
                )
            )
        unmatched = tuple(pending)
    else:
        assert mobile is not None
        as_of = mobile.reference_date or fallback_date
        for row in mobile.holdings:
            rows.append(
                EtfHolding(
                    venue=venue,
                    etf_symbol=etf_code,
                    as_of=as_of,
                    constituent_symbol=row.code or codes.get(normalise_name(row.name)),
                    constituent_name=row.name,
                    weight_pct=row.weight_pct,
                    shares=row.shares,
                    value=None,
                    source=SOURCE_MOBILE,
                    receive_time=receive_time,
                )
            )
    return MergeResult(as_of=as_of, holdings=_combine_duplicates(rows), unmatched=unmatched)


def _take_match(pending: list[MobileHolding], code: str | None, norm: str) -> MobileHolding | None:
    """Remove and return the mobile row matching by code, else by normalised name."""
    if code is not None:
        for i, row in enumerate(pending):
            if row.code == code:
                return pending.pop(i)
    for i, row in enumerate(pending):
        if normalise_name(row.name) == norm:
            return pending.pop(i)
    return None


def _combine_duplicates(rows: list[EtfHolding]) -> tuple[EtfHolding, ...]:
    by_key: dict[str, EtfHolding] = {}
    for row in rows:
        key = holding_key(row)
        first = by_key.get(key)
        if first is None:
            by_key[key] = row
        else:
            by_key[key] = msgspec.structs.replace(
                first,
                weight_pct=_add(first.weight_pct, row.weight_pct),
                shares=_add(first.shares, row.shares),
            )
    return tuple(by_key.values())
