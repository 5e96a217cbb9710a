"""PostgreSQL COPY formats: the text rows the sink builds itself, and both formats keeping
every behaviour (exact decimals, idempotence, candle precedence, poison rows, partitions).

The default (``pg_bulk = "copy"``) sends some tables as text and others as binary, so each
behaviour test of ``test_sql_sink`` is run here again with one format forced for every
table.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import marketfeed_sinks as ms
import msgspec
import pytest
import test_sql_sink as behaviour
from marketfeed_sinks.sql._pgtext import NULL, TextEncoder, timestamp_copy_text
from marketfeed_sinks.sql._tables import TABLES, book_top_row
from sink_targets import Target
from sinkdata import (
    kiwoom_daily_bars,
    okx_books,
    okx_candles,
    okx_tickers,
    okx_trades,
    upbit_candles,
    upbit_trades,
)

pytestmark = pytest.mark.anyio

UTC = dt.UTC
KST = dt.timezone(dt.timedelta(hours=9))
replace = msgspec.structs.replace

# ------------------------------------------------------------------ the encoder, no database


def _rows(kind: str, events: list[Any]) -> list[tuple[Any, ...]]:
    spec = TABLES[kind]
    row = (lambda e: book_top_row(e, 10)) if kind == "book_snapshot" else spec.row
    return [row(e) for e in events]


REAL = {
    "trade": lambda: okx_trades() + upbit_trades(),
    "candle": lambda: okx_candles() + upbit_candles(),
    "ticker": okx_tickers,
    "book_snapshot": okx_books,
    "daily_bar": kiwoom_daily_bars,
}


@pytest.mark.parametrize("kind", sorted(REAL))
def test_fast_encoder_matches_the_careful_one_on_real_data(kind: str) -> None:
    rows = _rows(kind, REAL[kind]())
    encoder = TextEncoder(TABLES[kind])
    text = encoder(rows).decode()
    assert text == encoder.careful(rows)
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == len(rows) + 1
    assert {line.count("\t") for line in lines[:-1]} == {len(TABLES[kind].columns) - 1}


def test_special_characters_are_escaped() -> None:
    trade = okx_trades()[0]
    odd = [
        replace(trade, trade_id="tab\there"),
        replace(trade, trade_id="new\nline"),
        replace(trade, trade_id="carriage\rreturn"),
        replace(trade, trade_id="back\\slash"),
        replace(trade, trade_id=NULL),  # the NULL marker as a value is not a NULL
        replace(trade, trade_id="\\."),  # the old end-of-data marker
    ]
    encoder = TextEncoder(TABLES["trade"])
    text = encoder(_rows("trade", [trade, *odd])).decode()
    lines = text.split("\n")[:-1]
    assert len(lines) == len(odd) + 1
    ids = [line.split("\t")[3] for line in lines[1:]]
    assert ids == [
        "tab\\there",
        "new\\nline",
        "carriage\\rreturn",
        "back\\\\slash",
        "\\\\N",
        "\\\\.",
    ]


def test_none_in_a_not_null_column_is_written_as_null() -> None:
    # The database then refuses the row (a poison row), instead of storing "None".
    trade = replace(okx_trades()[0], trade_id=None)  # type: ignore[arg-type]
    (line,) = TextEncoder(TABLES["trade"])(_rows("trade", [trade])).decode().splitlines()
    assert line.split("\t")[3] == NULL


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2022, 5, 13, 16, 27, 5, 298000, tzinfo=UTC),
        dt.datetime(2022, 5, 13, 16, 27, 5, 5, tzinfo=UTC),
        dt.datetime(2022, 5, 13, 16, 27, 5, tzinfo=UTC),
        dt.datetime(2022, 5, 14, 1, 27, 5, 298000, tzinfo=KST),  # = 2022-05-13 16:27:05.298
        dt.datetime(2022, 5, 13, 16, 27, 5, 298000),  # naive: UTC
        dt.datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        dt.datetime(1, 1, 1, tzinfo=UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_timestamp_text_is_utc_iso(value: dt.datetime) -> None:
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    expected = utc.replace(tzinfo=None).isoformat(" ", "microseconds") + "+00"
    assert timestamp_copy_text(value) == expected


def test_timestamp_text_refuses_other_types() -> None:
    with pytest.raises(TypeError):
        timestamp_copy_text("2022-05-13")  # type: ignore[arg-type]


# ------------------------------------------------------------------ both formats, PostgreSQL


@pytest.fixture(params=["copy_text", "copy_binary", "copy"])
def pg(request: pytest.FixtureRequest, postgres_url: Target) -> Target:
    """PostgreSQL with one COPY format for every table (or the per-table default)."""
    postgres_url.options["pg_bulk"] = request.param
    return postgres_url


@pytest.mark.postgres
async def test_text_values_and_times_round_trip(pg: Target) -> None:
    base = okx_trades()[0]
    odd_ids = ["tab\there", "new\nline", "carriage\rreturn", "back\\slash", NULL, "\\.", "한글"]
    trades = [replace(base, trade_id=tid) for tid in odd_ids]
    times = [
        dt.datetime(2022, 5, 14, 1, 27, 5, 298000, tzinfo=KST),
        dt.datetime(2022, 5, 13, 16, 27, 5, 5, tzinfo=UTC),
        dt.datetime(2022, 5, 13, 16, 27, 5),  # naive: UTC
    ]
    trades += [replace(base, trade_id=f"t{i}", event_time=t) for i, t in enumerate(times)]
    trades.append(replace(base, trade_id="no-side", side=None, sequence=None))
    trades.append(replace(base, trade_id="seq", sequence=2**63 - 1))
    (result,) = await behaviour.write(pg, trades)
    assert result.stored == len(trades) and result.rejected == []

    stored = {
        t.trade_id: t
        for t in ms.trades(
            pg.url, "okx", base.symbol, behaviour.FAR_PAST, behaviour.FAR_FUTURE, schema=pg.schema
        )
    }
    for t in trades:
        got = stored[t.trade_id]
        want_time = t.event_time if t.event_time.tzinfo else t.event_time.replace(tzinfo=UTC)
        assert got.event_time == want_time
        assert got.event_time.tzinfo is not None
        assert (got.side, got.sequence, str(got.price), str(got.size)) == (
            t.side,
            t.sequence,
            str(t.price),
            str(t.size),
        )


@pytest.mark.postgres
async def test_decimals_round_trip_exactly(pg: Target) -> None:
    await behaviour.test_decimals_round_trip_exactly(pg)


@pytest.mark.postgres
async def test_candle_decimals_round_trip_exactly(pg: Target) -> None:
    base = upbit_candles()[0]
    texts = [Decimal(t) for t in behaviour.EXACT]
    candles = [
        replace(
            base,
            open_time=base.open_time + dt.timedelta(minutes=i),
            open=texts[i],
            high=texts[-1 - i],
            low=texts[(i + 2) % len(texts)],
            close=texts[(i + 3) % len(texts)],
            volume=texts[(i + 4) % len(texts)],
            quote_volume=None if i % 2 else texts[(i + 5) % len(texts)],
        )
        for i in range(len(texts))
    ]
    await behaviour.write(pg, candles)
    got = ms.candles(
        pg.url,
        base.venue,
        base.symbol,
        base.timeframe,
        behaviour.FAR_PAST,
        behaviour.FAR_FUTURE,
        schema=pg.schema,
    )
    assert len(got) == len(candles)
    for want, have in zip(candles, got, strict=True):
        for field in ("open", "high", "low", "close", "volume", "quote_volume"):
            a, b = getattr(want, field), getattr(have, field)
            assert (a is None and b is None) or a.as_tuple() == b.as_tuple(), field
        assert have == want


@pytest.mark.postgres
async def test_same_batch_twice_leaves_the_same_rows(pg: Target) -> None:
    await behaviour.test_same_batch_twice_leaves_the_same_rows(pg)


@pytest.mark.postgres
async def test_replayed_trades_after_new_ones_still_land(pg: Target) -> None:
    await behaviour.test_replayed_trades_after_new_ones_still_land(pg)


@pytest.mark.postgres
@pytest.mark.parametrize("same_batch", [False, True], ids=["two-batches", "one-batch"])
async def test_closed_candle_precedence(pg: Target, same_batch: bool) -> None:
    await behaviour.test_unclosed_then_closed_keeps_closed(pg, same_batch)


@pytest.mark.postgres
async def test_closed_is_never_replaced_by_unclosed(pg: Target) -> None:
    await behaviour.test_closed_is_never_replaced_by_unclosed(pg, False)


@pytest.mark.postgres
async def test_batch_crossing_a_month_boundary(pg: Target) -> None:
    await behaviour.test_batch_crossing_a_month_boundary(pg)


@pytest.mark.postgres
async def test_poison_rows_go_to_dead_letter_and_the_rest_lands(pg: Target) -> None:
    await behaviour.test_poison_rows_go_to_dead_letter_and_the_rest_lands(pg)


@pytest.mark.postgres
async def test_unstorable_values_are_poison_rows(pg: Target) -> None:
    good = upbit_trades()[:20]
    bad = [
        replace(good[3], trade_id="huge", price=Decimal("1E+200000")),
        replace(good[7], trade_id="nul\x00byte"),
        replace(good[9], trade_id="surrogate\ud800"),
        replace(good[11], trade_id=None),  # type: ignore[arg-type]
    ]
    (result,) = await behaviour.write(pg, [*good, *bad])
    assert [ev for ev, _ in result.rejected] == bad
    assert result.stored == len(good)
    assert pg.count("trade") == len(good)
    assert pg.count("dead_letter") == len(bad)


@pytest.mark.postgres
async def test_every_kind_round_trips(pg: Target) -> None:
    await behaviour.test_every_kind_round_trips(pg)


@pytest.mark.postgres
async def test_mixed_batch_where_only_the_candle_conflicts(pg: Target) -> None:
    await behaviour.test_mixed_batch_where_only_the_candle_conflicts(pg)


def test_every_stored_kind_has_an_encoder() -> None:
    for spec in TABLES.values():
        assert TextEncoder(spec).width == len(spec.columns)
