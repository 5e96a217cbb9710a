"""REST trade backfill (``/api/v5/market/history-trades``) against the replay server.

No REST trade response was ever recorded, so the endpoint is **constructed**: a handler
that applies OKX's documented paging (newest first; ``type=2&after=ts``: older than a
time, ``type=1&after=tradeId``: older than a trade; ``limit``) to the real trade objects
of the WebSocket ``trades`` pushes in ``okx.20220513.ws.1.jsonl``. OKX documents the same
fields for both (``instId``, ``tradeId``, ``px``, ``sz``, ``side``, ``ts``), so the REST
rows are the recorded objects unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from marketfeed import BackfillRequest, Subscription, Trade
from marketfeed.testing import HttpRequest, HttpResponse, ReplayServer
from marketfeed_okx import OkxNormaliser, OkxRest
from marketfeed_okx import plugin as okx
from okx_testdata import WS_2022, ProgressLog, in_frames, utc_ms, venue_context

pytestmark = pytest.mark.anyio


def _ws_trades(inst_id: str) -> list[dict[str, Any]]:
    """The recorded trade objects of ``inst_id``, newest first (plain json)."""
    rows: dict[str, dict[str, Any]] = {}
    for _, frame in in_frames(WS_2022):
        msg = json.loads(frame)
        if msg.get("arg", {}).get("channel") == "trades":
            for d in msg.get("data", ()):
                if d["instId"] == inst_id:
                    rows[d["tradeId"]] = d
    return sorted(rows.values(), key=lambda d: (int(d["ts"]), int(d["tradeId"])), reverse=True)


class _TradesServer:
    """OKX's ``history-trades`` paging over ``rows`` (newest first)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.calls: list[dict[str, str]] = []

    def handler(self, request: HttpRequest) -> HttpResponse:
        q = {k: v[0] for k, v in request.query.items()}
        self.calls.append(q)
        page = [r for r in self.rows if r["instId"] == q["instId"]]
        if "after" in q:
            if q.get("type", "1") == "2":
                page = [r for r in page if int(r["ts"]) < int(q["after"])]
            else:
                page = [r for r in page if int(r["tradeId"]) < int(q["after"])]
        page = page[: int(q.get("limit", "100"))]
        return HttpResponse(200, json.dumps({"code": "0", "msg": "", "data": page}))

    def install(self, server: ReplayServer) -> None:
        server.add_http_handler("GET", "/api/v5/market/history-trades", self.handler)


async def test_gap_backfill_returns_every_trade_of_the_window_once() -> None:
    rows = _ws_trades("BTC-USDT")
    assert len(rows) == 69
    times = sorted({int(r["ts"]) for r in rows})
    start, end = utc_ms(times[10]), utc_ms(times[-10])
    expected = {r["tradeId"]: r for r in rows if start <= utc_ms(r["ts"]) <= end}
    assert 30 < len(expected) < 69
    fake = _TradesServer(rows)
    request = BackfillRequest(
        subscriptions=(
            Subscription(venue="okx", channel="trades", symbol="BTC-USDT"),
            Subscription(venue="okx", channel="books", symbol="BTC-USDT"),  # no REST history
        ),
        start=start,
        end=end,
    )
    progress = ProgressLog()
    async with ReplayServer() as server:
        fake.install(server)
        ctx = venue_context({"rest": server.http_url}, progress, trade_page_limit=10)
        batches = [b async for b in okx.INFO.backfill(request, ctx)]  # type: ignore[misc]
    got = [t for b in batches for t in b]
    assert all(isinstance(t, Trade) for t in got) and all(len(b) <= 10 for b in batches)
    assert sorted(t.trade_id for t in got) == sorted(expected)  # each once, none outside
    for t in got:
        row = expected[t.trade_id]
        assert (t.symbol, t.native_symbol, t.side) == ("BTC-USDT", "BTC-USDT", row["side"])
        assert t.price.as_tuple() == Decimal(row["px"]).as_tuple()  # exact, exponent too
        assert t.size.as_tuple() == Decimal(row["sz"]).as_tuple()
        assert t.event_time == utc_ms(row["ts"]) and t.event_time.tzinfo is dt.UTC
    # the first page by time (end + 1 ms), then by the previous page's last trade id
    first, *rest = fake.calls
    assert (first["type"], first["after"]) == ("2", str(times[-10] + 1))
    assert rest and all(c["type"] == "1" for c in rest)
    assert [c["after"] for c in rest] == sorted({c["after"] for c in rest}, reverse=True)
    assert progress.log == ["start okx trades backfill 1", "advance 1", "close"]


async def test_a_trade_page_matches_the_websocket_normaliser() -> None:
    rows = _ws_trades("BTC-USDT")
    fake = _TradesServer(rows)
    async with ReplayServer() as server:
        fake.install(server)
        rest = OkxRest(venue_context({"rest": server.http_url}))
        page = await rest.trades("BTC-USDT")
    assert [t.trade_id for t in page] == [r["tradeId"] for r in rows]  # newest first, 69 < 100
    norm = OkxNormaliser("okx")
    ws = {
        ev.trade_id: ev
        for t, frame in in_frames(WS_2022)
        for ev in norm(frame, utc_ms(int(t * 1000)))
        if isinstance(ev, Trade) and ev.native_symbol == "BTC-USDT"
    }
    assert set(ws) == {t.trade_id for t in page}
    for t in page:
        w = ws[t.trade_id]
        assert (t.price, t.size, t.side, t.event_time, t.symbol) == (
            w.price,
            w.size,
            w.side,
            w.event_time,
            w.symbol,
        )
