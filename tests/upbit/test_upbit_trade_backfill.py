"""Upbit trade gap backfill through ``/v1/trades/ticks`` against the replay server.

The REST bodies are **constructed** from the real recorded WebSocket trades of
``upbit.20210405.ws.1.jsonl``: each SIMPLE trade frame becomes the documented REST row
(Upbit reference "최근 체결 내역": ``market``, ``trade_date_utc``, ``trade_time_utc``,
``timestamp``, ``trade_price``, ``trade_volume``, ``prev_closing_price``, ``change_price``,
``ask_bid``, ``sequential_id``) with every number kept as its exact recorded text. The
handler pages like Upbit: newest first, ``to`` (``HHmmss``, exclusive), ``cursor`` (older
than that ``sequential_id``), ``days_ago`` relative to the latest trading day, ``count``.
"""

import datetime as dt
from decimal import Decimal

import anyio
import msgspec
import pytest
from marketfeed import (
    BackfillRequest,
    PluginManager,
    Subscription,
    Trade,
)
from marketfeed.testing import HttpRequest, HttpResponse, ReplayServer
from marketfeed_upbit import trades_from_body
from upbit_testdata import CAPTURE_2021, make_normaliser, payload, received, rest_context, utc

_encode = msgspec.json.Encoder(decimal_format="number").encode
_decode = msgspec.json.Decoder(float_hook=Decimal).decode


def _ws_trades() -> list[dict]:
    """The recorded SIMPLE trade frames, numbers as exact Decimals (plain msgspec)."""
    out = []
    for rec in received(CAPTURE_2021):
        msg = _decode(payload(rec))
        if msg.get("ty") == "trade":
            out.append(msg)
    return out


def _rest_row(m: dict) -> dict:
    return {
        "market": m["cd"],
        "trade_date_utc": m["td"],
        "trade_time_utc": m["ttm"],
        "timestamp": m["ttms"],
        "trade_price": m["tp"],
        "trade_volume": m["tv"],
        "prev_closing_price": m["pcp"],
        "change_price": m["cp"],
        "ask_bid": m["ab"],
        "sequential_id": m["sid"],
    }


def _rows(market: str) -> list[dict]:
    """REST rows of one market, newest first, each trade once."""
    rows = {m["sid"]: _rest_row(m) for m in _ws_trades() if m["cd"] == market}
    return sorted(rows.values(), key=lambda r: (r["timestamp"], r["sequential_id"]), reverse=True)


def _upbit_ticks(rows: list[dict]):
    calls: list[HttpRequest] = []
    latest = max(r["trade_date_utc"] for r in rows)

    def handler(request: HttpRequest) -> HttpResponse:
        calls.append(request)
        q = {k: v[0] for k, v in request.query.items()}
        day = dt.date.fromisoformat(latest) - dt.timedelta(days=int(q.get("days_ago", 0)))
        page = [r for r in rows if r["market"] == q["market"] and r["trade_date_utc"] == str(day)]
        if "to" in q:
            page = [r for r in page if r["trade_time_utc"].replace(":", "") < q["to"]]
        if "cursor" in q:
            ids = [r["sequential_id"] for r in page]
            page = page[ids.index(int(q["cursor"])) + 1 :]
        page = page[: int(q["count"])]
        headers = {"Remaining-Req": "group=trades; min=600; sec=9"}
        return HttpResponse(200, _encode(page), headers)

    return handler, calls


def _ws_normalised(market: str) -> dict[str, Trade]:
    """The same trades through the WebSocket normaliser, by trade id."""
    norm = make_normaliser([("trade", market)])
    out = {}
    for rec in received(CAPTURE_2021):
        for ev in norm(payload(rec), utc(rec["t"])):
            if isinstance(ev, Trade) and ev.native_symbol == market:
                out[ev.trade_id] = ev
    return out


def test_a_rest_trade_body_gives_the_websocket_trades_exactly() -> None:
    rows = _rows("KRW-DAWN")
    now = dt.datetime(2021, 4, 5, 18, 20, tzinfo=dt.UTC)
    got = trades_from_body(_encode(rows), now)
    ws = _ws_normalised("KRW-DAWN")
    assert len(got) == len(rows) == len(ws) > 50
    for t in got:
        w = ws[t.trade_id]
        assert (t.symbol, t.native_symbol, t.side, t.sequence) == (
            "DAWN-KRW",
            "KRW-DAWN",
            w.side,
            w.sequence,
        )
        assert str(t.price) == str(w.price) and str(t.size) == str(w.size)
        assert t.event_time == w.event_time and t.event_time.tzinfo is dt.UTC
    assert {t.side for t in got} == {"buy", "sell"}


@pytest.mark.anyio
async def test_gap_backfill_pages_with_cursor_and_returns_every_trade_of_the_window() -> None:
    rows = _rows("KRW-DAWN")
    times = sorted({r["timestamp"] for r in rows})
    start = utc(times[len(times) // 4] / 1000)
    end = utc(times[3 * len(times) // 4] / 1000)
    expected = {str(r["sequential_id"]) for r in rows if start <= utc(r["timestamp"] / 1000) <= end}
    assert len(expected) > 40
    async with ReplayServer() as server:
        handler, calls = _upbit_ticks(rows)
        server.add_http_handler("GET", "/v1/trades/ticks", handler)
        ctx = rest_context(server, trade_page_size=20)
        info = PluginManager().venue("upbit")
        request = BackfillRequest(
            subscriptions=(
                Subscription(venue="upbit", channel="trade", symbol="KRW-DAWN"),
                Subscription(venue="upbit", channel="orderbook", symbol="KRW-DAWN"),  # no REST
            ),
            start=start,
            end=end,
        )
        got: list[Trade] = []
        with anyio.fail_after(20):
            async for batch in info.backfill(request, ctx):
                assert all(isinstance(t, Trade) for t in batch) and len(batch) <= 20
                got.extend(batch)
        await ctx.aclose()
    ids = [t.trade_id for t in got]
    assert sorted(ids) == sorted(expected)  # every trade of the window, once, nothing outside
    ws = _ws_normalised("KRW-DAWN")
    assert all(t.price == ws[t.trade_id].price and t.size == ws[t.trade_id].size for t in got)
    # the probe, then pages from `end` back: `to` = end + 1 s, then cursor = last row so far
    assert calls[0].query["count"] == ["1"]
    pages = calls[1:]
    assert pages[0].query["to"] == [(end + dt.timedelta(seconds=1)).strftime("%H%M%S")]
    assert "cursor" not in pages[0].query and "days_ago" not in pages[0].query
    assert all("cursor" in c.query for c in pages[1:]) and len(pages) >= 3
    cursors = [int(c.query["cursor"][0]) for c in pages[1:]]
    assert len(set(cursors)) == len(cursors)  # always progressing


@pytest.mark.anyio
async def test_a_window_older_than_seven_trading_days_asks_nothing_more() -> None:
    rows = _rows("KRW-ADA")
    async with ReplayServer() as server:
        handler, calls = _upbit_ticks(rows)
        server.add_http_handler("GET", "/v1/trades/ticks", handler)
        ctx = rest_context(server)
        info = PluginManager().venue("upbit")
        start = dt.datetime(2021, 3, 1, tzinfo=dt.UTC)
        request = BackfillRequest(
            subscriptions=(Subscription(venue="upbit", channel="trade", symbol="KRW-ADA"),),
            start=start,
            end=start + dt.timedelta(hours=1),
        )
        got = [b async for b in info.backfill(request, ctx)]
        await ctx.aclose()
    assert got == []
    assert len(calls) == 1  # only the probe: 2021-03-01 is 35 days before the latest day
