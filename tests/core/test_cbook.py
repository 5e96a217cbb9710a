"""The C speedups of the book engine (``marketfeed._cbook``) against the pure-Python engine.

Differential tests: the same operations go through the C code (``Side``, a book side in a
C array, and the functions working on it) and through the pure-Python code it replaces
(``_Side``, lists), and everything observable must be equal (the side's keys, prices,
sizes, mode and pair strings, the return value, the exception's type, message and kind),
including the rare cases C runs through the Python code and malformed input. Plus
reference-count and memory checks (nothing kept alive, memory flat over 100k updates of
real captures).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import subprocess
import sys
import zlib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marketfeed import ResyncRequest, _book
from marketfeed.book import SPEEDUPS, BookEngine, BookIntegrityError, Crc32Checksum, L2Book

cbook = _book._cbook
if cbook is None:
    pytest.skip(
        "the book engine did not load marketfeed._cbook (not built, or MARKETFEED_PURE_PYTHON)",
        allow_module_level=True,
    )

DATA = Path(__file__).parent / "data" / "book"


def test_speedups_flag_says_what_is_active() -> None:
    """``SPEEDUPS`` is true exactly when the engine loaded the C module at import."""
    assert SPEEDUPS is (_book._c is not None) or _book._c is cbook


def test_pure_python_environment_does_not_even_load_the_extension() -> None:
    """``MARKETFEED_PURE_PYTHON=1``: no C speedups, and ``marketfeed._cbook`` is not
    imported (a broken build cannot get in the way), by the core or by the OKX plugin."""
    code = (
        "import sys, marketfeed, marketfeed.book as b, marketfeed_okx;"
        "print(b.SPEEDUPS, 'marketfeed._cbook' in sys.modules)"
    )
    env = {**os.environ, "MARKETFEED_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"], out.stderr


# --------------------------------------------------------------------------- strategies

GOOD_PRICES = st.one_of(
    st.builds(
        lambda t, z: str(Decimal(t) / 4) + ("0" * z if z else ""),
        st.integers(1, 60),
        st.integers(0, 2),
    ),
    st.builds(
        lambda k: str(Decimal("100.000000000000000001") + Decimal(k) / 10**18), st.integers(0, 3)
    ),
    st.sampled_from(["7", "7.", "7.0", ".5", "0.50", "0", "00.25"]),
    # 15 to 19 characters: either side of the 16 a level holds in place (longer: a str)
    st.builds(lambda k, z: f"{1234567 + k}.{'0' * z}123456", st.integers(0, 9), st.integers(0, 4)),
)
BAD_PRICES = st.sampled_from(
    [
        "1e1",
        "-5",
        " 7",
        "7 ",
        "",
        "nan",
        "inf",
        "-inf",
        "1_0",
        "\u0663",
        "1" * 400,
        "7..1",
        ".",
        "+7",
        "0x10",
        "7\u00e9",
    ]
)
OTHER_OBJECTS = st.sampled_from([7, 7.5, None, b"7", Decimal("7")])
GOOD_SIZES = st.one_of(
    st.sampled_from(
        [
            "0",
            "0.0",
            "0.000",
            "0E-8",
            "00",
            ".0",
            "0.",
            "1",
            "2.5",
            "0.125",
            "10",
            "0.5e3",
            "1abc",
            "0.5x",
            "1\u00e9",
        ]
    ),
    st.builds(lambda n: str(Decimal(n) / 8), st.integers(1, 100)),
    st.builds(lambda n, z: f"{n}.{'0' * z}125", st.integers(1, 10**9), st.integers(0, 12)),
)
BAD_SIZES = st.sampled_from(
    [
        "+1",
        "+0",
        "+.5",
        "+0.0",
        "-1",
        "-0",
        " 1",
        "",
        "nan",
        "NaN",
        "inf",
        "+inf",
        "e5",
        "\u0663",
        "+",
        "+x",
        "a",
    ]
)
prices = st.one_of(GOOD_PRICES, GOOD_PRICES, GOOD_PRICES, BAD_PRICES, OTHER_OBJECTS)
sizes = st.one_of(GOOD_SIZES, GOOD_SIZES, GOOD_SIZES, BAD_SIZES, OTHER_OBJECTS)
good_level = st.tuples(GOOD_PRICES, GOOD_SIZES.filter(lambda s: s[0].isdigit() or s[0] == "."))


def shaped(level: tuple[Any, Any], shape: int) -> Any:
    px, sz = level
    if shape == 0:
        return (px, sz)
    if shape == 1:
        return [px, sz, "0", "1"]  # OKX's four items
    if shape == 2:
        return [px]  # too short
    if shape == 3:
        return {0: px, 1: sz}  # a mapping indexes too
    if shape == 4:
        return "ab"  # a str level: lv[0] == "a"
    return None


any_level = st.one_of(
    st.builds(shaped, st.tuples(prices, sizes), st.sampled_from([0, 0, 0, 1, 1])),
    st.builds(shaped, st.tuples(prices, sizes), st.integers(0, 5)),
)
clean_levels = st.lists(good_level, max_size=10)
dirty_levels = st.one_of(
    st.lists(any_level, max_size=10),
    st.lists(any_level, max_size=10).map(tuple),
    clean_levels,
)


def state(side: Any) -> tuple[Any, ...]:
    """What a side holds: its mode, keys, prices and sizes (best first). A ``_Side`` must
    also keep its index in step with its lists."""
    if isinstance(side, _book._Side):
        assert side.index == dict(zip(side.pxs, side.keys, strict=True))
    return (side.exact, side.keys, *side.columns())


def outcome(fn: Any, *args: Any) -> tuple[Any, ...]:
    try:
        return ("ok", fn(*args))
    except BookIntegrityError as exc:
        return ("raise", type(exc), exc.kind, exc.reason)
    except Exception as exc:
        return ("raise", type(exc), str(exc))


def decimals_c(side: Any, n: int | None) -> tuple[Any, ...]:
    cache = _book._DecimalCache(1000)
    return outcome(side.decimals, n, cache, Decimal, cache.capacity)


def decimals_py(side: Any, n: int | None, side_method: bool = False) -> tuple[Any, ...]:
    """``L2Book``'s pure-Python conversion of a side's top ``n`` levels (or the side's own
    ``decimals`` with the speedups off)."""
    saved = _book._c
    _book._c = None
    try:
        if side_method:
            cache = _book._DecimalCache(1000)
            return outcome(side.decimals, n, cache, Decimal, cache.capacity)
        return outcome(L2Book._side_top, side, n)
    finally:
        _book._c = saved


def apply_both(
    snapshot: list[tuple[str, str]], deltas: list[Any], neg: bool, watch: int, tops: str | None
) -> None:
    c_side = cbook.Side(neg)
    py_side = _book._Side(neg)
    for side in (c_side, py_side):
        side.load(snapshot)
        if tops is not None:
            side.pairs(watch, tops)  # the Python side keeps them in step from now on
    for levels in deltas:
        got = outcome(c_side.apply, levels, watch)
        want = outcome(_book._apply_side_py, py_side, levels, watch)
        assert got == want, levels
        assert state(c_side) == state(py_side), levels
        if tops is not None:
            assert c_side.pairs(watch, tops) == py_side.pairs(watch, tops)
        assert c_side.head() == py_side.head()
        want_decimals = repr(decimals_py(py_side, watch))
        assert repr(decimals_c(c_side, watch)) == want_decimals
        assert repr(decimals_c(py_side, watch)) == want_decimals  # _Side.decimals, C columns
        assert repr(decimals_py(py_side, watch, side_method=True)) == want_decimals
        if got[0] == "raise":
            break  # the book is invalid now: only a snapshot continues
        # rare cases ran in Python; only exact mode keeps the levels there
        assert (c_side.python is not None) is bool(c_side.exact), levels


# --------------------------------------------------------------------------- Side.apply


@settings(max_examples=300, deadline=None)
@given(
    snapshot=clean_levels,
    deltas=st.lists(dirty_levels, min_size=1, max_size=12),
    neg=st.booleans(),
    watch=st.integers(1, 5),
    tops=st.sampled_from([None, ":", "|", "::"]),
)
def test_apply_side_equals_python_on_any_input(
    snapshot: Any, deltas: Any, neg: bool, watch: int, tops: str | None
) -> None:
    """Valid, rare (spellings, float collisions, "+" sizes) and malformed levels of any
    shape give the same side, result and exception with ``Side`` as with ``_Side``."""
    apply_both(snapshot, deltas, neg, watch, tops)


@settings(max_examples=300, deadline=None)
@given(
    snapshot=clean_levels,
    deltas=st.lists(clean_levels, min_size=1, max_size=25),
    neg=st.booleans(),
    watch=st.integers(1, 5),
    tops=st.sampled_from([None, ":"]),
)
def test_apply_side_equals_python_on_valid_updates(
    snapshot: Any, deltas: Any, neg: bool, watch: int, tops: str | None
) -> None:
    """Long runs of valid updates (inserts, replaces, deletes in and below the top
    ``watch`` levels, at both ends of the C array) keep C and Python sides identical."""
    apply_both(snapshot, deltas, neg, watch, tops)


# --------------------------------------------------------------------------- apply_delta


def _okx_crc(book: L2Book) -> int:
    v = book.crc32_pairs(3)
    return v - 2**32 if v >= 2**31 else v


def _raising(book: L2Book) -> int:
    raise RuntimeError("broken checksum function")


def _not_an_int(book: L2Book) -> Any:
    return float(book.crc32_pairs(2))


CHECKSUMS = {"crc": _okx_crc, "raises": _raising, "float": _not_an_int, "none": None}


def book_state(book: L2Book) -> tuple[Any, ...]:
    s = book.stats
    return (
        state(book._bids),
        state(book._asks),
        book._valid,
        book._version,
        book._ck_version,
        book._ck_value,
        book.sequence,
        book.last_checksum,
        book.last_event_time,
        book.verified,
        s.updates,
        s.resyncs,
        dict(s.resync_reasons),
        s.last_update,
    )


delta_step = st.tuples(
    dirty_levels,
    dirty_levels,
    st.one_of(st.none(), st.integers(0, 6)),  # sequence
    st.one_of(st.none(), st.integers(0, 6)),  # prev_sequence
    st.sampled_from(["right", "wrong", "none"]),  # checksum sent
    st.booleans(),  # snapshot before this delta
)


@settings(max_examples=300, deadline=None)
@given(
    snapshot=st.tuples(clean_levels, clean_levels),
    steps=st.lists(delta_step, min_size=1, max_size=10),
    rule=st.sampled_from(["none", "contiguous", "linked"]),
    checksum=st.sampled_from(sorted(CHECKSUMS)),
    crossed=st.sampled_from([True, False, 1, 0]),  # a non-bool: its truth is Python's
    memo=st.sampled_from([True, False, 1]),
    watch=st.sampled_from([None, 1, 3]),
)
def test_apply_delta_equals_python(
    snapshot: Any,
    steps: Any,
    rule: Any,
    checksum: str,
    crossed: Any,
    memo: Any,
    watch: int | None,
) -> None:
    """Whole updates through ``_cbook.apply_delta`` (and where it hands back, Python's
    ``_finish_delta``) against the pure-Python ``apply_delta``: the same result or
    exception (type, kind, reason) and the same book afterwards (both sides, validity,
    version, memoised checksum, sequence, stats), for any levels, sequence rule,
    checksum function (right, wrong, raising, not an int), crossed check and memo."""
    books = []
    for _ in range(2):
        book = L2Book(
            "t",
            "A-B",
            "AB",
            checksum=CHECKSUMS[checksum],
            sequence=rule,
            check_crossed=crossed,
            checksum_memo=memo,
        )
        books.append(book)
    c_book, py_book = books
    saved = _book._c
    t0 = _book._NO_TIME

    def both(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            _book._c = cbook
            got = outcome(lambda: getattr(c_book, fn)(*args, **kwargs))
            _book._c = None
            want = outcome(lambda: getattr(py_book, fn)(*args, **kwargs))
        finally:
            _book._c = saved
        if got[0] == "raise" and got[1] is RuntimeError:  # the raising checksum function
            got = got[:2]
            want = want[:2]
        assert repr(got) == repr(want), (fn, args, kwargs)
        assert book_state(c_book) == book_state(py_book), (fn, args, kwargs)
        return got

    both("apply_snapshot", *snapshot, sequence=0)
    if watch is not None:
        both("raw_pairs", watch)
    for bids, asks, seq, prev, sent, snap in steps:
        if snap:
            both("apply_snapshot", *snapshot, sequence=seq)
        value = None
        if sent != "none":
            fn = CHECKSUMS[checksum]
            values = []
            for b, impl in ((c_book, cbook), (py_book, None)):  # same side effects on both
                try:
                    _book._c = impl
                    values.append(int(fn(b)) if fn is not None else 0)
                except Exception:
                    values.append(0)
                finally:
                    _book._c = saved
            assert values[0] == values[1]
            assert book_state(c_book) == book_state(py_book)
            value = values[0]
            if sent == "wrong":
                value += 1
        # the checksum is the book's before the delta: right for keep-alives and for
        # levels that leave the top unchanged, wrong otherwise (both paths must agree)
        both(
            "apply_delta",
            bids,
            asks,
            sequence=seq,
            prev_sequence=prev,
            checksum=value,
            time=t0,
            event_time=t0,
        )


def test_apply_delta_takes_the_common_case_in_c() -> None:
    """A valid update of a registered L2Book is done in C entirely (a bool), a book that
    is not valid is Python's (None), a subclass is never taken."""
    book = L2Book("t", "A-B", "AB", checksum=_okx_crc)
    book.apply_snapshot([("10", "1"), ("9", "1")], [("11", "1")])
    crc = _okx_crc(book)
    book2 = L2Book("t", "A-B", "AB", checksum=_okx_crc)
    book2.apply_snapshot([("10", "1"), ("9", "2")], [("11", "1")])
    want = _okx_crc(book2)
    args = (None, None, want, None, None)
    assert cbook.apply_delta(book, [("9", "2")], [], *args) is True
    assert book.stats.updates == 1 and book._ck_value == want != crc
    assert cbook.apply_delta(book, [("9", "+2")], [], *args) == (0, 0, False, False)

    class Sub(L2Book):
        __slots__ = ()

    sub = Sub("t", "A-B", "AB")
    sub.apply_snapshot([("10", "1")], [("11", "1")])
    assert cbook.apply_delta(sub, [("9", "1")], [], None, None, None, None, None) is None
    bad = L2Book("t", "A-B", "AB")
    assert cbook.apply_delta(bad, [("9", "1")], [], None, None, None, None, None) is None
    assert bad.stats.updates == 0


