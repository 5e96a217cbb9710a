"""The optional C fast path (``marketfeed_upbit._cupbit``) gives, frame by frame, exactly the
events of the pure-Python normaliser (same types, same JSON: exact decimal texts, UTC times,
symbols, statuses) on every frame of every capture and on constructed odd frames, raises
the same errors (through the Python path it hands them to), and is freed with its
normaliser."""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import subprocess
import sys
import tracemalloc
import weakref
from decimal import Decimal

import msgspec
import pytest
from marketfeed import BookSnapshot
from marketfeed_upbit import UpbitSession, _normalise
from test_upbit_fastpath import ODD_FRAMES, ODD_TRADES
from upbit_testdata import (
    CAPTURE_2021,
    DEFAULT_CONSTRUCTED,
    DOCS_WS,
    MISC_CONSTRUCTED,
    make_normaliser,
    payload,
    received,
    unit_cache_state,
)

NOW = dt.datetime(2021, 4, 5, 18, 17, tzinfo=dt.UTC)
needs_c = pytest.mark.skipif(not _normalise.SPEEDUPS, reason="marketfeed_upbit._cupbit not built")
_enc = msgspec.json.Encoder(decimal_format="string")  # Decimals compared by their text


def _pair(monkeypatch: pytest.MonkeyPatch, window: int = 1000):
    """(normaliser with the C fast path, pure-Python normaliser)."""
    fast = make_normaliser(session=UpbitSession(window))
    with monkeypatch.context() as m:
        m.setattr(_normalise, "_cupbit", None)
        slow = make_normaliser(session=UpbitSession(window))
    return fast, slow


def _outcome(norm, frame):
    try:
        events = list(norm(frame, NOW))
    except Exception as exc:  # the same exception type, or the same events
        return "error", type(exc).__name__
    return "ok", [(type(e).__name__, _enc.encode(e)) for e in events]


def _is_c(handler) -> bool:
    return type(handler).__module__ == "marketfeed_upbit._cupbit"


@needs_c
@pytest.mark.parametrize("entry", ["__call__", "function"])
@pytest.mark.parametrize("path", [CAPTURE_2021, DEFAULT_CONSTRUCTED, MISC_CONSTRUCTED, DOCS_WS])
def test_c_path_gives_the_python_paths_events_on_every_recorded_frame(
    path, entry, monkeypatch
) -> None:
    """Through ``__call__`` and through ``function()`` (the C ``Dispatch`` the normalise
    hook returns): every frame's events, statuses of new markets first, errors alike."""
    fast, slow = _pair(monkeypatch)
    call = fast.function() if entry == "function" else fast
    if entry == "function":
        assert type(call).__name__ == "Dispatch" and _is_c(call)
    taken = 0
    for rec in received(path):
        frame = payload(rec)
        handler = fast._fast.get(frame[:12])
        if handler is not None and _is_c(handler):
            taken += 1
        assert _outcome(call, frame) == _outcome(slow, frame), rec["frame"][:200]
        # the text form of the same frame, on the same (now warm) normalisers
        text = frame.decode() if isinstance(frame, bytes) else frame
        assert _outcome(call, text) == _outcome(slow, text), rec["frame"][:200]
    if path in (CAPTURE_2021, DEFAULT_CONSTRUCTED):
        assert taken > 100


@needs_c
def test_c_path_takes_every_recorded_orderbook_and_builds_exact_events() -> None:
    norm = make_normaliser()
    frames = [payload(r) for r in received(CAPTURE_2021) if '"orderbook"' in r["frame"][:20]]
    for frame in frames:
        handler = norm._fast[frame[:12]]
        assert _is_c(handler)
        (book,) = handler(frame, NOW)  # not None: taken by C
        assert isinstance(book, BookSnapshot)
        sent = json.loads(frame, parse_float=Decimal)
        assert book.event_time == dt.datetime.fromtimestamp(sent["tms"] / 1000, dt.UTC)
        assert book.event_time.tzinfo is dt.UTC
        assert str(book.total_ask_size) == str(sent["tas"])
        units = list(sent["obu"])
        assert [(str(p), str(s)) for p, s in book.asks] == [
            (str(u["ap"]), str(u["as"])) for u in units if u["ap"] and u["as"]
        ]


