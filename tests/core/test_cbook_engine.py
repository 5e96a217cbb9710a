"""The C speedups' engine path (``_cbook.engine_delta``, ``Crc32Checksum`` in C) against
the pure-Python engine, event for event, on the real OKX captures of test_book_okx."""

from __future__ import annotations

import datetime as dt
import gc
from collections import Counter
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from marketfeed import BookDelta, _book
from marketfeed.book import BookEngine, Crc32Checksum, L2Book
from test_book_okx import CAPTURES, feed, load

cbook = _book._cbook
if cbook is None:
    pytest.skip(
        "the book engine did not load marketfeed._cbook (not built, or MARKETFEED_PURE_PYTHON)",
        allow_module_level=True,
    )


def with_faults(name: str) -> tuple[list[Any], list[int]]:
    """A capture's book messages with faults injected into its busiest instrument: a
    changed size (update 10), a resubscribe snapshot (before update 15), then a dropped
    update (30). Returns the messages and the original positions of that instrument's
    updates."""
    clean = load(name)
    inst = Counter(m.inst for m in clean if m.action == "update").most_common(1)[0][0]
    ups = [p for p, m in enumerate(clean) if m.inst == inst and m.action == "update"]
    snap = next(m for m in clean if m.inst == inst and m.action == "snapshot")
    msgs = list(clean)
    bad = msgs[ups[10]]
    levels = bad.bids or bad.asks
    bumped = [[levels[0][0], str(Decimal(levels[0][1]) + 1), *levels[0][2:]], *levels[1:]]
    msgs[ups[10]] = replace(bad, bids=bumped) if bad.bids else replace(bad, asks=bumped)
    msgs.insert(ups[15], replace(snap, t=clean[ups[15]].t, ts=clean[ups[15]].ts))
    del msgs[ups[30] + 1]
    return msgs, ups


@pytest.mark.parametrize("emit", ["delta", "top", "both"])
@pytest.mark.parametrize("name", CAPTURES)
def test_c_engine_gives_pythons_events_with_faults(name: str, emit: str) -> None:
    """``BookEngine.delta`` through the C speedups (``_cbook.engine_delta``, and
    ``Crc32Checksum`` computed in C) returns exactly the pure-Python engine's events on a
    real capture with faults injected into its busiest instrument: a changed size, a
    resubscribe snapshot, then a dropped update; the stats end equal too."""
    msgs, _ = with_faults(name)

    def run(c: Any) -> str:
        saved = _book._c
        _book._c = c
        try:
            engine = BookEngine("okx", "books", checksum=Crc32Checksum(25), emit=emit)
            return repr((feed(engine, msgs), engine.stats()))
        finally:
            _book._c = saved

    got = run(cbook)
    want = run(None)
    assert got == want
    assert "resyncing" in want and "ResyncRequest" in want  # the faults were seen


T0 = dt.datetime(2022, 5, 13, tzinfo=dt.UTC)
SNAP_BIDS = [["100.5", "2"], ["100.4", "1.25"], ["100", "3"]]
SNAP_ASKS = [["100.6", "1"], ["100.7", "0.5"]]


def engine_with_book(**kw: Any) -> BookEngine:
    engine = BookEngine("okx", "books", checksum=Crc32Checksum(25), **kw)
    engine.snapshot("BTC-USDT", "BTC-USDT", SNAP_BIDS, SNAP_ASKS, event_time=T0, receive_time=T0)
    return engine


def c_delta(
    engine: BookEngine, native: str, bids: Any, asks: Any, checksum: Any = None, t: Any = T0
) -> Any:
    return cbook.engine_delta(engine, native, native, bids, asks, t, t, None, None, checksum)


def crc_after(bids: Any, asks: Any) -> int:
    """The signed OKX checksum of the book after a delta, from a separate pure book."""
    book = L2Book("okx", "x", "x")
    book.apply_snapshot(SNAP_BIDS, SNAP_ASKS)
    book.apply_delta(bids, asks)
    value = book.crc32_pairs(25, ":")
    return value - 2**32 if value >= 2**31 else value


def test_engine_delta_takes_the_common_case() -> None:
    engine = engine_with_book()
    bids, asks = [["100.45", "7"]], [["100.6", "0"]]
    out = c_delta(engine, "BTC-USDT", bids, asks, crc_after(bids, asks))
    assert [type(e) for e in out] == [BookDelta]
    (delta,) = out
    assert delta.bids == ((Decimal("100.45"), Decimal(7)),)
    assert delta.asks == ((Decimal("100.6"), Decimal(0)),)
    assert delta.verified is True
    book = engine.book("BTC-USDT")
    assert book is not None and book.raw_top(2) == (
        [("100.5", "2"), ("100.45", "7")],
        [("100.7", "0.5")],
    )
    assert c_delta(engine, "BTC-USDT", [], []) == []  # a keep-alive: no event


