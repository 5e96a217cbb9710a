"""Replays of the real 2021 capture over loopback WebSockets: a reconnect replays a
segment twice, and no trade comes out twice (through a real transport, then through the
supervisor into the memory sink)."""

import datetime as dt
import json
from collections import Counter

import anyio
import httpx
import pytest
from marketfeed import (
    BookSnapshot,
    ConnectionClosed,
    PluginManager,
    RateLimiters,
    Subscription,
    Supervisor,
    Trade,
    VenueContext,
    get_transport,
    parse_config,
)
from marketfeed.testing import Faults, MemorySink, ReplayServer, read_capture
from marketfeed_upbit import UpbitConfig
from upbit_testdata import CAPTURE_2021, received

PATH = "/websocket/v1"
DROP_AFTER = 400


def _expected() -> tuple[set[tuple[str, int]], set[tuple[str, int]], list[str]]:
    """(all trades, trades in the first DROP_AFTER frames, markets) counted with json."""
    trades, first, markets = set(), set(), []
    for i, rec in enumerate(received(CAPTURE_2021)):
        msg = json.loads(rec["frame"])
        if msg["cd"] not in markets:
            markets.append(msg["cd"])
        if msg["ty"] == "trade":
            trades.add((msg["cd"], msg["sid"]))
            if i < DROP_AFTER:
                first.add((msg["cd"], msg["sid"]))
    return trades, first, markets


def _replay_with_a_drop(server: ReplayServer) -> None:
    """Serve the capture; the first connection drops after DROP_AFTER frames and the next
    one replays from the start, so the first segment arrives twice."""
    faults = Faults(drop_after=DROP_AFTER)
    server.add_ws(PATH, read_capture(CAPTURE_2021), faults=faults, on_reconnect="restart")


def _context(server: ReplayServer) -> VenueContext:
    return VenueContext(
        venue="upbit",
        config=UpbitConfig(),
        endpoints={"ws": server.ws_url + PATH, "rest": server.http_url},
        transport=get_transport("httpx-ws"),
        limiters=RateLimiters(),
        http=httpx.AsyncClient,
    )


@pytest.mark.anyio
async def test_reconnect_replays_a_segment_twice_and_no_trade_is_duplicated() -> None:
    trades_expected, first_segment, markets = _expected()
    assert first_segment  # the replayed segment does hold trades
    pm = PluginManager()
    hook = pm.hook
    subs = [
        Subscription(venue="upbit", channel=c, symbol=m)
        for c in ("trade", "orderbook")
        for m in markets
    ]
    async with ReplayServer() as server:
        _replay_with_a_drop(server)
        ctx = _context(server)
        (plan,) = hook.plan(venue="upbit", subscriptions=subs, context=ctx)
        trades: Counter[tuple[str, str]] = Counter()
        books = 0
        frames_per_connection = []
        for _ in range(2):
            normaliser = hook.normalise(venue="upbit", plan=plan, context=ctx)
            async with hook.connect(venue="upbit", plan=plan, context=ctx) as conn:
                for frame in hook.subscribe(
                    venue="upbit", subscriptions=subs, action="subscribe", context=ctx
                ):
                    await conn.send(frame)
                count = 0
                with anyio.fail_after(20):
                    try:
                        while count < 1733:
                            frame = await conn.receive()
                            count += 1
                            for ev in normaliser(frame, dt.datetime.now(dt.UTC)):
                                if isinstance(ev, Trade):
                                    trades[(ev.native_symbol, ev.trade_id)] += 1
                                elif isinstance(ev, BookSnapshot):
                                    books += 1
                    except ConnectionClosed:
                        pass
            frames_per_connection.append(count)
        sessions = server.ws_sessions
    assert frames_per_connection == [DROP_AFTER, 1733]
    assert sessions[0].closed_by == "dropped"
    request = json.loads(sessions[1].received[0])
    assert request[0]["ticket"] and request[-1] == {"format": "SIMPLE"}
    assert {t["type"]: sorted(t["codes"]) for t in request[1:-1]} == {
        "trade": sorted(markets),
        "orderbook": sorted(markets),
    }
    assert max(trades.values()) == 1
    assert set(trades) == {(cd, str(sid)) for cd, sid in trades_expected}
    books_first = sum(
        1 for r in received(CAPTURE_2021)[:DROP_AFTER] if '"ty":"orderbook"' in r["frame"]
    )
    assert books == books_first + 1061  # books are full snapshots: replays are harmless


@pytest.mark.anyio
async def test_through_the_supervisor_into_the_memory_sink_without_duplicates() -> None:
    trades_expected, _, markets = _expected()
    store = "upbit-replay"
    MemorySink.clear(store)
    async with ReplayServer() as server:
        _replay_with_a_drop(server)
        config = parse_config(
            {
                "supervisor": {
                    "status_path": None,
                    "dead_letter_path": None,
                    "batch_interval": 0.05,
                },
                "reconnect": {"initial": 0.05, "maximum": 0.2},
                "venues": {
                    "upbit": {"endpoints": {"ws": server.ws_url + PATH, "rest": server.http_url}}
                },
                "subscriptions": [
                    {"venue": "upbit", "channels": ["trade", "orderbook"], "symbols": markets}
                ],
                "sinks": [{"type": "memory", "url": f"memory://{store}"}],
            }
        )
        async with Supervisor(config, plugins=[MemorySink()]) as sup:
            sessions = await server.wait_for_sessions(2, path=PATH, timeout=20)
            await sessions[1].wait_replayed(timeout=30)
            with anyio.fail_after(20):
                while sum(isinstance(e, Trade) for e in MemorySink.events(store)) < len(
                    trades_expected
                ):
                    await anyio.sleep(0.05)
            await anyio.sleep(0.3)
            status = sup.status()
    stored = [e for e in MemorySink.events(store) if isinstance(e, Trade)]
    assert len(stored) == len(trades_expected) == 672
    assert {(t.native_symbol, t.sequence) for t in stored} == trades_expected
    assert sum(c.reconnects for c in status.connections) >= 1
    assert all(c.malformed == 0 for c in status.connections)
    assert not [s for s in status.subscriptions if s.state == "failed"]
