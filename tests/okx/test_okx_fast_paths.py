"""The plugin's fast paths give what its plain paths give, on the real captures.

* :func:`marketfeed_okx.book_checksum_crc` (the checksum through the core's
  ``L2Book.crc32_pairs``, used when the core's C speedups are loaded) agrees with every
  checksum OKX sent, with the core's C speedups and with its pure-Python engine.
* The C fast path of the normaliser (``marketfeed_okx._cokx``) gives, frame by frame, the
  same events (same types, same JSON encoding: exact decimal strings, times, symbols) as
  the pure-Python path, over both captures and both emission policies, and leaves every
  unusual frame to the Python path, which then gives the same events or raises the same
  error (frames derived from real ones: **constructed**).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import weakref
from collections import Counter
from typing import Any

import msgspec
import pytest
from marketfeed import Subscription, _book
from marketfeed.book import L2Book
from marketfeed_okx import BOOK_CHANNELS, OkxNormaliser, _normalise, book_checksum_crc
from okx_testdata import WS_2021, WS_2022, PlainBook, in_frames

NOW = dt.datetime(2022, 5, 13, 16, 27, 10, tzinfo=dt.UTC)
needs_c = pytest.mark.skipif(not _normalise.SPEEDUPS, reason="marketfeed_okx._cokx not built")


def _pair(
    monkeypatch: pytest.MonkeyPatch, subs: list[Subscription] | None = None
) -> tuple[OkxNormaliser, OkxNormaliser]:
    """(C fast path normaliser, pure-Python normaliser) over the same subscriptions."""
    fast = OkxNormaliser("okx", subs or [])
    with monkeypatch.context() as m:
        m.setattr(_normalise, "_cokx", None)
        slow = OkxNormaliser("okx", subs or [])
    assert fast._fast is not None and slow._fast is None
    return fast, slow


def _outcome(normaliser: OkxNormaliser, frame: str | bytes) -> Any:
    """The events as (type, JSON) pairs, or the exception type raised."""
    try:
        events = normaliser(frame, NOW)
    except Exception as exc:  # compared between paths
        return type(exc)
    return [(type(e).__name__, msgspec.json.encode(e)) for e in events]


@needs_c
@pytest.mark.parametrize("emit", ["delta", "top"])
def test_c_fast_path_gives_the_python_paths_events(
    emit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every frame of both captures: identical events from both paths, and the C path
    really handled the tickers, trades and book pushes (it returned something for them)."""
    for path in (WS_2022, WS_2021):
        frames = [f for _, f in in_frames(path)]
        insts = {json.loads(f)["arg"]["instId"] for f in frames if f.startswith('{"arg"')}
        subs = [
            Subscription(venue="okx", channel=ch, symbol=i, options={"book_emit": emit})
            for ch in BOOK_CHANNELS
            for i in sorted(insts)
        ]
        fast, slow = _pair(monkeypatch, subs)
        assert fast._fast is not None
        handled: Counter[str] = Counter()
        for frame in frames:
            if fast._fast(frame, NOW) is not None:
                handled[json.loads(frame)["arg"]["channel"]] += 1
        fast, slow = _pair(monkeypatch, subs)
        events = 0
        for frame in frames:
            a = _outcome(fast, frame)
            assert a == _outcome(slow, frame), frame[:200]
            events += len(a)
        assert events > 100
        assert handled["tickers"] > 20 and handled["trades"] > 30
        assert handled["books"] + handled["books-l2-tbt"] > 280


def _real(path: Any, channel: str, action: str = "") -> dict[str, Any]:
    for _, frame in in_frames(path):
        if frame.startswith(f'{{"arg":{{"channel":"{channel}"') and action in frame[:80]:
            msg: dict[str, Any] = json.loads(frame)
            return msg
    raise AssertionError(channel)