def _book(units: str, head: str = "", tail: str = ',"st":"REALTIME"') -> bytes:
    return (
        '{"ty":"orderbook","cd":"KRW-BTC","tms":1617646620673,"tas":1.5,"tbs":2.5,'
        f'{head}"obu":{units}{tail}}}'
    ).encode()


_U = '[{"ap":41.4,"bp":41.2,"as":1.0,"bs":2.0}]'

C_ODD_FRAMES = [
    # numbers as Upbit may send them: exponents, both cases, trailing zeros, integers
    _book('[{"ap":2.2E-7,"bp":1E-7,"as":0E-8,"bs":1505.00000000},{"ap":3,"bp":0,"as":1,"bs":2}]'),
    _book('[{"ap":2.2e-7,"bp":1e-7,"as":1.0E5,"bs":1E+5},{"ap":3e0,"bp":2,"as":1,"bs":2}]'),
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":1,"tas":2.2E-7,"tbs":0E-8,"obu":' + _U.encode() + b"}",
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":1,"tas":1e5,"tbs":10,"obu":' + _U.encode() + b"}",
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":1,"tas":-0,"tbs":-1.5,"obu":' + _U.encode() + b"}",
    _book('[{"ap":-0,"bp":-0.0,"as":1,"bs":2}]'),
    _book('[{"ap":01,"bp":1,"as":1,"bs":2}]'),  # not JSON
    _book('[{"ap":1.,"bp":1,"as":1,"bs":2}]'),
    _book('[{"ap":1.5,"bp":1,"as":1,"bs":2,"ap":1.6}]'),  # a duplicate unit key
    _book('[{"ap":1.5,"bp":1,"as":1,"bs":2,"x":1}]'),  # an unknown unit key
    _book('[{"ap":1.5,"bp":1,"as":1,"bs":null}]'),
    _book('[{ "ap" : 41.4 ,\n"bp":41.2,"as":1.0,"bs":2.0 }, {"ap":41.5,"bp":41.1,"as":1,"bs":2}]'),
    # a '}' inside a unit that does not end it (the C cut stops there: left to Python), a NUL
    _book('[{"ap":41.4,"bp":41.2,"as":1.0,"bs":2.0,"x":"}"},{"ap":42,"bp":41,"as":1,"bs":1}]'),
    _book('[{"ap":41.4,"bp":41.2,"as":1.0,"bs":2.0,"x":{}},{"ap":42,"bp":41,"as":1,"bs":1}]'),
    _book('[{"ap":41.4,"bp":41.2,"as":1.0,"bs":2.0,"x":"a},{"}]'),
    _book('[{"ap":41.4,"bp":41.2,"as":1.0,"bs":2.0\x00}]'),
    _book('[{"ap":41.4,"bp":41.2,"as":1.0,"bs":2.0,"x":"\x00}"}]'),
    _book('[{"ap":41.4,"bp":41.2,"as":1.0,"bs":2.0,"x\\"":1}]'),
    # other keys: the new `lv` (level), unknown scalars and containers, a null stream type
    _book(_U, head='"lv":10000,'),
    _book(_U, head='"x":"y","z":true,"w":false,"v":null,"u":-1.5e3,'),
    _book(_U, head='"x":{"a":1},'),
    _book(_U, head='"x":[1],'),
    _book(_U, tail=',"st":null'),
    _book(_U, tail=',"st":1'),
    _book(_U, tail=',"st":"a","st":"b"'),
    _book(_U, tail=',"tms":2'),  # a duplicate frame key
    _book(_U, tail=""),
    _book(_U, tail=',"st":"REALTIME"} '),  # trailing text after the frame
    _book(_U, tail=',"st":"REALTIME"  \n'),
    # strings: escapes and non-ASCII in the code, a unit with a string
    b'{"ty":"orderbook","cd":"KRW-\\u0042TC","tms":1,"tas":1,"tbs":1,"obu":' + _U.encode() + b"}",
    '{"ty":"orderbook","cd":"KRW-ÄBC","tms":1,"tas":1,"tbs":1,"obu":[{"ap":2,"bp":1,"as":1,"bs":1}]}'.encode(),
    b'{"ty":"orderbook","cd":"KRWBTC","tms":1,"tas":1,"tbs":1,"obu":' + _U.encode() + b"}",
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":1.5,"tas":1,"tbs":1,"obu":' + _U.encode() + b"}",
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":"1","tas":1,"tbs":1,"obu":' + _U.encode() + b"}",
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":-1000,"tas":1,"tbs":1,"obu":' + _U.encode() + b"}",
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":999999999999999,"tas":1,"tbs":1,"obu":'
    + _U.encode()
    + b"}",
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":253402300799999,"tas":1,"tbs":1,"obu":'
    + _U.encode()
    + b"}",
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":0,"tas":1,"tbs":1,"obu":' + _U.encode() + b"}",
    b'{"ty":"orderbook","cd":"KRW-BTC","tas":1,"tbs":1,"obu":' + _U.encode() + b"}",
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":1,"tbs":1,"obu":' + _U.encode() + b"}",
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":1,"tas":1,"tbs":1}',
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":1,"tas":1,"tbs":1,"obu":{}}',
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":1,"tas":1,"tbs":1,"obu":[1]}',
    b'{"ty":"orderbook" , "cd" : "KRW-BTC" ,"tms":1,"tas":1,"tbs":1,'
    b'"obu":[ {"ap":2,"bp":1,"as":1,"bs":1} ] }',
    # all levels empty on one side, both sides, more than 64 units
    _book('[{"ap":41.4,"bp":41.2,"as":0,"bs":2.0},{"ap":41.5,"bp":41.1,"as":0,"bs":2}]'),
    _book('[{"ap":0,"bp":0,"as":0,"bs":0}]'),
    _book("[" + ",".join(f'{{"ap":{100 + i},"bp":1,"as":1,"bs":1}}' for i in range(70)) + "]"),
    _book("[" + ",".join(f'{{"ap":{100 + i},"bp":1,"as":1,"bs":1}}' for i in range(64)) + "]"),
    # crossed and touching books, truncated frames
    _book('[{"ap":41.2,"bp":41.2,"as":1.0,"bs":2.0}]'),
    _book('[{"ap":41.20,"bp":41.3,"as":1.0,"bs":2.0}]'),
    _book(_U)[:-1],
    _book(_U)[:40],
    b'{"ty":"orderbook"',
    b'{"ty":"orderbook",',
    # DEFAULT format, with the long names
    b'{"type":"orderbook","code":"BTC-ETH","timestamp":1617646620673,"total_ask_size":2.2E-7,'
    b'"total_bid_size":3,"orderbook_units":[{"ask_price":0.03,"bid_price":0.02,"ask_size":0E-8,'
    b'"bid_size":1.50},{"ask_price":0.04,"bid_price":0.01,"ask_size":1,"bid_size":2}],'
    b'"stream_type":"SNAPSHOT","level":0}',
    b'{"type":"orderbook","code":"BTC-ETH","timestamp":1,"total_ask_size":1,"total_bid_size":1,'
    b'"orderbook_units":[{"ap":1,"bp":0.5,"as":1,"bs":1}]}',
]


