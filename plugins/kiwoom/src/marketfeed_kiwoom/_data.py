"""Kiwoom REST data into marketfeed models: bars, instruments, stock lists, investor flows.

Every fetcher returns a list of events; rows that cannot become an event (impossible
values, missing required fields) come back as :class:`marketfeed.DeadLetter` events with
the reason and the row as JSON, so nothing is lost and nothing crashes.

Sources (spec section 4): ka10081 daily bars and ka10080 minute bars (``/api/dostk/chart``),
ka10001 basic info, ka10099 stock list and ka10059 investor flows (``/api/dostk/stkinfo``),
ka10086 daily prices with net buying (``/api/dostk/mrkcond``).
"""

from __future__ import annotations

import datetime as _dt
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal, NamedTuple, TypeVar

import msgspec
from marketfeed import Candle, DailyBar, DeadLetter, Event, Instrument, InvestorFlow

from ._client import KiwoomClient, Priority
from ._errors import KiwoomSymbolError
from ._parse import (
    Bar,
    RowError,
    bar_row,
    kst_date,
    optional,
    signed,
    text,
    to_symbol,
    unsigned,
)

__all__ = [
    "VENUE",
    "AdjustmentEvent",
    "AdjustmentTracker",
    "FLOW_FIELDS",
    "apply_adjustment",
    "basic_info",
    "daily_bars",
    "daily_trading",
    "dead_letter",
    "investor_flows",
    "merge_flows",
    "minute_bars",
    "stock_list",
    "tracker_for",
]

VENUE = "kiwoom"
CHART = "/api/dostk/chart"
STKINFO = "/api/dostk/stkinfo"
MRKCOND = "/api/dostk/mrkcond"
AMOUNT_UNIT = "KRW million"
QUANTITY_UNIT = "shares"

_log = logging.getLogger("marketfeed.venue.kiwoom.data")
_encode = msgspec.json.Encoder().encode

Measure = Literal["amount", "quantity"]


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def dead_letter(
    api_id: str, code: str, row: Any, reason: str, now: _dt.datetime | None = None
) -> DeadLetter:
    """A rejected row as a :class:`DeadLetter` (``source`` = ``"kiwoom:<api_id>:<code>"``,
    ``payload`` = the row as JSON)."""
    now = now or _now()
    try:
        payload = _encode(row).decode()
    except (TypeError, msgspec.EncodeError):
        payload = repr(row)
    return DeadLetter(
        venue=VENUE,
        source=f"kiwoom:{api_id}:{code}",
        reason=reason,
        payload=payload,
        first_failure=now,
        last_failure=now,
    )


# --------------------------------------------------------------------------- daily bars


K = TypeVar("K", _dt.date, _dt.datetime)
T = TypeVar("T")


class _Query(NamedTuple):
    api_id: str
    path: str
    body: dict[str, str]
    rows: str


async def _collect(
    client: KiwoomClient,
    query: _Query,
    code: str,
    parse: Callable[[Any], tuple[K, T]],
    start: K,
    end: K | None,
    priority: int,
    rejected: list[Event],
    now: _dt.datetime,
    label: str = "",
) -> dict[K, T]:
    """Page backwards through ``query`` (rows newest first) and keep the parsed rows dated
    in ``[start, end]``; stop paging once a page reaches back before ``start``. Rows that
    raise :class:`RowError` become dead letters in ``rejected``."""
    kept: dict[K, T] = {}
    async for _page, rows in client.pages(
        query.api_id, query.path, query.body, query.rows, priority=priority
    ):
        oldest: K | None = None
        for row in rows:
            try:
                key, item = parse(row)
            except RowError as exc:
                rejected.append(dead_letter(query.api_id, code, row, f"{label}{exc}", now))
                continue
            oldest = key if oldest is None or key < oldest else oldest
            if start <= key and (end is None or key <= end):
                kept[key] = item
        if oldest is not None and oldest < start:
            break
    return kept


