"""Normalisation of every recorded Upbit frame, counted independently with plain json."""

import datetime as dt
import json
from collections import Counter
from decimal import Decimal

import msgspec
import pytest
from marketfeed import BookSnapshot, SubscriptionStatus, Ticker, Trade
from marketfeed_upbit import TradeDedup, UpbitSession
from upbit_testdata import CAPTURE_2021, DOCS_WS, make_normaliser, payload, received, utc

_enc = msgspec.json.Encoder(decimal_format="string")
_dec = msgspec.json.Decoder(Trade | BookSnapshot | Ticker | SubscriptionStatus)


def _exact(a: Decimal, b: Decimal) -> bool:
    """Same value *and* same text (exponent and trailing zeros)."""
    return isinstance(a, Decimal) and a.as_tuple() == b.as_tuple()


def _flip(code: str) -> str:
    quote, base = code.split("-")
    return f"{base}-{quote}"


def test_every_frame_of_the_2021_capture_normalises_with_counts_per_type_and_market() -> None:
    recs = received(CAPTURE_2021)
    expected_books: Counter[str] = Counter()
    expected_trades: set[tuple[str, int]] = set()
    for rec in recs:
        msg = json.loads(rec["frame"])
        if msg["ty"] == "orderbook":
            expected_books[msg["cd"]] += 1
        elif msg["ty"] == "trade":
            expected_trades.add((msg["cd"], msg["sid"]))
    assert sum(expected_books.values()) == 1061 and len(expected_trades) == 672

    norm = make_normaliser()
    books: Counter[str] = Counter()
    trades: Counter[tuple[str, str]] = Counter()
    statuses: Counter[tuple[str, str]] = Counter()
    for rec in recs:
        assert rec["binary"] is True
        events = norm(payload(rec), utc(rec["t"]))
        assert events, rec["frame"][:100]
        for ev in events:
            assert _dec.decode(_enc.encode(ev)) == ev
            if isinstance(ev, BookSnapshot):
                books[ev.native_symbol] += 1
                assert ev.symbol == _flip(ev.native_symbol)
            elif isinstance(ev, Trade):
                trades[(ev.native_symbol, ev.trade_id)] += 1
                assert ev.symbol == _flip(ev.native_symbol)
            else:
                assert isinstance(ev, SubscriptionStatus) and ev.state == "active"
                statuses[(ev.channel, ev.native_symbol)] += 1
    assert books == expected_books
    assert set(trades) == {(cd, str(sid)) for cd, sid in expected_trades}
    assert max(trades.values()) == 1
    # one "active" per (type, market) seen: Upbit sends no acknowledgement
    seen = {(json.loads(r["frame"])["ty"], json.loads(r["frame"])["cd"]) for r in recs}
    assert statuses == Counter(dict.fromkeys(seen, 1))


def test_orderbook_levels_totals_and_times_are_exact() -> None:
    norm = make_normaliser()
    checked = exponent = 0
    for rec in received(CAPTURE_2021):
        msg = json.loads(rec["frame"], parse_float=Decimal)
        events = [
            e for e in norm(payload(rec), utc(rec["t"])) if not isinstance(e, SubscriptionStatus)
        ]
        if msg["ty"] != "orderbook":
            continue
        (book,) = events
        units = msg["obu"]
        assert len(book.asks) == len(book.bids) == len(units) == book.depth == 15
        for (ap, asz), (bp, bsz), u in zip(book.asks, book.bids, units, strict=True):
            assert _exact(ap, u["ap"]) and _exact(asz, u["as"])
            assert _exact(bp, u["bp"]) and _exact(bsz, u["bs"])
            exponent += "E" in str(ap) + str(bp)
        assert [a[0] for a in book.asks] == sorted(a[0] for a in book.asks)
        assert [b[0] for b in book.bids] == sorted((b[0] for b in book.bids), reverse=True)
        assert _exact(book.total_ask_size, msg["tas"]) and _exact(book.total_bid_size, msg["tbs"])
        assert book.event_time == dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
            milliseconds=msg["tms"]
        )
        assert book.receive_time == utc(rec["t"])
        checked += 1
    assert checked == 1061
    assert exponent > 0  # BTC-market prices such as 2.2E-7 went through exactly