@needs_c
@pytest.mark.parametrize("frame", ODD_FRAMES + ODD_TRADES + C_ODD_FRAMES)
def test_odd_frames_give_what_the_python_path_gives(frame: bytes, monkeypatch) -> None:
    fast, slow = _pair(monkeypatch)
    assert _outcome(fast, frame) == _outcome(slow, frame)
    assert _outcome(fast, frame) == _outcome(slow, frame)  # again, its units now cached
    text = frame.decode()
    fast, slow = _pair(monkeypatch)
    assert _outcome(fast, text) == _outcome(slow, text)


@needs_c
def test_odd_frames_in_one_session_give_what_the_python_path_gives(monkeypatch) -> None:
    """All odd frames and the capture interleaved on one pair of normalisers: frames the C
    readers hand to Python between frames they take change nothing they give."""
    fast, slow = _pair(monkeypatch)
    frames = [payload(r) for r in received(CAPTURE_2021)][:300]
    odd = ODD_FRAMES + ODD_TRADES + C_ODD_FRAMES
    for i, frame in enumerate(frames):
        for f in (frame, odd[i % len(odd)]):
            assert _outcome(fast, f) == _outcome(slow, f)


@needs_c
@pytest.mark.parametrize("capacity", [1, 4, 7])
def test_a_tiny_unit_cache_clearing_mid_frame_gives_the_same_events(capacity, monkeypatch) -> None:
    fast, slow = _pair(monkeypatch)
    fast.session.units[0]._capacity = capacity
    for rec in received(CAPTURE_2021)[:400]:
        f = payload(rec)
        assert _outcome(fast, f) == _outcome(slow, f)
    emptied, held = unit_cache_state(fast)  # the C reader's own index
    assert emptied > 0 and held <= capacity