@pytest.mark.parametrize(
    ("levels", "in_c"),
    [
        ([("1", "1"), ("2", "+1")], False),  # "+"-signed size: Python's _is_zero
        ([("1", "1"), ("2.00", "1")], True),  # known double, other spelling: the new wins
        ([("1", "1"), ("2", "1"), ("1e1", "1")], False),  # exponent: float() in Python
        ([("1", "1"), ("3", "")], False),  # empty size: IndexError in Python
        ((("1", "1"),), True),  # a tuple of tuples is fine
        ([("100.000000000000000002", "1")], False),  # same double as a stored price
    ],
)
def test_rare_cases_run_in_python_and_come_back(levels: Any, in_c: bool) -> None:
    """A level C does not decide runs through ``_apply_side_py`` on a ``_Side`` copy of
    the levels; the result equals Python's and the levels come back into the C array
    unless the side went to exact mode (two prices on one double)."""
    c_side = cbook.Side(False)
    py_side = _book._Side(False)
    for side in (c_side, py_side):
        side.load([("2", "5"), ("100.000000000000000001", "1")])
    got = outcome(c_side.apply, levels, 3)
    assert got == outcome(_book._apply_side_py, py_side, levels, 3)
    assert state(c_side) == state(py_side)
    if got[0] == "ok":  # (after an exception the levels stay in Python until a snapshot)
        assert (c_side.python is not None) is bool(py_side.exact)
    if in_c:  # decided in C: no copy was made
        assert c_side.python is None and got == ("ok", True)