def _daily_row(row: Any) -> tuple[_dt.date, Bar]:
    bar = bar_row(row, minute=False)
    assert isinstance(bar.time, _dt.date)
    return bar.time, bar


async def daily_bars(
    client: KiwoomClient,
    code: str,
    *,
    start: _dt.date,
    end: _dt.date,
    priority: int = Priority.NORMAL,
    now: _dt.datetime | None = None,
) -> list[Event]:
    """Daily bars of ``code`` for ``[start, end]`` (KST dates) from ka10081, oldest first.

    Fetches the raw series (``upd_stkpc_tp=0``) and the adjusted series (``=1``, with
    ``base_dt = end``) and stores the raw OHLCV with ``adj_factor = adjusted close / raw
    close`` per day, so adjusted history is ``raw * adj_factor``. Volume in shares,
    ``turnover`` in million KRW (``trde_prica``). Rejected rows come back as
    :class:`DeadLetter`. Adjustment events (factors that changed since the previous fetch
    in this process, or adjustment markers in 2025-style rows) are logged at WARNING.

    Raises:
        KiwoomError: the query failed (see :meth:`KiwoomClient.call`).
    """
    now = now or _now()
    rejected: list[Event] = []
    series = []
    for adjusted_flag in ("0", "1"):
        body = {"stk_cd": code, "base_dt": f"{end:%Y%m%d}", "upd_stkpc_tp": adjusted_flag}
        query = _Query("ka10081", CHART, body, "stk_dt_pole_chart_qry")
        label = "adjusted row: " if adjusted_flag == "1" else "raw row: "
        series.append(
            await _collect(
                client, query, code, _daily_row, start, end, priority, rejected, now, label
            )
        )
    raw, adjusted = series
    symbol = to_symbol(code)
    bars: list[DailyBar] = []
    for day in sorted(raw):
        bar = raw[day]
        adj = adjusted.get(day)
        factor = Decimal(1)
        if adj is not None and bar.close:
            factor = adj.close / bar.close
        elif adj is None:
            _log.warning("kiwoom %s %s: no adjusted row; adj_factor 1", code, day)
        for marker in (bar.adjustment, adj.adjustment if adj else {}):
            if marker:
                _log.warning("kiwoom %s %s: venue marks an adjustment %s", code, day, marker)
        bars.append(
            DailyBar(
                venue=VENUE,
                symbol=symbol,
                native_symbol=code,
                date=day,
                open=bar.open,
                high=bar.high,
                low=bar.low,
                close=bar.close,
                volume=bar.volume,
                receive_time=now,
                turnover=bar.turnover,
                turnover_unit=AMOUNT_UNIT if bar.turnover is not None else None,
                adj_factor=factor,
            )
        )
    tracker_for(client).update(code, bars)
    return [*bars, *rejected]


class AdjustmentEvent(NamedTuple):
    """A corporate-action adjustment seen between two fetches of the same days.

    ``ratio`` = new factor / old factor; it applies to every stored day up to and
    including ``through`` (the latest day whose factor changed).
    """

    code: str
    through: _dt.date
    ratio: Decimal
    dates: tuple[_dt.date, ...]


class AdjustmentTracker:
    """Remembers each day's ``adj_factor`` per stock (in this process) and reports the
    days whose factor changed on a later fetch."""

    def __init__(self) -> None:
        self.factors: dict[str, dict[_dt.date, Decimal]] = {}

    def update(self, code: str, bars: Sequence[DailyBar]) -> list[AdjustmentEvent]:
        """Record ``bars`` and return the adjustment events they reveal (logged at
        WARNING)."""
        known = self.factors.setdefault(code, {})
        changed: dict[Decimal, list[_dt.date]] = {}
        for bar in bars:
            old = known.get(bar.date)
            if old is not None and old != bar.adj_factor and old:
                changed.setdefault(bar.adj_factor / old, []).append(bar.date)
            known[bar.date] = bar.adj_factor
        events = []
        for ratio, dates in changed.items():
            event = AdjustmentEvent(code, max(dates), ratio, tuple(sorted(dates)))
            _log.warning(
                "kiwoom adjustment event: %s factors x%s through %s (%d refetched days)",
                code,
                ratio,
                event.through,
                len(dates),
            )
            events.append(event)
        return events


