"""Behaviour of the sql sink on real captured data, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import marketfeed as mf
import marketfeed_sinks as ms
import msgspec
import pytest
from sink_targets import Target
from sinkdata import (
    RECEIVED,
    capture_lines,
    kiwoom_daily_bars,
    kiwoom_investor_flows,
    okx_books,
    okx_candles,
    okx_tickers,
    okx_trades,
    upbit_candles,
    upbit_trades,
    wisereport_holdings,
)

pytestmark = pytest.mark.anyio

UTC = dt.UTC
FAR_PAST = dt.datetime(2000, 1, 1, tzinfo=UTC)
FAR_FUTURE = dt.datetime(2100, 1, 1, tzinfo=UTC)
replace = msgspec.structs.replace


async def write(target: Target, *batches: list[Any], **options: Any) -> list[mf.PersistResult]:
    async with ms.open_sql_sink(target.url, {**target.options, **options}) as sink:
        return [await sink.persist(batch) for batch in batches]


# ------------------------------------------------------------------ idempotence


def _independent_counts() -> dict[str, int]:
    """Distinct natural keys, counted with plain json over the capture files."""
    trades, tickers, candles = set(), set(), set()
    for line in capture_lines("okx.20220513.ws.1.trades-tickers.jsonl"):
        msg = json.loads(line["frame"])
        for d in msg["data"]:
            if msg["arg"]["channel"] == "trades":
                trades.add(("okx", d["instId"], d["tradeId"]))
            else:
                tickers.add(("okx", d["instId"], d["ts"]))
    for line in capture_lines("upbit.20210405.ws.1.trades.jsonl"):
        d = json.loads(line["frame"])
        trades.add(("upbit", d["cd"], d["sid"]))
    for line in capture_lines("okx.candles.snippets.ws.jsonl"):
        msg = json.loads(line["frame"])
        for row in msg["data"]:
            candles.add(("okx", msg["arg"]["instId"], msg["arg"]["channel"], row[0]))
    (record,) = capture_lines("upbit.candles.smtm-20210130.http.first.jsonl")
    for r in json.loads(record["body"]):
        candles.add(("upbit", r["market"], "1m", r["candle_date_time_utc"]))
    return {"trade": len(trades), "ticker": len(tickers), "candle": len(candles)}


ORDER = {
    "trade": "venue, symbol, trade_id",
    "ticker": "venue, symbol, event_time",
    "candle": "venue, symbol, timeframe, open_time",
}


async def test_same_batch_twice_leaves_the_same_rows(target: Target) -> None:
    batch: list[Any] = (
        okx_trades() + upbit_trades() + okx_tickers() + okx_candles() + upbit_candles()
    )
    expected = _independent_counts()
    (first,) = await write(target, batch)
    after_first = {t: target.rows(t, o) for t, o in ORDER.items()}
    (second,) = await write(target, batch)
    after_second = {t: target.rows(t, o) for t, o in ORDER.items()}

    assert first.rejected == [] and second.rejected == []
    assert first.stored == second.stored == len(batch)
    for table, n in expected.items():
        assert len(after_first[table]) == n, table
    assert after_second == after_first


async def test_replayed_trades_after_new_ones_still_land(target: Target) -> None:
    # A batch mixing already-stored trades with new ones (a reconnect seam) stores the
    # new ones exactly once.
    trades = upbit_trades()
    old, new = trades[:300], trades[300:]
    await write(target, old, old[-50:] + new, new)
    assert target.count("trade") == len(trades)


# ------------------------------------------------------------------ candles


def _hour_candles() -> tuple[mf.Candle, mf.Candle]:
    """The closed 16:00 OKX 1H candle and an unclosed update of the same bar (the values
    of the capture's unclosed 20:00 push, moved to 16:00)."""
    candles = [c for c in okx_candles() if c.timeframe == "1h"]
    closed = next(c for c in candles if c.closed)
    forming = next(c for c in candles if not c.closed)
    unclosed = replace(forming, open_time=closed.open_time, event_time=closed.open_time)
    return closed, unclosed


def _stored_hour(target: Target) -> mf.Candle:
    closed, _ = _hour_candles()
    (found,) = ms.candles(
        target.url, "okx", "BTC-USDT", "1h", FAR_PAST, FAR_FUTURE, schema=target.schema
    )
    assert found.open_time == closed.open_time
    return found


@pytest.mark.parametrize("same_batch", [False, True], ids=["two-batches", "one-batch"])
async def test_unclosed_then_closed_keeps_closed(target: Target, same_batch: bool) -> None:
    closed, unclosed = _hour_candles()
    if same_batch:
        await write(target, [unclosed, closed])
    else:
        await write(target, [unclosed], [closed])
    assert _stored_hour(target) == closed


@pytest.mark.parametrize("same_batch", [False, True], ids=["two-batches", "one-batch"])
async def test_closed_is_never_replaced_by_unclosed(target: Target, same_batch: bool) -> None:
    closed, unclosed = _hour_candles()
    if same_batch:
        await write(target, [closed, unclosed])
    else:
        await write(target, [closed], [unclosed])
    assert _stored_hour(target) == closed


async def test_later_update_replaces_earlier(target: Target) -> None:
    closed, unclosed = _hour_candles()
    later = replace(unclosed, close=closed.close, high=closed.high, event_time=closed.event_time)
    await write(target, [unclosed], [later])
    assert _stored_hour(target) == later
    corrected = replace(closed, volume=closed.volume + 1)
    await write(target, [closed], [corrected])
    assert _stored_hour(target) == corrected


# ------------------------------------------------------------------ decimals


EXACT = [
    "2.2E-7",  # Upbit tp of BTC-BASIC (capture)
    "0E-8",  # Upbit cp (capture)
    "123.45600000",
    "37270000.00000000",  # Upbit candle price text (capture)
    "12111.68782622",  # Upbit tv (capture)
    "-14.71",  # WiseReport short futures leg (capture)
    "123456789012345678901234567890.123456789012345678901234567890",
    "0.000000000000000000000000000001",
]


async def test_decimals_round_trip_exactly(target: Target) -> None:
    base = okx_trades()
    trades = [
        replace(base[i], trade_id=f"dec{i}", price=Decimal(text), size=Decimal(EXACT[-1 - i]))
        for i, text in enumerate(EXACT)
    ]
    positive_exponent = replace(base[0], trade_id="exp", price=Decimal("1E+3"))
    await write(target, [*trades, positive_exponent])

    stored = {
        t.trade_id: t
        for t in ms.trades(
            target.url, "okx", base[0].symbol, FAR_PAST, FAR_FUTURE, schema=target.schema
        )
    }
    stored |= {
        t.trade_id: t
        for s in {t.symbol for t in trades}
        for t in ms.trades(target.url, "okx", s, FAR_PAST, FAR_FUTURE, schema=target.schema)
    }
    for t in trades:
        got = stored[t.trade_id]
        assert (str(got.price), str(got.size)) == (str(t.price), str(t.size))
        assert got.price.as_tuple() == t.price.as_tuple()
    # PostgreSQL NUMERIC keeps value and scale but writes 1E+3 as 1000 (same value).
    assert stored["exp"].price == Decimal(1000)
    if target.backend == "sqlite":
        assert str(stored["exp"].price) == "1E+3"
        kinds = {r[0] for r in _raw(target, "SELECT typeof(price) FROM trade")}
        assert kinds == {"text"}
    else:
        kinds = {r[0] for r in _raw(target, "SELECT pg_typeof(price)::text FROM trade")}
        assert kinds == {"numeric"}


def _raw(target: Target, sql: str) -> list[tuple[Any, ...]]:
    engine = target.engine()
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()


# ------------------------------------------------------------------ partitions


BOUNDARY = dt.datetime(2021, 2, 1, tzinfo=UTC)


async def test_batch_crossing_a_month_boundary(target: Target) -> None:
    # Real Upbit trades and candles, shifted in time (only) so that the batch straddles
    # 2021-02-01 00:00 UTC.
    trades = upbit_trades()
    shift_t = BOUNDARY - trades[len(trades) // 2].event_time
    trades = [replace(t, event_time=t.event_time + shift_t) for t in trades]
    candles = upbit_candles()
    shift_c = BOUNDARY - candles[len(candles) // 2].open_time
    candles = [replace(c, open_time=c.open_time + shift_c) for c in candles]
    jan_trades = sum(t.event_time < BOUNDARY for t in trades)
    jan_candles = sum(c.open_time < BOUNDARY for c in candles)
    assert 0 < jan_trades < len(trades) and 0 < jan_candles < len(candles)

    (result,) = await write(target, [*trades, *candles])

    assert result.stored == len(trades) + len(candles)
    assert target.count("trade") == len(trades)
    assert target.count("candle") == len(candles)
    if target.backend == "postgresql":
        children = {
            r[0]
            for r in _raw(
                target,
                "SELECT c.relname FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
                "JOIN pg_namespace n ON n.oid = p.relnamespace "
                f"WHERE n.nspname = '{target.schema}' AND c.relkind = 'r'",
            )
        }
        assert children == {
            "trade_p2021_01",
            "trade_p2021_02",
            "candle_p2021_01",
            "candle_p2021_02",
        }
        assert target.count("trade_p2021_01") == jan_trades
        assert target.count("candle_p2021_01") == jan_candles
        assert target.count("candle_p2021_02") == len(candles) - jan_candles


@pytest.mark.postgres
async def test_one_stray_timestamp_does_not_create_every_month_between(
    postgres_url: Target,
) -> None:
    trades = upbit_trades()
    stray = replace(trades[0], trade_id="stray", event_time=dt.datetime(1990, 1, 1, tzinfo=UTC))
    await write(postgres_url, [*trades, stray])
    partitions = {
        r[0]
        for r in _raw(
            postgres_url,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n "
            f"ON n.oid = p.relnamespace WHERE n.nspname = '{postgres_url.schema}' "
            "AND p.relname = 'trade' AND c.relkind = 'r'",
        )
    }
    assert partitions == {"trade_p1990_01", "trade_p2021_04"}
    assert postgres_url.count("trade") == len(trades) + 1


# ------------------------------------------------------------------ poison rows


def _poison(t: mf.Trade, tag: str) -> mf.Trade:
    # A sequence beyond 64 bits fits neither BIGINT nor SQLite INTEGER: never storable.
    return replace(t, trade_id=f"poison-{tag}", sequence=2**64 + 1)


async def test_poison_rows_go_to_dead_letter_and_the_rest_lands(target: Target) -> None:
    good = okx_trades()
    poison = [_poison(good[0], "a"), _poison(good[30], "b"), _poison(good[-1], "c")]
    batch = [poison[0], *good[:40], poison[1], *good[40:], poison[2]]

    (result,) = await write(target, batch)

    assert result.stored == len(good)
    assert [ev for ev, _ in result.rejected] == poison
    assert all(reason for _, reason in result.rejected)
    assert target.count("trade") == len(good)
    letters = ms.dead_letters(target.url, schema=target.schema)
    assert len(letters) == 3
    decoded = {msgspec.json.decode(dl.payload, type=mf.Event) for dl in letters}
    assert decoded == set(poison)
    assert {dl.source for dl in letters} == {"sink:sql"}
    assert {dl.attempts for dl in letters} == {1}
    reasons = {ev.trade_id: why for ev, why in result.rejected}
    assert {dl.reason for dl in letters} == set(reasons.values())

    # The same batch again: the poison rows fail again (attempts 2), nothing duplicates.
    (again,) = await write(target, batch)
    assert again.stored == len(good) and len(again.rejected) == 3
    assert target.count("trade") == len(good)
    letters = ms.dead_letters(target.url, schema=target.schema)
    assert len(letters) == 3
    assert {dl.attempts for dl in letters} == {2}
    assert all(dl.last_failure >= dl.first_failure for dl in letters)


@pytest.mark.postgres
async def test_decimal_too_large_for_numeric_is_rejected_on_postgres(
    postgres_url: Target,
) -> None:
    good = upbit_trades()[:20]
    huge = replace(good[5], trade_id="huge", price=Decimal("1E+200000"))
    (result,) = await write(postgres_url, [*good, huge])
    assert [ev for ev, _ in result.rejected] == [huge]
    assert "numeric" in result.rejected[0][1].lower()
    assert postgres_url.count("trade") == len(good)
    assert postgres_url.count("dead_letter") == 1


async def test_decimal_too_large_for_numeric_is_kept_as_text_on_sqlite(
    sqlite_target: Target,
) -> None:
    huge = replace(upbit_trades()[5], trade_id="huge", price=Decimal("1E+200000"))
    (result,) = await write(sqlite_target, [huge])
    assert result.rejected == []
    (got,) = ms.trades(sqlite_target.url, "upbit", huge.symbol, FAR_PAST, FAR_FUTURE)
    assert got.price == huge.price


# ------------------------------------------------------------------ every kind


def _okx_instrument(as_of: dt.datetime, tick: str) -> mf.Instrument:
    # OKX BTC-USDT spot instrument (okx.20220513.http.jsonl; tickSz there is "0.1").
    return mf.Instrument(
        venue="okx",
        symbol="BTC-USDT",
        native_symbol="BTC-USDT",
        kind="spot",
        as_of=as_of,
        base="BTC",
        quote="USDT",
        tick_size=Decimal(tick),
        lot_size=Decimal("0.00000001"),
        min_size=Decimal("0.00001"),
        status="live",
        extra={"listTime": "1548133413000"},
    )


async def test_every_kind_round_trips(target: Target) -> None:
    tickers = okx_tickers()
    gold = wisereport_holdings("wisereport.CU_data.132030.recorded.json", "132030")
    kodex = wisereport_holdings("wisereport.CU_data.069500.first9rows.recorded.json", "069500")
    day1 = gold[0].as_of
    day2 = day1 + dt.timedelta(days=1)
    # The next day's basket: same rows minus the dollar-futures leg (a removal).
    removed = next(h for h in gold if h.shares is not None and h.shares < 0)
    gold_next = [replace(h, as_of=day2) for h in gold if h is not removed]
    change = mf.EtfHoldingChange(
        venue="naver_etf",
        etf_symbol="132030",
        as_of=day2,
        previous_as_of=day1,
        constituent_key=ms.constituent_key(removed.constituent_symbol, removed.constituent_name),
        constituent_name=removed.constituent_name,
        change="removed",
        receive_time=RECEIVED,
        old_weight_pct=removed.weight_pct,
    )
    gap = mf.Gap(
        venue="okx",
        connection="okx/public/0",
        start=dt.datetime(2022, 5, 13, 16, 27, 16, tzinfo=UTC),
        end=dt.datetime(2022, 5, 13, 16, 27, 20, tzinfo=UTC),
        channels=("trades",),
        symbols=("BTC-USDT",),
        reason="connection closed (code 1006)",
    )
    wider = replace(gap, end=gap.end + dt.timedelta(seconds=5))
    bad_frame = mf.DeadLetter(
        venue="upbit",
        source="normalise:upbit/0",
        reason="ValueError: bad frame",
        payload=capture_lines("upbit.20210405.ws.1.trades.jsonl")[0]["frame"][:40],
        first_failure=RECEIVED,
        last_failure=RECEIVED,
    )
    old_instrument = _okx_instrument(dt.datetime(2022, 5, 13, tzinfo=UTC), "0.1")
    new_instrument = _okx_instrument(dt.datetime(2022, 5, 14, tzinfo=UTC), "0.01")
    skipped = [
        mf.BookDelta(
            venue="okx",
            symbol="BTC-USDT",
            native_symbol="BTC-USDT",
            event_time=RECEIVED,
            receive_time=RECEIVED,
            bids=(),
            asks=(),
        ),
        mf.ConnectionState(venue="okx", connection="okx/0", state="connected", time=RECEIVED),
    ]
    batch: list[Any] = [
        *tickers,
        *okx_books(),
        *kiwoom_daily_bars(),
        *kiwoom_investor_flows(),
        *gold,
        *kodex,
        *gold_next,
        change,
        gap,
        bad_frame,
        new_instrument,
        *skipped,
    ]
    first, second = await write(target, batch, [old_instrument, wider, bad_frame], book_interval=0)
    assert first.rejected == [] and second.rejected == []
    assert first.stored == len(batch) - len(skipped)

    # latest ticker per symbol, computed here from the capture
    for symbol in {t.symbol for t in tickers}:
        want = max((t for t in tickers if t.symbol == symbol), key=lambda t: t.event_time)
        got = ms.latest_ticker(target.url, "okx", symbol, schema=target.schema)
        assert got == want
    assert ms.latest_ticker(target.url, "okx", "NOPE", schema=target.schema) is None

    # ETF holdings: the most recent snapshot on or before the date
    def holdings(etf: str, day: dt.date) -> list[mf.EtfHolding]:
        return ms.etf_holdings(target.url, etf, day, schema=target.schema)

    assert holdings("132030", day1 - dt.timedelta(days=1)) == []
    assert sorted(holdings("132030", day1), key=repr) == sorted(gold, key=repr)
    assert sorted(holdings("132030", day2 + dt.timedelta(days=30)), key=repr) == sorted(
        gold_next, key=repr
    )
    by_weight = holdings("069500", day1)
    assert [h.weight_pct for h in by_weight] == sorted(
        (h.weight_pct for h in kodex if h.weight_pct is not None), reverse=True
    )
    assert ms.etf_changes(target.url, "132030", day1, day2, schema=target.schema) == [change]
    assert ms.etf_changes(target.url, "132030", day1, day1, schema=target.schema) == []

    # daily bars, investor flows, instrument, gap, book_top, dead letters: raw rows
    bars = kiwoom_daily_bars()
    rows = target.rows("daily_bar", "date")
    assert [(str(r[2]), Decimal(str(r[7]))) for r in rows] == sorted(
        (str(b.date), b.close) for b in bars
    )
    flows = target.rows("investor_flow", "date")
    assert len(flows) == len(kiwoom_investor_flows())
    breakdowns = [json.loads(r[9]) for r in flows]
    assert breakdowns == [
        {k: str(v) for k, v in f.breakdown.items()}
        for f in sorted(kiwoom_investor_flows(), key=lambda f: f.date)
    ]
    (instrument,) = target.rows("instrument", "venue")
    assert Decimal(str(instrument[9])) == Decimal("0.01")  # the older as_of did not win
    (gap_row,) = target.rows("gap", "venue")
    end = (
        gap_row[3] if isinstance(gap_row[3], dt.datetime) else dt.datetime.fromisoformat(gap_row[3])
    )
    assert end == wider.end
    books = target.rows("book_top", "symbol")
    assert len(books) == len(okx_books())
    for book in okx_books():
        row = next(r for r in books if r[1] == book.symbol)
        assert json.loads(row[6]) == [[str(p), str(s)] for p, s in book.bids]
        assert row[5] == len(book.bids)
    (letter,) = ms.dead_letters(target.url, venue="upbit", schema=target.schema)
    assert letter.attempts == 2 and letter.payload == bad_frame.payload
    assert target.count("book_top") == len(okx_books())


async def test_book_top_depth_and_interval(target: Target) -> None:
    book = okx_books()[0]
    half_second = replace(book, event_time=book.event_time + dt.timedelta(milliseconds=500))
    two_seconds = replace(book, event_time=book.event_time + dt.timedelta(seconds=2))
    (result,) = await write(target, [book, half_second, two_seconds], book_depth=2)
    assert result.stored == 2  # the snapshot 0.5 s later is inside the 1 s interval
    rows = target.rows("book_top", "event_time")
    assert [r[5] for r in rows] == [2, 2]
    assert json.loads(rows[0][7]) == [[str(p), str(s)] for p, s in book.asks[:2]]


# ------------------------------------------------------------------ non-blocking


async def test_persist_does_not_block_the_event_loop(sqlite_target: Target) -> None:
    import anyio

    trades = upbit_trades()
    batch = [
        replace(t, trade_id=f"{t.trade_id}-{k}") for k in range(15) for t in trades
    ]  # ~10k rows
    ticks: list[float] = []
    window: list[float] = []

    async def heartbeat(stop: anyio.Event) -> None:
        while not stop.is_set():
            ticks.append(anyio.current_time())
            await anyio.sleep(0.001)

    async with ms.open_sql_sink(sqlite_target.url) as sink:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat, stop)
            await anyio.sleep(0.01)
            window.append(anyio.current_time())
            result = await sink.persist(batch)
            window.append(anyio.current_time())
            stop.set()
    assert result.stored == len(batch)
    inside = [t for t in ticks if window[0] < t < window[1]]
    assert len(inside) >= 3, (len(inside), window[1] - window[0])


async def test_mixed_batch_where_only_the_candle_conflicts(target: Target) -> None:
    # New trades plus an update of an already stored candle in one batch: the optimistic
    # first attempt meets the stored candle, the batch is redone, and everything lands.
    closed, unclosed = _hour_candles()
    trades = upbit_trades()
    (_, second) = await write(target, [unclosed], [*trades[:200], closed, *trades[200:]])
    assert second.stored == len(trades) + 1 and second.rejected == []
    assert target.count("trade") == len(trades)
    assert _stored_hour(target) == closed


def test_optimism_backs_off_after_conflicts_and_recovers() -> None:
    from marketfeed_sinks.sql._postgres import _Optimism

    opt = _Optimism()
    assert opt.ready("candle")
    opt.conflict("candle")  # skip 1
    assert [opt.ready("candle") for _ in range(2)] == [False, True]
    opt.conflict("candle")  # skip 2
    assert [opt.ready("candle") for _ in range(3)] == [False, False, True]
    opt.success("candle")
    opt.conflict("candle")  # back to skip 1 after a success
    assert [opt.ready("candle") for _ in range(2)] == [False, True]
    for _ in range(20):
        opt.conflict("trade")
    skipped = 0
    while not opt.ready("trade"):
        skipped += 1
    assert skipped == _Optimism.MAX_SKIP
    assert opt.ready("ticker")  # per table