def test_exponent_prices_keep_their_text() -> None:
    rec = next(r for r in received(CAPTURE_2021) if '"ap":2.2E-7' in r["frame"])
    book = next(
        e for e in make_normaliser()(payload(rec), utc(rec["t"])) if isinstance(e, BookSnapshot)
    )
    assert book.symbol == "BASIC-BTC" and book.native_symbol == "BTC-BASIC"
    assert str(book.asks[0][0]) == "2.2E-7"
    assert any(str(price) == "2E-7" for price, _ in book.bids)


def test_trades_are_exact_with_side_and_sequence() -> None:
    norm = make_normaliser()
    n = 0
    for rec in received(CAPTURE_2021):
        msg = json.loads(rec["frame"], parse_float=Decimal)
        events = [e for e in norm(payload(rec), utc(rec["t"])) if isinstance(e, Trade)]
        if msg["ty"] != "trade":
            continue
        (trade,) = events
        assert _exact(trade.price, msg["tp"]) and _exact(trade.size, msg["tv"])
        assert trade.side == {"BID": "buy", "ASK": "sell"}[msg["ab"]]
        assert trade.sequence == msg["sid"] and trade.trade_id == str(msg["sid"])
        assert trade.event_time == dt.datetime.fromtimestamp(msg["ttms"] / 1000, dt.UTC)
        n += 1
    assert n == 672


def test_docs_transcript_default_tickers_with_zero_in_exponent_form() -> None:
    recs = received(DOCS_WS)
    assert '"change_price":0E-8' in recs[1]["frame"]
    norm = make_normaliser()
    tickers = []
    for rec in recs:
        msg = json.loads(rec["frame"], parse_float=Decimal)
        events = norm(payload(rec), utc(rec["t"]))
        (ticker,) = [e for e in events if isinstance(e, Ticker)]
        assert ticker.symbol == "BTC-KRW" and ticker.native_symbol == msg["code"] == "KRW-BTC"
        assert _exact(ticker.last, msg["trade_price"])
        assert _exact(ticker.last_size, msg["trade_volume"])
        assert _exact(ticker.volume_24h, msg["acc_trade_volume_24h"])
        assert _exact(ticker.quote_volume_24h, msg["acc_trade_price_24h"])
        assert ticker.event_time == dt.datetime.fromtimestamp(msg["timestamp"] / 1000, dt.UTC)
        tickers.append(ticker)
    assert len(tickers) == 2


def test_sequential_ids_repeat_across_markets_and_all_those_trades_are_kept() -> None:
    markets_of: dict[int, set[str]] = {}
    for rec in received(CAPTURE_2021):
        msg = json.loads(rec["frame"])
        if msg["ty"] == "trade":
            markets_of.setdefault(msg["sid"], set()).add(msg["cd"])
    shared = {sid for sid, cds in markets_of.items() if len(cds) > 1}
    assert shared  # the capture itself shows it
    norm = make_normaliser()
    kept: Counter[int] = Counter()
    for rec in received(CAPTURE_2021):
        for ev in norm(payload(rec), utc(rec["t"])):
            if isinstance(ev, Trade) and ev.sequence in shared:
                kept[ev.sequence] += 1
    assert kept == Counter({sid: len(markets_of[sid]) for sid in shared})


def test_a_repeated_trade_is_dropped_also_by_a_new_normaliser_of_the_session() -> None:
    rec = next(r for r in received(CAPTURE_2021) if r["frame"].startswith('{"ty":"trade"'))
    session = UpbitSession(dedup_window=10)
    first = make_normaliser(session=session)
    assert [type(e) for e in first(payload(rec), utc(rec["t"]))] == [SubscriptionStatus, Trade]
    assert not first(payload(rec), utc(rec["t"]))
    again = make_normaliser(session=session)  # a reconnect builds a new normaliser
    assert [type(e) for e in again(payload(rec), utc(rec["t"]))] == [SubscriptionStatus]


def test_trade_dedup_window_is_bounded_per_market() -> None:
    dedup = TradeDedup(window=3)
    assert all(dedup.is_new("KRW-BTC", sid) for sid in (1, 2, 3, 4))
    assert len(dedup) == 3
    assert not dedup.is_new("KRW-BTC", 4) and not dedup.is_new("KRW-BTC", 2)
    assert dedup.is_new("KRW-BTC", 1)  # forgotten: outside the window
    assert dedup.is_new("BTC-ETH", 4)  # another market, same id


@pytest.mark.parametrize("frame", [b"", b"PONG", b'{"ty":"trade"', b"[1,2]"])
def test_malformed_frames_raise(frame: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError, ValueError)):
        make_normaliser()(frame, utc(0))