def _variants() -> list[tuple[str, list[str]]]:
    """Constructed frames from real ones: (name, frames fed in order)."""
    ticker = _real(WS_2022, "tickers")
    trade = _real(WS_2022, "trades")
    snap = _real(WS_2022, "books", '"action":"snapshot"')
    inst = snap["arg"]["instId"]
    update = next(
        json.loads(f)
        for _, f in in_frames(WS_2022)
        if f.startswith('{"arg":{"channel":"books"') and '"update"' in f[:80] and inst in f[:80]
    )
    dump = json.dumps

    def edit(msg: dict[str, Any], **data: Any) -> str:
        m = json.loads(dump(msg))
        m["data"][0].update(data)
        return dump(m, separators=(",", ":"))

    compact = {k: dump(v, separators=(",", ":")) for k, v in (("t", ticker), ("r", trade))}
    s, u = dump(snap, separators=(",", ":")), dump(update, separators=(",", ":"))
    spot_ticker = dict(ticker, data=[dict(ticker["data"][0], instType="SPOT")])
    no_type = dict(ticker, data=[{k: v for k, v in ticker["data"][0].items() if k != "instType"}])
    level = update["data"][0]["bids"] or update["data"][0]["asks"]
    side = "bids" if update["data"][0]["bids"] else "asks"
    two = [lv[:2] for lv in level]

    def esc(text: str) -> str:  # the first character as a JSON escape
        return f"\\u{ord(text[0]):04x}{text[1:]}"

    return [
        ("ticker", [compact["t"]]),
        ("ticker, spaces", [dump(ticker, indent=2)]),
        ("ticker, spot", [dump(spot_ticker)]),
        ("ticker, no instType", [dump(no_type)]),
        ("ticker, absent values", [edit(ticker, bidPx="", bidSz="", volCcy24h="")]),
        ("ticker, ts number", [edit(ticker, ts=int(ticker["data"][0]["ts"]))]),
        ("ticker, exponent", [edit(ticker, last="3.02188E+4", lastSz="1e-8")]),
        (
            "ticker, decimal spellings",
            [
                edit(
                    ticker,
                    last="-0",
                    lastSz="0.000",
                    bidPx="1.",
                    bidSz=".5",
                    askPx="+5",
                    askSz="00012.3400",
                    open24h="1234567890123456789012345678901.5",
                    high24h="12345678901234567890123456789012.5",
                    low24h="1E-99999",
                    vol24h="-1.5e+3",
                    volCcy24h="0.00000000000000000000000000001",
                )
            ],
        ),
        ("ticker, not a decimal", [edit(ticker, last="1.2.3")]),
        ("ticker, tiny exponent", [edit(ticker, low24h="1E-999999999999999999999")]),
        ("ticker, dot", [edit(ticker, bidPx=".")]),
        ("ticker, sign", [edit(ticker, askPx="-")]),
        ("ticker, NaN", [edit(ticker, last="NaN")]),
        ("ticker, Infinity volume", [edit(ticker, vol24h="Infinity")]),
        ("ticker, padded", [edit(ticker, last=" 30218.8")]),
        ("ticker, null", [edit(ticker, last=None)]),
        ("ticker, no ts", [compact["t"].replace('"ts"', '"tz"')]),
        ("ticker, escaped", [compact["t"].replace("BTC-USD", "BTC\\u002dUSD")]),
        ("ticker, nested unknown", [edit(ticker, x={"y": [1, 2.5, {"z": None, "w": True}]})]),
        ("ticker, two objects", [dump(dict(ticker, data=ticker["data"] * 2))]),
        ("ticker, data first", [dump({"data": ticker["data"], "arg": ticker["arg"]})]),
        ("ticker, bad instId", [edit(ticker, instId="BTCUSD")]),
        ("ticker, trailing", [compact["t"] + "x"]),
        ("ticker, leading zero ts", [edit(ticker, ts="0" + ticker["data"][0]["ts"])]),
        ("ticker, leading zero number", [compact["t"].replace('"instType"', '"n":01,"instType"')]),
        ("ticker, bad literal", [compact["t"].replace('"instType"', '"n":tru,"instType"')]),
        ("ticker, bad number", [compact["t"].replace('"instType"', '"n":1.,"instType"')]),
        ("ticker, number", [compact["t"].replace('"instType"', '"n":-0.5e+3,"instType"')]),
        ("ticker, control character", [compact["t"].replace("FUTURES", "FUT\tURES")]),
        ("ticker, two args", [compact["t"].replace('"data"', '"arg":{"channel":"trades"},"data"')]),
        ("ticker, two data", [compact["t"][:-1] + ',"data":[]}']),
        ("ticker, truncated", [compact["t"][:-3]]),
        ("trade", [compact["r"]]),
        ("trade, seqId", [edit(trade, seqId=123)]),
        ("trade, seqId text", [edit(trade, seqId="123")]),
        ("trade, count", [edit(trade, count="3")]),
        ("trade, NUL character", [compact["r"].replace("BTC-USD", "BTC\x00-USD")]),
        ("trade, unterminated", [compact["r"][: compact["r"].index('"px"') + 3]]),
        ("trade, side", [edit(trade, side="BUY")]),
        ("trade, empty price", [edit(trade, px="")]),
        ("trade, no size", [compact["r"].replace('"sz"', '"sx"')]),
        ("trade, non-ASCII id", [edit(trade, tradeId="7849é")]),
        (
            "trade, non-ASCII id, UTF-8",
            [dump(dict(trade, data=[dict(trade["data"][0], tradeId="7849é")]), ensure_ascii=False)],
        ),
        ("trade, two objects", [dump(dict(trade, data=trade["data"] * 2))]),
        ("trade, empty data", [dump(dict(trade, data=[]))]),
        ("candles", [dump({"arg": {"channel": "candle1m", "instId": "BTC-USDT"}, "data": []})]),
        ("event", ['{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"}}']),
        ("pong", ["pong"]),
        ("not JSON", ["{"]),
        ("unknown channel", [dump({"arg": {"channel": "nope"}, "data": []})]),
        ("book", [s, u]),
        ("book, spaces", [dump(snap, indent=1), dump(update, indent=1)]),
        ("book, two-string levels", [s, edit(update, **{side: two})]),
        ("book, five-string levels", [s, edit(update, **{side: [[*lv, "x"] for lv in level]})]),
        ("book, one-string level", [s, edit(update, **{side: [level[0][:1]]})]),
        ("book, number in level", [s, edit(update, **{side: [[1, *level[0][1:]]]})]),
        (
            "book, number after size",
            [s, edit(update, **{side: [[*lv[:2], 0, "4"] for lv in level]})],
        ),
        ("book, escaped size", [s, u.replace(f'","{level[0][1]}"', f'","{esc(level[0][1])}"', 1)]),
        (
            "book, escaped count",
            [s, u.replace(f'","{level[0][3]}"]', f'","{esc(level[0][3])}"]', 1)],
        ),
        ("book, level cut", [s, u[: u.index(f'"{level[0][1]}"') + 3]]),
        ("book, bad checksum", [s, edit(update, checksum=12345)]),
        ("book, null checksum", [s, edit(update, checksum=None)]),
        (
            "book, sequence ids",
            [edit(snap, seqId=5, prevSeqId=-1), edit(update, seqId=6, prevSeqId=5)],
        ),
        (
            "book, broken sequence",
            [edit(snap, seqId=5, prevSeqId=-1), edit(update, seqId=7, prevSeqId=6)],
        ),
        ("book, two objects", [s, dump(dict(update, data=update["data"] * 2))]),
        ("book, unknown action", [s, u.replace('"update"', '"partial"')]),
        ("book, no action", [s, u.replace('"action":"update",', "")]),
        (
            "book, instId in data",
            [
                s,
                dump(
                    dict(
                        update,
                        arg={"channel": "books"},
                        data=[dict(update["data"][0], instId=inst)],
                    )
                ),
            ],
        ),
        ("book, no instId", [dump(dict(snap, arg={"channel": "books"}))]),
        ("books5", [dump({"arg": {"channel": "books5", "instId": inst}, "data": snap["data"]})]),
        (
            "books5, null action",
            [dump(dict(snap, arg={"channel": "books5", "instId": inst}, action=None))],
        ),
        (
            "bbo-tbt",
            [
                dump(
                    {
                        "arg": {"channel": "bbo-tbt", "instId": inst},
                        "data": [
                            {
                                "asks": snap["data"][0]["asks"][:1],
                                "bids": snap["data"][0]["bids"][:1],
                                "ts": "1652459225464",
                            }
                        ],
                    }
                )
            ],
        ),
        ("book, ts text", [s, edit(update, ts="165245922546x")]),
        ("book, huge ts", [s, edit(update, ts="99999999999999999")]),
    ]


