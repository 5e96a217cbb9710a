"""Every frame of every OKX capture normalises; events match the recordings exactly."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from marketfeed import (
    BookDelta,
    BookSnapshot,
    Candle,
    Event,
    ResyncRequest,
    SubscriptionStatus,
    Ticker,
    Trade,
    event_kind,
)
from marketfeed_okx import OkxNormaliser, okx_checksum
from okx_testdata import (
    WS_2021,
    WS_2022,
    WS_CAPTURES,
    PlainBook,
    expected_counts,
    in_frames,
    opt_dec,
    utc_ms,
)

_CHANNEL_OF_KIND = {"ticker": "tickers", "trade": "trades"}


def _normalise_all(path: Path) -> list[tuple[str, list[Event]]]:
    normaliser = OkxNormaliser("okx")
    out = []
    for t, frame in in_frames(path):
        out.append((frame, list(normaliser(frame, dt.datetime.fromtimestamp(t, dt.UTC)))))
    return out


def _book_channel(path: Path) -> dict[str, str]:
    """instId -> its book channel in the capture."""
    channels = {}
    for _, frame in in_frames(path):
        msg = json.loads(frame)
        if "data" in msg and msg["arg"]["channel"].startswith("books"):
            channels[msg["arg"]["instId"]] = msg["arg"]["channel"]
    return channels


@pytest.mark.parametrize("path", WS_CAPTURES, ids=lambda p: p.name)
def test_event_counts_per_channel_and_instrument_match_the_capture(path: Path) -> None:
    expected = expected_counts(path)
    assert expected, "capture holds nothing"
    books = _book_channel(path)
    actual: Counter[tuple[str, str, str]] = Counter()
    for _, events in _normalise_all(path):
        for ev in events:
            kind = event_kind(type(ev))
            if isinstance(ev, SubscriptionStatus):
                assert ev.state == "active"
                actual[kind, ev.channel, ev.native_symbol] += 1
            elif isinstance(ev, Candle):
                actual[kind, "candle" + _bar(ev.timeframe), ev.native_symbol] += 1
            elif isinstance(ev, BookSnapshot | BookDelta):
                actual[kind, books[ev.native_symbol], ev.native_symbol] += 1
            else:
                actual[kind, _CHANNEL_OF_KIND[kind], ev.native_symbol] += 1
    assert actual == expected


def _bar(timeframe: str) -> str:
    # the two timeframes in the candle snippets
    return {"1m": "1m", "1h": "1H"}[timeframe]


@pytest.mark.parametrize("path", (WS_2022, WS_2021), ids=lambda p: p.name)
def test_market_events_carry_the_recorded_values(path: Path) -> None:
    """Frame by frame: exact decimals from the strings, ts as UTC, taker side, book
    levels as sent, every book verified by its checksum."""
    checked = Counter[str]()
    for frame, events in _normalise_all(path):
        msg = json.loads(frame)
        if "event" in msg:
            continue
        channel = msg["arg"]["channel"]
        data = msg["data"]
        assert not any(isinstance(e, ResyncRequest | SubscriptionStatus) for e in events)
        if channel == "tickers":
            assert len(events) == len(data)
            for ev, d in zip(events, data, strict=True):
                assert isinstance(ev, Ticker)
                assert ev.symbol == ev.native_symbol == d["instId"]
                assert ev.event_time == utc_ms(d["ts"])
                assert ev.last == opt_dec(d["last"])
                assert ev.last_size == opt_dec(d["lastSz"])
                assert (ev.bid, ev.bid_size) == (opt_dec(d["bidPx"]), opt_dec(d["bidSz"]))
                assert (ev.ask, ev.ask_size) == (opt_dec(d["askPx"]), opt_dec(d["askSz"]))
                assert ev.open_24h == opt_dec(d["open24h"])
                assert ev.high_24h == opt_dec(d["high24h"])
                assert ev.low_24h == opt_dec(d["low24h"])
                assert ev.volume_24h == opt_dec(d["vol24h"])
                # volCcy24h is quote currency for spot only (base currency for derivatives)
                spot = d["instType"] == "SPOT"
                assert ev.quote_volume_24h == (opt_dec(d["volCcy24h"]) if spot else None)
                checked["ticker"] += 1
        elif channel == "trades":
            assert len(events) == len(data)
            for ev, d in zip(events, data, strict=True):
                assert isinstance(ev, Trade)
                assert (ev.trade_id, ev.side) == (d["tradeId"], d["side"])
                assert (ev.price, ev.size) == (Decimal(d["px"]), Decimal(d["sz"]))
                assert ev.price.as_tuple() == Decimal(d["px"]).as_tuple()  # digits as sent
                assert ev.event_time == utc_ms(d["ts"])
                checked["trade"] += 1
        else:
            d = data[0]
            if msg["action"] == "update" and not (d["bids"] or d["asks"]):
                assert events == []
                continue
            (ev,) = events
            assert isinstance(ev, BookSnapshot if msg["action"] == "snapshot" else BookDelta)
            assert ev.native_symbol == msg["arg"]["instId"]
            assert ev.bids == tuple((Decimal(p), Decimal(s)) for p, s, *_ in d["bids"])
            assert ev.asks == tuple((Decimal(p), Decimal(s)) for p, s, *_ in d["asks"])
            assert ev.checksum == d["checksum"]
            assert ev.verified is True
            assert ev.event_time == utc_ms(d["ts"])
            checked[msg["action"]] += 1
    assert checked["ticker"] and checked["trade"] and checked["snapshot"] and checked["update"]


def test_the_first_trade_may_be_old_and_is_kept() -> None:
    """OKX sends the last trade before the subscription first (SHAPES.md); it is a normal
    trade event (sinks deduplicate on trade_id), however old."""
    oldest = None
    for _, events in _normalise_all(WS_2021):
        for ev in events:
            if isinstance(ev, Trade):
                age = ev.receive_time - ev.event_time
                oldest = age if oldest is None else max(oldest, age)
    assert oldest is not None and oldest > dt.timedelta(hours=20)


@pytest.mark.parametrize("path", (WS_2022, WS_2021), ids=lambda p: p.name)
def test_every_recorded_checksum_validates_on_a_rebuilt_book(path: Path) -> None:
    """An independent book rebuild in file order matches every checksum, and the plugin's
    ``okx_checksum`` agrees with it on every state."""
    books: dict[str, PlainBook] = {}
    checked = 0
    for _, frame in in_frames(path):
        msg = json.loads(frame)
        if "data" not in msg or not msg["arg"]["channel"].startswith("books"):
            continue
        d = msg["data"][0]
        book = books.setdefault(msg["arg"]["instId"], PlainBook())
        if msg["action"] == "snapshot":
            book.snapshot(d["bids"], d["asks"])
        else:
            book.update(d["bids"], d["asks"])
        assert book.checksum() == d["checksum"]
        bids, asks = book.top(25)
        assert okx_checksum(bids, asks) == d["checksum"]
        checked += 1
    assert checked > 250


def test_bytes_frames_are_accepted() -> None:
    normaliser = OkxNormaliser("okx")
    now = dt.datetime.now(dt.UTC)
    for _, frame in in_frames(WS_2022):
        if '"trades"' in frame and '"data"' in frame:
            (text_ev,) = OkxNormaliser("okx")(frame, now)
            (bytes_ev,) = normaliser(frame.encode(), now)
            assert text_ev == bytes_ev
            return
    raise AssertionError("no trade frame")
