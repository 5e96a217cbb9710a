"""The jobs end to end against a fake Naver (replay servers, one per host)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from marketfeed import (
    ConfigError,
    DeadLetter,
    EtfHolding,
    EtfHoldingChange,
    Instrument,
    PluginManager,
)
from marketfeed.testing import HttpRequest, HttpResponse
from marketfeed_naver_etf import (
    ENDPOINTS,
    ETF_HOLDINGS_JOB,
    ETF_LIST_JOB,
    NaverEtfConfig,
    is_krx_trading_day,
    plugin,
    run_etf_holdings,
    run_etf_list,
)
from naver_etf_helpers import (
    FakeNaver,
    RecordingProgress,
    collect,
    data_json,
    fast_config,
    make_context,
    wisereport_page,
)

pytestmark = pytest.mark.anyio


def _of(batches: list[list[object]], kind: type) -> list:  # type: ignore[type-arg]
    return [e for batch in batches for e in batch if isinstance(e, kind)]


async def test_etf_list_job_decodes_the_euc_kr_list(fake_naver: FakeNaver, tmp_path: Path) -> None:
    progress = RecordingProgress()
    context = make_context(fast_config(tmp_path), fake_naver.endpoints, progress)
    with anyio.fail_after(10):
        batches = await collect(run_etf_list(context, {}))
    await context.aclose()
    [batch] = batches
    expected = data_json("etfItemList.response.json")["result"]["etfItemList"]
    assert all(isinstance(i, Instrument) for i in batch)
    assert [(i.native_symbol, i.name) for i in batch] == [
        (r["itemcode"], r["itemname"]) for r in expected
    ]
    [request] = fake_naver.requests("list")
    assert request.query["sortOrder"] == ["desc"]
    assert progress.bars[0]["advanced"] == 1 and progress.bars[0]["closed"]


async def test_holdings_from_both_sources_for_kodex200(
    fake_naver: FakeNaver, tmp_path: Path
) -> None:
    progress = RecordingProgress()
    context = make_context(fast_config(tmp_path, etfs=["069500"]), fake_naver.endpoints, progress)
    with anyio.fail_after(10):
        batches = await collect(run_etf_holdings(context, {}))
    await context.aclose()
    holdings = _of(batches, EtfHolding)
    grid = data_json("wisereport.CU_data.069500.first9rows.recorded.json")["grid_data"]
    assert [h.constituent_name for h in holdings] == [g["STK_NM_KOR"] for g in grid]
    assert all(h.constituent_symbol and h.source == "wisereport+naver-mobile" for h in holdings)
    assert _of(batches, EtfHoldingChange) == []  # first run: baseline
    assert _of(batches, DeadLetter) == []
    assert fake_naver.requests("list") == []  # a configured subset needs no list
    [mobile] = fake_naver.requests("mobile")
    [wise] = fake_naver.requests("wisereport")
    assert wise.query == {"cmp_cd": ["069500"]}
    for request in (mobile, wise):
        agent = request.headers["user-agent"]
        assert "marketfeed" in agent and "https://example.test/contact" in agent
    assert wise.headers["referer"] == "https://finance.naver.com/"
    assert progress.bars == [
        {"description": "naver_etf: ETF constituents", "total": 1, "advanced": 1, "closed": True}
    ]
    assert (tmp_path / "state" / "069500.json").exists()


@pytest.mark.parametrize(
    ("sources", "codes"),
    [
        (["mobile"], ["360750", "0193T0", "114800", "0162Z0"]),
        (["wisereport"], ["148070", "132030"]),
    ],
)
async def test_holdings_edge_case_etfs(
    fake_naver: FakeNaver, tmp_path: Path, sources: list[str], codes: list[str]
) -> None:
    config = fast_config(tmp_path, etfs=codes, sources=sources)
    context = make_context(config, fake_naver.endpoints)
    with anyio.fail_after(10):
        batches = await collect(run_etf_holdings(context, {}))
    await context.aclose()
    assert len(batches) == len(codes)
    assert _of(batches, DeadLetter) == []
    for code, batch in zip(codes, batches, strict=True):
        if sources == ["mobile"]:
            doc = json.loads(fake_naver.mobile_docs[code])
            rows = doc["etfTop10MajorConstituentAssets"]
            names = [r["itemName"] for r in rows]
            weights = [
                None if r["etfWeight"] == "-" else Decimal(r["etfWeight"][:-1]) for r in rows
            ]
        else:
            rows = data_json(f"wisereport.CU_data.{code}.recorded.json")["grid_data"]
            names = [r["STK_NM_KOR"] for r in rows]
            weights = [None for _ in rows]  # null in both recorded baskets
        assert [h.etf_symbol for h in batch] == [code] * len(rows)
        assert [h.constituent_name for h in batch] == names
        assert [h.weight_pct for h in batch] == weights


async def test_all_etfs_from_the_list_with_a_limit(fake_naver: FakeNaver, tmp_path: Path) -> None:
    context = make_context(fast_config(tmp_path), fake_naver.endpoints)
    with anyio.fail_after(10):
        batches = await collect(run_etf_holdings(context, {"etfs": "all", "limit": 2}))
    await context.aclose()
    listed = [
        r["itemcode"] for r in data_json("etfItemList.response.json")["result"]["etfItemList"]
    ]
    assert len(fake_naver.requests("list")) == 1
    assert len(batches) == 2
    assert [b[0].etf_symbol for b in batches if isinstance(b[0], EtfHolding)] == ["069500"]
    # 153130 has no recorded documents: the fake answers 404, which is not retried.
    [dead] = _of(batches, DeadLetter)
    assert dead.source == f"job:naver_etf/etf_holdings/{listed[1]}" and "HTTP 404" in dead.reason
    assert (
        len([r for r in fake_naver.requests("wisereport") if r.query["cmp_cd"] == [listed[1]]]) == 1
    )


async def test_one_failing_etf_does_not_stop_the_others(
    fake_naver: FakeNaver, tmp_path: Path
) -> None:
    fake_naver.overrides[("mobile", "0193T0")] = lambda r: HttpResponse(500, "boom")
    config = fast_config(tmp_path, etfs=["360750", "0193T0", "114800"], sources=["mobile"])
    context = make_context(config, fake_naver.endpoints)
    with anyio.fail_after(10):
        batches = await collect(run_etf_holdings(context, {}))
    await context.aclose()
    assert len(batches) == 3
    [dead] = batches[1]
    assert isinstance(dead, DeadLetter) and dead.venue == "naver_etf"
    assert (
        "HTTP 500 after 3 attempts" in dead.reason
        and "/api/stock/0193T0/etfAnalysis" in dead.reason
    )
    assert json.loads(dead.payload)["etf"] == "0193T0"
    assert {h.etf_symbol for h in batches[0] + batches[2]} == {"360750", "114800"}
    tried = [r for r in fake_naver.requests("mobile") if "0193T0" in r.path]
    assert len(tried) == config.retry_attempts  # retried with backoff, then given up
    assert not (tmp_path / "state" / "0193T0.json").exists()


async def test_transient_errors_and_timeouts_are_retried(
    fake_naver: FakeNaver, tmp_path: Path
) -> None:
    calls = {"mobile": 0, "wisereport": 0}

    def flaky(request: HttpRequest) -> HttpResponse:
        calls["mobile"] += 1
        if calls["mobile"] < 3:
            return HttpResponse(503, "busy")
        return HttpResponse(body=fake_naver.mobile_docs["069500"])

    async def slow_once(request: HttpRequest) -> HttpResponse:
        calls["wisereport"] += 1
        if calls["wisereport"] == 1:
            await anyio.sleep(1.0)  # longer than the client's timeout
        return HttpResponse(body=fake_naver.wisereport_pages["069500"])

    fake_naver.overrides[("mobile", "069500")] = flaky
    fake_naver.overrides[("wisereport", "069500")] = slow_once  # type: ignore[assignment]
    context = make_context(
        fast_config(tmp_path, etfs=["069500"], timeout=0.3), fake_naver.endpoints
    )
    with anyio.fail_after(10):
        batches = await collect(run_etf_holdings(context, {}))
    await context.aclose()
    assert _of(batches, DeadLetter) == []
    assert len(_of(batches, EtfHolding)) == 9
    assert calls == {"mobile": 3, "wisereport": 2}


async def test_layout_change_becomes_a_dead_letter_with_the_clear_error(
    fake_naver: FakeNaver, tmp_path: Path
) -> None:
    # CONSTRUCTED page: summary_data present, CU_data gone (as after a redesign).
    fake_naver.wisereport_pages["148070"] = wisereport_page(
        data_json("wisereport.summary_data.148070.recorded.json"), None
    )
    config = fast_config(tmp_path, etfs=["148070", "132030"], sources=["wisereport"])
    context = make_context(config, fake_naver.endpoints)
    with anyio.fail_after(10):
        batches = await collect(run_etf_holdings(context, {}))
    await context.aclose()
    [dead] = batches[0]
    assert isinstance(dead, DeadLetter)
    assert "LayoutChanged" in dead.reason and "var CU_data" in dead.reason
    assert "summary_data" in json.loads(dead.payload)["body"]  # the page is kept
    assert len(batches[1]) == 6 and all(isinstance(h, EtfHolding) for h in batches[1])


async def test_changes_between_two_runs(fake_naver: FakeNaver, tmp_path: Path) -> None:
    config = fast_config(tmp_path, etfs=["069500"], weight_threshold=0.3)
    context = make_context(config, fake_naver.endpoints)
    with anyio.fail_after(10):
        first = await collect(run_etf_holdings(context, {}))
    assert _of(first, EtfHoldingChange) == []
    # CONSTRUCTED next-day basket from the recorded rows: 한화에어로스페이스 dropped,
    # 삼성물산 added, 삼성전자 -0.51 pp, SK하이닉스 +0.20 pp (below the threshold).
    grid = data_json("wisereport.CU_data.069500.first9rows.recorded.json")["grid_data"]
    rows = [dict(g, TRD_DT="2026-09-29") for g in grid if g["STK_NM_KOR"] != "한화에어로스페이스"]
    rows[0]["ETF_WEIGHT"] = 33.66
    rows[1]["ETF_WEIGHT"] = 27.45
    rows.append(
        {
            "TRD_DT": "2026-09-29",
            "AGMT_STK_CNT": 143.0,
            "STK_NM_KOR": "삼성물산",
            "ETF_WEIGHT": 0.98,
        }
    )
    summary = {"CMP_CD": "069500", "CMP_KOR": "KODEX 200"}
    fake_naver.wisereport_pages["069500"] = wisereport_page(summary, {"grid_data": rows})
    with anyio.fail_after(10):
        second = await collect(run_etf_holdings(context, {}))
        # The same day again: the same changes (idempotent re-runs).
        third = await collect(run_etf_holdings(context, {}))
    await context.aclose()
    changes = _of(second, EtfHoldingChange)
    summary_rows = [(c.change, c.constituent_key, c.constituent_name) for c in changes]
    assert summary_rows == [
        ("removed", "012450", "한화에어로스페이스"),
        ("added", "028260", "삼성물산"),  # code from the mobile top 10
        ("weight", "005930", "삼성전자"),
    ]
    weight = changes[2]
    assert (weight.old_weight_pct, weight.new_weight_pct) == (Decimal("34.17"), Decimal("33.66"))
    assert weight.as_of == dt.date(2026, 9, 29) and weight.previous_as_of == dt.date(2026, 9, 28)
    again = _of(third, EtfHoldingChange)
    assert [(c.change, c.constituent_key) for c in again] == [
        (c.change, c.constituent_key) for c in changes
    ]


async def test_rate_limit_one_request_per_second_per_host(
    fake_naver: FakeNaver, tmp_path: Path
) -> None:
    # Default politeness (rate 1/s per host); three ETFs, both sources, plus the list.
    config = NaverEtfConfig(etfs="all", state_dir=str(tmp_path / "state"), retry_wait_initial=0.01)
    context = make_context(config, fake_naver.endpoints)
    with anyio.fail_after(20):
        batches = await collect(run_etf_holdings(context, {"limit": 3}))
    await context.aclose()
    assert len(batches) == 3
    counts = {}
    for host in ENDPOINTS:
        times = sorted(r.time for r in fake_naver.requests(host))
        counts[host] = len(times)
        # The limiter spaces requests one second apart when they are sent; the server
        # stamps them on arrival, which scheduling on a loaded machine can shift by a few
        # tens of milliseconds. A burst (the bug this guards against) arrives together.
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap >= 0.9 for gap in gaps), (host, gaps)
        for t in times:
            assert sum(1 for u in times if t <= u < t + 0.9) == 1
    assert counts == {"list": 1, "mobile": 3, "wisereport": 3}


async def test_bad_options_and_codes_are_config_errors(
    fake_naver: FakeNaver, tmp_path: Path
) -> None:
    context = make_context(fast_config(tmp_path), fake_naver.endpoints)
    with pytest.raises(ConfigError, match=r"schedules\.options\.bogus"):
        await collect(run_etf_holdings(context, {"bogus": 1}))
    with pytest.raises(ConfigError, match=r"schedules\.options\.etfs"):
        await collect(run_etf_holdings(context, {"etfs": ["../x"]}))
    with pytest.raises(ValueError, match="etfs"):
        NaverEtfConfig(etfs=["12345"])
    await context.aclose()


def test_plugin_registration_and_jobs() -> None:
    manager = PluginManager([plugin], entry_points=False)
    info = manager.venue("naver_etf")
    assert info.endpoints == {
        "list": "https://finance.naver.com",
        "mobile": "https://m.stock.naver.com",
        "wisereport": "https://navercomp.wisereport.co.kr",
    }
    assert info.config_schema is NaverEtfConfig
    assert [job.name for job in info.jobs] == ["etf_list", "etf_holdings"]
    assert info.capabilities == ("scheduled",)
    for job in (ETF_LIST_JOB, ETF_HOLDINGS_JOB):
        assert job.timezone == "Asia/Seoul" and job.cron.endswith("mon-fri")
        assert int(job.cron.split()[1]) >= 16  # after the 15:30 KST close
        assert job.trading_days is is_krx_trading_day


@pytest.mark.parametrize(
    ("day", "trading"),
    [
        (dt.date(2026, 9, 28), True),  # Monday
        (dt.date(2026, 9, 26), False),  # Saturday
        (dt.date(2026, 9, 25), False),  # Chuseok
        (dt.date(2026, 1, 1), False),  # New Year
        (dt.date(2026, 12, 31), False),  # KRX year-end closing day
    ],
)
def test_trading_days(day: dt.date, trading: bool) -> None:
    assert is_krx_trading_day(day) is trading