_TRACKERS: weakref.WeakKeyDictionary[KiwoomClient, AdjustmentTracker] = weakref.WeakKeyDictionary()


def tracker_for(client: KiwoomClient) -> AdjustmentTracker:
    """The process's :class:`AdjustmentTracker` of ``client``."""
    tracker = _TRACKERS.get(client)
    if tracker is None:
        tracker = _TRACKERS[client] = AdjustmentTracker()
    return tracker


def apply_adjustment(bars: Sequence[DailyBar], through: _dt.date, ratio: Decimal) -> list[DailyBar]:
    """Recompute stored history after an adjustment without refetching raw data: every bar
    dated ``<= through`` gets ``adj_factor * ratio``; raw OHLCV are unchanged."""
    return [
        msgspec.structs.replace(b, adj_factor=b.adj_factor * ratio) if b.date <= through else b
        for b in bars
    ]


# --------------------------------------------------------------------------- minute bars


async def minute_bars(
    client: KiwoomClient,
    code: str,
    *,
    scope: int = 1,
    since: _dt.datetime,
    base_dt: _dt.date | None = None,
    priority: int = Priority.NORMAL,
    now: _dt.datetime | None = None,
) -> list[Event]:
    """Minute bars (ka10080, raw prices ``upd_stkpc_tp=0``) of ``code`` from ``since``
    (UTC) to ``base_dt`` (default: latest), oldest first, as :class:`Candle` with
    timeframe ``"<scope>m"``.

    ``open_time`` = ``event_time`` = ``cntr_tm`` (KST, the bar's label as sent);
    ``closed`` when ``open_time + scope`` is not after ``now``. Volume in shares; minute
    rows carry no traded value. Rejected rows come back as :class:`DeadLetter`.

    Raises:
        KiwoomError: the query failed.
    """
    now = now or _now()
    body = {"stk_cd": code, "tic_scope": str(scope), "upd_stkpc_tp": "0"}
    if base_dt is not None:
        body["base_dt"] = f"{base_dt:%Y%m%d}"
    symbol = to_symbol(code)
    width = _dt.timedelta(minutes=scope)

    def parse(row: Any) -> tuple[_dt.datetime, Candle]:
        bar = bar_row(row, minute=True)
        t = bar.time
        assert isinstance(t, _dt.datetime)
        candle = Candle(
            venue=VENUE,
            symbol=symbol,
            native_symbol=code,
            event_time=t,
            receive_time=now,
            timeframe=f"{scope}m",
            open_time=t,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            closed=t + width <= now,
        )
        return t, candle

    rejected: list[Event] = []
    query = _Query("ka10080", CHART, body, "stk_min_pole_chart_qry")
    candles = await _collect(client, query, code, parse, since, None, priority, rejected, now)
    return [*(candles[t] for t in sorted(candles)), *rejected]


# --------------------------------------------------------------------------- instruments

_KA10001_EXTRA = {
    "setl_mm": "settlement_month",
    "fav": "par_value_krw",
    "cap": "capital_100m_krw",
    "flo_stk": "listed_shares_thousands",
    "mac": "market_cap_100m_krw",
    "for_exh_rt": "foreign_exhaustion_pct",
    "crd_rt": "credit_ratio_pct",
    "per": "per",
    "eps": "eps",
    "roe": "roe",
    "pbr": "pbr",
    "ev": "ev",
    "bps": "bps",
    "sale_amt": "sales_100m_krw",
    "bus_pro": "operating_profit_100m_krw",
    "cup_nga": "net_income_100m_krw",
    "250hgst": "high_250d_krw",
    "250lwst": "low_250d_krw",
    "250hgst_pric_dt": "high_250d_date",
    "250lwst_pric_dt": "low_250d_date",
    "oyr_hgst": "year_high_krw",
    "oyr_lwst": "year_low_krw",
    "upl_pric": "upper_limit_krw",
    "lst_pric": "lower_limit_krw",
    "base_pric": "base_price_krw",
    "cur_prc": "last_price_krw",
    "flu_rt": "change_pct",
    "trde_qty": "volume_shares",
    "dstr_stk": "float_shares_thousands",
    "dstr_rt": "float_ratio_pct",
}
_UNSIGNED_EXTRA = frozenset(
    {"250hgst", "250lwst", "oyr_hgst", "oyr_lwst", "upl_pric", "lst_pric", "base_pric", "cur_prc"}
)


