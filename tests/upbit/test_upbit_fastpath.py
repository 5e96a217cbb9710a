"""The orderbook fast path (unit list cut out of the frame, unit texts cached) gives exactly
the events of the full msgspec decode, and falls back to it on every frame it cannot cut."""

import datetime as dt
import json

import msgspec
import pytest
from marketfeed import BookSnapshot
from upbit_testdata import (
    CAPTURE_2021,
    DEFAULT_CONSTRUCTED,
    MISC_CONSTRUCTED,
    make_normaliser,
    payload,
    received,
    unit_cache_state,
)

_enc = msgspec.json.Encoder(decimal_format="string")  # Decimals compared by their text
NOW = dt.datetime(2021, 4, 5, 18, 17, tzinfo=dt.UTC)


def _slow():
    norm = make_normaliser()
    norm._fast.clear()  # every frame through the full msgspec decode
    return norm


def _outcome(norm, frame):
    try:
        return "ok", _enc.encode(list(norm(frame, NOW)))
    except Exception as exc:  # the same exception type, or the same events
        return "error", type(exc).__name__


@pytest.mark.parametrize("path", [CAPTURE_2021, DEFAULT_CONSTRUCTED, MISC_CONSTRUCTED])
def test_every_recorded_frame_gives_the_events_of_the_full_decode(path) -> None:
    fast, slow = make_normaliser(), _slow()
    books = 0
    for rec in received(path):
        frame = payload(rec)
        books += frame[:12] in fast._fast
        assert _outcome(fast, frame) == _outcome(slow, frame), rec["frame"][:200]
    if path is not MISC_CONSTRUCTED:
        assert books > 100  # the fast path was exercised, not only the fallback


def test_the_fast_path_takes_the_recorded_orderbooks() -> None:
    norm = make_normaliser()
    frames = [payload(r) for r in received(CAPTURE_2021) if '"orderbook"' in r["frame"][:20]]
    assert len(frames) == 1061
    taken = [norm._fast[f[:12]](f, NOW) for f in frames]
    assert all(events is not None for events in taken)


def _book(units: str, tail: str = ',"st":"REALTIME"') -> bytes:
    return (
        '{"ty":"orderbook","cd":"KRW-BTC","tms":1617646620673,"tas":1.5,"tbs":2.5,'
        f'"obu":{units}{tail}}}'
    ).encode()