def test_side_array_grows_and_moves_the_shorter_part() -> None:
    """Thousands of inserts and deletes at the best end, the worst end and the middle
    (the array re-centres and grows) keep the C side equal to the Python side."""
    c_side = cbook.Side(True)
    py_side = _book._Side(True)
    ops: list[list[tuple[str, str]]] = []
    for i in range(1, 1500):
        ops.append([(str(10_000 + i), "1")])  # new best bid
        ops.append([(str(10_000 - i), "2")])  # new worst bid
        if i % 3 == 0:
            ops.append([(str(10_000 + i // 2), "0"), (str(10_000 - i // 2), "0")])
        if i % 7 == 0:
            ops.append([(str(10_000 + i), "0"), (f"{10_000 - i}.0", "3")])
    for levels in ops:
        assert c_side.apply(levels, 5) == _book._apply_side_py(py_side, levels, 5)
    assert state(c_side) == state(py_side)
    assert len(c_side) == len(py_side) > 1500
    c_side.clear()
    assert len(c_side) == 0 and c_side.head() is None and c_side.columns() == ([], [])


def test_exact_mode_side_runs_in_python() -> None:
    """After a float collision a side has Decimal keys; C never sees it and the result
    equals the pure-Python engine's."""
    a = L2Book("t", "A-B", "AB", check_crossed=False)
    a.apply_snapshot([("100.000000000000000001", "1")], [])
    a.apply_delta([("100.000000000000000002", "2"), ("99", "1")], [])
    assert a._bids.exact
    a.apply_delta([("101", "1"), ("100.000000000000000001", "0")], [])
    assert a.raw_top(5)[0] == [("101", "1"), ("100.000000000000000002", "2"), ("99", "1")]


@pytest.mark.parametrize(
    "bad",
    [
        ("nan", "1"),
        ("inf", "1"),
        ("1", "-1"),
        ("1", "nan"),
        ("1", " 1"),
        (None, "1"),
        ("1", None),
        ["1"],
        None,
        5,
        ("1", ""),
    ],
)
def test_malformed_level_fails_the_book_as_malformed(bad: Any) -> None:
    """A level C cannot take is handed back and Python raises ``malformed``; never a crash."""
    saved = _book._c
    _book._c = cbook
    try:
        book = L2Book("t", "A-B", "AB")
        book.apply_snapshot([("1", "1")], [("2", "1")])
        with pytest.raises(BookIntegrityError) as err:
            book.apply_delta([("0.5", "1"), bad], [])
        assert err.value.kind == "malformed"
        assert not book.valid
    finally:
        _book._c = saved


def test_side_rejects_wrong_argument_types() -> None:
    side = cbook.Side(False)
    with pytest.raises(TypeError):
        side.apply([])  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        side.apply([], "1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        side.pairs(1, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cbook.Side()  # type: ignore[call-arg]
    assert cbook.crc32_sides(side, _book._Side(False), 1, ":") is None


# --------------------------------------------------------------------------- checksum

text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    bids=st.lists(st.tuples(text, text), max_size=30),
    asks=st.lists(st.tuples(text, text), max_size=30),
    n=st.integers(0, 35),
    sep=st.sampled_from([":", "", "|", "::", "\u00b7"]),
)
def test_crc32_pairs_equals_zlib_over_the_joined_text(
    bids: Any, asks: Any, n: int, sep: str
) -> None:
    """Interleaved bid/ask, the longer side continuing alone, every string joined by
    ``sep``, UTF-8: the same CRC32 as zlib over the text built in Python."""
    parts: list[str] = []
    for i in range(n):
        if i < len(bids):
            parts += bids[i]
        if i < len(asks):
            parts += asks[i]
    want = zlib.crc32(sep.join(parts).encode())
    cols = ([p for p, _ in bids], [s for _, s in bids], [p for p, _ in asks], [s for _, s in asks])
    assert cbook.crc32_pairs(*cols, n, sep) == want


@given(data=st.binary(max_size=100))
def test_crc32_equals_zlib(data: bytes) -> None:
    assert cbook.crc32(data) == zlib.crc32(data)


def test_crc32_pairs_raises_for_text_that_is_not_utf8() -> None:
    with pytest.raises(UnicodeEncodeError):
        cbook.crc32_pairs(["1\ud800"], ["1"], [], [], 1, ":")
    with pytest.raises(TypeError):
        cbook.crc32_pairs([1], ["1"], [], [], 1, ":")


@pytest.mark.parametrize("impl", ["c", "python"])
def test_book_crc32_pairs_is_okx_checksum_of_real_captures(impl: str) -> None:
    """``L2Book.crc32_pairs(25)`` as a signed int is OKX's checksum of every message of
    the 2022 ``books`` capture, in both implementations."""
    saved = _book._c
    _book._c = cbook if impl == "c" else None

    def okx(book: L2Book) -> int:
        v = book.crc32_pairs(25)
        return v - 0x100000000 if v & 0x80000000 else v

    try:
        books: dict[str, L2Book] = {}
        checked = 0
        for kind, inst, bids, asks, ck in _messages("okx.20220513.ws.1.jsonl"):
            book = books.setdefault(inst, L2Book("okx", inst, inst, checksum=okx))
            if kind == "snapshot":
                book.apply_snapshot(bids, asks, checksum=ck)
            else:
                book.apply_delta(bids, asks, checksum=ck)
            checked += 1
        assert checked > 100
    finally:
        _book._c = saved


def test_book_crc32_pairs_rejects_negative_depth() -> None:
    book = L2Book("t", "A-B", "AB")
    with pytest.raises(ValueError, match="n must be"):
        book.crc32_pairs(-1)


# --------------------------------------------------------------------------- decimals


@settings(max_examples=200, deadline=None)
@given(levels=st.lists(st.tuples(prices, sizes), max_size=8), shape=st.integers(0, 1))
def test_decimal_levels_equals_python(levels: Any, shape: int) -> None:
    """Same tuple of Decimal pairs (or the same exception) and the same cache contents."""
    levels = [shaped(lv, shape) for lv in levels]
    c_cache = _book._DecimalCache(10)
    py_cache = _book._DecimalCache(10)
    saved = _book._c
    _book._c = cbook
    try:
        got = outcome(_book._levels, levels, c_cache)
    finally:
        _book._c = None
        try:
            want = outcome(_book._levels, levels, py_cache)
        finally:
            _book._c = saved
    assert repr(got) == repr(want)  # repr: NaN != NaN, and the spelling counts
    # C builds plain texts directly (no cache entry, with FAST_DECIMAL) and caches the rest
    # as Python does.
    assert all(repr(v) == repr(Decimal(k)) for k, v in c_cache.items())
    assert len(c_cache) <= c_cache.capacity  # cleared past its capacity, as in Python
    if not cbook.FAST_DECIMAL:
        assert repr(dict(c_cache)) == repr(dict(py_cache))


def test_decimal_levels_clears_the_cache_past_its_capacity() -> None:
    cache = _book._DecimalCache(3)
    out = cbook.decimal_levels([("1", "2"), ("3", "4")], cache, Decimal, cache.capacity)
    assert out == ((Decimal(1), Decimal(2)), (Decimal(3), Decimal(4)))
    assert len(cache) == 0
    with pytest.raises(InvalidOperation):
        cbook.decimal_levels([("1", "2x")], cache, Decimal, 10)


def test_decimal_level_pairs_are_left_out_of_the_garbage_collector() -> None:
    """A ``(Decimal, Decimal)`` pair cannot be part of a reference cycle, so C hands it
    out untracked, as CPython's collector would make it on its first pass: collections
    triggered by a busy book do not walk every level of every event. A pair holding
    objects the collector tracks (a ``decimal`` callable returning a list) stays
    tracked."""
    cache = _book._DecimalCache(10)
    out = cbook.decimal_levels([("1", "2"), ("1.5", "2e3")], cache, Decimal, cache.capacity)
    assert out == ((Decimal(1), Decimal(2)), (Decimal("1.5"), Decimal("2e3")))
    assert not gc.is_tracked(out) and not any(gc.is_tracked(pair) for pair in out)
    top = cbook.decimal_columns(["3", "2.5"], ["1", "0.1"], None, cache, Decimal, 10)
    assert top == ((Decimal(3), Decimal(1)), (Decimal("2.5"), Decimal("0.1")))
    assert not gc.is_tracked(top) and not any(gc.is_tracked(pair) for pair in top)
    odd = cbook.decimal_levels([("1", "2")], {}, lambda text: [text], 10)
    assert odd == ((["1"], ["2"]),) and gc.is_tracked(odd[0])


@pytest.mark.parametrize("n", [None, 0, 1, 3, 100, -1])
def test_decimal_columns_equals_python(n: int | None) -> None:
    pxs = ["3", "2.50", "1"]
    szs = ["1", "0.10", "2"]
    want = tuple(zip(map(Decimal, pxs[:n]), map(Decimal, szs[:n]), strict=True))
    cache = _book._DecimalCache(100)
    assert cbook.decimal_columns(pxs, szs, n, cache) == want
    assert set(cache) == set(pxs[:n] + szs[:n])  # no Decimal type given: every text cached
    with pytest.raises(InvalidOperation):  # through the cache's __missing__
        cbook.decimal_columns(["1"], ["nan"], None, _book._DecimalCache(10))


PLAIN_TEXTS = st.from_regex(r"\A[0-9]{0,12}\.?[0-9]{0,12}\Z").filter(
    lambda t: any(ch.isdigit() for ch in t)
)
DECIMAL_TEXTS = st.one_of(
    PLAIN_TEXTS,
    PLAIN_TEXTS,
    st.sampled_from(
        [
            "9999999999999999999",
            "10000000000000000000",
            "00000000000000000001",
            "0",
            "0.",
            ".0",
            "0.00000000000000000001",
            "1e3",
            "1E-8",
            "-1",
            "+1",
            " 1",
            "1_0",
            "nan",
            "sNaN",
            "Infinity",
            "-inf",
            "",
            ".",
            "1..2",
            "١٢",
            "1x",
        ]
    ),
    st.text(max_size=6),
)


def _as_python(text: Any) -> Any:
    try:
        d = Decimal(text)
    except Exception as exc:
        return ("raise", type(exc))
    return ("ok", type(d), d.as_tuple(), str(d), repr(d), d.is_nan() or hash(d))


@settings(max_examples=500, deadline=None)
@given(texts=st.lists(DECIMAL_TEXTS, min_size=1, max_size=6))
def test_decimals_built_in_c_equal_the_decimal_type(texts: list[str]) -> None:
    """Whatever path builds it (plain texts in C, the rest by the Decimal type), each
    Decimal equals ``Decimal(text)``: type, sign, digits, exponent, str, repr, hash."""
    levels = [(t, t) for t in texts]
    try:
        got = cbook.decimal_levels(levels, {}, Decimal, 100)
    except InvalidOperation:
        assert any(_as_python(t)[0] == "raise" for t in texts)
        return
    for (p, s), t in zip(got, texts, strict=True):
        got = ("ok", type(p), p.as_tuple(), str(p), repr(p), p.is_nan() or hash(p))
        assert _as_python(t) == got  # (a NaN's hash is per object)
        assert repr(s) == repr(p)  # the second one: built directly again, or the cached first
        if p.is_finite():
            assert p + 1 == Decimal(t) + 1 and p * 3 == Decimal(t) * 3


def test_fast_decimals_are_on_with_cpythons_decimal_module() -> None:
    """The layout check at import accepts CPython's ``_decimal`` (else the fast path would
    silently be off and the tests above would only cover the type's own constructor)."""
    _decimal = pytest.importorskip("_decimal")
    assert Decimal is _decimal.Decimal
    assert cbook.FAST_DECIMAL is True


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(DECIMAL_TEXTS, min_size=1, max_size=10),
    capacity=st.integers(0, 6),
    n=st.one_of(st.none(), st.integers(-3, 12)),
)
def test_decimal_columns_misses_equal_the_caches_missing(
    texts: list[str], capacity: int, n: int | None
) -> None:
    """decimal_columns with the Decimal type and capacity (misses in C) gives what the
    cache's ``__missing__`` gives: the same pairs or exception. Plain texts are built
    directly (not cached) with FAST_DECIMAL; what the cache holds afterwards is right and
    within its capacity (cleared at capacity), and without FAST_DECIMAL the same as
    through ``__missing__``."""
    pxs = texts
    szs = list(reversed(texts))
    c_cache = _book._DecimalCache(capacity)
    py_cache = _book._DecimalCache(capacity)
    c_cache["0.5"] = py_cache["0.5"] = Decimal("0.5")  # a hit among the misses
    got = outcome(cbook.decimal_columns, pxs, szs, n, c_cache, Decimal, capacity)
    want = outcome(cbook.decimal_columns, pxs, szs, n, py_cache)  # through __missing__
    assert repr(got) == repr(want)
    for k, v in c_cache.items():
        assert repr(v) == repr(Decimal(k))
    assert len(c_cache) <= max(capacity, 1)
    if not cbook.FAST_DECIMAL:
        assert repr(dict(c_cache)) == repr(dict(py_cache))


def test_decimal_columns_without_the_type_uses_getitem() -> None:
    with pytest.raises(KeyError):  # a plain dict has no __missing__
        cbook.decimal_columns(["1"], ["2"], None, {}, None, 10)
    with pytest.raises(InvalidOperation, match="not a finite"):
        cbook.decimal_columns(["1"], ["nan"], None, _book._DecimalCache(10), Decimal, 10)


# --------------------------------------------------------------------------- references


def test_no_reference_is_kept_by_insert_replace_delete_and_hand_back() -> None:
    """No string passed in is referenced once the side no longer holds it (no leaked or
    missing reference in any C path). Texts of up to 16 ASCII characters are copied into
    the level (no reference at all); a longer one is kept as the str passed in."""
    saved = _book._c
    _book._c = cbook
    try:
        book = L2Book("t", "A-B", "AB", check_crossed=False)
        book.apply_snapshot([("10", "1"), ("9", "1")], [("11", "1")])
        book.raw_pairs(2)  # keep pair strings: the mirror paths run too
        px = "".join(["9", ".5"])
        sz = "".join(["3", ".25"])
        sz2 = "".join(["4", ".5"])
        # texts longer than a level holds in place: the side keeps these str objects
        long_px = "".join(["9.", "2" * 20])
        long_sz = "".join(["3.", "7" * 20])
        base = (sys.getrefcount(px), sys.getrefcount(sz), sys.getrefcount(sz2))
        long_base = (sys.getrefcount(long_px), sys.getrefcount(long_sz))
        book.apply_delta([(long_px, long_sz)], [])
        assert (sys.getrefcount(long_px), sys.getrefcount(long_sz)) == (
            long_base[0] + 1,
            long_base[1] + 1,
        )
        assert book.raw_top(3)[0][1] == (long_px, long_sz)
        book.apply_delta([(long_px, "0")], [])
        assert (sys.getrefcount(long_px), sys.getrefcount(long_sz)) == long_base
        for _ in range(1000):
            book.apply_delta([(long_px, long_sz)], [])
            book.apply_delta([(long_px, sz)], [])  # a long size replaced by a short one
            book.apply_delta([(long_px, long_sz)], [])
            book.apply_delta([(long_px, "0")], [])
            book.apply_delta([(px, sz)], [])  # insert into the top 2
            book.apply_delta([(px, sz2)], [])  # replace
            book.apply_delta([[px, "+0"]], [])  # hand back, Python deletes
            book.apply_delta([(px, sz)], [])
            book.apply_delta([(px, "0")], [])  # delete in C
            book.apply_delta([(px, "0")], [])  # delete of an absent level
            _book._levels([(px, sz)], _book._DecimalCache(10))
            cbook.decimal_columns([px], [sz], None, _book._DecimalCache(1), Decimal, 1)
            book.top()
            book.crc32_pairs(25)
        assert (sys.getrefcount(px), sys.getrefcount(sz), sys.getrefcount(sz2)) == base
        assert (sys.getrefcount(long_px), sys.getrefcount(long_sz)) == long_base
    finally:
        _book._c = saved


def _messages(name: str) -> list[tuple[str, str, list[Any], list[Any], int]]:
    out = []
    for line in (DATA / name).read_text().splitlines():
        rec = json.loads(line)
        if rec["dir"] != "in":
            continue
        msg = json.loads(rec["frame"])
        if "data" not in msg or not msg.get("arg", {}).get("channel", "").startswith("books"):
            continue
        for d in msg["data"]:
            out.append((msg["action"], msg["arg"]["instId"], d["bids"], d["asks"], d["checksum"]))
    return out


def test_memory_stays_flat_over_100k_updates() -> None:
    """Replaying the real captures (fresh level strings each pass, as from a decoder) for
    100k+ updates through BookEngine (``engine_delta`` in C: checksum, BookDelta
    conversion; the 2022 capture with a Python checksum function, the 2021 one with
    ``Crc32Checksum`` computed in C): the interpreter's allocated blocks do not grow."""
    saved = _book._c
    _book._c = cbook
    messages = []  # (capture, snapshot?, instId, the data object as JSON text)
    for name in ("okx.20220513.ws.1.jsonl", "okx.20210722.ws.1.jsonl"):
        for action, inst, bids, asks, ck in _messages(name):
            data = json.dumps({"bids": bids, "asks": asks, "checksum": ck})
            messages.append((name, action == "snapshot", inst, data))

    def okx(book: L2Book) -> int:
        v = book.crc32_pairs(25)
        return v - 0x100000000 if v & 0x80000000 else v

    t = dt.datetime(2022, 5, 13, tzinfo=dt.UTC)

    def one_pass() -> int:
        engines = {
            "okx.20220513.ws.1.jsonl": BookEngine("okx", "books", checksum=okx),
            "okx.20210722.ws.1.jsonl": BookEngine("okx", "books", checksum=Crc32Checksum(25)),
        }
        for name, snapshot, inst, text in messages:
            d = json.loads(text)  # fresh strings, as from the decoder
            engine = engines[name]
            apply = engine.snapshot if snapshot else engine.delta
            events = apply(
                inst, inst, d["bids"], d["asks"], checksum=d["checksum"],
                event_time=t, receive_time=t,
            )  # fmt: skip
            if not snapshot:
                engine.book(inst).top(25)  # type: ignore[union-attr]
            assert not [e for e in events if isinstance(e, ResyncRequest)]
        return len(messages)

    try:
        one_pass()
        one_pass()
        _book._DECIMALS.clear()
        gc.collect()
        first = sys.getallocatedblocks()  # every live object of the interpreter
        updates = 0
        while updates < 100_000:
            updates += one_pass()
        _book._DECIMALS.clear()
        gc.collect()
        last = sys.getallocatedblocks()
        assert last - first < 1000, (first, last)  # a leak per update would be > 100k
    finally:
        _book._c = saved


@settings(max_examples=2000, deadline=None)
@given(
    digits=st.text("0123456789", min_size=1, max_size=24),
    dot=st.integers(0, 25),
    neg=st.booleans(),
)
def test_price_keys_are_float_of_the_price(digits: str, dot: int, neg: bool) -> None:
    """The C parser's fast path (mantissa < 2**53, up to 22 decimals) and its fallback
    give exactly ``float(price)`` (negated on the bid side)."""
    px = digits[:dot] + "." + digits[dot:] if dot <= len(digits) else digits
    side = cbook.Side(neg)
    assert side.apply([(px, "1")], 1) is True
    want = -float(px) if neg else float(px)
    assert side.keys == [want] and side.python is None


@settings(max_examples=300, deadline=None)
@given(
    levels=st.one_of(
        dirty_levels,
        st.lists(good_level, max_size=30).map(sorted),
        st.lists(good_level, max_size=30).map(lambda lv: sorted(lv, reverse=True)),
    ),
    neg=st.booleans(),
)
def test_load_equals_python(levels: Any, neg: bool) -> None:
    """A snapshot side loads to the same levels and mode (or the same exception) with
    ``Side.load`` (its fast path, or through ``_Side.load``) as with ``_Side.load``."""
    if neg and isinstance(levels, list):  # bids sorted best (highest) first, when sortable
        try:
            levels = sorted(levels, key=lambda lv: Decimal(lv[0]), reverse=True)
        except (TypeError, KeyError, IndexError, InvalidOperation):
            pass
    c_side = cbook.Side(neg)
    py_side = _book._Side(neg)
    got = outcome(c_side.load, levels)
    want = outcome(py_side.load, levels)
    assert got == want
    assert state(c_side) == state(py_side)


def test_load_takes_sorted_plain_levels_and_python_the_rest() -> None:
    side = cbook.Side(True)
    side.load([["3", "1"], ["2.5", "0.1", "x"], ("1", "2")])
    assert (side.keys, side.columns(), side.python) == (
        [-3.0, -2.5, -1.0],
        (["3", "2.5", "1"], ["1", "0.1", "2"]),
        None,
    )
    side.load([])
    assert (side.keys, side.columns()) == ([], ([], []))
    for other in (
        [("1", "1"), ("1", "2")],  # repeated price
        [("2", "1"), ("1", "1")],  # asks not ascending
        [("1", "0"), ("2", "1")],  # zero size
        [("1", "+1")],  # signed size
        [("1e1", "1")],  # exponent
        iter([("1", "1")]),  # not a list or tuple
    ):
        c_side = cbook.Side(False)
        py_side = _book._Side(False)
        levels = list(other) if not isinstance(other, list) else other
        c_side.load(iter(levels) if not isinstance(other, list) else levels)
        py_side.load(iter(levels) if not isinstance(other, list) else levels)
        assert state(c_side) == state(py_side)
        assert c_side.python is None  # loaded by Python, back in the C array
    with pytest.raises(BookIntegrityError, match="malformed"):
        cbook.Side(False).load([(1, "1")])


@settings(max_examples=200, deadline=None)
@given(
    bids=st.lists(st.tuples(GOOD_PRICES, GOOD_SIZES), max_size=8),
    asks=st.lists(st.tuples(GOOD_PRICES, GOOD_SIZES), max_size=8),
    n=st.integers(0, 10),
    sep=st.sampled_from([":", "|", ""]),
)
def test_book_crc32_pairs_equal_in_both_implementations(
    bids: Any, asks: Any, n: int, sep: str
) -> None:
    """``L2Book.crc32_pairs`` in C and in Python (slice interleaving) give zlib's CRC32 of
    the joined top levels, unequal sides included."""
    book = L2Book("t", "A-B", "AB", check_crossed=False)
    book.apply_snapshot(bids, asks)
    rb, ra = book.raw_top(n)
    parts: list[str] = []
    for i in range(n):
        if i < len(rb):
            parts += rb[i]
        if i < len(ra):
            parts += ra[i]
    want = zlib.crc32(sep.join(parts).encode())
    saved = _book._c
    try:
        for impl in (cbook, None):
            _book._c = impl
            assert book.crc32_pairs(n, sep) == want
    finally:
        _book._c = saved


@pytest.mark.parametrize("impl", ["c", "python"])
def test_depths_beyond_a_machine_integer_work_as_in_python(impl: str) -> None:
    """A depth such as ``10**30`` (Python slices clamp it) is clamped in C as well."""
    saved = _book._c
    _book._c = cbook if impl == "c" else None
    try:
        book = L2Book("t", "A-B", "AB")
        book.apply_snapshot([("2", "1"), ("1", "1")], [("3", "1")])
        assert book.top(10**30) == book.top()
        assert book.top(-(10**30)) == ((), ())
        book.raw_columns(10**30)  # the book now watches that many levels
        book.apply_delta([("2.5", "4")], [("3", "0"), ("4", "2")])
        assert book.raw_top(10) == ([("2.5", "4"), ("2", "1"), ("1", "1")], [("4", "2")])
        assert book.crc32_pairs(10**30) == zlib.crc32(b"2.5:4:4:2:2:1:1:1")
    finally:
        _book._c = saved


def test_checksum_from_level_fragments_equals_zlib() -> None:
    """The C checksum combines cached per-level fragments (CRC32 is linear); they must
    follow every change of a level and of the separator, and a level it does not take (a
    non-ASCII size) sends the whole checksum through the text path: always zlib's CRC32 of
    the joined text."""

    def want(book: L2Book, n: int, sep: str) -> int:
        rb, ra = book.raw_top(n)
        parts: list[str] = []
        for i in range(n):
            parts += rb[i] if i < len(rb) else []
            parts += ra[i] if i < len(ra) else []
        return zlib.crc32(sep.join(parts).encode())

    book = L2Book("t", "A-B", "AB", check_crossed=False)
    book.apply_snapshot([(str(100 - i), str(i + 1)) for i in range(30)], [("101", "1")])
    steps: list[tuple[list[Any], list[Any]]] = [
        ([("99", "7")], []),  # a size changes
        ([("99.5", "2")], [("101", "0"), ("102.25", "3")]),  # insert, delete, insert
        ([("99.50", "4")], []),  # another spelling: the new one is kept
        ([("100", "0")], [("101.5", "1")]),
        ([], []),
    ]
    for bids, asks in steps:
        book.apply_delta(bids, asks)
        for sep in (":", "|", ":", "::"):
            for n in (0, 1, 3, 25, 40):
                assert book.crc32_pairs(n, sep) == want(book, n, sep), (bids, asks, n, sep)
    book.apply_snapshot([("2", "\uff11"), ("1", "1")], [("3", "1")])  # fullwidth digit one
    assert book._bids.python is None  # loaded through Python, back in the C array
    assert book.crc32_pairs(2) == want(book, 2, ":")


@settings(max_examples=60, deadline=None)
@given(
    depth=st.integers(1, 120),
    extra=st.lists(st.integers(0, 40), min_size=240, max_size=240),
    sep=st.sampled_from([":", "|"]),
)
def test_checksum_of_long_texts_from_fragments_equals_zlib(
    depth: int, extra: list[int], sep: str
) -> None:
    """Top texts of up to ~20 kB (deep books, long size texts): the fragments are combined
    in chunks of the table's length (1 kB), each shifted by its offset from the text's
    end; every chunk boundary, including one falling right at a level, gives zlib's CRC32
    of the joined text."""
    bids = [(f"{10_000 - i}.5", "1." + "7" * extra[i] + "1") for i in range(120)]
    asks = [(f"{10_001 + i}.25", "2." + "3" * extra[120 + i] + "9") for i in range(90)]
    book = L2Book("t", "A-B", "AB")
    book.apply_snapshot(bids, asks)
    parts: list[str] = []
    for i in range(depth):
        parts += bids[i] if i < len(bids) else []
        parts += asks[i] if i < len(asks) else []
    assert book.crc32_pairs(depth, sep) == zlib.crc32(sep.join(parts).encode())
    assert book._bids.python is None  # the C side, fragments path


@pytest.mark.parametrize(
    "levels",
    [
        [("3", "1"), ("2.5", "0.1"), ("1", "2")],  # plain, sorted best first: read as text
        [],
        [("1", "1"), ("3", "2")],  # not sorted: through the str path
        [("3", "1"), ("3", "2")],  # a repeated price
        [("3", "0"), ("2", "1")],  # a zero size
        [("3", "+1")],  # a signed size
        [("3e0", "1")],  # an exponent
        [("3", "\u0661")],  # a non-ASCII digit
        [("3", "abc")],  # malformed
    ],
)
@pytest.mark.parametrize("neg", [True, False])
def test_raw_levels_load_as_their_strings_do(levels: list[tuple[str, str]], neg: bool) -> None:
    """A snapshot's levels as ``RawLevels`` (raw text in a frame, what marketfeed-okx's C
    parser passes) load exactly as the same levels as str tuples do, errors included, and
    read as those tuples from Python."""
    raw = cbook.raw_levels_bytes(None, [(p.encode(), z.encode()) for p, z in levels])
    assert len(raw) == len(levels) and list(raw) == levels
    if levels:
        assert raw[-1] == levels[-1] and raw[1:] == levels[1:] and raw[::-1] == levels[::-1]
    with pytest.raises(IndexError):
        raw[len(levels)]
    with pytest.raises(TypeError):
        raw["0"]
    c_side = cbook.Side(neg)
    py_side = _book._Side(neg)
    got = outcome(c_side.load, raw)
    assert got == outcome(py_side.load, levels)
    assert state(c_side) == state(py_side)
    assert outcome(_book._Side(neg).load, raw) == got  # the pure-Python side reads it too