async def basic_info(
    client: KiwoomClient,
    code: str,
    *,
    priority: int = Priority.NORMAL,
    now: _dt.datetime | None = None,
) -> Instrument:
    """Basic info of one stock (ka10001) as an :class:`Instrument` (kind ``stock``).

    ``extra`` holds the documented fields under readable names with their unit
    (``market_cap_100m_krw``, ``listed_shares_thousands``, ...), values as sent (price
    direction signs stripped). A code the venue does not know (1901/1902/1903: delisted or
    wrong) is returned with ``status="delisted"`` and the venue's code and message in
    ``extra`` instead of raising.

    Raises:
        KiwoomError: any other failure.
    """
    now = now or _now()
    try:
        page = await client.call("ka10001", STKINFO, {"stk_cd": code}, priority=priority)
    except KiwoomSymbolError as exc:
        _log.warning(
            "kiwoom %s: venue does not know the code (%s): marked delisted", code, exc.code
        )
        return Instrument(
            venue=VENUE,
            symbol=to_symbol(code),
            native_symbol=code,
            kind="stock",
            base=code,
            quote="KRW",
            as_of=now,
            status="delisted",
            extra={"kiwoom_code": exc.code or "", "kiwoom_message": str(exc)},
        )
    body = page.body
    extra: dict[str, str] = {}
    for field, name in _KA10001_EXTRA.items():
        value = text(body, field)
        if value is None:
            continue
        if field in _UNSIGNED_EXTRA:
            number = optional(unsigned, value)
            value = str(number) if number is not None else value
        extra[name] = value
    return Instrument(
        venue=VENUE,
        symbol=to_symbol(code),
        native_symbol=code,
        kind="stock",
        base=code,
        quote="KRW",
        name=text(body, "stk_nm"),
        as_of=now,
        extra=extra,
    )


_MARKET_KIND: dict[str, Literal["stock", "etf", "other"]] = {
    "0": "stock",
    "10": "stock",
    "30": "stock",
    "50": "stock",
    "6": "stock",
    "8": "etf",
}
_KA10099_EXTRA = {
    "listCount": "listed_shares",
    "auditInfo": "audit_info",
    "regDay": "listing_date",
    "lastPrice": "last_price_krw",
    "state": "state",
    "marketCode": "market_code",
    "marketName": "market_name",
    "upName": "sector",
    "upSizeName": "size_class",
    "companyClassName": "company_class",
    "orderWarning": "order_warning",
    "nxtEnable": "nxt_enable",
}


def _status(row: Mapping[str, Any]) -> str:
    state = text(row, "state") or ""
    if "거래정지" in state or "정지" in (text(row, "auditInfo") or ""):
        return "halted"
    if text(row, "orderWarning") == "2" or "정리매매" in state:
        return "delisting"
    return "live"