ODD_FRAMES = [
    # exponent forms, trailing zeros and integers kept as sent
    _book('[{"ap":2.2E-7,"bp":1E-7,"as":0E-8,"bs":1505.00000000},{"ap":3,"bp":0,"as":1,"bs":2}]'),
    _book('[{"ap":41.4,"bp":41.2,"as":1.0,"bs":2.0}]'),
    _book('[{"ap": 41.4, "bp": 41.2, "as": 1.0, "bs": 2.0}, {"ap":41.5,"bp":41.1,"as":1,"bs":2}]'),
    _book('[{"bp":41.2,"ap":41.4,"bs":2.0,"as":1.0}]'),  # keys in another order
    _book(
        '[{"ap":41.4,"bp":41.2,"as":1.0,"bs":2.0,"x":[{"y":1}]},{"ap":42,"bp":41,"as":1,"bs":1}]'
    ),
    _book("[]"),
    _book('[{"ap":41.4,"bp":41.2,"as":0,"bs":2.0},{"ap":41.5,"bp":41.1,"as":1.0,"bs":0}]'),
    _book('[{"ap":41.4,"bp":41.2,"as":"1.0","bs":2.0}]'),  # a number sent as a string
    _book('[{"ap":41.4,"bp":41.5,"as":1.0,"bs":2.0}]'),  # crossed
    _book('[{"ap":41.4,"bp":41.2,"as":1.0,"bs":2.0}]', tail=',"obu":[]'),  # a second "obu"
    _book(
        '[{"ap":41.4,"bp":41.2,"as":1.0,"bs":2.0}]', tail=',"obu":[{"ap":9,"bp":8,"as":1,"bs":1}]'
    ),
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":1,"tas":1,"tbs":1,"obu":[],'
    b'"obu":[{"ap":2,"bp":1,"as":1,"bs":1}]}',
    _book('[{"ap":41.4,"bp":41.2,"as":1.0,"bs":2.0}]', tail=',"st":"a}]"'),
    _book('[{"ap":41.4,"bp":41.2,"as":1.0,"bs":x}]'),  # not JSON
    _book('[{"ap":41.4,"bp":41.2,"as":1.0,"bs":2.0},]'),
    _book('[{"ap":41.4,"bp":41.2,"as":1.0,"bs":2.0}'),  # truncated
    _book('[{"ap":41.4,"bp":41.2,"as":1.0}]'),  # a missing field
    _book('[{"ap":41.4,"bp":41.2,"as":1.0,"bs":true}]'),
    _book('[{"ap":41.4,"bp":41.2,"as":1.0,"bs":2.0},{"ap":"},{","bp":1,"as":1,"bs":1}]'),
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":1617646620673,"tas":1.5,"tbs":2.5,"x":"\\"obu":[{"}',
    b'{"ty":"orderbookx","cd":"KRW-BTC","tms":1,"tas":1,"tbs":1,"obu":[{"ap":2,"bp":1,"as":1,"bs":1}]}',
    b'{"ty":"orderbook","cd":"KRW-BTC","tms":1,"tas":1,"tbs":1,"obu":[{"ap":2,"bp":1,"as":1,"bs":1}]',
]


ODD_TRADES = [
    b'{"ty":"trade","cd":"KRW-BTC","tms":1,"ttms":1617646620000,"tp":2.2E-7,"tv":0E-8,'
    b'"ab":"BID","sid":1}',
    b'{"ty":"trades","cd":"KRW-BTC","tms":1,"ttms":1,"tp":1,"tv":1,"ab":"BID","sid":1}',
    b'{"ty":"trade","cd":"KRW-BTC","tms":1,"ttms":1,"tp":1,"tv":1,"ab":"BID"}',
    b'{"ty":"trade","cd":"KRW-BTC","tms":1,"ttms":1,"tp":1,"tv":1,"ab":"BID","sid":1',
    b'{"type":"trade","code":"KRW-BTC","timestamp":1,"trade_timestamp":1,"trade_price":1.0,'
    b'"trade_volume":2,"ask_bid":"ASK","sequential_id":7}',
]


@pytest.mark.parametrize("frame", ODD_FRAMES + ODD_TRADES)
def test_odd_orderbook_frames_give_what_the_full_decode_gives(frame: bytes) -> None:
    fast, slow = make_normaliser(), _slow()
    assert _outcome(fast, frame) == _outcome(slow, frame)
    # the same again once the units are cached (a later frame hits the unit cache)
    assert _outcome(fast, frame) == _outcome(slow, frame)
    text = frame.decode()
    assert _outcome(make_normaliser(), text) == _outcome(_slow(), text)


def test_a_default_format_book_with_spaces_matches_the_full_decode() -> None:
    for rec in received(DEFAULT_CONSTRUCTED)[:50]:
        frame = json.dumps(json.loads(rec["frame"])).encode()  # ", " and ": " separators
        fast, slow = make_normaliser(), _slow()
        assert _outcome(fast, frame) == _outcome(slow, frame)
        assert _outcome(fast, frame)[0] == "ok"


def test_event_times_equal_fromtimestamp_across_second_boundaries() -> None:
    norm = make_normaliser()
    for ms in (1617646620673, 1617646620999, 1617646621000, 1617646621001, 1617646620000, 0):
        frame = (
            f'{{"ty":"orderbook","cd":"KRW-BTC","tms":{ms},"tas":1,"tbs":1,'
            '"obu":[{"ap":2.0,"bp":1.0,"as":1.0,"bs":1.0}]}'
        ).encode()
        (book,) = [e for e in norm(frame, NOW) if isinstance(e, BookSnapshot)]
        assert book.event_time == dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
        assert book.event_time.tzinfo is dt.UTC


@pytest.mark.parametrize("capacity", [1, 4, 7])
def test_a_tiny_unit_cache_clearing_mid_frame_gives_the_same_events(capacity: int) -> None:
    fast, slow = make_normaliser(), _slow()
    fast.session.units[0]._capacity = capacity
    frames = [payload(r) for r in received(CAPTURE_2021)][:400]
    empties = [
        _book('[{"ap":41.4,"bp":41.2,"as":0,"bs":2.0},{"ap":41.5,"bp":41.1,"as":1.0,"bs":0}]'),
        _book(
            '[{"ap":41.3,"bp":41.2,"as":0,"bs":2.0},{"ap":41.5,"bp":41.1,"as":0,"bs":1},'
            '{"ap":41.6,"bp":41.0,"as":1.0,"bs":2.0}]'
        ),
    ]
    for i, frame in enumerate(frames):
        for f in (frame, empties[i % 2]):
            assert _outcome(fast, f) == _outcome(slow, f)
    emptied, held = unit_cache_state(fast)  # the C reader's index, or the UnitCache
    assert emptied > 0 and held <= capacity