@needs_c
def test_a_dropped_normaliser_is_freed_and_memory_stays_flat() -> None:
    frames = [payload(r) for r in received(CAPTURE_2021)]
    norm = make_normaliser()
    for f in frames:
        norm(f, NOW)
    ref = weakref.ref(norm)
    book_ref = weakref.ref(norm.session.units[0])
    del norm
    gc.collect()
    assert ref() is None and book_ref() is None

    norm = make_normaliser()
    for f in frames:  # warm: every unit, market and number cached
        norm(f, NOW)
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(5):
            for f in frames:
                norm(f, NOW)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            for f in frames:
                norm(f, NOW)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024  # 34660 frames later: no per-frame leak


@needs_c
def test_refcounts_of_cached_levels_do_not_grow() -> None:
    frames = [payload(r) for r in received(CAPTURE_2021) if '"orderbook"' in r["frame"][:20]]
    norm = make_normaliser()
    for f in frames:
        norm(f, NOW)
    (event,) = norm(frames[-1], NOW)  # its levels are the reader's cached tuples
    level = event.asks[0]
    before = sys.getrefcount(level), sys.getrefcount(level[0])
    for _ in range(3):
        for f in frames:
            norm(f, NOW)
    gc.collect()
    assert (sys.getrefcount(level), sys.getrefcount(level[0])) == before


