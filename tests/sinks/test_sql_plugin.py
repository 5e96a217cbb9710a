"""The sink as an installed plugin: discovery, SinkInfo, and the hooks."""

from __future__ import annotations

import datetime as dt
from importlib.metadata import entry_points

import marketfeed as mf
import marketfeed_sinks as ms
import pytest
from sink_targets import Target
from sinkdata import okx_trades

pytestmark = pytest.mark.anyio


def _manager() -> mf.PluginManager:
    # Only our entry point (other installed plugins are not under test here).
    (ep,) = [e for e in entry_points(group=mf.ENTRY_POINT_GROUP) if e.name == "sql"]
    assert ep.value == "marketfeed_sinks.sql.plugin"
    return mf.PluginManager(plugins=[ep.load()], entry_points=False)


def test_entry_point_declares_the_sql_sink() -> None:
    info = _manager().sink("sql")
    assert info.url_schemes == ("sqlite", "postgresql", "postgresql+psycopg")
    assert set(info.accepts) == {
        "trade",
        "candle",
        "ticker",
        "book_snapshot",
        "instrument",
        "daily_bar",
        "investor_flow",
        "etf_holding",
        "etf_holding_change",
        "gap",
        "dead_letter",
    }
    assert "book_delta" not in info.accepts and "connection_state" not in info.accepts
    assert "book_delta" in info.description and "connection_state" in info.description


async def test_hooks_open_and_persist(target: Target) -> None:
    pm = _manager()
    assert pm.hook.open_sink(sink="other", url=target.url, options={}) is None
    trades = okx_trades()
    async with pm.hook.open_sink(sink="sql", url=target.url, options=target.options) as handle:
        assert isinstance(handle, ms.SqlSinkHandle)
        assert pm.hook.persist(sink="other", handle=handle, batch=trades) is None
        result = await pm.hook.persist(sink="sql", handle=handle, batch=trades)
    assert result.stored == len(trades)
    start = min(t.event_time for t in trades)
    got = ms.trades(
        target.url,
        "okx",
        "BTC-USDT",
        start,
        start + dt.timedelta(days=1),
        schema=target.schema,
    )
    assert got == sorted(
        (t for t in trades if t.symbol == "BTC-USDT"), key=lambda t: (t.event_time, t.trade_id)
    )
