"""REST data into models: daily bars with adjustment factors, minute bars, instruments,
stock lists, investor flows; rejected rows dead-lettered."""

from __future__ import annotations

import datetime as _dt
import json
import logging
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from kiwoom_fake import FakeKiwoom, load, make_context, page, plain_int
from marketfeed import Candle, DailyBar, DeadLetter, Instrument, InvestorFlow
from marketfeed.testing import HttpRequest, HttpResponse, ReplayServer
from marketfeed_kiwoom import (
    AdjustmentTracker,
    apply_adjustment,
    basic_info,
    client_for,
    daily_bars,
    daily_trading,
    investor_flows,
    merge_flows,
    minute_bars,
    stock_list,
    tracker_for,
)

pytestmark = pytest.mark.anyio

KST = _dt.timezone(_dt.timedelta(hours=9))


def _day(value: str) -> _dt.date:
    return _dt.datetime.strptime(value, "%Y%m%d").date()


def by_adjustment(raw: list[dict[str, Any]], adjusted: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    """ka10081 reply choosing rows by the request's upd_stkpc_tp."""

    def reply(request: HttpRequest) -> HttpResponse:
        rows = adjusted if request.json()["upd_stkpc_tp"] == "1" else raw
        return page(
            {
                "stk_cd": request.json()["stk_cd"],
                "stk_dt_pole_chart_qry": rows,
                "return_code": 0,
                "return_msg": "",
            }
        )

    return reply


async def test_daily_bars_from_documented_and_recorded_rows() -> None:
    documented = load("ka10081.response.json")["stk_dt_pole_chart_qry"]
    recorded = load("ka10081.rows.recorded.json")
    rows = documented + recorded  # newest first, both field sets in one answer
    fake = FakeKiwoom()
    fake.default("ka10081", by_adjustment(rows, rows))
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        events = await daily_bars(
            client_for(ctx), "005930", start=_dt.date(2020, 1, 1), end=_dt.date(2025, 9, 8)
        )
        await ctx.aclose()
    bars = [e for e in events if isinstance(e, DailyBar)]
    assert [b.date for b in bars] == sorted(_day(r["dt"]) for r in rows)
    by_date = {b.date: b for b in bars}
    for row in rows:
        bar = by_date[_day(row["dt"])]
        assert bar.close == plain_int(row["cur_prc"]) and bar.volume == int(row["trde_qty"])
        assert bar.turnover == int(row["trde_prica"]) and bar.turnover_unit == "KRW million"
        assert bar.adj_factor == 1 and bar.symbol == "005930-KRW"
    bodies = [r.json() for r in fake.data_requests]
    assert [b["upd_stkpc_tp"] for b in bodies] == ["0", "1"]
    assert all(b["base_dt"] == "20250908" for b in bodies)


async def test_daily_bars_stop_paging_once_the_range_is_covered() -> None:
    rows = load("ka10081.response.json")["stk_dt_pole_chart_qry"]  # 20250908, 20250905
    fake = FakeKiwoom()
    fake.default(
        "ka10081",
        lambda r: page(
            {"stk_dt_pole_chart_qry": rows}, cont=True, next_key="A0059302022111700010000"
        ),
    )
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        events = await daily_bars(
            client_for(ctx), "005930", start=_dt.date(2025, 9, 8), end=_dt.date(2025, 9, 8)
        )
        await ctx.aclose()
    assert [e.date for e in events if isinstance(e, DailyBar)] == [_dt.date(2025, 9, 8)]
    assert len(fake.data_requests) == 2  # one page each for raw and adjusted


def _row(day: str, close: int, volume: int = 1000) -> dict[str, str]:
    return {
        "dt": day,
        "cur_prc": str(close),
        "open_pric": str(close),
        "high_pric": str(close),
        "low_pric": str(close),
        "trde_qty": str(volume),
    }


async def test_constructed_split_recomputes_history_without_raw_refetch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # CONSTRUCTED: a 1:5 split effective 2025-06-05 (raw 50,000 -> 10,000)
    caplog.set_level(logging.WARNING)
    before = [_row("20250604", 50000), _row("20250603", 50000), _row("20250602", 50000)]
    raw_after = [_row("20250605", 10000), _row("20250604", 50000), _row("20250603", 50000)]
    adj_after = [_row("20250605", 10000), _row("20250604", 10000), _row("20250603", 10000)]
    fake = FakeKiwoom()
    fake.script(
        "ka10081",
        by_adjustment(before, before),
        by_adjustment(before, before),
        by_adjustment(raw_after, adj_after),
        by_adjustment(raw_after, adj_after),
    )
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        client = client_for(ctx)
        first = await daily_bars(
            client, "000001", start=_dt.date(2025, 6, 2), end=_dt.date(2025, 6, 4)
        )
        assert [b.adj_factor for b in first if isinstance(b, DailyBar)] == [1, 1, 1]
        second = await daily_bars(
            client, "000001", start=_dt.date(2025, 6, 3), end=_dt.date(2025, 6, 5)
        )
        await ctx.aclose()
    factors = {b.date: b.adj_factor for b in second if isinstance(b, DailyBar)}
    assert factors == {
        _dt.date(2025, 6, 3): Decimal("0.2"),
        _dt.date(2025, 6, 4): Decimal("0.2"),
        _dt.date(2025, 6, 5): 1,
    }
    raw_closes = {b.date: b.close for b in second if isinstance(b, DailyBar)}
    assert raw_closes[_dt.date(2025, 6, 4)] == 50000  # raw stays raw
    assert "adjustment event: 000001 factors x0.2 through 2025-06-04" in caplog.text

    # the tracker reports the same event; stored history (06-02 never refetched) recomputed
    tracker = AdjustmentTracker()
    tracker.update("000001", [b for b in first if isinstance(b, DailyBar)])
    (event,) = tracker.update("000001", [b for b in second if isinstance(b, DailyBar)])
    assert event.ratio == Decimal("0.2") and event.through == _dt.date(2025, 6, 4)
    stored = [b for b in first if isinstance(b, DailyBar)]
    recomputed = apply_adjustment(stored, event.through, event.ratio)
    adjusted_closes = [b.close * b.adj_factor for b in recomputed]
    assert adjusted_closes == [Decimal(50000) / 5] * 3
    assert [b.close for b in recomputed] == [50000] * 3
    assert tracker_for(client) is tracker_for(client)


async def test_impossible_rows_are_dead_lettered_with_reason() -> None:
    good = load("ka10081.response.json")["stk_dt_pole_chart_qry"]
    # CONSTRUCTED bad rows: high < low, negative volume
    bad_high = {**good[0], "dt": "20250904", "high_pric": "69000", "low_pric": "69600"}
    bad_volume = {**good[1], "dt": "20250903", "trde_qty": "-5"}
    rows = [*good, bad_high, bad_volume]
    fake = FakeKiwoom()
    fake.default("ka10081", by_adjustment(rows, good))
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        events = await daily_bars(
            client_for(ctx), "005930", start=_dt.date(2025, 9, 1), end=_dt.date(2025, 9, 8)
        )
        await ctx.aclose()
    letters = [e for e in events if isinstance(e, DeadLetter)]
    assert len([e for e in events if isinstance(e, DailyBar)]) == len(good)
    assert [json.loads(d.payload)["dt"] for d in letters] == ["20250904", "20250903"]
    assert "high 69000 < low 69600" in letters[0].reason
    assert "negative volume" in letters[1].reason
    assert letters[0].source == "kiwoom:ka10081:005930" and letters[0].venue == "kiwoom"


async def test_minute_bars_from_documented_and_recorded_rows() -> None:
    rows = load("ka10080.response.json")["stk_min_pole_chart_qry"]
    recorded = load("ka10080.rows.recorded.json")
    headers = load("ka10080.response-headers.recorded.json")  # recorded continuation headers
    assert headers["cont-yn"] == "Y"
    fake = FakeKiwoom()
    fake.script(
        "ka10080",
        page({"stk_min_pole_chart_qry": rows}, cont=True, next_key=headers["next-key"]),
        page({"stk_min_pole_chart_qry": recorded}),
    )
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        since = _dt.datetime(2025, 1, 1, tzinfo=_dt.UTC)
        events = await minute_bars(
            client_for(ctx), "005930", since=since, base_dt=_dt.date(2025, 9, 17)
        )
        await ctx.aclose()
    candles = [e for e in events if isinstance(e, Candle)]
    assert len(candles) == len(rows) + len(recorded)
    expected_times = sorted(
        _dt.datetime.strptime(r["cntr_tm"], "%Y%m%d%H%M%S").replace(tzinfo=KST)
        for r in rows + recorded
    )
    assert [c.open_time for c in candles] == expected_times
    newest = candles[-1]
    assert newest.timeframe == "1m" and newest.closed
    assert newest.close == plain_int(rows[0]["cur_prc"])
    assert fake.data_requests[1].headers["next-key"] == headers["next-key"]
    body = fake.data_requests[0].json()
    assert body == {
        "stk_cd": "005930",
        "tic_scope": "1",
        "upd_stkpc_tp": "0",
        "base_dt": "20250917",
    }


async def test_basic_info_to_instrument_and_unknown_code_marked_delisted() -> None:
    info = load("ka10001.response.json")
    fake = FakeKiwoom()
    fake.script(
        "ka10001",
        HttpResponse.json(info),
        HttpResponse.json({"return_code": 1902, "return_msg": "종목 정보가 없습니다"}),
    )
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        client = client_for(ctx)
        stock = await basic_info(client, "005930")
        gone = await basic_info(client, "999999")
        await ctx.aclose()
    assert stock.name == info["stk_nm"] and stock.kind == "stock"
    # field names only: the documented example's values are shifted (fixture README)
    assert stock.extra["market_cap_100m_krw"] == info["mac"]
    assert stock.extra["listed_shares_thousands"] == info["flo_stk"]
    assert stock.extra["year_high_krw"] == str(plain_int(info["oyr_hgst"]))
    assert "per" not in stock.extra  # "" in the example: absent
    assert gone.status == "delisted" and gone.extra["kiwoom_code"] == "1902"


async def test_stock_list_etfs_and_status_marks() -> None:
    listing = load("ka10099.response.json")
    # CONSTRUCTED rows: a halted stock, one in liquidation trading, one without a code
    halted = {**listing["list"][0], "code": "000002", "state": "거래정지|증거금100%"}
    delisting = {**listing["list"][1], "code": "000003", "orderWarning": "2"}
    broken = {"name": "no code"}
    fake = FakeKiwoom()
    fake.script(
        "ka10099",
        page(listing, cont=True, next_key="K"),
        page({**listing, "list": [halted, delisting, broken]}),
    )
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        events = await stock_list(client_for(ctx), "8")
        await ctx.aclose()
    instruments = [e for e in events if isinstance(e, Instrument)]
    assert len(instruments) == len(listing["list"]) + 2
    assert {i.kind for i in instruments} == {"etf"}
    first = instruments[0]
    assert first.extra["listed_shares"] == str(int(listing["list"][0]["listCount"]))
    assert first.extra["last_price_krw"] == str(int(listing["list"][0]["lastPrice"]))
    assert first.status == "live"
    status = {i.native_symbol: i.status for i in instruments[-2:]}
    assert status == {"000002": "halted", "000003": "delisting"}
    (letter,) = [e for e in events if isinstance(e, DeadLetter)]
    assert "missing code" in letter.reason
    assert fake.data_requests[0].json() == {"mrkt_tp": "8"}


@pytest.mark.parametrize(
    ("measure", "unit", "amt_qty_tp"), [("amount", "KRW million", "1"), ("quantity", "shares", "2")]
)
async def test_investor_flows_with_units(measure: str, unit: str, amt_qty_tp: str) -> None:
    answer = load("ka10059.response.json")
    fake = FakeKiwoom()
    fake.default("ka10059", HttpResponse.json(answer))
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        events = await investor_flows(
            client_for(ctx),
            "005930",
            start=_dt.date(2024, 11, 1),
            end=_dt.date(2024, 11, 7),
            measure=measure,
        )  # type: ignore[arg-type]
        await ctx.aclose()
    flows = [e for e in events if isinstance(e, InvestorFlow)]
    rows = sorted(answer["stk_invsr_orgn"], key=lambda r: r["dt"])
    assert [f.date for f in flows] == [_day(r["dt"]) for r in rows]
    for flow, row in zip(flows, rows, strict=True):
        assert flow.unit == unit and flow.measure == measure
        assert flow.individual == int(row["ind_invsr"])
        assert flow.foreign == int(row["frgnr_invsr"])
        assert flow.institution == int(row["orgn"])
        assert flow.breakdown["pension_fund"] == int(row["penfnd_etc"])
        assert flow.breakdown["private_equity"] == int(row["samo_fund"])
    body = fake.data_requests[0].json()
    assert body == {
        "dt": "20241107",
        "stk_cd": "005930",
        "amt_qty_tp": amt_qty_tp,
        "trde_tp": "0",
        "unit_tp": "1",
    }


async def test_ka10086_double_signs_and_foreign_quantity_only() -> None:
    answer = load("ka10086.response.json")
    fake = FakeKiwoom()
    fake.default("ka10086", HttpResponse.json(answer))
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        client = client_for(ctx)
        window = {"start": _dt.date(2024, 11, 20), "end": _dt.date(2024, 11, 25)}
        quantity = await daily_trading(client, "005930", measure="quantity", **window)
        amount = await daily_trading(client, "005930", measure="amount", **window)
        await ctx.aclose()
    newest_row = answer["daly_stkpc"][0]
    assert newest_row["ind_netprps"] == "--714"
    newest = [f for f in quantity if isinstance(f, InvestorFlow)][-1]
    assert newest.individual == -714 and newest.foreign == -266783
    assert newest.institution == 693 and newest.unit == "shares"
    assert all(f.foreign is None for f in amount if isinstance(f, InvestorFlow))
    assert [r.json()["indc_tp"] for r in fake.data_requests] == ["0", "1"]

    # merge: ka10086 fills what the ka10059 flow lacks (same day and measure)
    primary = [f for f in amount if isinstance(f, InvestorFlow)]
    holes = [msgspec.structs.replace(f, institution=None, individual=Decimal(1)) for f in primary]
    merged = merge_flows(holes, primary)
    assert [m.institution for m in merged] == [p.institution for p in primary]
    assert [m.individual for m in merged] == [1, 1]  # present values are kept
