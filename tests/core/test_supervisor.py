"""Supervisor behaviour against the replay server, on a real recorded session.

The venue is the third-party test plugin ``binance_mini`` (tests/thirdparty), installed
through its entry point: the supervisor runs a venue it knows nothing about. The capture is
real Binance USD-M futures traffic (tests/core/data/binance_futures/README.md).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import marketfeed
import pytest
from marketfeed import Candle, ConnectionState, Gap, Supervisor, Ticker, Trade, parse_config
from marketfeed.testing import Faults, MemorySink, ReplayServer, read_capture

CAPTURE = (
    Path(__file__).parent
    / "data"
    / "binance_futures"
    / ("binance_futures.20210417.ws.5.head1500.jsonl")
)
SYMBOLS = ["DENTUSDT", "KSMUSDT", "XMRUSDT", "YFIUSDT"]
CHANNELS = ["aggTrade", "bookTicker", "kline_1m", "kline_5m"]


def expected_counts() -> collections.Counter[tuple[str, str]]:
    """(event kind, native symbol) -> count, read from the capture with plain json."""
    kinds = {"aggTrade": "trade", "bookTicker": "ticker", "kline": "candle"}
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    with CAPTURE.open() as fh:
        for line in fh:
            data = json.loads(json.loads(line)["frame"])["data"]
            if data["e"] in kinds:
                counts[(kinds[data["e"]], data["s"])] += 1
    return counts


EXPECTED = expected_counts()
TOTAL = sum(EXPECTED.values())
FRAMES = read_capture(CAPTURE)


def config(server: ReplayServer, tmp_path: Path, store: str, **supervisor: Any) -> Any:
    sup = {
        "batch_size": 200,
        "batch_interval": 0.05,
        "status_path": None,
        "dead_letter_path": str(tmp_path / "dead.jsonl"),
        "shutdown_timeout": 5.0,
        **supervisor,
    }
    return parse_config(
        {
            "supervisor": sup,
            "reconnect": {"initial": 0.05, "maximum": 0.2},
            "venues": {"binance_mini": {"endpoints": {"ws": server.ws_url}}},
            "subscriptions": [{"venue": "binance_mini", "channels": CHANNELS, "symbols": SYMBOLS}],
            "sinks": [{"type": "memory", "url": f"memory://{store}"}],
        }
    )


def stored_counts(store: str) -> collections.Counter[tuple[str, str]]:
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for ev in MemorySink.events(store):
        if isinstance(ev, Trade | Ticker | Candle):
            counts[(marketfeed.event_kind(type(ev)), ev.native_symbol)] += 1
    return counts


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)


def market_events(store: str) -> int:
    return sum(stored_counts(store).values())


@pytest.fixture(autouse=True)
def _clear_memory() -> None:
    MemorySink.clear()


@pytest.mark.anyio
async def test_every_event_of_the_capture_reaches_the_sink(tmp_path: Path) -> None:
    async with ReplayServer() as server:
        server.add_ws("/stream", FRAMES, wait_for_client=False)
        async with Supervisor(config(server, tmp_path, "all"), plugins=[MemorySink()]) as sup:
            await wait_until(lambda: market_events("all") == TOTAL)
            st = sup.status()
        assert st.connections[0].frames == len(FRAMES)
        assert st.connections[0].malformed == 0
        subs = {(s.channel, s.symbol): s for s in st.subscriptions}
        assert subs[("aggTrade", "YFIUSDT")].events == EXPECTED[("trade", "YFIUSDT")]
        assert subs[("aggTrade", "YFIUSDT")].state == "active"
        # candles are counted per timeframe: the capture has 1m klines only
        assert subs[("kline_1m", "YFIUSDT")].events == EXPECTED[("candle", "YFIUSDT")]
        assert subs[("kline_5m", "YFIUSDT")].events == 0
        session = server.ws_sessions[0]
        assert session.query["streams"][0].count("@") == len(SYMBOLS) * len(CHANNELS)
    assert stored_counts("all") == EXPECTED
    trades = [e for e in MemorySink.events("all") if isinstance(e, Trade)]
    assert all(t.receive_time.tzinfo is not None for t in trades)
    assert not (tmp_path / "dead.jsonl").exists()


@pytest.mark.anyio
async def test_reconnect_after_a_dropped_connection_emits_a_gap(tmp_path: Path) -> None:
    async with ReplayServer() as server:
        server.add_ws(
            "/stream",
            FRAMES,
            wait_for_client=False,
            faults=Faults(drop_after=400),
            on_reconnect="continue",
        )
        cfg = config(server, tmp_path, "gap")
        async with Supervisor(cfg, plugins=[MemorySink()]) as sup:
            seen: list[Any] = []

            async def watch() -> None:
                async for ev in sup.events(Gap, ConnectionState):
                    seen.append(ev)

            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                await wait_until(lambda: market_events("gap") == TOTAL)
                tg.cancel_scope.cancel()
            st = sup.status()
        sessions = server.ws_sessions
    assert len(sessions) == 2
    assert sessions[0].closed_by == "dropped"
    # the second connection asked for the same streams (subscriptions restored)
    assert sessions[1].query == sessions[0].query
    gaps = [e for e in seen if isinstance(e, Gap)]
    assert len(gaps) == 1
    assert gaps[0].start <= gaps[0].end
    assert set(gaps[0].symbols) == set(SYMBOLS)
    states = [e.state for e in seen if isinstance(e, ConnectionState)]
    assert "backoff" in states and states[-1] == "connected"
    assert st.connections[0].reconnects == 1 and st.connections[0].gaps == 1
    assert stored_counts("gap") == EXPECTED  # nothing lost across the outage
    assert any(isinstance(e, Gap) for e in MemorySink.events("gap"))


@pytest.mark.anyio
async def test_watchdog_recycles_a_stalled_stream(tmp_path: Path) -> None:
    async with ReplayServer() as server:
        server.add_ws(
            "/stream",
            FRAMES,
            wait_for_client=False,
            faults=Faults(stall_after=300, stall_for=30.0),
            on_reconnect="continue",
        )
        raw = config(server, tmp_path, "wd")
        cfg = parse_config(
            {
                **msgspec_to_builtins(raw),
                "subscriptions": [
                    {
                        "venue": "binance_mini",
                        "channels": ["bookTicker"],
                        "symbols": SYMBOLS,
                        "silence_timeout": 0.5,
                    },
                    {
                        "venue": "binance_mini",
                        "channels": ["aggTrade", "kline_1m"],
                        "symbols": SYMBOLS,
                    },
                ],
            }
        )
        async with Supervisor(cfg, plugins=[MemorySink()]) as sup:
            await wait_until(lambda: market_events("wd") == TOTAL, timeout=15)
            st = sup.status()
        assert len(server.ws_sessions) == 2
    conn = st.connections[0]
    assert conn.reconnects == 1
    assert conn.last_error is not None and "watchdog" in conn.last_error
    assert stored_counts("wd") == EXPECTED


def msgspec_to_builtins(cfg: Any) -> dict[str, Any]:
    import msgspec

    data: dict[str, Any] = msgspec.to_builtins(cfg)
    for venue in data.get("venues", {}).values():
        venue.update(venue.pop("options", {}))
    return data


@pytest.mark.anyio
async def test_bounded_queue_holds_under_a_slow_sink(tmp_path: Path) -> None:
    """A sink 100x slower than the stream: the queue never exceeds its bound (the receive
    loop waits instead), and every event still lands."""
    queue_size = 20
    async with ReplayServer() as server:
        server.add_ws("/stream", FRAMES, wait_for_client=False)
        raw = msgspec_to_builtins(
            config(server, tmp_path, "slow", queue_size=queue_size, batch_size=10)
        )
        raw["sinks"][0]["options"] = {"delay": 0.01}  # ~1 s of sink time for the capture
        async with Supervisor(parse_config(raw), plugins=[MemorySink()]) as sup:
            depths = []
            with anyio.fail_after(30):
                while market_events("slow") < TOTAL:
                    st = sup.status()
                    depths.append(st.sinks[0].queue_depth)
                    await anyio.sleep(0.01)
    assert max(depths) <= queue_size
    assert max(depths) >= queue_size // 2  # the bound was actually reached
    assert stored_counts("slow") == EXPECTED


@pytest.mark.anyio
async def test_corrupted_frame_is_dead_lettered_and_the_connection_survives(
    tmp_path: Path,
) -> None:
    corrupt_index = 10
    corrupted = FRAMES[corrupt_index]
    kind = json.loads(corrupted.frame)["data"]["e"]
    async with ReplayServer() as server:
        server.add_ws(
            "/stream",
            FRAMES,
            wait_for_client=False,
            faults=Faults(corrupt={corrupt_index: '{"stream": "x", "data": {"e": "aggTr'}),
        )
        cfg = config(server, tmp_path, "bad")
        async with Supervisor(cfg, plugins=[MemorySink()]) as sup:
            lost = 1 if kind in ("aggTrade", "bookTicker", "kline") else 0
            await wait_until(lambda: market_events("bad") == TOTAL - lost)
            await anyio.sleep(0.1)
            st = sup.status()
    assert st.connections[0].malformed == 1
    assert st.connections[0].reconnects == 0
    assert len(server.ws_sessions) == 1
    assert st.dead_letters == 1
    letters = [e for e in MemorySink.events("bad") if isinstance(e, marketfeed.DeadLetter)]
    assert len(letters) == 1
    assert letters[0].payload.startswith('{"stream": "x"')
    assert "DecodeError" in letters[0].reason
    assert letters[0].source == "normalise:binance_mini/0"


@pytest.mark.anyio
async def test_transient_sink_failures_are_retried_until_they_land(tmp_path: Path) -> None:
    async with ReplayServer() as server:
        server.add_ws("/stream", FRAMES, wait_for_client=False)
        raw = msgspec_to_builtins(config(server, tmp_path, "flaky"))
        raw["sinks"][0]["options"] = {"fail_times": 3}
        async with Supervisor(parse_config(raw), plugins=[MemorySink()]) as sup:
            await wait_until(lambda: market_events("flaky") == TOTAL, timeout=20)
            st = sup.status()
    assert st.sinks[0].retries == 3
    assert stored_counts("flaky") == EXPECTED


@pytest.mark.anyio
async def test_shutdown_flushes_everything_accepted(tmp_path: Path) -> None:
    """Stop mid-stream with a slow sink: every event routed before the stop is stored."""
    async with ReplayServer() as server:
        server.add_ws("/stream", FRAMES, wait_for_client=False, speed=20.0)
        raw = msgspec_to_builtins(config(server, tmp_path, "stop", batch_interval=5.0))
        raw["sinks"][0]["options"] = {"delay": 0.05}
        sup = Supervisor(parse_config(raw), plugins=[MemorySink()])
        async with sup:
            await wait_until(lambda: sup.status().connections[0].frames > 200)
            routed_before = sup.status()
        after = sup.status()
    received = sum(s.events for s in after.subscriptions)
    assert received >= sum(s.events for s in routed_before.subscriptions)
    assert received < TOTAL  # we really stopped mid-stream
    assert market_events("stop") == received
    assert after.sinks[0].queue_depth == 0


@pytest.mark.anyio
async def test_sigterm_stops_run_gracefully(tmp_path: Path) -> None:
    async with ReplayServer() as server:
        server.add_ws("/stream", FRAMES, wait_for_client=False, speed=20.0)
        sup = Supervisor(config(server, tmp_path, "term"), plugins=[MemorySink()])
        async with sup:

            async def kill_soon() -> None:
                await wait_until(lambda: sup.status().connections[0].frames > 100)
                os.kill(os.getpid(), signal.SIGTERM)

            async with anyio.create_task_group() as tg:
                tg.start_soon(kill_soon)
                with anyio.fail_after(10):
                    await sup.run()
        st = sup.status()
    received = sum(s.events for s in st.subscriptions)
    assert 0 < received < TOTAL
    assert market_events("term") == received
    assert not st.running


@pytest.mark.anyio
async def test_subscriptions_can_be_added_and_removed_at_run_time(tmp_path: Path) -> None:
    async with ReplayServer() as server:
        server.add_ws("/stream", FRAMES, wait_for_client=False)
        raw = msgspec_to_builtins(config(server, tmp_path, "dyn"))
        raw["subscriptions"] = []
        async with Supervisor(parse_config(raw), plugins=[MemorySink()]) as sup:
            assert sup.status().connections == []
            sub = marketfeed.Subscription(
                venue="binance_mini", channel="aggTrade", symbol="YFIUSDT"
            )
            await sup.add_subscriptions([sub])
            await wait_until(lambda: market_events("dyn") > 0)
            with pytest.raises(marketfeed.ConfigError, match="no channel"):
                await sup.add_subscriptions(
                    [
                        marketfeed.Subscription(
                            venue="binance_mini", channel="nope", symbol="YFIUSDT"
                        )
                    ]
                )
            await sup.remove_subscriptions([sub])
            await wait_until(lambda: sup.status().connections[0].state == "closed")
    assert server.ws_sessions[0].query["streams"] == ["yfiusdt@aggTrade"]


def test_config_naming_an_unknown_venue_lists_installed(tmp_path: Path) -> None:
    cfg = parse_config({"subscriptions": [{"venue": "nasdaq", "channels": ["x"]}]})

    async def main() -> None:
        async with Supervisor(cfg, plugins=[MemorySink()]):
            pass

    with pytest.raises(marketfeed.ConfigError) as info:
        anyio.run(main)
    assert info.value.path == "subscriptions[0].venue"
    assert "binance_mini" in str(info.value)


@pytest.mark.anyio
async def test_spill_overflow_keeps_memory_bounded_and_order(tmp_path: Path) -> None:
    """overflow = "spill": a slow sink does not slow the receive loop; the overflow goes to
    disk and comes back in arrival order; nothing is lost."""
    queue_size = 20
    async with ReplayServer() as server:
        server.add_ws("/stream", FRAMES, wait_for_client=False)
        raw = msgspec_to_builtins(
            config(
                server,
                tmp_path,
                "spill",
                queue_size=queue_size,
                batch_size=50,
                overflow="spill",
                spill_dir=str(tmp_path / "spill"),
            )
        )
        # the sink takes nothing until every frame was read: the queue must overflow to disk
        gate = MemorySink.hold("spill")
        async with Supervisor(parse_config(raw), plugins=[MemorySink()]) as sup:
            with anyio.fail_after(30):
                while not sup.status().connections or sup.status().connections[0].frames < len(
                    FRAMES
                ):
                    assert sup.status().sinks[0].queue_depth <= queue_size
                    await anyio.sleep(0.01)
            assert sup.status().sinks[0].spilled > 0  # waiting on disk while the sink is held
            gate.set()
            with anyio.fail_after(30):
                while market_events("spill") < TOTAL:
                    st = sup.status()
                    assert st.sinks[0].queue_depth <= queue_size
                    await anyio.sleep(0.01)
            st = sup.status()
            frames_done = st.connections[0].frames
    assert st.sinks[0].spilled_total > 0  # the overflow really went to disk
    assert st.sinks[0].spilled == 0
    assert frames_done == len(FRAMES)
    assert stored_counts("spill") == EXPECTED
    # arrival order is kept: trades of one symbol come out in capture order
    ids = [
        e.trade_id
        for e in MemorySink.events("spill")
        if isinstance(e, Trade) and e.native_symbol == "YFIUSDT"
    ]
    capture_ids = [
        str(json.loads(f.frame)["data"]["a"])
        for f in FRAMES
        if '"aggTrade"' in f.frame and '"YFIUSDT"' in f.frame
    ]
    assert ids == capture_ids
    assert not list((tmp_path / "spill").glob("*.jsonl"))  # drained and removed


def test_spill_file_survives_a_restart(tmp_path: Path) -> None:
    from marketfeed._spill import SpillFile

    t0 = dt.datetime(2021, 4, 17, tzinfo=dt.UTC)
    trades = [
        Trade(
            venue="v",
            symbol="A-B",
            native_symbol="AB",
            trade_id=str(i),
            price=Decimal("1.10"),
            size=Decimal("2E-7"),
            event_time=t0,
            receive_time=t0,
        )
        for i in range(5)
    ]
    spill = SpillFile(tmp_path / "s.jsonl")
    spill.append(trades)
    assert spill.read(2) == trades[:2]
    spill.close()
    again = SpillFile(tmp_path / "s.jsonl")  # a new run finds what was left
    assert again.pending == 5  # unread position is not persisted: replayed whole (idempotent)
    assert again.read(10) == trades
    assert not (tmp_path / "s.jsonl").exists()


@pytest.mark.anyio
async def test_events_routed_after_shutdown_are_dead_lettered(tmp_path: Path) -> None:
    """A late batch (a backfill or job finishing during shutdown) is kept, not dropped."""
    from marketfeed import read_dead_letters

    async with ReplayServer() as server:
        sup = Supervisor(config(server, tmp_path, "late"), plugins=[MemorySink()])
        async with sup:
            pass
    t0 = dt.datetime(2021, 4, 17, tzinfo=dt.UTC)
    late = Trade(
        venue="binance_mini",
        symbol="YFI-USDT",
        native_symbol="YFIUSDT",
        trade_id="1",
        price=Decimal("49951.9"),
        size=Decimal("0.005"),
        event_time=t0,
        receive_time=t0,
    )
    await sup.route([late])
    [letter] = read_dead_letters(tmp_path / "dead.jsonl")
    assert "shutdown" in letter.reason
    assert '"trade_id":"1"' in letter.payload
    assert sup.status().dead_letters == 1