@pytest.mark.parametrize(
    "case",
    [
        "unknown instrument",
        "failed book",
        "subclass",
        "pure Python switched on",
    ],
)
def test_engine_delta_hands_back_what_it_does_not_take(case: str) -> None:
    """``None`` (Python's delta does it all) and nothing changed."""
    native = "BTC-USDT"
    engine = engine_with_book()
    t = T0
    if case == "subclass":

        class Engine(BookEngine):
            __slots__ = ()

        engine = Engine("okx", "books")
        engine.snapshot(native, native, SNAP_BIDS, SNAP_ASKS, event_time=T0, receive_time=T0)
    if case == "unknown instrument":
        native = "ETH-USDT"
    if case == "failed book":
        engine.delta(native, native, [["100.6", "1"]], [], event_time=T0, receive_time=T0)
        engine.delta(native, native, [["1", "1"]], [], event_time=T0, receive_time=T0, checksum=1)
    before = repr(engine.stats())
    saved = _book._c
    if case == "pure Python switched on":
        _book._c = None
    try:
        assert c_delta(engine, native, [["100.45", "7"]], [], t=t) is None
    finally:
        _book._c = saved
    assert repr(engine.stats()) == before


@pytest.mark.parametrize("emit", ["top", "both"])
@pytest.mark.parametrize("broken", [False, True])
def test_engine_delta_builds_a_due_top_snapshot(emit: str, broken: bool) -> None:
    """An update after which a top snapshot is due is applied in C too: its BookDelta
    ("both"), then the top snapshot from ``L2Book.to_snapshot``, the next one due a
    ``top_interval`` later; the pure-Python engine gives the same events. A top snapshot
    that fails (a stored size that is not a number) gives the resync pair instead, as in
    Python."""
    size = "7x" if broken else "7"
    t = T0 + dt.timedelta(seconds=2)
    engines = []
    for c in (cbook, None):
        saved = _book._c
        _book._c = c
        try:
            engine = engine_with_book(emit=emit)
            if c is not None:
                got = c_delta(engine, "BTC-USDT", [["100.45", size]], [], t=t)
            else:
                want = engine.delta(
                    "BTC-USDT", "BTC-USDT", [["100.45", size]], [], event_time=t, receive_time=t
                )
            engines.append(engine)
        finally:
            _book._c = saved
    assert repr(got) == repr(want)
    kinds = [type(e).__name__ for e in want]
    if broken:
        assert kinds == ["SubscriptionStatus", "ResyncRequest"]
    else:
        assert kinds == (["BookSnapshot"] if emit == "top" else ["BookDelta", "BookSnapshot"])
    c_slot, py_slot = (e._slots["BTC-USDT"] for e in engines)
    assert c_slot.next_top == py_slot.next_top
    if not (broken and emit == "both"):  # (there the BookDelta fails first: not advanced)
        assert c_slot.next_top == t + dt.timedelta(seconds=1)
    assert repr(engines[0].stats()) == repr(engines[1].stats())


@pytest.mark.parametrize("emit", ["top", "both"])
def test_engine_delta_takes_updates_between_top_snapshots(emit: str) -> None:
    """With top snapshots (emit "top"/"both"), an update before the next one is due is
    applied in C: no event ("top") or its BookDelta ("both")."""
    engine = engine_with_book(emit=emit)  # its snapshot emitted a top: the next in 1 s
    out = c_delta(engine, "BTC-USDT", [["100.45", "7"]], [], t=T0 + dt.timedelta(seconds=0.5))
    assert [type(e) for e in out] == ([] if emit == "top" else [BookDelta])
    book = engine.book("BTC-USDT")
    assert book is not None and book.raw_top(2)[0] == [("100.5", "2"), ("100.45", "7")]


def test_engine_delta_reports_a_bad_update_as_the_engine_does() -> None:
    """A checksum mismatch and a malformed size give the resync pair of BookEngine._fail."""
    for bids, checksum in (([["100.45", "7"]], 12345), ([["100.45", "7x"]], None)):
        got = c_delta(engine_with_book(), "BTC-USDT", bids, [], checksum)
        saved = _book._c
        _book._c = None
        try:
            want = engine_with_book().delta(
                "BTC-USDT", "BTC-USDT", bids, [], event_time=T0, receive_time=T0, checksum=checksum
            )
        finally:
            _book._c = saved
        assert repr(got) == repr(want)
        assert [type(e).__name__ for e in got] == ["SubscriptionStatus", "ResyncRequest"]


