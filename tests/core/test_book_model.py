"""L2 book engine against a naive reference model (hypothesis), and its rules one by one."""

from __future__ import annotations

import datetime as dt
import zlib
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marketfeed import BookDelta, BookSnapshot, ResyncRequest, SubscriptionStatus
from marketfeed.book import BookEngine, BookIntegrityError, L2Book

T0 = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


# Every test here runs against the C speedups and against the pure-Python engine
# (the module-scoped, parametrised `book_implementation` fixture of conftest.py).
pytestmark = pytest.mark.usefixtures("book_implementation")


# --------------------------------------------------------------------------- reference model


class Model:
    """Naive book: dict Decimal(price) -> (price str, size str); sorted() on every read."""

    def __init__(self) -> None:
        self.sides: dict[str, dict[Decimal, tuple[str, str]]] = {"bid": {}, "ask": {}}

    def snapshot(self, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        self.sides = {"bid": {}, "ask": {}}
        self.delta(bids, asks)

    def delta(self, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        for name, levels in (("bid", bids), ("ask", asks)):
            side = self.sides[name]
            for px, sz in levels:
                if Decimal(sz) == 0:
                    side.pop(Decimal(px), None)
                else:
                    side[Decimal(px)] = (px, sz)

    def raw(self, n: int | None = None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        bids = self.sides["bid"]
        asks = self.sides["ask"]
        return (
            [bids[k] for k in sorted(bids, reverse=True)][:n],
            [asks[k] for k in sorted(asks)][:n],
        )

    def top(self, n: int | None = None) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        b, a = self.raw(n)
        return (
            tuple((Decimal(p), Decimal(s)) for p, s in b),
            tuple((Decimal(p), Decimal(s)) for p, s in a),
        )

    def crossed(self) -> bool:
        b, a = self.raw(1)
        return bool(b and a and Decimal(b[0][0]) >= Decimal(a[0][0]))


def crc_top3(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """An OKX-style checksum over the top 3 levels (small depth: exercises the memo)."""
    parts: list[str] = []
    for i in range(3):
        if i < len(bids):
            parts += bids[i]
        if i < len(asks):
            parts += asks[i]
    return zlib.crc32(":".join(parts).encode())


def book_crc(book: L2Book) -> int:
    return crc_top3(*book.raw_top(3))


# --------------------------------------------------------------------------- strategies


def spell(value: Decimal, extra_zeros: int) -> str:
    text = format(value, "f")
    if extra_zeros:
        text += ("" if "." in text else ".") + "0" * extra_zeros
    return text


# prices on a coarse grid (so updates hit existing levels), spelled with or without trailing
# zeros (the same price in two spellings), plus neighbours closer than a double can tell
PRICE_BASE = Decimal("100.000000000000000001")
prices = st.one_of(
    st.builds(
        lambda ticks, zeros: spell(Decimal(ticks) / 4, zeros),
        st.integers(1, 80),
        st.integers(0, 2),
    ),
    st.builds(lambda k: str(PRICE_BASE + Decimal(k) / 10**18), st.integers(0, 3)),
)
sizes = st.one_of(
    st.sampled_from(["0", "0.0", "0.000", "0E-8"]),
    st.builds(
        lambda n, zeros: spell(Decimal(n) / 8, zeros), st.integers(1, 400), st.integers(0, 2)
    ),
)
levels = st.lists(st.tuples(prices, sizes), max_size=12)
ops = st.lists(st.tuples(levels, levels), min_size=1, max_size=25)


def check_same(book: L2Book, model: Model) -> None:
    bids, asks = book.top()
    assert all(bids[i][0] > bids[i + 1][0] for i in range(len(bids) - 1)), "bids descending"
    assert all(asks[i][0] < asks[i + 1][0] for i in range(len(asks) - 1)), "asks ascending"
    assert all(s != 0 for _, s in bids + asks), "no zero sizes"
    assert (bids, asks) == model.top()
    assert book.raw_top(1000) == model.raw()
    assert book.raw_top(3) == model.raw(3)
    mb, ma = model.top(1)
    assert book.best_bid == (mb[0] if mb else None)
    assert book.best_ask == (ma[0] if ma else None)
    if mb and ma:
        assert book.mid == (mb[0][0] + ma[0][0]) / 2
        assert book.spread == ma[0][0] - mb[0][0]
    else:
        assert book.mid is None and book.spread is None
    for price in {p for p, _ in bids + asks} | {Decimal("0"), Decimal("12.3"), Decimal("999")}:
        want_b = sum((s for p, s in bids if p >= price), Decimal(0))
        want_a = sum((s for p, s in asks if p <= price), Decimal(0))
        assert book.depth_to(price, "bid") == want_b
        assert book.depth_to(price, "ask") == want_a
    assert len(book) == len(bids) + len(asks)


@settings(max_examples=150, deadline=None)
@given(snapshot=st.tuples(levels, levels), deltas=ops)
def test_book_equals_naive_model(snapshot: Any, deltas: Any) -> None:
    """Any snapshot + deltas (crossing allowed: check off) give the model's book."""
    book = L2Book("t", "A-B", "AB", check_crossed=False)
    model = Model()
    book.apply_snapshot(*snapshot)
    model.snapshot(*snapshot)
    check_same(book, model)
    for bids, asks in deltas:
        book.apply_delta(bids, asks)
        model.delta(bids, asks)
        check_same(book, model)
    assert book.valid and book.stats.updates == len(deltas)


@settings(max_examples=150, deadline=None)
@given(snapshot=st.tuples(levels, levels), deltas=ops, corrupt=st.integers(0, 30))
def test_checksum_and_crossed_checks_match_model(snapshot: Any, deltas: Any, corrupt: int) -> None:
    """With a checksum (memoised) and the crossed check on, the book accepts exactly the
    updates after which the model is uncrossed and matches the venue checksum, and rejects
    a wrong checksum."""
    book = L2Book("t", "A-B", "AB", checksum=book_crc)
    model = Model()
    model.snapshot(*snapshot)
    try:
        book.apply_snapshot(*snapshot, checksum=crc_top3(*model.raw(3)))
    except BookIntegrityError as exc:
        assert model.crossed() and exc.kind == "crossed"
        assert not book.valid
        return
    for n, (bids, asks) in enumerate(deltas):
        model.delta(bids, asks)
        want = crc_top3(*model.raw(3))
        sent = want + 1 if n == corrupt else want
        if model.crossed():
            with pytest.raises(BookIntegrityError) as err:
                book.apply_delta(bids, asks, checksum=sent)
            assert err.value.kind == "crossed"
            break
        if sent != want:
            with pytest.raises(BookIntegrityError) as err:
                book.apply_delta(bids, asks, checksum=sent)
            assert err.value.kind == "checksum"
            break
        assert book.apply_delta(bids, asks, checksum=sent) is True
        check_same(book, model)
    else:
        assert book.valid
        return
    assert not book.valid
    assert book.stats.resyncs == 1
    with pytest.raises(BookIntegrityError) as err:  # still invalid until a snapshot
        book.apply_delta([], [])
    assert err.value.kind == "invalid"


def joined(levels: list[tuple[str, str]], sep: str = ":") -> list[str]:
    return [p + sep + s for p, s in levels]


@settings(max_examples=150, deadline=None)
@given(snapshot=st.tuples(levels, levels), deltas=ops, depth=st.integers(1, 4))
def test_raw_pairs_follow_every_update(snapshot: Any, deltas: Any, depth: int) -> None:
    """The "price:size" strings the book keeps up to date update by update (raw_pairs)
    equal the model's top levels joined, after every delta (inserts, deletions, other
    spellings, float collisions); another separator or a deeper request rebuilds them."""
    book = L2Book("t", "A-B", "AB", check_crossed=False)
    model = Model()
    book.apply_snapshot(*snapshot)
    model.snapshot(*snapshot)
    for bids, asks in deltas:
        mb, ma = model.raw(depth)
        assert book.raw_pairs(depth) == (joined(mb), joined(ma))
        book.apply_delta(bids, asks)
        model.delta(bids, asks)
    mb, ma = model.raw(depth)
    assert book.raw_pairs(depth) == (joined(mb), joined(ma))
    assert book.raw_pairs(depth, "|") == (joined(mb, "|"), joined(ma, "|"))
    mb, ma = model.raw(depth + 5)
    assert book.raw_pairs(depth + 5, "|") == (joined(mb, "|"), joined(ma, "|"))


# --------------------------------------------------------------------------- rules


def test_float_collision_switches_to_exact_keys() -> None:
    a, b = "1.00000000000000001", "1.00000000000000002"
    assert float(a) == float(b) and Decimal(a) != Decimal(b)
    book = L2Book("t", "A-B", "AB")
    book.apply_snapshot([(a, "1")], [("3", "1")])
    book.apply_delta([(b, "2"), ("0.5", "1")], [])
    assert book.top() == (
        ((Decimal(b), Decimal(2)), (Decimal(a), Decimal(1)), (Decimal("0.5"), Decimal(1))),
        ((Decimal(3), Decimal(1)),),
    )
    book.apply_snapshot([(a, "1"), (b, "2")], [(b.replace("1.", "2."), "1")])  # in a snapshot
    assert [p for p, _ in book.top()[0]] == [Decimal(b), Decimal(a)]
    book.apply_delta([(a, "0")], [])
    assert book.top()[0] == ((Decimal(b), Decimal(2)),)


def test_same_price_other_spelling_replaces_level() -> None:
    book = L2Book("t", "A-B", "AB")
    book.apply_snapshot([("10.5", "1")], [("11", "1")])
    book.apply_delta([("10.50", "2")], [("11.0", "0")])
    assert book.raw_top(5) == ([("10.50", "2")], [])
    assert book.top() == (((Decimal("10.50"), Decimal(2)),), ())


@pytest.mark.parametrize("zero", ["0", "0.0", "00.000", "0E-8", ".0"])
def test_zero_spellings_delete(zero: str) -> None:
    book = L2Book("t", "A-B", "AB")
    book.apply_snapshot([("10", "1"), ("9", "1")], [("11", "1")])
    book.apply_delta([("10", zero), ("8", zero)], [])  # deleting an absent level is a no-op
    assert book.raw_top(5) == ([("9", "1")], [("11", "1")])


def test_snapshot_order_duplicates_and_zero_sizes() -> None:
    book = L2Book("t", "A-B", "AB")
    book.apply_snapshot(
        [("9", "1"), ("10", "2"), ("9", "3"), ("8", "0")], [("12", "1"), ("11", "1")]
    )
    assert book.raw_top(5) == ([("10", "2"), ("9", "3")], [("11", "1"), ("12", "1")])


@pytest.mark.parametrize(
    ("bids", "asks"),
    [
        ([("abc", "1")], []),
        ([("nan", "1")], []),
        ([("inf", "1")], []),
        ([("10", "-1")], []),
        ([("10", "nan")], []),
        ([("10", "inf")], []),
        ([("10", "abc")], []),
        ([("9", "1"), ("10", "NaN")], []),
        ([("10", "+inf")], []),
        ([("10", "-0")], []),
        ([("10", "")], []),
        ([(10, "1")], []),
        ([("10", None)], []),
        ([("10",)], []),
    ],
)
def test_malformed_levels_invalidate(bids: Any, asks: Any) -> None:
    book = L2Book("t", "A-B", "AB")
    book.apply_snapshot([("9", "1")], [("11", "1")])
    with pytest.raises(BookIntegrityError) as err:
        book.apply_delta(bids, asks)
    assert err.value.kind == "malformed" and not book.valid
    with pytest.raises(BookIntegrityError) as err:
        L2Book("t", "A-B", "AB").apply_snapshot(bids, asks)
    assert err.value.kind == "malformed"


def test_plus_signed_sizes_are_numbers() -> None:
    """A size may carry a "+" sign: "+2" replaces, "+0.0" deletes (as "2" and "0.0")."""
    book = L2Book("t", "A-B", "AB")
    book.apply_snapshot([("9", "1"), ("8", "1")], [("11", "1")])
    book.apply_delta([("9", "+2"), ("8", "+0.0")], [])
    assert book.raw_top(5) == ([("9", "+2")], [("11", "1")])
    assert book.top() == (((Decimal(9), Decimal(2)),), ((Decimal(11), Decimal(1)),))


def test_linked_sequence_rule() -> None:
    book = L2Book("t", "A-B", "AB", sequence="linked")
    book.apply_snapshot([("9", "1")], [("11", "1")], sequence=10)
    assert book.apply_delta([("9", "2")], [], sequence=15, prev_sequence=10) is True
    assert book.apply_delta([], [], sequence=15, prev_sequence=15) is True  # keep-alive
    assert book.apply_delta([("9", "3")], [], sequence=3, prev_sequence=15) is True  # reset
    assert book.sequence == 3
    with pytest.raises(BookIntegrityError) as err:
        book.apply_delta([("9", "4")], [], sequence=9, prev_sequence=5)
    assert err.value.kind == "sequence" and book.raw_top(1)[0] == [("9", "3")]  # not applied
    book.apply_snapshot([("9", "1")], [("11", "1")], sequence=20)
    with pytest.raises(BookIntegrityError):
        book.apply_delta([("9", "2")], [])  # the book knows a sequence: a delta needs one


def test_contiguous_sequence_rule_and_venues_without_sequences() -> None:
    book = L2Book("t", "A-B", "AB", sequence="contiguous")
    book.apply_snapshot([("9", "1")], [("11", "1")], sequence=7)
    assert book.apply_delta([], [], sequence=8) is True
    with pytest.raises(BookIntegrityError) as err:
        book.apply_delta([], [], sequence=10)
    assert err.value.kind == "sequence"
    plain = L2Book("t", "A-B", "AB", sequence="linked")
    plain.apply_snapshot([("9", "1")], [("11", "1")])  # no sequence sent: not checked
    assert plain.apply_delta([("9", "2")], []) is False
    assert plain.valid


def test_delta_before_snapshot_and_views_of_invalid_book() -> None:
    book = L2Book("t", "A-B", "AB")
    assert not book.valid
    with pytest.raises(BookIntegrityError) as err:
        book.apply_delta([("9", "1")], [])
    assert err.value.kind == "no_snapshot"
    with pytest.raises(BookIntegrityError):
        book.to_snapshot(5, T0, T0)
    assert book.best_bid is None and book.mid is None and book.spread is None
    with pytest.raises(ValueError):
        book.depth_to("1", "middle")  # type: ignore[arg-type]
    stats = book.stats
    assert (stats.resyncs, stats.resync_reasons) == (1, Counter(no_snapshot=1))


def test_stats_and_to_snapshot() -> None:
    book = L2Book("t", "A-B", "AB", checksum=book_crc)
    book.apply_snapshot([("9", "1"), ("8", "2")], [("11", "1")], time=T0, sequence=4)
    book.apply_delta([("9", "0")], [("12", "5")], time=T0 + dt.timedelta(seconds=1))
    s = book.stats
    assert (s.snapshots, s.updates, s.resyncs, s.dropped, s.valid) == (1, 1, 0, 0, True)
    assert (s.bid_levels, s.ask_levels, s.last_update) == (1, 2, T0 + dt.timedelta(seconds=1))
    snap = book.to_snapshot(1, T0, T0)
    assert snap.bids == ((Decimal(8), Decimal(2)),) and snap.asks == ((Decimal(11), Decimal(1)),)
    assert snap.depth == 1 and snap.sequence == 4 and not snap.verified  # no checksum sent
    assert book.to_snapshot(None, T0, T0).asks == (
        (Decimal(11), Decimal(1)),
        (Decimal(12), Decimal(5)),
    )


def test_engine_failed_snapshot_and_invalidate() -> None:
    engine = BookEngine("t", "book", checksum=book_crc)
    bad: list[Any] = engine.snapshot(
        "AB", "A-B", [("9", "1")], [("11", "1")], event_time=T0, receive_time=T0, checksum=1
    )
    assert [type(e) for e in bad] == [SubscriptionStatus, ResyncRequest]
    assert bad[0].code == "checksum" and engine.resyncing("AB")
    assert engine.delta("AB", "A-B", [("9", "2")], [], event_time=T0, receive_time=T0) == []
    good_ck = crc_top3([("9", "1")], [("11", "1")])
    ok: list[Any] = engine.snapshot(
        "AB", "A-B", [("9", "1")], [("11", "1")], event_time=T0, receive_time=T0, checksum=good_ck
    )
    assert [type(e) for e in ok] == [SubscriptionStatus, BookSnapshot]
    assert ok[0].state == "active" and ok[1].verified
    other: list[Any] = engine.snapshot(
        "CD", "C-D", [("1", "1")], [("2", "1")], event_time=T0, receive_time=T0
    )
    assert [type(e) for e in other] == [BookSnapshot] and not other[0].verified
    out = engine.invalidate("AB", "plugin saw a gap", time=T0)
    assert [type(e) for e in out] == [SubscriptionStatus, ResyncRequest]
    assert engine.invalidate("AB", "again", time=T0) == []  # already resyncing
    assert isinstance(
        engine.delta("CD", "C-D", [("1", "2")], [], event_time=T0, receive_time=T0)[0], BookDelta
    )
    stats = engine.stats()
    assert stats["AB"].resync_reasons == Counter(checksum=1, invalid=1)
    assert stats["AB"].dropped == 1 and stats["CD"].resyncs == 0
    assert "AB" in engine and len(engine) == 2
    engine.remove("AB")
    assert engine.book("AB") is None and len(engine) == 1


def test_engine_malformed_size_in_delta_resyncs() -> None:
    engine = BookEngine("t", "book")
    engine.snapshot("AB", "A-B", [("9", "1")], [("11", "1")], event_time=T0, receive_time=T0)
    out: list[Any] = engine.delta("AB", "A-B", [("9", "1x")], [], event_time=T0, receive_time=T0)
    assert [type(e) for e in out] == [SubscriptionStatus, ResyncRequest]
    assert out[0].code == "malformed"


def test_engine_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        BookEngine("t", "book", sequence="strict")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        BookEngine("t", "book", top_depth=0)
    with pytest.raises(ValueError):
        L2Book("t", "A-B", "AB", sequence="other")  # type: ignore[arg-type]


def test_checksum_function_error_invalidates() -> None:
    def broken(book: L2Book) -> int:
        raise KeyError("oops")

    book = L2Book("t", "A-B", "AB", checksum=broken)
    with pytest.raises(BookIntegrityError) as err:
        book.apply_snapshot([("9", "1")], [("11", "1")], checksum=5)
    assert err.value.kind == "checksum" and "KeyError" in err.value.reason
    assert not book.valid


def test_configure_keeps_unset_options() -> None:
    engine = BookEngine("t", "book", emit="delta")
    engine.configure("AB", "A-B", emit="top", top_interval=0)
    engine.configure("AB", "A-B", top_depth=1)  # emit stays "top"
    out: list[Any] = engine.snapshot(
        "AB", "A-B", [("9", "1"), ("8", "1")], [("11", "1")], event_time=T0, receive_time=T0
    )
    assert [type(e) for e in out] == [BookSnapshot]
    assert out[0].depth == 1 and out[0].bids == ((Decimal(9), Decimal(1)),)
    out = engine.delta("AB", "A-B", [("8", "0")], [], event_time=T0, receive_time=T0)
    assert [type(e) for e in out] == [BookSnapshot]  # interval 0: a top view per update