@needs_c
@pytest.mark.parametrize("frames", [f for _, f in _variants()], ids=[n for n, _ in _variants()])
def test_c_fast_path_matches_the_python_path_on_unusual_frames(
    frames: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Constructed variants of real frames (whitespace, escapes, absent or non-finite
    values, other level lengths, sequence ids, errors): the same events or the same
    exception from both paths, frame by frame."""
    fast, slow = _pair(monkeypatch)
    for frame in frames:
        assert _outcome(fast, frame) == _outcome(slow, frame)


@pytest.mark.parametrize("engine", ["c", "python"])
def test_crc_checksum_gives_the_venues_checksum(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every checksum in both captures, on books of unequal sides too (constructed)."""
    if engine == "python":
        monkeypatch.setattr(_book, "_c", None)
    elif _book._c is None:
        pytest.skip("the core's C speedups are not built")
    checked = 0
    for path in (WS_2022, WS_2021):
        books: dict[str, L2Book] = {}
        for _, frame in in_frames(path):
            msg = json.loads(frame)
            if "data" not in msg or not msg["arg"]["channel"].startswith("books"):
                continue
            inst = msg["arg"]["instId"]
            d = msg["data"][0]
            book = books.setdefault(inst, L2Book("okx", inst, inst, checksum=book_checksum_crc))
            if msg["action"] == "snapshot":
                book.apply_snapshot(d["bids"], d["asks"], checksum=d["checksum"])
            else:  # raises on a mismatch
                book.apply_delta(d["bids"], d["asks"], checksum=d["checksum"])
            assert book_checksum_crc(book) == d["checksum"]
            checked += 1
    assert checked > 1700  # 290 + 1504 book pushes
    for bids, asks in (
        ([("10", "1"), ("9", "2"), ("8", "3")], [("11", "1")]),
        ([("10", "1")], [("11", "1"), ("12", "2"), ("13", "3")]),
        ([], [("11", "1"), ("12", "2")]),
        ([("10", "1")], []),
    ):
        ref = PlainBook()
        ref.snapshot([list(lv) for lv in bids], [list(lv) for lv in asks])
        book = L2Book("okx", "X", "X", checksum=book_checksum_crc)
        book.apply_snapshot(bids, asks)
        assert book_checksum_crc(book) == ref.checksum()


@needs_c
def test_c_fast_path_reads_bytes_frames_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames as UTF-8 bytes (as some transports deliver them) give the events of the
    same frames as text on the Python path, the non-ASCII trade id included."""
    trade = _real(WS_2022, "trades")
    odd = dict(trade, data=[dict(trade["data"][0], tradeId="7849é")])
    frames = [f for _, f in in_frames(WS_2022)] + [json.dumps(odd, ensure_ascii=False)]
    fast, slow = _pair(monkeypatch)
    for frame in frames:
        assert _outcome(fast, frame.encode()) == _outcome(slow, frame)


def test_a_dropped_normaliser_is_freed() -> None:
    """The C fast path holds the normaliser's bound methods (a reference cycle): the
    garbage collector frees a dropped normaliser with its books (no leak per connection)."""
    normaliser = OkxNormaliser("okx")
    for _, frame in in_frames(WS_2021):
        normaliser(frame, NOW)
    ref = weakref.ref(normaliser)
    del normaliser
    gc.collect()
    assert ref() is None