def instrument_row(row: Any, market: str, now: _dt.datetime) -> Instrument:
    """One ka10099 ``list`` row as an :class:`Instrument`.

    ``kind`` is ``etf`` for market ``8``, ``stock`` for KOSPI/KOSDAQ/K-OTC/KONEX/REITs,
    ``other`` otherwise. ``status``: ``halted`` (state mentions 거래정지), ``delisting``
    (orderWarning 2, 정리매매: the last trading days before delisting), else ``live``.
    Zero-padded numbers (``listCount``, ``lastPrice``) are un-padded in ``extra``.

    Raises:
        RowError: not an object, or no ``code``.
    """
    if not isinstance(row, Mapping):
        raise RowError(f"row is not an object: {type(row).__name__}")
    code = text(row, "code")
    if code is None:
        raise RowError("missing code")
    extra: dict[str, str] = {}
    for field, name in _KA10099_EXTRA.items():
        value = text(row, field)
        if value is None:
            continue
        if field in ("listCount", "lastPrice"):
            number = optional(signed, value)
            value = str(number) if number is not None else value
        extra[name] = value
    return Instrument(
        venue=VENUE,
        symbol=to_symbol(code),
        native_symbol=code,
        kind=_MARKET_KIND.get(market, "other"),
        base=code,
        quote="KRW",
        name=text(row, "name"),
        status=_status(row),
        as_of=now,
        extra=extra,
    )


async def stock_list(
    client: KiwoomClient,
    market: str,
    *,
    priority: int = Priority.BULK,
    now: _dt.datetime | None = None,
) -> list[Event]:
    """Every instrument of market ``market`` (ka10099 ``mrkt_tp``: ``"0"`` KOSPI, ``"10"``
    KOSDAQ, ``"8"`` ETF, ...) as :class:`Instrument` events (see :func:`instrument_row`);
    malformed rows as :class:`DeadLetter`.

    Raises:
        KiwoomError: the query failed.
    """
    now = now or _now()
    events: list[Event] = []
    async for _page, rows in client.pages(
        "ka10099", STKINFO, {"mrkt_tp": market}, "list", priority=priority
    ):
        for row in rows:
            try:
                events.append(instrument_row(row, market, now))
            except RowError as exc:
                events.append(dead_letter("ka10099", market, row, str(exc), now))
    return events


# --------------------------------------------------------------------------- investor flows

FLOW_FIELDS = {
    "fnnc_invt": "financial_investment",
    "insrnc": "insurance",
    "invtrt": "investment_trust",
    "etc_fnnc": "other_financial",
    "bank": "bank",
    "penfnd_etc": "pension_fund",
    "samo_fund": "private_equity",
    "natn": "government",
    "etc_corp": "other_corporation",
    "natfor": "domestic_foreigner",
}
"""ka10059 institution breakdown columns -> ``InvestorFlow.breakdown`` keys."""


def flow_row(row: Any, code: str, measure: Measure, now: _dt.datetime) -> InvestorFlow:
    """One ka10059 ``stk_invsr_orgn`` row as an :class:`InvestorFlow` (net buying).

    Raises:
        RowError: not an object, or a bad date.
    """
    if not isinstance(row, Mapping):
        raise RowError(f"row is not an object: {type(row).__name__}")
    breakdown = {
        name: value
        for field, name in FLOW_FIELDS.items()
        if (value := optional(signed, text(row, field))) is not None
    }
    return InvestorFlow(
        venue=VENUE,
        symbol=to_symbol(code),
        native_symbol=code,
        date=kst_date(text(row, "dt")),
        measure=measure,
        unit=AMOUNT_UNIT if measure == "amount" else QUANTITY_UNIT,
        receive_time=now,
        individual=optional(signed, text(row, "ind_invsr")),
        foreign=optional(signed, text(row, "frgnr_invsr")),
        institution=optional(signed, text(row, "orgn")),
        breakdown=breakdown,
    )


