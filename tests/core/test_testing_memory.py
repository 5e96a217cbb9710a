"""The in-memory sink plugin through the plugin manager, with events built from a real
OKX capture."""

from __future__ import annotations

import datetime as dt
import inspect
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from marketfeed import (
    ConfigError,
    Event,
    PersistResult,
    PluginManager,
    Ticker,
    Trade,
    TransientSinkError,
)
from marketfeed.testing import MemorySink

DATA = Path(__file__).parent / "data"
OKX_WS = DATA / "okx.20220513.ws.1.jsonl"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _utc_ms(ms: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(ms) / 1000, tz=dt.UTC)


def _okx_events() -> tuple[list[Trade], list[Ticker]]:
    """Trades and tickers of the OKX capture, built with plain json (test-side)."""
    trades: list[Trade] = []
    tickers: list[Ticker] = []
    for line in OKX_WS.read_text("utf-8").splitlines():
        row = json.loads(line)
        msg = json.loads(row["frame"])
        channel = msg.get("arg", {}).get("channel")
        if row["dir"] != "in" or "data" not in msg or channel not in ("trades", "tickers"):
            continue
        received = dt.datetime.fromtimestamp(row["t"], tz=dt.UTC)
        for d in msg["data"]:
            common: dict[str, Any] = {
                "venue": "okx",
                "symbol": "-".join(d["instId"].split("-")[:2]),
                "native_symbol": d["instId"],
                "event_time": _utc_ms(d["ts"]),
                "receive_time": received,
            }
            if channel == "trades":
                trades.append(
                    Trade(
                        **common,
                        trade_id=d["tradeId"],
                        price=Decimal(d["px"]),
                        size=Decimal(d["sz"]),
                        side=d["side"],
                    )
                )
            else:
                tickers.append(Ticker(**common, last=Decimal(d["last"]), bid=Decimal(d["bidPx"])))
    return trades, tickers


TRADES, TICKERS = _okx_events()


async def _persist(pm: PluginManager, handle: Any, batch: list[Event]) -> PersistResult:
    result = pm.hook.persist(sink="memory", handle=handle, batch=batch)
    if inspect.isawaitable(result):
        result = await result
    assert isinstance(result, PersistResult)
    return result


def test_declares_the_memory_sink(memory_sink: MemorySink) -> None:
    pm = PluginManager([memory_sink], entry_points=False)
    info = pm.sink("memory")
    assert info.url_schemes == ("memory",)
    assert pm.hook.open_sink(sink="sql", url="sqlite://", options={}) is None
    assert pm.hook.persist(sink="sql", handle=object(), batch=[]) is None


@pytest.mark.anyio
async def test_persist_keeps_batches_in_order(memory_sink: MemorySink) -> None:
    assert len(TRADES) > 70 and len(TICKERS) > 20  # the capture's 74 trade frames, 28 tickers
    pm = PluginManager([memory_sink], entry_points=False)
    async with pm.hook.open_sink(sink="memory", url="memory://okx", options={}) as handle:
        first = await _persist(pm, handle, [*TRADES[:50]])
        second = await _persist(pm, handle, [*TRADES[50:], *TICKERS])
    assert (first.stored, first.rejected) == (50, [])
    assert second.stored == len(TRADES) - 50 + len(TICKERS)
    assert MemorySink.stores["okx"] == [*TRADES, *TICKERS]
    assert MemorySink.batches["okx"] == [50, len(TRADES) - 50 + len(TICKERS)]
    assert MemorySink.events("nothing") == []


@pytest.mark.anyio
async def test_stores_are_separate_and_clearable(memory_sink: MemorySink) -> None:
    pm = PluginManager([memory_sink], entry_points=False)
    async with (
        pm.hook.open_sink(sink="memory", url="memory://a", options={}) as a,
        pm.hook.open_sink(sink="memory", url="memory://b", options={}) as b,
    ):
        await _persist(pm, a, list(TRADES[:3]))
        await _persist(pm, b, list(TICKERS[:2]))
    assert MemorySink.stores["a"] == TRADES[:3]
    assert MemorySink.stores["b"] == TICKERS[:2]
    MemorySink.clear("a")
    assert "a" not in MemorySink.stores and MemorySink.stores["b"] == TICKERS[:2]


@pytest.mark.anyio
async def test_fail_times_raises_transient_errors_first(memory_sink: MemorySink) -> None:
    pm = PluginManager([memory_sink], entry_points=False)
    options = {"fail_times": 2}
    async with pm.hook.open_sink(sink="memory", url="memory://flaky", options=options) as h:
        for attempt in (1, 2):
            with pytest.raises(TransientSinkError, match=f"failure {attempt} of 2"):
                await _persist(pm, h, list(TRADES[:10]))
            assert MemorySink.stores["flaky"] == []
        result = await _persist(pm, h, list(TRADES[:10]))
    assert result.stored == 10
    assert MemorySink.stores["flaky"] == TRADES[:10]


@pytest.mark.anyio
async def test_reject_returns_kinds_with_a_reason(memory_sink: MemorySink) -> None:
    pm = PluginManager([memory_sink], entry_points=False)
    batch: list[Event] = [*TICKERS[:5], *TRADES[:7]]
    async with pm.hook.open_sink(
        sink="memory", url="memory://picky", options={"reject": "ticker"}
    ) as handle:
        result = await _persist(pm, handle, batch)
    assert result.stored == 7
    assert [event for event, _ in result.rejected] == TICKERS[:5]
    assert all("ticker" in reason for _, reason in result.rejected)
    assert MemorySink.stores["picky"] == TRADES[:7]


@pytest.mark.anyio
async def test_delay_makes_a_slow_sink(memory_sink: MemorySink) -> None:
    pm = PluginManager([memory_sink], entry_points=False)
    async with pm.hook.open_sink(
        sink="memory", url="memory://slow", options={"delay": "0.2"}
    ) as handle:
        start = anyio.current_time()
        await _persist(pm, handle, list(TRADES[:2]))
        assert anyio.current_time() - start >= 0.18
    assert MemorySink.stores["slow"] == TRADES[:2]


@pytest.mark.parametrize(
    ("url", "options"),
    [("sqlite:///x.db", {}), ("memory://", {}), ("memory://x", {"delay": "soon"})],
)
def test_bad_url_or_options(memory_sink: MemorySink, url: str, options: dict[str, Any]) -> None:
    pm = PluginManager([memory_sink], entry_points=False)
    with pytest.raises(ConfigError):
        pm.hook.open_sink(sink="memory", url=url, options=options)
