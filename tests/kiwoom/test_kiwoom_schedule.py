"""Jobs and the KRX trading-day calendar (time controlled: explicit dates, no waiting)."""

from __future__ import annotations

import datetime as _dt
from zoneinfo import ZoneInfo

import pytest
from kiwoom_fake import FakeKiwoom, Progress, load, make_context, page
from marketfeed import DailyBar, Instrument, InvestorFlow, fire_times
from marketfeed.testing import HttpResponse, ReplayServer
from marketfeed_kiwoom import KiwoomSymbolError, cron_at, jobs_for, trading_day
from marketfeed_kiwoom.plugin import INFO

SEOUL = ZoneInfo("Asia/Seoul")


def job(name: str):  # type: ignore[no-untyped-def]
    return next(j for j in INFO.jobs if j.name == name)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (_dt.date(2025, 10, 6), False),  # Chuseok
        (_dt.date(2025, 10, 3), False),  # National Foundation Day (a Friday)
        (_dt.date(2025, 10, 10), True),  # ordinary Friday
        (_dt.date(2025, 10, 11), False),  # Saturday
        (_dt.date(2025, 12, 31), False),  # KRX year-end closing day (not a public holiday)
        (_dt.date(2025, 12, 30), True),
    ],
)
def test_trading_day(day: _dt.date, expected: bool) -> None:
    assert trading_day(day) is expected


def test_after_close_job_skips_the_chuseok_week() -> None:
    daily = job("daily_bars")
    assert daily.cron == "30 15 * * mon-fri" and daily.timezone == "Asia/Seoul"
    start = _dt.datetime(2025, 10, 2, 16, 0, tzinfo=SEOUL)  # Thursday, after the close
    fires = fire_times(daily, None, start, 3)
    # 3 Oct holiday, 4-5 weekend, 6-8 Chuseok, 9 Hangul Day, 11-12 weekend
    assert [f.astimezone(SEOUL).replace(tzinfo=None) for f in fires] == [
        _dt.datetime(2025, 10, 10, 15, 30),
        _dt.datetime(2025, 10, 13, 15, 30),
        _dt.datetime(2025, 10, 14, 15, 30),
    ]
    # on an ordinary day the job fires the same afternoon
    same_day = fire_times(daily, None, _dt.datetime(2025, 9, 8, 9, 0, tzinfo=SEOUL), 1)
    assert same_day[0].astimezone(SEOUL) == _dt.datetime(2025, 9, 8, 15, 30, tzinfo=SEOUL)


def test_morning_instruments_job_and_custom_times() -> None:
    assert job("instruments").cron == "0 8 * * mon-fri"
    assert {j.name: j.cron for j in jobs_for("16:05", "07:45")}["daily_bars"] == "5 16 * * mon-fri"
    assert cron_at("09:00") == "0 9 * * mon-fri"
    with pytest.raises(ValueError):
        cron_at("25:00")


@pytest.mark.anyio
async def test_daily_and_flow_jobs_run_over_symbols_with_progress() -> None:
    daily_rows = load("ka10081.response.json")
    fake = FakeKiwoom()
    fake.default("ka10081", page(daily_rows))
    fake.script("ka10059", HttpResponse.json({"return_code": 1902, "return_msg": "없음"}))
    fake.default("ka10059", HttpResponse.json(load("ka10059.response.json")))
    progress = Progress()
    options = {"symbols": ["005930", "000660"], "date": "2025-09-08", "days": 7}
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server, progress)
        batches = [b async for b in job("daily_bars").run(ctx, options)]
        flow_options = {**options, "date": "2024-11-07"}
        flow_batches = [b async for b in job("investor_flows").run(ctx, flow_options)]
        await ctx.aclose()
    assert len(batches) == 2  # one batch per symbol
    assert [{e.native_symbol for e in b} for b in batches] == [{"005930"}, {"000660"}]
    bars = [e for b in batches for e in b if isinstance(e, DailyBar)]
    assert len(bars) == 2 * len(daily_rows["stk_dt_pole_chart_qry"])
    assert progress.bars[0] == ["kiwoom daily bars", 2, 2, True]
    # the first symbol's amount query failed (1902): the job went on with the others
    flows = [e for b in flow_batches for e in b if isinstance(e, InvestorFlow)]
    assert {(f.native_symbol, f.measure) for f in flows} == {
        ("000660", "amount"),
        ("000660", "quantity"),
    }
    assert fake.revoked == fake.issued  # each job run released its lease


@pytest.mark.anyio
async def test_job_fails_when_every_symbol_fails() -> None:
    fake = FakeKiwoom()
    fake.default("ka10081", HttpResponse.json({"return_code": 1902, "return_msg": "없음"}))
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        with pytest.raises(KiwoomSymbolError):
            async for _ in job("daily_bars").run(ctx, {"symbols": ["000001"]}):
                pass
        await ctx.aclose()


@pytest.mark.anyio
async def test_instruments_job_merges_list_and_basic_info() -> None:
    listing = load("ka10099.response.json")
    info = load("ka10001.response.json")
    fake = FakeKiwoom()
    fake.default("ka10099", page(listing))
    fake.default("ka10001", HttpResponse.json(info))
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        batches = [
            b async for b in job("instruments").run(ctx, {"markets": ["8"], "symbols": ["005930"]})
        ]
        await ctx.aclose()
    assert len(batches) == 2
    assert len(batches[0]) == len(listing["list"]) and {i.kind for i in batches[0]} == {"etf"}
    (merged,) = batches[1]
    assert isinstance(merged, Instrument) and merged.kind == "etf"
    assert merged.extra["market_cap_100m_krw"] == info["mac"]  # from ka10001
    assert merged.extra["nxt_enable"] == "Y"  # from ka10099
