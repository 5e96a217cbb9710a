"""Frames not in the recordings, built from the documented shapes (files marked
``constructed``) or edited from real frames in the test: DEFAULT format, SIMPLE tickers,
candles, status and error frames, text frames, odd order book units."""

import datetime as dt
import json
from decimal import Decimal

import pytest
from marketfeed import BookSnapshot, Candle, SubscriptionStatus, Ticker, Trade
from upbit_testdata import (
    CAPTURE_2021,
    DEFAULT_CONSTRUCTED,
    DOCS_WS,
    MISC_CONSTRUCTED,
    make_normaliser,
    payload,
    received,
    utc,
)


def _market_events(norm, rec):
    return [e for e in norm(payload(rec), utc(rec["t"])) if not isinstance(e, SubscriptionStatus)]


def test_default_format_text_frames_give_the_same_events_as_simple_binary_ones() -> None:
    default = received(DEFAULT_CONSTRUCTED)
    simple = received(CAPTURE_2021)[: len(default)]
    assert len(default) == 300
    assert all("binary" not in r and r["frame"].startswith('{"type":') for r in default)
    a, b = make_normaliser(), make_normaliser()
    n = 0
    for d, s in zip(default, simple, strict=True):
        got, want = _market_events(a, d), _market_events(b, s)
        assert got == want and len(got) == 1
        n += 1
    assert n == 300


def test_simple_tickers_equal_the_documented_default_ones() -> None:
    tickers = [r for r in received(MISC_CONSTRUCTED) if r["frame"].startswith('{"ty":"ticker"')]
    docs = received(DOCS_WS)
    assert len(tickers) == len(docs) == 2
    a, b = make_normaliser(), make_normaliser()
    for s, d in zip(tickers, docs, strict=True):
        got, want = _market_events(a, s), _market_events(b, d)
        assert got == want and isinstance(got[0], Ticker)


_TIMEFRAME = {"candle.1m": ("1m", 60), "candle.1s": ("1s", 1), "candle.60m": ("1h", 3600)}


def test_candles_in_both_formats() -> None:
    recs = [r for r in received(MISC_CONSTRUCTED) if '"candle.' in r["frame"]]
    assert len(recs) == 12
    norm = make_normaliser()
    by_format: dict[bool, list[Candle]] = {True: [], False: []}
    for rec in recs:
        msg = json.loads(rec["frame"], parse_float=Decimal)
        simple = "ty" in msg
        ctype = msg["ty" if simple else "type"]
        (candle,) = _market_events(norm, rec)
        timeframe, seconds = _TIMEFRAME[ctype]
        open_time = dt.datetime.fromisoformat(msg["cdttmu" if simple else "candle_date_time_utc"])
        open_time = open_time.replace(tzinfo=dt.UTC)
        tms = msg["tms" if simple else "timestamp"]
        assert candle.timeframe == timeframe and candle.open_time == open_time
        assert candle.symbol == "BTC-KRW"
        assert candle.close == msg["tp" if simple else "trade_price"]
        assert str(candle.volume) == str(msg["catv" if simple else "candle_acc_trade_volume"])
        end_ms = (open_time + dt.timedelta(seconds=seconds)).timestamp() * 1000
        assert candle.closed == (tms >= end_ms)
        by_format[simple].append(candle)
    assert by_format[True] == by_format[False]
    assert {c.closed for c in by_format[True]} == {True, False}


def test_status_up_is_silent_and_errors_fail_every_subscription_of_the_connection() -> None:
    recs = {
        json.loads(r["frame"]).get("error", {}).get("name", "up"): r
        for r in received(MISC_CONSTRUCTED)
        if r["frame"].startswith(('{"status"', '{"error"'))
    }
    subs = [("trade", "KRW-BTC"), ("orderbook", "BTC-ETH")]
    norm = make_normaliser(subs)
    assert not norm(payload(recs["up"]), utc(recs["up"]["t"]))
    assert not norm('{"status":"UP"}', utc(0))  # text frame alike
    for name, message in (
        ("INVALID_AUTH", "인증 정보가 올바르지 않습니다."),
        ("NO_CODES", "NO_CODES"),
    ):
        events = norm(payload(recs[name]), utc(recs[name]["t"]))
        assert [(e.channel, e.native_symbol, e.state, e.code, e.message) for e in events] == [
            (c, s, "failed", name, message) for c, s in subs
        ]