def test_crc32_checksum_is_the_signed_or_unsigned_crc_of_the_top() -> None:
    book = L2Book("okx", "x", "x")
    book.apply_snapshot(SNAP_BIDS, SNAP_ASKS)
    unsigned = book.crc32_pairs(2, "|")
    assert Crc32Checksum(2, "|", signed=False)(book) == unsigned
    assert Crc32Checksum(2, "|")(book) == (unsigned - 2**32 if unsigned >= 2**31 else unsigned)
    assert repr(Crc32Checksum(25)) == "Crc32Checksum(25, ':', signed=True)"
    for bad in ({"depth": 0}, {"depth": 2.0}, {"depth": 3, "sep": b":"}):
        with pytest.raises(ValueError):
            Crc32Checksum(**bad)


def test_crc32_checksum_deeper_than_the_watched_top_goes_through_python() -> None:
    """A depth the book does not watch yet is computed by the call (which raises the
    watched depth); the C path then takes it: every update verifies either way."""
    book = L2Book("okx", "x", "x", checksum=Crc32Checksum(3, ":"))
    assert book.apply_snapshot(SNAP_BIDS, SNAP_ASKS, checksum=None) is False
    for px in ("100.41", "100.42", "100.43"):
        bids = [[px, "1"]]
        probe = L2Book("okx", "x", "x")
        probe.apply_snapshot(*book.raw_top(400))
        probe.apply_delta(bids, [])
        value = probe.crc32_pairs(3, ":")
        signed = value - 2**32 if value >= 2**31 else value
        assert book.apply_delta(bids, [], checksum=signed) is True


def feed_raw(engine: BookEngine, msgs: Any) -> list[Any]:
    """As ``feed``, with every update through ``engine_delta_bytes`` (the capsule's
    ``engine_delta_raw``: levels as raw text) and, where it hands back (``None``), through
    ``engine.delta`` as a plugin's C path does; snapshots with their levels as
    ``RawLevels`` (the capsule's ``raw_levels``)."""
    out: list[Any] = []
    for m in msgs:
        bids = [(lv[0].encode(), lv[1].encode()) for lv in m.bids]
        asks = [(lv[0].encode(), lv[1].encode()) for lv in m.asks]
        if m.action == "snapshot":  # as RawLevels, which the sides load from the text
            raw_bids = cbook.raw_levels_bytes(None, bids)
            raw_asks = cbook.raw_levels_bytes(None, asks)
            common = {"event_time": m.ts, "receive_time": m.t, "sequence": m.seq}
            out.append(
                engine.snapshot(m.inst, m.inst, raw_bids, raw_asks, checksum=m.checksum, **common)
            )
            continue
        args = (m.ts, m.t, m.seq, m.prev, m.checksum)
        events = cbook.engine_delta_bytes(engine, m.inst, m.inst, bids, asks, *args)
        if events is None:
            common = {"event_time": m.ts, "receive_time": m.t, "sequence": m.seq}
            events = engine.delta(
                m.inst, m.inst, m.bids, m.asks, prev_sequence=m.prev, checksum=m.checksum, **common
            )
        out.append(events)
    return out


RAW_ODDITIES = [
    ["1e-8", "1"],  # an exponent: not plain, handed back before anything changes
    ["0.0000001", "+1"],  # a signed size
]


@pytest.mark.parametrize("emit", ["delta", "top"])
@pytest.mark.parametrize("name", CAPTURES)
def test_raw_levels_give_the_same_events(name: str, emit: str) -> None:
    """Levels as raw text (what marketfeed-okx's C parser hands the core, no str per
    level) give exactly the events and stats of levels as str, on a real capture with
    faults injected (a changed size, a resubscribe snapshot, a dropped update) and with
    texts the raw path does not take (an exponent, a signed size, a price spelled
    differently from the stored one)."""
    msgs, ups = with_faults(name)
    odd = msgs[ups[40]]
    msgs.insert(ups[40], replace(odd, bids=[*RAW_ODDITIES, *odd.bids], checksum=None))
    spelled = msgs[ups[50]]
    if spelled.asks:  # the same price with a trailing zero: the new spelling is kept
        px = spelled.asks[0][0]
        respelled = [[px + "0" if "." in px else px + ".0", *spelled.asks[0][1:]]]
        msgs.insert(ups[50], replace(spelled, bids=[], asks=respelled, checksum=None))

    def run(raw: bool) -> tuple[list[Any], str]:
        engine = BookEngine("okx", "books", checksum=Crc32Checksum(25), emit=emit)
        events = feed_raw(engine, msgs) if raw else feed(engine, msgs)
        return events, repr((events, engine.stats()))

    raw_events, got = run(True)
    want = run(False)[1]
    assert got == want
    assert "ResyncRequest" in want  # the faults were seen
    # the levels C built from the text are out of the collector's way (no cycle possible)
    deltas = [e for batch in raw_events for e in batch if isinstance(e, BookDelta)]
    assert (emit == "top") == (not deltas)
    for e in deltas:
        assert not gc.is_tracked(e.bids) and not any(gc.is_tracked(lv) for lv in e.bids)