def test_pure_python_is_forced_by_the_environment() -> None:
    code = (
        "import marketfeed_upbit as m, marketfeed_upbit._normalise as n;"
        "print(m.SPEEDUPS, n._cupbit is None)"
    )
    env = {**os.environ, "MARKETFEED_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "True"], out.stderr
    norm_code = (
        "from upbit_testdata import make_normaliser;"
        "n = make_normaliser();"
        "print(all(type(h).__module__ != 'marketfeed_upbit._cupbit' for h in n._fast.values()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", norm_code],
        env={**env, "PYTHONPATH": os.path.dirname(__file__)},
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "True", out.stderr


def _trade(
    sid: int,
    tp: str = "41.4",
    tv: str = "1.5",
    ab: str = "BID",
    cd: str = "KRW-BTC",
    ttms: str = "1617646620000",
    extra: str = "",
) -> bytes:
    return (
        f'{{"ty":"trade","cd":"{cd}","tms":1617646620673,"td":"2021-04-05","ttm":"18:17:00",'
        f'"ttms":{ttms},"tp":{tp},"tv":{tv},"ab":"{ab}","pcp":40.1,"c":"RISE","cp":1.3,'
        f'"sid":{sid}{extra},"st":"REALTIME"}}'
    ).encode()


C_ODD_TRADES = [
    _trade(1, tp="2.2E-7", tv="0E-8"),
    _trade(2, tp="1e5", tv="3"),
    _trade(3, ab="ASK"),
    _trade(4, ab="XYZ"),
    _trade(5, ab="B\\u0049D"),
    _trade(6, tp="-1.5"),
    _trade(7, tv="01"),
    _trade(8, tp='"41.4"'),
    _trade(9, ttms="3999999999999"),
    _trade(10, ttms="4000000000000"),
    _trade(11, ttms="253402300799999"),
    _trade(12, ttms="1.5"),
    _trade(123456789012345678901),
    _trade(13, extra=',"sid":14'),
    _trade(15, extra=',"x":{"y":1}'),
    _trade(16, cd="KRWBTC"),
    _trade(17)[:-1],
    _trade(18).replace(b'"st":"REALTIME"', b'"st":null'),
    _trade(19).replace(b'"ty":"trade"', b'"ty":"trades"'),
    _trade(20).replace(b',"ab":"BID"', b""),
    b'{"type":"trade","code":"BTC-ETH","timestamp":1,"trade_timestamp":1617646620000,'
    b'"trade_price":0.03,"trade_volume":2.2E-7,"ask_bid":"ASK","sequential_id":7,'
    b'"stream_type":"SNAPSHOT"}',
]


@needs_c
def test_c_path_takes_every_trade_after_a_markets_first(monkeypatch) -> None:
    norm = make_normaliser()
    frames = [payload(r) for r in received(CAPTURE_2021) if '"trade"' in r["frame"][:20]]
    markets: set[str] = set()
    taken = 0
    for frame in frames:
        code = json.loads(frame)["cd"]
        reader = norm._fast[frame[:12]]
        assert _is_c(reader)
        out = reader(frame, NOW)
        if code in markets:
            assert out is not None  # taken by C: a list of one trade, or () for a repeat
            taken += 1
        else:
            assert out is None  # the market's first trade: the Python path resolves it
            norm(frame, NOW)
            markets.add(code)
    assert taken == len(frames) - len(markets)


@needs_c
@pytest.mark.parametrize("window", [1, 3, 1000])
def test_trades_replayed_and_repeated_are_deduplicated_alike(window, monkeypatch) -> None:
    fast, slow = _pair(monkeypatch, window)
    frames = [payload(r) for r in received(CAPTURE_2021)][:600]
    for frame in frames + frames[::-1] + frames:  # every trade seen again, in both orders
        assert _outcome(fast, frame) == _outcome(slow, frame)
    assert len(fast.session.dedup) == len(slow.session.dedup)


@needs_c
@pytest.mark.parametrize("frame", C_ODD_TRADES)
def test_odd_trades_give_what_the_python_path_gives(frame: bytes, monkeypatch) -> None:
    fast, slow = _pair(monkeypatch)
    first = _trade(0)  # the market is known: later trades of KRW-BTC are read in C
    assert _outcome(fast, first) == _outcome(slow, first)
    for f in (frame, frame, frame.decode()):
        assert _outcome(fast, f) == _outcome(slow, f)


def _number_texts(frame: str | bytes) -> list[str]:
    """Every JSON number of a frame, as the text Upbit sent (``1505.00000000``, ``2.2E-7``)."""
    texts: list[str] = []
    json.loads(frame, parse_float=lambda s: texts.append(s) or 0.0, parse_int=texts.append)
    return texts


def _exact(d: object) -> tuple[object, ...]:
    assert type(d) is Decimal
    return d.as_tuple(), str(d)


@needs_c
def test_core_built_decimals_are_on_when_the_core_builds_them() -> None:
    cbook = pytest.importorskip("marketfeed._cbook", reason="marketfeed._cbook not built")
    assert _normalise._cupbit.FAST_DECIMAL is cbook.FAST_DECIMAL


@needs_c
@pytest.mark.parametrize("path", [CAPTURE_2021, DEFAULT_CONSTRUCTED, MISC_CONSTRUCTED, DOCS_WS])
def test_c_path_decimals_equal_decimal_of_the_sent_text_on_every_recorded_number(path) -> None:
    # the C path builds each new plain number text through the core's _C_API (FAST_DECIMAL)
    # and any other text (exponents) with Decimal(text): either way, digits and exponent as sent
    norm = make_normaliser()
    checked = 0
    for rec in received(path):
        frame = payload(rec)
        handler = norm._fast.get(frame[:12])
        events = handler(frame, NOW) if handler is not None and _is_c(handler) else None
        if events is None:  # left to the Python path (a market's first trade, odd frames)
            list(norm(frame, NOW))
            continue
        sent = {_exact(Decimal(t)) for t in _number_texts(frame)}
        msg = json.loads(frame, parse_float=str, parse_int=str)
        for ev in events:
            if isinstance(ev, BookSnapshot):
                for short, long, got in (
                    ("tas", "total_ask_size", ev.total_ask_size),
                    ("tbs", "total_bid_size", ev.total_bid_size),
                ):
                    assert _exact(got) == _exact(Decimal(msg[short if short in msg else long]))
                    checked += 1
                for price, size in (*ev.bids, *ev.asks):
                    assert _exact(price) in sent and _exact(size) in sent
                    checked += 2
            else:
                tp = msg["tp"] if "tp" in msg else msg["trade_price"]
                tv = msg["tv"] if "tv" in msg else msg["trade_volume"]
                assert _exact(ev.price) == _exact(Decimal(tp))
                assert _exact(ev.size) == _exact(Decimal(tv))
                checked += 2
    if path in (CAPTURE_2021, DEFAULT_CONSTRUCTED):
        assert checked > 1000, checked


@needs_c
def test_dispatch_sends_other_frames_to_decode_and_rejects_bad_heads(monkeypatch) -> None:
    """Frames no reader takes (other types and buffers) reach ``decode``; a head that is not
    12 ASCII characters is refused when the dispatcher is built."""
    fast, slow = _pair(monkeypatch)
    call = fast.function()
    frame = next(payload(r) for r in received(CAPTURE_2021) if b'"ty":"orderbook"' in payload(r))
    for buf in (bytearray(frame), memoryview(frame)):
        assert _outcome(call, buf) == _outcome(slow, bytes(buf))
    assert _outcome(call, b"{") == _outcome(slow, b"{") == ("error", "DecodeError")
    seen: list[tuple[object, object]] = []
    with pytest.raises(ValueError, match="12"):
        _normalise._cupbit.Dispatch({b"short": print}, print, print, [])
    d = _normalise._cupbit.Dispatch({}, lambda f, t: seen.append((f, t)) or [], print, [])
    assert d(b"x" * 40, NOW) == [] and seen == [(b"x" * 40, NOW)]


@needs_c
def test_a_reconnect_starts_with_the_sessions_unit_index(monkeypatch) -> None:
    """A new normaliser on the same session (what the supervisor builds on a reconnect)
    reads the units the previous one parsed, and gives the Python path's events."""
    fast, slow = _pair(monkeypatch)
    frames = [payload(r) for r in received(CAPTURE_2021)]
    for f in frames[:600]:
        assert _outcome(fast, f) == _outcome(slow, f)
    _, held = unit_cache_state(fast)
    assert held > 100
    again = make_normaliser(session=fast.session)
    with monkeypatch.context() as m:  # the pure-Python side reconnects too
        m.setattr(_normalise, "_cupbit", None)
        slow_again = make_normaliser(session=slow.session)
    assert unit_cache_state(again)[1] == held  # warm before its first frame
    for f in frames[600:]:
        assert _outcome(again, f) == _outcome(slow_again, f)
    assert fast.session.indexes is not None
    assert fast.session.indexes[0].cached >= held  # the same index, grown
