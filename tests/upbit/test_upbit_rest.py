"""Upbit REST: real candle and market bodies, paging, Remaining-Req and 429 handling
against the replay server's HTTP side."""

import datetime as dt
import itertools
import json
import math
from decimal import Decimal

import anyio
import pytest
from marketfeed import (
    BackfillRequest,
    Candle,
    PluginManager,
    Subscription,
    VenueError,
)
from marketfeed.testing import HttpRequest, HttpResponse, ReplayServer
from marketfeed_upbit import (
    TIMEFRAMES,
    RemainingReq,
    UpbitRest,
    candles_from_body,
    instruments_from_body,
    parse_remaining_req,
)
from upbit_testdata import DATA, rest_context

SMTM = DATA / "upbit.candles.smtm-20210130.http.jsonl"
CONVERTED = DATA / "upbit.candles.smtm-converted-20200220.http.jsonl"
DOCS_HTTP = DATA / "upbit.docs-20250730.http.jsonl"
MARKETS = DATA / "upbit.20210417.http.jsonl"


def _records(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def _utc(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def _open(row: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(row["candle_date_time_utc"]).replace(tzinfo=dt.UTC)


# ---------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    ("path", "channel"),
    [(SMTM, None), (CONVERTED, None), (DOCS_HTTP, "candle.1d")],
)
def test_real_candle_bodies_are_exact_and_closed_only_when_their_period_ended(path, channel):
    n = 0
    for rec in _records(path):
        if "/candles/" not in rec["url"]:
            continue
        if channel is None:
            unit = rec["url"].split("/minutes/")[1].split("?")[0]
            tf = TIMEFRAMES[f"candle.{unit}m"]
        else:
            tf = TIMEFRAMES[channel]
        rows = json.loads(rec["body"], parse_float=Decimal)
        received = _utc(rec["t"])
        candles = candles_from_body(rec["body"].encode(), tf, received)
        assert len(candles) == len(rows)
        for c, row in zip(candles, rows, strict=True):
            assert c.symbol == "BTC-KRW" and c.native_symbol == row["market"] == "KRW-BTC"
            assert c.open_time == _open(row) and c.timeframe == tf.timeframe
            for ours, theirs in (
                (c.open, row["opening_price"]),
                (c.high, row["high_price"]),
                (c.low, row["low_price"]),
                (c.close, row["trade_price"]),
                (c.volume, row["candle_acc_trade_volume"]),
                (c.quote_volume, row["candle_acc_trade_price"]),
            ):
                assert ours.as_tuple() == theirs.as_tuple()
            seconds = {"1d": 86400}.get(tf.timeframe, 60 * int(tf.channel[7:-1] or 0))
            assert c.closed == (_open(row) + dt.timedelta(seconds=seconds) <= received)
            n += 1
    assert n > 0


def test_the_forming_candle_is_not_closed_and_differs_between_responses() -> None:
    recs = [
        r
        for r in _records(SMTM)
        if json.loads(r["body"])[0]["candle_date_time_utc"].endswith("13:47:00")
    ]
    assert len(recs) == 3
    newest = [
        candles_from_body(r["body"].encode(), TIMEFRAMES["candle.1m"], _utc(r["t"]))[0]
        for r in recs
    ]
    assert {c.closed for c in newest} == {False}
    assert len({(c.close, c.volume) for c in newest}) > 1  # updated, same natural key
    assert len({(c.venue, c.symbol, c.timeframe, c.open_time) for c in newest}) == 1


def test_markets_become_instruments_for_krw_btc_and_usdt_quotes() -> None:
    (rec,) = _records(MARKETS)
    rows = json.loads(rec["body"])
    instruments = instruments_from_body(rec["body"].encode(), _utc(rec["t"]))
    assert len(instruments) == len(rows) == 294
    for inst, row in zip(instruments, rows, strict=True):
        quote, base = row["market"].split("-")
        assert (inst.symbol, inst.native_symbol) == (f"{base}-{quote}", row["market"])
        assert (inst.base, inst.quote, inst.kind) == (base, quote, "spot")
        assert inst.name == row["english_name"] and inst.extra["korean_name"] == row["korean_name"]
    assert {i.quote for i in instruments} == {"KRW", "BTC", "USDT"}


def test_market_alerts_from_the_documented_details_shape() -> None:
    # constructed from Upbit's "페어 목록 조회" response description (is_details=true)
    body = json.dumps(
        [
            {
                "market": "KRW-BTC",
                "korean_name": "비트코인",
                "english_name": "Bitcoin",
                "market_event": {
                    "warning": False,
                    "caution": {"PRICE_FLUCTUATIONS": True, "TRADING_VOLUME_SOARING": False},
                },
            },
            {
                "market": "BTC-ETH",
                "korean_name": "이더리움",
                "english_name": "Ethereum",
                "market_warning": "CAUTION",
            },
        ],
        ensure_ascii=False,
    ).encode()
    btc, eth = instruments_from_body(body, _utc(0))
    assert btc.extra == {
        "korean_name": "비트코인",
        "warning": "false",
        "caution": "PRICE_FLUCTUATIONS",
    }
    assert eth.symbol == "ETH-BTC" and eth.extra["market_warning"] == "CAUTION"


def test_remaining_req_header_parsing() -> None:
    assert parse_remaining_req("group=candles; min=600; sec=9") == RemainingReq("candles", 9)
    assert parse_remaining_req("group=default;sec=0") == RemainingReq("default", 0)
    assert parse_remaining_req(None) is None
    assert parse_remaining_req("group=x; sec=lots") is None


# ---------------------------------------------------------------------- over HTTP


def _minute_rows() -> list[dict]:
    """Real 1-minute rows of 2020-02-20 08:00..11:59 UTC (two responses), newest first."""
    rows = {}
    for rec in _records(CONVERTED):
        if "/minutes/1?" in rec["url"]:
            for row in json.loads(rec["body"]):
                rows[row["candle_date_time_utc"]] = row
    return [rows[k] for k in sorted(rows, reverse=True)]


def _upbit_like(rows: list[dict], sec=lambda i: 9):
    """A handler that pages ``rows`` like Upbit: ``count`` rows opening before ``to``."""
    calls = []

    def handler(request: HttpRequest) -> HttpResponse:
        calls.append(request)
        to = dt.datetime.fromisoformat(request.query["to"][0])
        count = int(request.query["count"][0])
        assert request.query["market"] == ["KRW-BTC"]
        page = [r for r in rows if _open(r) < to][:count]
        headers = {"Remaining-Req": f"group=candles; min=600; sec={sec(len(calls))}"}
        return HttpResponse(200, json.dumps(page), headers)

    return handler, calls


@pytest.mark.anyio
async def test_backfill_pages_back_with_to_and_count() -> None:
    rows = _minute_rows()
    assert len(rows) == 240
    start = dt.datetime(2020, 2, 20, 8, 30, tzinfo=dt.UTC)
    end = dt.datetime(2020, 2, 20, 12, 0, tzinfo=dt.UTC)
    expected = {_open(r) for r in rows if start <= _open(r) < end}
    async with ReplayServer() as server:
        handler, calls = _upbit_like(rows)
        server.add_http_handler("GET", "/v1/candles/minutes/1", handler)
        ctx = rest_context(server, candle_page_size=100)
        info = PluginManager().venue("upbit")
        request = BackfillRequest(
            subscriptions=(
                Subscription(venue="upbit", channel="candle.1m", symbol="KRW-BTC"),
                Subscription(venue="upbit", channel="orderbook", symbol="KRW-BTC"),  # no REST
            ),
            start=start,
            end=end,
        )
        got: list[Candle] = []
        with anyio.fail_after(20):
            async for batch in info.backfill(request, ctx):
                assert len(batch) <= 100
                got.extend(batch)
        await ctx.aclose()
    assert sorted(c.open_time for c in got) == sorted(expected)  # each once, nothing outside
    assert len(got) == 210
    assert [c.query["to"][0] for c in calls] == [
        "2020-02-20T12:00:00Z",
        "2020-02-20T10:20:00Z",
        "2020-02-20T08:40:00Z",
    ]
    assert {c.query["count"][0] for c in calls} == {"100"}
    assert len(calls) == math.ceil((len(expected) + 30) / 100)


@pytest.mark.anyio
async def test_remaining_req_at_the_floor_waits_for_the_next_second() -> None:
    rows = _minute_rows()
    async with ReplayServer() as server:
        handler, calls = _upbit_like(rows, sec=lambda i: 5 if i != 2 else 1)
        server.add_http_handler("GET", "/v1/candles/minutes/1", handler)
        rest = UpbitRest(rest_context(server, remaining_req_floor=1))
        tf = TIMEFRAMES["candle.1m"]
        to = dt.datetime(2020, 2, 20, 12, 0, tzinfo=dt.UTC)
        with anyio.fail_after(20):
            for _ in range(4):
                await rest.candle_page("KRW-BTC", tf, to, 5)
        await rest.context.aclose()
    gaps = [b.time - a.time for a, b in itertools.pairwise(calls)]
    assert gaps[1] >= 0.95  # after "sec=1" the group held for a second
    assert gaps[0] < 0.6 and gaps[2] < 0.6


@pytest.mark.anyio
async def test_aiolimiter_fallback_keeps_the_configured_rate() -> None:
    rows = _minute_rows()
    async with ReplayServer() as server:
        handler, calls = _upbit_like(rows)
        server.add_http_handler("GET", "/v1/candles/minutes/1", handler)
        ctx = rest_context(server, rest_rate=4)
        rest = UpbitRest(ctx)
        to = dt.datetime(2020, 2, 20, 12, 0, tzinfo=dt.UTC)
        t0 = anyio.current_time()
        with anyio.fail_after(20):
            for _ in range(8):
                await rest.candle_page("KRW-BTC", TIMEFRAMES["candle.1m"], to, 1)
        elapsed = anyio.current_time() - t0
        await ctx.aclose()
        assert "upbit:rest:candles" in ctx.limiters
    assert len(calls) == 8
    assert elapsed >= 0.95  # 4 at once, then one per 0.25 s


@pytest.mark.anyio
async def test_429_backs_off_then_succeeds() -> None:
    rows = _minute_rows()
    async with ReplayServer() as server:
        inner, _ = _upbit_like(rows)
        seen = []

        def handler(request: HttpRequest) -> HttpResponse:
            seen.append(request.time)
            if len(seen) == 1:
                return HttpResponse(
                    429, '{"error":{"name":"too_many_requests"}}', {"Retry-After": "0.3"}
                )
            return inner(request)

        server.add_http_handler("GET", "/v1/candles/minutes/1", handler)
        rest = UpbitRest(rest_context(server, retry_wait_initial=0.01, retry_wait_max=0.05))
        with anyio.fail_after(20):
            page = await rest.candle_page(
                "KRW-BTC", TIMEFRAMES["candle.1m"], dt.datetime(2020, 2, 20, 12, tzinfo=dt.UTC), 3
            )
        await rest.context.aclose()
    assert [c.open_time.minute for c in page] == [59, 58, 57]
    assert len(seen) == 2 and seen[1] - seen[0] >= 0.28


@pytest.mark.anyio
async def test_429_forever_gives_up_after_the_attempts_and_418_is_not_retried() -> None:
    async with ReplayServer() as server:
        statuses = {"/v1/candles/minutes/1": 429, "/v1/candles/days": 418}
        hits: dict[str, int] = {}

        def handler(request: HttpRequest) -> HttpResponse:
            hits[request.path] = hits.get(request.path, 0) + 1
            return HttpResponse(statuses[request.path], "{}", {"Retry-After": "0"})

        for path in statuses:
            server.add_http_handler("GET", path, handler)
        rest = UpbitRest(
            rest_context(server, retry_attempts=3, retry_wait_initial=0.0, retry_wait_max=0.0)
        )
        to = dt.datetime(2020, 2, 20, tzinfo=dt.UTC)
        with anyio.fail_after(20):
            with pytest.raises(VenueError, match="after 3 attempts"):
                await rest.candle_page("KRW-BTC", TIMEFRAMES["candle.1m"], to, 1)
            with pytest.raises(VenueError) as blocked:
                await rest.candle_page("KRW-BTC", TIMEFRAMES["candle.1d"], to, 1)
        await rest.context.aclose()
    assert hits == {"/v1/candles/minutes/1": 3, "/v1/candles/days": 1}
    assert blocked.value.code == "418"


@pytest.mark.anyio
async def test_an_error_body_becomes_a_venue_error_with_its_name() -> None:
    async with ReplayServer() as server:
        server.add_http_handler(
            "GET",
            "/v1/candles/days",
            lambda r: HttpResponse(404, '{"error":{"message":"Code not found","name":404}}'),
        )
        rest = UpbitRest(rest_context(server))
        with anyio.fail_after(10), pytest.raises(VenueError, match="Code not found") as err:
            await rest.candle_page("KRW-NOPE", TIMEFRAMES["candle.1d"], None, 1)
        await rest.context.aclose()
    assert err.value.code == "404"


@pytest.mark.anyio
async def test_instruments_job_asks_for_details_and_yields_the_recorded_markets() -> None:
    (rec,) = _records(MARKETS)
    async with ReplayServer() as server:
        queries = []

        def handler(request: HttpRequest) -> HttpResponse:
            queries.append(request.query)
            return HttpResponse(200, rec["body"], {"Remaining-Req": "group=market; min=600; sec=9"})

        server.add_http_handler("GET", "/v1/market/all", handler)
        ctx = rest_context(server)
        (job,) = PluginManager().venue("upbit").jobs
        batches = []
        with anyio.fail_after(10):
            async for batch in job.run(ctx, {}):
                batches.append(batch)
        await ctx.aclose()
    assert queries == [{"is_details": ["true"]}]
    assert len(batches) == 1 and len(batches[0]) == 294