async def investor_flows(
    client: KiwoomClient,
    code: str,
    *,
    start: _dt.date,
    end: _dt.date,
    measure: Measure = "amount",
    priority: int = Priority.NORMAL,
    now: _dt.datetime | None = None,
) -> list[Event]:
    """Daily net buying by investor type (ka10059, ``trde_tp=0`` net) for ``[start, end]``.

    ``measure="amount"`` requests ``amt_qty_tp=1`` (values in **million KRW**);
    ``"quantity"`` requests ``amt_qty_tp=2`` with ``unit_tp=1`` (values in **shares**, not
    thousands). Individuals, foreigners and institutions (total) are top-level; the
    institution breakdown (:data:`FLOW_FIELDS`) goes to ``breakdown`` in the same unit.

    Raises:
        KiwoomError: the query failed.
    """
    now = now or _now()
    body = {
        "dt": f"{end:%Y%m%d}",
        "stk_cd": code,
        "amt_qty_tp": "1" if measure == "amount" else "2",
        "trde_tp": "0",
        "unit_tp": "1",
    }

    def parse(row: Any) -> tuple[_dt.date, InvestorFlow]:
        flow = flow_row(row, code, measure, now)
        return flow.date, flow

    rejected: list[Event] = []
    query = _Query("ka10059", STKINFO, body, "stk_invsr_orgn")
    flows = await _collect(client, query, code, parse, start, end, priority, rejected, now)
    return [*(flows[d] for d in sorted(flows)), *rejected]


async def daily_trading(
    client: KiwoomClient,
    code: str,
    *,
    start: _dt.date,
    end: _dt.date,
    measure: Measure = "quantity",
    priority: int = Priority.NORMAL,
    now: _dt.datetime | None = None,
) -> list[Event]:
    """Net buying from ka10086 (일별주가, ``indc_tp`` 0 quantity / 1 amount in million KRW)
    as :class:`InvestorFlow` for ``[start, end]``.

    ``individual`` = ``ind_netprps`` (or ``ind``), ``institution`` = ``orgn_netprps`` (or
    ``orgn``). The venue sends foreign net buying as a quantity only, so ``foreign``
    (``for_netprps``/``for_qty``) is set for ``measure="quantity"`` and left ``None`` for
    amounts. Double signs (``"--714"``) read as negative.

    Raises:
        KiwoomError: the query failed.
    """
    now = now or _now()
    body = {
        "stk_cd": code,
        "qry_dt": f"{end:%Y%m%d}",
        "indc_tp": "0" if measure == "quantity" else "1",
    }
    unit = AMOUNT_UNIT if measure == "amount" else QUANTITY_UNIT

    def parse(row: Any) -> tuple[_dt.date, InvestorFlow]:
        if not isinstance(row, Mapping):
            raise RowError("row is not an object")
        day = kst_date(text(row, "date", "dt"))
        foreign = optional(signed, text(row, "for_netprps", "for_qty"))
        return day, InvestorFlow(
            venue=VENUE,
            symbol=to_symbol(code),
            native_symbol=code,
            date=day,
            measure=measure,
            unit=unit,
            receive_time=now,
            individual=optional(signed, text(row, "ind_netprps", "ind")),
            foreign=foreign if measure == "quantity" else None,
            institution=optional(signed, text(row, "orgn_netprps", "orgn")),
        )

    rejected: list[Event] = []
    query = _Query("ka10086", MRKCOND, body, "daly_stkpc")
    flows = await _collect(client, query, code, parse, start, end, priority, rejected, now)
    return [*(flows[d] for d in sorted(flows)), *rejected]


def merge_flows(primary: Sequence[Event], extra: Sequence[Event]) -> list[Event]:
    """ka10059 flows (``primary``) completed with ka10086 flows (``extra``) where they add
    something: a missing top-level value or a missing day (same measure). Other events
    (dead letters) of both lists are kept."""
    merged: dict[tuple[_dt.date, str], InvestorFlow] = {}
    others: list[Event] = []
    for event in primary:
        if isinstance(event, InvestorFlow):
            merged[(event.date, event.measure)] = event
        else:
            others.append(event)
    for event in extra:
        if not isinstance(event, InvestorFlow):
            others.append(event)
            continue
        key = (event.date, event.measure)
        base = merged.get(key)
        if base is None:
            merged[key] = event
            continue
        fills = {
            name: getattr(event, name)
            for name in ("individual", "foreign", "institution")
            if getattr(base, name) is None and getattr(event, name) is not None
        }
        if fills:
            merged[key] = msgspec.structs.replace(base, **fills)
    return [*(merged[k] for k in sorted(merged)), *others]
