"""REST: instruments (recorded bodies) and candle paging/backfill against the replay server.

Instrument bodies are the recorded 2022-05-13 responses. No candle series longer than 4
rows was ever recorded, so the candle endpoints here are **constructed**: a handler that
applies OKX's documented paging (``after``: older than, ``before``: newer than, newest
first, ``limit``) to the real rows of ``okx.candles.hummingbot.http.jsonl`` (1H) and
``okx.candles.nautilus.http.jsonl`` (1m), with ``/market/candles`` holding only the newest
rows (as OKX keeps only the latest 1,440) and ``/market/history-candles`` the older ones.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import stamina
from marketfeed import (
    BackfillRequest,
    Candle,
    Subscription,
    VenueError,
)
from marketfeed.testing import HttpRequest, HttpResponse, ReplayServer, read_http_capture
from marketfeed_okx import OkxRest
from marketfeed_okx import plugin as okx
from okx_testdata import (
    HTTP_BOOKS,
    HTTP_CANDLES_1H,
    HTTP_CANDLES_1M,
    HTTP_INSTRUMENTS,
    ProgressLog,
    records,
    utc_ms,
    venue_context,
)

pytestmark = pytest.mark.anyio


def _context(server: ReplayServer, progress: ProgressLog | None = None, **opts: Any) -> Any:
    return venue_context({"rest": server.http_url}, progress, **opts)


def _rows(path: Any) -> list[list[str]]:
    return json.loads(records(path)[0]["body"])["data"]


class _CandleServer:
    """Constructed OKX candle endpoints over real rows (see the module docstring)."""

    def __init__(self, rows: list[list[str]], recent: int) -> None:
        self.rows = sorted(rows, key=lambda r: -int(r[0]))  # newest first
        self.recent = recent

    def _page(self, rows: list[list[str]], request: HttpRequest) -> HttpResponse:
        q = {k: v[0] for k, v in request.query.items()}
        out = [
            r
            for r in rows
            if ("after" not in q or int(r[0]) < int(q["after"]))
            and ("before" not in q or int(r[0]) > int(q["before"]))
        ]
        if "before" in q and "after" not in q:
            out = out[-int(q.get("limit", 100)) :]  # the rows just newer than `before`
        out = out[: int(q.get("limit", 100))]
        return HttpResponse.json({"code": "0", "msg": "", "data": out})

    def candles(self, request: HttpRequest) -> HttpResponse:
        return self._page(self.rows[: self.recent], request)

    def history(self, request: HttpRequest) -> HttpResponse:
        return self._page(self.rows, request)

    def install(self, server: ReplayServer) -> None:
        server.add_http_handler("GET", "/api/v5/market/candles", self.candles)
        server.add_http_handler("GET", "/api/v5/market/history-candles", self.history)


async def test_instruments_from_the_recorded_responses() -> None:
    recorded = read_http_capture(HTTP_INSTRUMENTS)
    async with ReplayServer() as server:
        server.add_http(recorded)
        rest = OkxRest(_context(server))
        spot = await rest.instruments("SPOT")
        futures = await rest.instruments("FUTURES")
        options = await rest.instruments("OPTION", uly="BTC-USD")
    bodies = {r.url.split("instType=")[1]: json.loads(r.body)["data"] for r in recorded}
    assert len(spot) == len(bodies["SPOT"]) > 400
    assert len(futures) == len(bodies["FUTURES"])
    assert len(options) == len(bodies["OPTION&uly=BTC-USD"]) == 20
    btc = next(i for i in spot if i.native_symbol == "BTC-USDT")
    row = next(r for r in bodies["SPOT"] if r["instId"] == "BTC-USDT")
    assert (btc.kind, btc.base, btc.quote) == ("spot", "BTC", "USDT")
    assert (btc.tick_size, btc.lot_size, btc.min_size) == (
        Decimal(row["tickSz"]),
        Decimal(row["lotSz"]),
        Decimal(row["minSz"]),
    )
    fut = next(i for i in futures if i.native_symbol == "BTC-USD-220527")
    frow = next(r for r in bodies["FUTURES"] if r["instId"] == "BTC-USD-220527")
    assert (fut.kind, fut.base, fut.quote, fut.settle) == ("futures", "BTC", "USD", "BTC")
    assert fut.expiry == utc_ms(frow["expTime"]) == dt.datetime(2022, 5, 27, 8, tzinfo=dt.UTC)
    assert fut.contract_value == Decimal(frow["ctVal"])
    assert fut.extra["ctType"] == frow["ctType"] == "inverse"
    opt = options[0]
    orow = bodies["OPTION&uly=BTC-USD"][0]
    assert opt.kind == "option" and opt.option_type == orow["optType"]
    assert opt.strike == Decimal(orow["stk"])


async def test_every_recorded_instruments_response_parses() -> None:
    recorded = read_http_capture(HTTP_INSTRUMENTS)
    async with ReplayServer() as server:
        server.add_http(recorded)
        rest = OkxRest(_context(server))
        for rec in recorded:
            query = dict(q.split("=") for q in rec.url.split("?")[1].split("&"))
            got = await rest.instruments(query["instType"], uly=query.get("uly"))
            rows = json.loads(rec.body)["data"]
            assert [i.native_symbol for i in got] == [r["instId"] for r in rows]
            kinds = {"SPOT": "spot", "SWAP": "swap", "FUTURES": "futures", "OPTION": "option"}
            assert {i.kind for i in got} == {kinds[query["instType"]]}
            for i, r in zip(got, rows, strict=True):
                assert i.tick_size == Decimal(r["tickSz"]) and i.status == r["state"]


async def test_recorded_order_book_bodies() -> None:
    recorded = read_http_capture(HTTP_BOOKS)
    async with ReplayServer() as server:
        server.add_http(recorded)
        ctx = _context(server)
        rest = OkxRest(ctx)
        for rec in recorded:
            inst = rec.url.split("instId=")[1]
            book = await rest.order_book(inst)
            (data,) = json.loads(rec.body)["data"]
            assert book.native_symbol == book.symbol == inst
            assert book.bids == tuple((Decimal(p), Decimal(s)) for p, s, *_ in data["bids"])
            assert book.asks == tuple((Decimal(p), Decimal(s)) for p, s, *_ in data["asks"])
            assert book.event_time == utc_ms(data["ts"]) and not book.verified
    assert "okx:rest:books" in ctx.limiters


async def test_candle_paging_switches_to_history_and_covers_the_window() -> None:
    rows = _rows(HTTP_CANDLES_1H)  # 2024-01-16 16:00 .. 19:00 UTC, newest first
    fake = _CandleServer(rows, recent=2)
    async with ReplayServer() as server:
        fake.install(server)
        ctx = _context(server, candle_page_limit=2, history_candle_page_limit=2)
        rest = OkxRest(ctx)
        start = dt.datetime(2024, 1, 16, 16, 30, tzinfo=dt.UTC)
        end = dt.datetime(2024, 1, 16, 19, 10, tzinfo=dt.UTC)
        pages = [p async for p in rest.iter_candles("BTC-USDT", "1H", start, end)]
        requests = [(r.path, r.query.get("after", [""])[0]) for r in server.requests]
    got = [c for page in pages for c in page]
    # every bar overlapping [16:30, 19:10]: 16:00 (open at the start) .. 19:00
    assert [c.open_time.hour for c in got] == [19, 18, 17, 16]
    by_ts = {int(r[0]): r for r in rows}
    for c in got:
        row = by_ts[int(c.open_time.timestamp() * 1000)]
        assert isinstance(c, Candle) and c.timeframe == "1h" and c.closed
        assert (c.open, c.high, c.low, c.close) == tuple(Decimal(x) for x in row[1:5])
        assert (c.volume, c.quote_volume) == (Decimal(row[5]), Decimal(row[7]))
    end_ms = str(int(end.timestamp() * 1000) + 1)
    ts18, ts16 = str(int(rows[1][0])), str(int(rows[3][0]))
    assert requests == [
        ("/api/v5/market/candles", end_ms),
        ("/api/v5/market/candles", ts18),  # beyond the recent window: empty
        ("/api/v5/market/history-candles", ts18),
        ("/api/v5/market/history-candles", ts16),  # nothing older: done
    ]
    assert {"okx:rest:candles", "okx:rest:history-candles"} <= set(ctx.limiters._limiters)


async def test_before_pages_forward_and_swap_volumes() -> None:
    rows = _rows(HTTP_CANDLES_1M)  # BTC-USDT-SWAP 1m, 2 rows
    fake = _CandleServer(rows, recent=2)
    async with ReplayServer() as server:
        fake.install(server)
        rest = OkxRest(_context(server))
        older = int(rows[1][0])
        (newer,) = await rest.candles("BTC-USDT-SWAP", "1m", before=older)
        query = server.requests[-1].query
    assert newer.open_time == utc_ms(rows[0][0])
    assert query == {
        "instId": ["BTC-USDT-SWAP"],
        "bar": ["1m"],
        "limit": ["300"],
        "before": [str(older)],
    }
    # swaps: vol in contracts, volCcyQuote in USDT
    assert newer.volume == Decimal(rows[0][5]) and newer.quote_volume == Decimal(rows[0][7])


async def test_okx_error_code_is_a_venue_error() -> None:
    async with ReplayServer() as server:
        server.add_http_handler(
            "GET",
            "/api/v5/market/candles",
            lambda r: HttpResponse.json(
                {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
            ),
        )
        with pytest.raises(VenueError) as exc:
            await OkxRest(_context(server)).candles("NOPE-USDT", "1m")
    assert exc.value.code == "51001" and "Instrument ID does not exist" in str(exc.value)


@pytest.fixture
def no_backoff() -> Iterator[None]:
    with stamina.set_testing(True, attempts=3):
        yield


@pytest.mark.usefixtures("no_backoff")
async def test_server_errors_are_retried() -> None:
    calls: list[int] = []
    rows = _rows(HTTP_CANDLES_1M)

    def flaky(request: HttpRequest) -> HttpResponse:
        calls.append(1)
        if len(calls) < 3:
            return HttpResponse(status=503, body="upstream unavailable")
        return HttpResponse.json({"code": "0", "msg": "", "data": rows})

    async with ReplayServer() as server:
        server.add_http_handler("GET", "/api/v5/market/candles", flaky)
        page = await OkxRest(_context(server)).candles("BTC-USDT-SWAP", "1m")
    assert len(calls) == 3 and len(page) == 2

    async with ReplayServer() as server:
        server.add_http_handler(
            "GET", "/api/v5/market/candles", lambda r: HttpResponse(status=502, body="bad")
        )
        with pytest.raises(VenueError, match="HTTP 502 after"):
            await OkxRest(_context(server, rest_attempts=3)).candles("BTC-USDT-SWAP", "1m")


async def test_backfill_yields_candles_of_candle_subscriptions() -> None:
    rows = _rows(HTTP_CANDLES_1H)
    fake = _CandleServer(rows, recent=4)
    request = BackfillRequest(
        subscriptions=(
            Subscription(venue="okx", channel="candle1H", symbol="BTC-USDT"),
            Subscription(venue="okx", channel="books", symbol="BTC-USDT"),  # no REST history
        ),
        start=dt.datetime(2024, 1, 16, 17, 30, tzinfo=dt.UTC),
        end=dt.datetime(2024, 1, 16, 18, 30, tzinfo=dt.UTC),
    )
    progress = ProgressLog()
    async with ReplayServer() as server:
        fake.install(server)
        ctx = _context(server, progress)
        batches = [b async for b in okx.INFO.backfill(request, ctx)]  # type: ignore[misc]
    got = [c for b in batches for c in b]
    assert [c.open_time.hour for c in got] == [18, 17]
    assert all(isinstance(c, Candle) and c.symbol == "BTC-USDT" for c in got)
    assert progress.log == ["start okx candles backfill 2", "advance 2", "close"]