def test_raw_levels_hand_back_before_changing_anything() -> None:
    """``None`` for a text that is not plain, with the book untouched; a level the raw path
    leaves to Python midway (two prices on one double) is finished by Python."""
    engine = engine_with_book()
    before = repr((engine.stats(), engine.book("BTC-USDT").raw_top(5)))  # type: ignore[union-attr]
    args = (T0, T0, None, None, None)
    for bids in ([(b"1e2", b"1")], [(b"100.1", b"1"), (b"100.2", b"abc")], [(b"\xc3\xa9", b"1")]):
        assert cbook.engine_delta_bytes(engine, "BTC-USDT", "BTC-USDT", bids, [], *args) is None
        assert repr((engine.stats(), engine.book("BTC-USDT").raw_top(5))) == before  # type: ignore[union-attr]
    engine = engine_with_book(emit="top")  # no Decimals built first: the side hands back
    out = cbook.engine_delta_bytes(
        engine, "BTC-USDT", "BTC-USDT", [(b"100.45", b"2"), (b"100.5", b"+3")], [], *args
    )
    assert out == []
    book = engine.book("BTC-USDT")
    assert book is not None and book.raw_top(2)[0] == [("100.5", "+3"), ("100.45", "2")]
    with pytest.raises(TypeError):
        cbook.engine_delta_bytes(engine, "BTC-USDT", "BTC-USDT", [("1", "1")], [], *args)


@pytest.mark.parametrize("emit", ["delta", "top", "both"])
def test_raw_levels_read_once_apply_as_texts_do(emit: str) -> None:
    """With ``emit`` ``delta``/``both`` the raw path reads each level's texts once, for the
    ``BookDelta``'s ``Decimal``s, and applies the price and zero flag found then; a price
    whose mantissa is past 2**53 (no exact one-division parse) is parsed again by the side.
    Inserts, replaces, deletes (``0`` and ``0.000``), both price kinds and a side sent to
    exact mode (Python's from then on) give the events, book and stats the str path
    gives."""
    steps = [
        ([("100.45", "2"), ("100.3", "0.000")], [("101.5", "7")]),
        ([("0.9007199254740993", "1.5")], [("101.5", "0")]),  # a mantissa past 2**53
        ([("100.4500000000000001", "3")], []),  # past 2**53 and on 100.45's double
        ([("100.45", "0")], [("101.0000000000000001", "4"), ("102", "1")]),
    ]

    def run(raw: bool) -> str:
        engine = engine_with_book(emit=emit)
        out: list[Any] = []
        for i, (bids, asks) in enumerate(steps):
            t = T0 + dt.timedelta(seconds=i)
            args = (t, t, None, None, None)
            if raw:
                enc = [[(p.encode(), s.encode()) for p, s in side] for side in (bids, asks)]
                events = cbook.engine_delta_bytes(engine, "BTC-USDT", "BTC-USDT", *enc, *args)
                if events is None:  # the bid side went to exact mode: Python's, as ever
                    assert i >= 2 and engine.book("BTC-USDT")._bids.exact  # type: ignore[union-attr]
                    events = engine.delta(
                        "BTC-USDT", "BTC-USDT", bids, asks, event_time=t, receive_time=t
                    )
            else:
                events = engine.delta(
                    "BTC-USDT", "BTC-USDT", bids, asks, event_time=t, receive_time=t
                )
            out.append(events)
        book = engine.book("BTC-USDT")
        assert book is not None
        return repr((out, engine.stats(), book.raw_top(10)))

    got, want = run(True), run(False)
    assert got == want
    assert "0.9007199254740993" in want and "100.4500000000000001" in want
