"""Candles on the business endpoint, gap backfill over REST, and the heartbeat, end to end
through the Supervisor and the replay server.

There is no recorded candle WebSocket session: the session replayed here is
**constructed** from the six real candle pushes of ``okx.candles.snippets.ws.jsonl``
preceded by subscribe acks in OKX's documented shape. The REST candle endpoint is a
**constructed** handler serving the real 1m rows of ``okx.candles.nautilus.http.jsonl``
with their timestamps moved to the minutes around now (a gap backfill asks for the
current time window).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import anyio
import pytest
from marketfeed import Candle, Gap, Supervisor, parse_config
from marketfeed.testing import Faults, HttpRequest, HttpResponse, MemorySink, ReplayServer
from okx_testdata import CANDLE_FRAMES, HTTP_CANDLES_1M, WS_2022, in_frames, records

pytestmark = pytest.mark.anyio


def _config(server: ReplayServer, store: str, subscriptions: list[dict[str, Any]], **okx: Any):
    return parse_config(
        {
            "supervisor": {"status_path": None, "dead_letter_path": None, "batch_interval": 0.05},
            "reconnect": {"initial": 0.05, "maximum": 0.2},
            "venues": {
                "okx": {
                    "endpoints": {
                        "public": server.ws_url + "/ws/v5/public",
                        "business": server.ws_url + "/ws/v5/business",
                        "rest": server.http_url,
                    },
                    **okx,
                }
            },
            "subscriptions": [{"venue": "okx", **s} for s in subscriptions],
            "sinks": [{"type": "memory", "url": f"memory://{store}"}],
        }
    )


def _candle_session() -> tuple[list[str], list[dict[str, Any]]]:
    pushes = [f for _, f in in_frames(CANDLE_FRAMES)]
    subs: dict[str, list[str]] = {}
    for f in pushes:
        arg = json.loads(f)["arg"]
        subs.setdefault(arg["channel"], [])
        if arg["instId"] not in subs[arg["channel"]]:
            subs[arg["channel"]].append(arg["instId"])
    acks = [
        json.dumps({"event": "subscribe", "arg": {"channel": c, "instId": i}})
        for c, insts in subs.items()
        for i in insts
    ]
    groups = [{"channels": [c], "symbols": insts} for c, insts in subs.items()]
    return acks + pushes, groups


_STEP_MS = {"1m": 60_000, "1H": 3_600_000}


class _RecentCandles:
    """Constructed ``/market/candles``: real 1m rows' values, timestamps moved to the
    current bar and the four before it (of the requested bar size), newest first."""

    def __init__(self) -> None:
        self.rows = json.loads(records(HTTP_CANDLES_1M)[0]["body"])["data"]
        self.requests: list[dict[str, str]] = []

    def __call__(self, request: HttpRequest) -> HttpResponse:
        q = {k: v[0] for k, v in request.query.items()}
        self.requests.append(q)
        step = _STEP_MS[q["bar"]]
        current = int(time.time() * 1000) // step * step
        rows = []
        for k in range(5):
            values = self.rows[k % len(self.rows)][1:]
            rows.append([str(current - step * k), *values[:7], "0" if k == 0 else "1"])
        rows = [r for r in rows if "after" not in q or int(r[0]) < int(q["after"])]
        return HttpResponse.json({"code": "0", "msg": "", "data": rows[: int(q["limit"])]})


async def test_candles_stream_and_a_gap_is_backfilled_over_rest() -> None:
    store = "okx-business"
    MemorySink.clear(store)
    frames, groups = _candle_session()
    rest = _RecentCandles()
    async with ReplayServer() as server:
        server.add_ws("/ws/v5/business", frames, faults=Faults(drop_after=len(frames) - 2))
        server.add_http_handler("GET", "/api/v5/market/candles", rest)
        server.add_http_handler(
            "GET",
            "/api/v5/market/history-candles",
            lambda r: HttpResponse.json({"code": "0", "msg": "", "data": []}),
        )
        async with Supervisor(_config(server, store, groups), plugins=[MemorySink()]) as sup:
            sessions = await server.wait_for_sessions(2, path="/ws/v5/business", timeout=20)
            await sessions[1].wait_replayed(timeout=20)
            n_subs = sum(len(g["symbols"]) for g in groups)
            with anyio.fail_after(20):
                while len({(r["instId"], r["bar"]) for r in rest.requests}) < n_subs:
                    await anyio.sleep(0.05)
            await anyio.sleep(0.3)
            status = sup.status()
    events = MemorySink.events(store)
    candles = [e for e in events if isinstance(e, Candle)]
    streamed = [c for c in candles if c.open_time.year < 2025]
    backfilled = [c for c in candles if c.open_time.year >= 2025]
    # the second connection replays all six pushes, the first all but the last two
    assert len(streamed) == 6 + 4
    assert {c.timeframe for c in streamed} == {"1m", "1h"}
    (conn,) = status.connections
    assert conn.name == "okx/business/0" and conn.reconnects == 1 and conn.malformed == 0
    (gap,) = [e for e in events if isinstance(e, Gap)]
    # every candle subscription was backfilled over the gap window, with its bar
    subscribed = {(sym, ch) for g in groups for ch in g["channels"] for sym in g["symbols"]}
    assert {(r["instId"], "candle" + r["bar"]) for r in rest.requests} == subscribed
    timeframe = {"candle1m": "1m", "candle1H": "1h"}
    assert {(c.native_symbol, c.timeframe) for c in backfilled} == {
        (sym, timeframe[ch]) for sym, ch in subscribed
    }
    for c in backfilled:
        bar = dt.timedelta(minutes=1) if c.timeframe == "1m" else dt.timedelta(hours=1)
        assert c.open_time <= gap.end and c.open_time + bar > gap.start


async def test_heartbeat_ping_is_answered_by_pong() -> None:
    store = "okx-heartbeat"
    frames = [f for _, f in in_frames(WS_2022)][:30]
    async with ReplayServer() as server:
        server.add_ws("/ws/v5/public", frames)
        config = _config(
            server,
            store,
            [{"channels": ["trades"], "symbols": ["BTC-USDT"]}],
            heartbeat_interval=0.2,
            heartbeat_timeout=0.5,
        )
        async with Supervisor(config, plugins=[MemorySink()]) as sup:
            (session,) = await server.wait_for_sessions(1, timeout=10)
            await session.wait_replayed(timeout=10)
            with anyio.fail_after(10):
                while session.received.count("ping") < 3:
                    await anyio.sleep(0.05)
            status = sup.status()
    assert len(server.ws_sessions) == 1  # the pongs kept it alive
    assert status.connections[0].malformed == 0 and status.connections[0].reconnects == 0


async def test_missing_pong_recycles_the_connection() -> None:
    store = "okx-heartbeat-dead"
    frames = [f for _, f in in_frames(WS_2022)][:30]
    async with ReplayServer() as server:
        server.add_ws("/ws/v5/public", frames, answer_pings=False)
        config = _config(
            server,
            store,
            [{"channels": ["trades"], "symbols": ["BTC-USDT"]}],
            heartbeat_interval=0.2,
            heartbeat_timeout=0.3,
        )
        async with Supervisor(config, plugins=[MemorySink()]):
            sessions = await server.wait_for_sessions(2, path="/ws/v5/public", timeout=10)
    assert "ping" in sessions[0].received
    assert sessions[0].closed