def _first_book_frame() -> dict:
    return next(r for r in received(CAPTURE_2021) if r["frame"].startswith('{"ty":"orderbook"'))


def test_text_and_binary_frames_alike() -> None:
    rec = _first_book_frame()
    assert make_normaliser()(rec["frame"], utc(1)) == make_normaliser()(payload(rec), utc(1))


def test_units_with_whitespace_take_the_slow_path_and_give_the_same_book() -> None:
    rec = _first_book_frame()
    spaced = rec["frame"].replace("},{", "}, {").replace('"obu":[', '"obu": [ ')
    assert spaced != rec["frame"]
    assert _market_events(make_normaliser(), {**rec, "frame": spaced}) == _market_events(
        make_normaliser(), rec
    )


def test_an_empty_side_is_dropped_from_the_book() -> None:
    rec = _first_book_frame()
    msg = json.loads(rec["frame"], parse_float=Decimal)
    last = msg["obu"][-1]
    needle = f'"bp":{last["bp"]},"as":{last["as"]},"bs":{last["bs"]}'
    assert needle in rec["frame"]
    edited = rec["frame"].replace(needle, f'"bp":0,"as":{last["as"]},"bs":0')
    for frame in (edited, edited.replace("},{", "}, {")):  # fast and slow path
        (book,) = _market_events(make_normaliser(), {**rec, "frame": frame})
        assert len(book.asks) == 15 and len(book.bids) == 14
        assert book.bids == tuple((u["bp"], u["bs"]) for u in msg["obu"][:-1])


def test_a_crossed_book_is_rejected() -> None:
    rec = _first_book_frame()
    msg = json.loads(rec["frame"])
    best_ask, best_bid = msg["obu"][0]["ap"], msg["obu"][0]["bp"]
    crossed = rec["frame"].replace(f'"bp":{best_bid},', f'"bp":{best_ask + 1},', 1)
    with pytest.raises(ValueError, match="crossed"):
        make_normaliser()(crossed.encode(), utc(1))


def test_an_unknown_type_or_a_missing_field_is_an_error() -> None:
    rec = next(r for r in received(CAPTURE_2021) if r["frame"].startswith('{"ty":"trade"'))
    norm = make_normaliser()
    with pytest.raises(ValueError):  # msgspec.ValidationError is a ValueError
        norm(rec["frame"].replace('"ty":"trade"', '"ty":"myTrade"'), utc(1))
    with pytest.raises(ValueError):
        norm(rec["frame"].replace('"sid":', '"xid":'), utc(1))
    with pytest.raises(ValueError, match="unrecognised"):
        norm('{"hello":"world"}', utc(1))


def test_a_type_key_that_is_not_first_still_decodes() -> None:
    rec = next(r for r in received(CAPTURE_2021) if r["frame"].startswith('{"ty":"trade"'))
    moved = "{" + rec["frame"][len('{"ty":"trade",') : -1] + ',"ty":"trade"}'
    assert [type(e) for e in make_normaliser()(moved, utc(1))] == [SubscriptionStatus, Trade]
    assert _market_events(make_normaliser(), {**rec, "frame": moved}) == _market_events(
        make_normaliser(), rec
    )


def test_book_snapshot_keeps_upbit_totals() -> None:
    rec = _first_book_frame()
    (book,) = _market_events(make_normaliser(), rec)
    assert isinstance(book, BookSnapshot)
    assert str(book.total_ask_size) == "3873697.94329493"
    assert str(book.total_bid_size) == "12103375.77710546"
