"""L2 book engine on real OKX captures: every checksum, injected faults, emission policy, export.

The expected values come from the capture files themselves (read here with plain ``json``)
and from a naive reference book (dicts + ``sorted``) with a straightforward OKX CRC32
written in this file; neither uses the engine.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import zlib
from collections import Counter
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from marketfeed import (
    BookDelta,
    BookSnapshot,
    MarketfeedError,
    ResyncRequest,
    SubscriptionStatus,
)
from marketfeed.book import (
    TOP_EXPORT_MAGIC,
    BookEngine,
    BookIntegrityError,
    Crc32Checksum,
    L2Book,
    decode_top_export,
)

DATA = Path(__file__).parent / "data" / "book"
CAPTURES = [
    "okx.20220513.ws.1.jsonl",  # channel books (400 levels, 100 ms batches)
    "okx.20210722.ws.1.jsonl",  # channel books-l2-tbt (tick by tick)
    "okx.20210722.ws.2.jsonl",
    "okx.20210722.ws.3.jsonl",
]
TBT = "okx.20210722.ws.1.jsonl"
X = "ONT-USDT"  # the instrument faults are injected into (most updates in TBT)


# Every test here runs against the C speedups and against the pure-Python engine
# (the module-scoped, parametrised `book_implementation` fixture of conftest.py).
pytestmark = pytest.mark.usefixtures("book_implementation")


# --------------------------------------------------------------------------- capture data


@dataclass(frozen=True)
class Msg:
    orig: int  # index among the file's book messages (kept when a test alters a message)
    inst: str
    action: str  # "snapshot" | "update"
    bids: list[list[str]]
    asks: list[list[str]]
    checksum: int | None
    t: dt.datetime  # receive time (the recorder's clock)
    ts: dt.datetime  # OKX event time
    seq: int | None = None  # synthesised seqId (constructed, see with_sequences)
    prev: int | None = None  # synthesised prevSeqId


def load(name: str) -> list[Msg]:
    """Every OKX book data object of a capture, in file order."""
    out: list[Msg] = []
    for line in (DATA / name).read_text().splitlines():
        rec = json.loads(line)
        if rec["dir"] != "in":
            continue
        frame = json.loads(rec["frame"])
        if "data" not in frame or not frame["arg"]["channel"].startswith("books"):
            continue
        t = dt.datetime.fromtimestamp(rec["t"], dt.UTC)
        for d in frame["data"]:
            ts = dt.datetime.fromtimestamp(int(d["ts"]) / 1000, dt.UTC)
            out.append(
                Msg(
                    len(out),
                    frame["arg"]["instId"],
                    frame["action"],
                    d["bids"],
                    d["asks"],
                    d.get("checksum"),
                    t,
                    ts,
                )
            )
    return out


def count_checksummed(name: str) -> int:
    """Book data objects carrying a checksum, counted from the raw lines."""
    n = 0
    for line in (DATA / name).read_text().splitlines():
        frame = json.loads(json.loads(line)["frame"])
        if isinstance(frame, dict) and str(frame.get("arg", {}).get("channel")).startswith("books"):
            n += sum(1 for d in frame.get("data", []) if "checksum" in d)
    return n


# --------------------------------------------------------------------------- reference


def okx_crc(bids: list[Any], asks: list[Any]) -> int:
    """OKX checksum: CRC32 over the top 25 levels, bidPx:bidSz:askPx:askSz..., signed."""
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    crc = zlib.crc32(":".join(parts).encode())
    return crc - 2**32 if crc >= 2**31 else crc


def reference_checksum(book: L2Book) -> int:
    """The OKX checksum written against the documented API (raw_top, best first)."""
    bids, asks = book.raw_top(25)
    return okx_crc(bids, asks)


class RefBook:
    """Naive L2 book: dict Decimal(price) -> (price str, size str), sorted on every read."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, tuple[str, str]] = {}
        self.asks: dict[Decimal, tuple[str, str]] = {}

    def apply(self, m: Msg) -> None:
        if m.action == "snapshot":
            self.bids, self.asks = {}, {}
        for side, levels in ((self.bids, m.bids), (self.asks, m.asks)):
            for lv in levels:
                if Decimal(lv[1]) == 0:
                    side.pop(Decimal(lv[0]), None)
                else:
                    side[Decimal(lv[0])] = (lv[0], lv[1])

    def raw(self, n: int | None = None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        bids = [self.bids[k] for k in sorted(self.bids, reverse=True)][:n]
        asks = [self.asks[k] for k in sorted(self.asks)][:n]
        return bids, asks

    def top(self, n: int | None = None) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        bids, asks = self.raw(n)
        return (
            tuple((Decimal(p), Decimal(s)) for p, s in bids),
            tuple((Decimal(p), Decimal(s)) for p, s in asks),
        )

    def crc(self) -> int:
        return okx_crc(*self.raw(25))


def reference_states(msgs: list[Msg], inst: str) -> dict[int, RefBook]:
    """Clean reference book of ``inst`` after each of its messages, keyed by list position."""
    ref = RefBook()
    out: dict[int, RefBook] = {}
    for pos, m in enumerate(msgs):
        if m.inst == inst:
            ref.apply(m)
            copy = RefBook()
            copy.bids, copy.asks = dict(ref.bids), dict(ref.asks)
            out[pos] = copy
    return out


# --------------------------------------------------------------------------- engine driver


def feed(engine: BookEngine, msgs: list[Msg]) -> list[list[Any]]:
    """Feed messages in order; the events returned for each."""
    out: list[list[Any]] = []
    for m in msgs:
        common: dict[str, Any] = {"event_time": m.ts, "receive_time": m.t, "sequence": m.seq}
        if m.action == "snapshot":
            events = engine.snapshot(m.inst, m.inst, m.bids, m.asks, checksum=m.checksum, **common)
        else:
            events = engine.delta(
                m.inst, m.inst, m.bids, m.asks, prev_sequence=m.prev, checksum=m.checksum, **common
            )
        out.append(events)
    return out


def okx_engine(**kw: Any) -> BookEngine:
    return BookEngine("okx", "books", checksum=reference_checksum, **kw)


def of(events: list[list[Any]], cls: type, inst: str | None = None) -> list[tuple[int, Any]]:
    return [
        (pos, e)
        for pos, evs in enumerate(events)
        for e in evs
        if isinstance(e, cls) and (inst is None or getattr(e, "native_symbol", None) == inst)
    ]


# --------------------------------------------------------------------------- every checksum


def test_reference_model_matches_every_capture_checksum() -> None:
    """Sanity of the reference itself: naive rebuild + CRC gives every capture checksum."""
    total = 0
    for name in CAPTURES:
        books: dict[str, RefBook] = {}
        for m in load(name):
            book = books.setdefault(m.inst, RefBook())
            book.apply(m)
            assert book.crc() == m.checksum, (name, m.orig)
            total += 1
    # the shared README's counts of book snapshots + updates: 3+287, 10+1494, 10+1436, 10+1412
    assert total == sum(map(count_checksummed, CAPTURES)) == 290 + 1504 + 1446 + 1422


@pytest.mark.parametrize("checksum", [reference_checksum, Crc32Checksum(25, ":")])
@pytest.mark.parametrize("name", CAPTURES)
def test_l2book_verifies_every_checksum(name: str, checksum: Any) -> None:
    """Every capture checksum verifies, with the reference function and with the core's
    Crc32Checksum (computed inside apply_delta by the C speedups)."""
    expected = count_checksummed(name)
    books: dict[str, L2Book] = {}
    refs: dict[str, RefBook] = {}
    verified = 0
    for m in load(name):
        book = books.setdefault(m.inst, L2Book("okx", m.inst, m.inst, checksum=checksum))
        ref = refs.setdefault(m.inst, RefBook())
        ref.apply(m)
        if m.action == "snapshot":
            ok = book.apply_snapshot(m.bids, m.asks, checksum=m.checksum, time=m.t)
        else:
            ok = book.apply_delta(m.bids, m.asks, checksum=m.checksum, time=m.t)
        verified += ok
    assert verified == expected
    for inst, book in books.items():
        assert book.valid
        assert book.top() == refs[inst].top()
        assert book.raw_top(400) == refs[inst].raw(400)


@pytest.mark.parametrize("name", CAPTURES)
def test_engine_rebuilds_every_book_without_resync(name: str) -> None:
    msgs = load(name)
    engine = okx_engine(emit="delta")
    events = feed(engine, msgs)
    flat = [e for evs in events for e in evs]
    assert not [e for e in flat if isinstance(e, ResyncRequest | SubscriptionStatus)]
    snapshots = [m for m in msgs if m.action == "snapshot"]
    nonempty = [m for m in msgs if m.action == "update" and (m.bids or m.asks)]
    assert len(of(events, BookSnapshot)) == len(snapshots)
    deltas = of(events, BookDelta)
    assert len(deltas) == len(nonempty)
    assert all(e.verified for e in flat)
    # each BookDelta carries exactly the frame's levels as decimals
    for pos, e in deltas:
        m = msgs[pos]
        assert e.bids == tuple((Decimal(p), Decimal(s)) for p, s, *_ in m.bids)
        assert e.asks == tuple((Decimal(p), Decimal(s)) for p, s, *_ in m.asks)
        assert e.checksum == m.checksum
    stats = engine.stats()
    assert sum(s.snapshots for s in stats.values()) == len(snapshots)
    assert sum(s.updates for s in stats.values()) == len(msgs) - len(snapshots)
    assert sum(s.resyncs for s in stats.values()) == 0
    last_t = {m.inst: m.t for m in msgs}
    assert {k: s.last_update for k, s in stats.items()} == last_t


# --------------------------------------------------------------------------- injected faults


def first_mismatch(msgs: list[Msg], inst: str, start: int) -> int:
    """Position of the first ``inst`` message from ``start`` whose checksum the naive
    rebuild of ``msgs`` does not match."""
    ref = RefBook()
    for pos, m in enumerate(msgs):
        if m.inst != inst:
            continue
        ref.apply(m)
        if pos >= start and ref.crc() != m.checksum:
            return pos
    raise AssertionError("fault not visible in any checksum")


def touches_top(ref: RefBook, m: Msg) -> bool:
    before = ref.raw(25)
    after = RefBook()
    after.bids, after.asks = dict(ref.bids), dict(ref.asks)
    after.apply(m)
    return after.raw(25) != before


def recovery_snapshot(clean: list[Msg], upto_orig: int, inst: str, pos_t: dt.datetime) -> Msg:
    """A fresh snapshot of ``inst`` as the venue had it after clean message ``upto_orig``
    (built from the clean reference book; constructed, like a resubscribe's answer)."""
    states = reference_states(clean, inst)
    last = max(p for p in states if p <= upto_orig)
    ref = states[last]
    bids, asks = ref.raw()
    return Msg(
        -1,
        inst,
        "snapshot",
        [list(b) for b in bids],
        [list(a) for a in asks],
        ref.crc(),
        pos_t,
        clean[last].ts,
        seq=clean[last].seq,
    )


def check_fault(
    clean: list[Msg], faulty: list[Msg], detect: int, kind: str, **engine_kw: Any
) -> None:
    """Run the faulty stream with a recovery snapshot; assert the resync contract."""
    x_after = [p for p, m in enumerate(faulty) if m.inst == X and p > detect]
    assert len(x_after) > 30
    recover = x_after[10]  # the recovery snapshot goes in before this position
    snap = recovery_snapshot(clean, faulty[recover - 1].orig, X, faulty[recover - 1].t)
    stream = [*faulty[:recover], snap, *faulty[recover:]]

    engine = okx_engine(emit="delta", **engine_kw)
    events = feed(engine, stream)

    resyncs = of(events, ResyncRequest)
    statuses = of(events, SubscriptionStatus)
    assert [p for p, _ in resyncs] == [detect], "one resync, on the first affected update"
    assert resyncs[0][1].native_symbol == X and resyncs[0][1].channel == "books"
    assert [(p, s.state) for p, s in statuses] == [(detect, "resyncing"), (recover, "active")]
    assert statuses[0][1].code == kind
    assert events[detect] == [statuses[0][1], resyncs[0][1]]
    # nothing for the invalid book between the failure and the snapshot
    assert all(
        not evs for p, evs in enumerate(events) if detect < p < recover and faulty[p].inst == X
    )
    dropped = sum(1 for p in range(detect + 1, recover) if stream[p].inst == X)
    stats = engine.stats()[X]
    assert (stats.resyncs, stats.resync_reasons, stats.dropped) == (1, Counter({kind: 1}), dropped)
    # after the snapshot: active, a verified full snapshot, then every delta verified
    assert isinstance(events[recover][1], BookSnapshot) and events[recover][1].verified
    after = of(events[recover + 1 :], BookDelta, X)
    assert after and all(e.verified for _, e in after)
    assert engine.book(X) is not None and engine.book(X).valid  # type: ignore[union-attr]
    final = RefBook()
    for m in clean:
        if m.inst == X:
            final.apply(m)
    assert engine.book(X).top() == final.top()  # type: ignore[union-attr]
    # the other instruments are unaffected: the same events as in a clean run
    clean_events = feed(okx_engine(emit="delta", **engine_kw), clean)
    others = [e for evs in events for e in evs if getattr(e, "native_symbol", X) != X]
    clean_others = [e for evs in clean_events for e in evs if getattr(e, "native_symbol", X) != X]
    assert others == clean_others and len(others) > 100


def test_dropped_update_detected_on_first_affected_update() -> None:
    clean = load(TBT)
    ref = RefBook()
    drop = None
    updates_seen = 0
    for pos, m in enumerate(clean):
        if m.inst != X:
            continue
        if m.action == "update":
            updates_seen += 1
            if updates_seen > 20 and touches_top(ref, m):
                drop = pos
                break
        ref.apply(m)
    assert drop is not None
    faulty = clean[:drop] + clean[drop + 1 :]
    detect = first_mismatch(faulty, X, drop)
    check_fault(clean, faulty, detect, "checksum")


def test_changed_size_detected_on_that_update() -> None:
    clean = load(TBT)
    ref = RefBook()
    target = None
    for pos, m in enumerate(clean):
        if m.inst == X and m.action == "update" and pos > 200:
            top_prices = {p for p, _ in ref.raw(25)[0] + ref.raw(25)[1]}
            hit = [lv for lv in m.bids + m.asks if lv[0] in top_prices and lv[1] != "0"]
            if hit:
                target = pos
                break
        if m.inst == X:
            ref.apply(m)
    assert target is not None
    m = clean[target]

    def bump(levels: list[list[str]]) -> list[list[str]]:
        return [
            [lv[0], str(Decimal(lv[1]) + 1), *lv[2:]] if lv[0] in top_prices else lv
            for lv in levels
        ]

    faulty = list(clean)
    faulty[target] = replace(m, bids=bump(m.bids), asks=bump(m.asks))
    assert first_mismatch(faulty, X, 0) == target
    check_fault(clean, faulty, target, "checksum")


def test_crossed_book_detected_on_that_update() -> None:
    clean = load(TBT)
    states = reference_states(clean, X)
    target = [p for p, m in enumerate(clean) if m.inst == X and m.action == "update"][100]
    best_ask = states[max(p for p in states if p < target)].raw(1)[1][0][0]
    m = clean[target]
    faulty = list(clean)
    faulty[target] = replace(m, bids=[*m.bids, [best_ask, "1", "0", "1"]])  # bid at the ask
    check_fault(clean, faulty, target, "crossed")


def with_sequences(msgs: list[Msg], reset_at: int | None = None) -> list[Msg]:
    """CONSTRUCTED: the captures predate OKX seqId/prevSeqId, so synthesise them as OKX
    documents: snapshot prevSeqId -1; each update's prevSeqId is the previous seqId; an
    update without changes (keep-alive) has prevSeqId == seqId; at ``reset_at`` the seqId
    drops (maintenance reset) and later updates follow on from it."""
    last: dict[str, int] = {}
    out = []
    for pos, m in enumerate(msgs):
        if m.action == "snapshot":
            seq = 1000 * (len(last) + 1)
            out.append(replace(m, seq=seq, prev=-1))
        else:
            prev = last[m.inst]
            if pos == reset_at:
                seq = 3
            elif m.bids or m.asks:
                seq = prev + 1 + len(m.bids) + len(m.asks)
            else:
                seq = prev
            out.append(replace(m, seq=seq, prev=prev))
        last[m.inst] = seq
    return out


def test_linked_sequence_passes_keepalive_and_reset() -> None:
    msgs = load(TBT)
    x_updates = [p for p, m in enumerate(msgs) if m.inst == X and m.action == "update"]
    seq = with_sequences(msgs, reset_at=x_updates[50])
    keepalives = [m for m in seq if m.action == "update" and m.seq == m.prev]
    assert keepalives, "the capture has keep-alive updates (no levels)"
    reset = seq[x_updates[50]]
    assert reset.seq is not None and reset.prev is not None
    assert reset.seq < reset.prev  # the constructed reset
    engine = okx_engine(sequence="linked", emit="delta")
    events = feed(engine, seq)
    assert not of(events, ResyncRequest)
    deltas = of(events, BookDelta)
    assert deltas and all(e.verified and e.sequence is not None for _, e in deltas)
    assert engine.book(X).sequence == [m for m in seq if m.inst == X][-1].seq  # type: ignore[union-attr]


def test_out_of_order_sequence_detected_on_first_swapped_update() -> None:
    clean = with_sequences(load(TBT))
    x_updates = [p for p, m in enumerate(clean) if m.inst == X and m.action == "update"]
    a, b = x_updates[60], x_updates[61]
    faulty = list(clean)
    faulty[a], faulty[b] = clean[b], clean[a]  # b arrives first
    check_fault(clean, faulty, a, "sequence", sequence="linked")


def test_contiguous_sequence_gap_detected() -> None:
    """CONSTRUCTED sequence numbers 1, 2, 3... per instrument on real frames, one skipped."""
    msgs = load(TBT)
    counters: dict[str, int] = {}
    numbered = []
    for m in msgs:
        n = counters[m.inst] = counters.get(m.inst, 0) + 1
        numbered.append(replace(m, seq=n))
    engine = okx_engine(sequence="contiguous")
    assert not of(feed(engine, numbered), ResyncRequest)

    x_updates = [p for p, m in enumerate(numbered) if m.inst == X and m.action == "update"]
    gap = x_updates[30]
    faulty = list(numbered)
    faulty[gap] = replace(numbered[gap], seq=numbered[gap].seq + 1)  # type: ignore[operator]
    events = feed(okx_engine(sequence="contiguous"), faulty)
    assert [p for p, _ in of(events, ResyncRequest)] == [gap]
    assert "sequence" in of(events, ResyncRequest)[0][1].reason


def test_delta_before_snapshot_requests_one_resync() -> None:
    msgs = [m for m in load(TBT) if m.inst == X]
    engine = okx_engine()
    events = feed(engine, msgs[1:20])  # the snapshot was missed
    assert [type(e) for e in events[0]] == [SubscriptionStatus, ResyncRequest]
    assert events[0][0].code == "no_snapshot"
    assert all(not evs for evs in events[1:])
    assert engine.stats()[X].dropped == 18


# --------------------------------------------------------------------------- emission policy


def expected_top_positions(msgs: list[Msg], interval: float) -> list[int]:
    due: dict[str, dt.datetime] = {}
    out = []
    for pos, m in enumerate(msgs):
        if m.inst not in due or m.t >= due[m.inst]:
            out.append(pos)
            due[m.inst] = m.t + dt.timedelta(seconds=interval)
    return out


@pytest.mark.parametrize("interval", [1.0, 0.25, 0.0])
def test_emit_top_at_most_once_per_interval_of_receive_time(interval: float) -> None:
    msgs = load(TBT)
    engine = okx_engine(emit="top", top_depth=10, top_interval=interval)
    events = feed(engine, msgs)
    tops = of(events, BookSnapshot)
    assert not of(events, BookDelta)
    assert [p for p, _ in tops] == expected_top_positions(msgs, interval)
    if interval == 0.0:
        assert len(tops) == len(msgs)
    refs: dict[str, RefBook] = {}
    by_pos = dict(tops)
    for pos, m in enumerate(msgs):
        ref = refs.setdefault(m.inst, RefBook())
        ref.apply(m)
        if pos in by_pos:
            e = by_pos[pos]
            assert e.depth == 10 and e.receive_time == m.t and e.event_time == m.ts
            assert (e.bids, e.asks) == ref.top(10)
            assert e.verified and e.checksum == m.checksum


def test_emit_both_gives_deltas_and_tops() -> None:
    msgs = load(TBT)
    events = feed(okx_engine(emit="both", top_interval=1.0), msgs)
    tops = [(p, e) for p, e in of(events, BookSnapshot) if e.depth == 25]
    fulls = [(p, e) for p, e in of(events, BookSnapshot) if e.depth is None]
    assert [p for p, _ in tops] == expected_top_positions(msgs, 1.0)
    assert [p for p, _ in fulls] == [p for p, m in enumerate(msgs) if m.action == "snapshot"]
    nonempty = [p for p, m in enumerate(msgs) if m.action == "update" and (m.bids or m.asks)]
    assert [p for p, _ in of(events, BookDelta)] == nonempty
    for evs in events:  # the change first, then the top view
        if len(evs) == 2:
            assert isinstance(evs[0], BookDelta | BookSnapshot) and evs[1].depth == 25


def test_configure_sets_policy_per_instrument() -> None:
    msgs = load(TBT)
    engine = okx_engine(emit="delta")
    engine.configure(X, X, emit="top", top_depth=5, top_interval=2.0)
    events = feed(engine, msgs)
    x_events = [e for evs in events for e in evs if e.native_symbol == X]
    assert x_events and all(isinstance(e, BookSnapshot) and e.depth == 5 for e in x_events)
    x_msgs = [m for m in msgs if m.inst == X]
    assert len(x_events) == len(expected_top_positions(x_msgs, 2.0))
    assert of(events, BookDelta)  # the others still emit deltas
    with pytest.raises(ValueError):
        engine.configure(X, X, emit="everything")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- native export


def built_book() -> L2Book:
    msgs = [m for m in load(CAPTURES[0]) if m.inst == "BTC-USDT"]
    book = L2Book("okx", "BTC-USDT", "BTC-USDT", checksum=reference_checksum)
    book.apply_snapshot(
        msgs[0].bids, msgs[0].asks, checksum=msgs[0].checksum, event_time=msgs[0].ts
    )
    for m in msgs[1:]:
        book.apply_delta(m.bids, m.asks, checksum=m.checksum, event_time=m.ts)
    return book


def test_export_top_layout_round_trips_with_struct() -> None:
    book = built_book()
    buf = book.export_top(25)
    bids, asks = book.top(25)
    assert len(buf) == 40 + 16 * (len(bids) + len(asks))
    magic, version, hsize, nb, na, pexp, sexp, flags, _, seq, et_ns = struct.unpack_from(
        "<4sHHIIbbHiqq", buf
    )
    assert (magic, version, hsize, nb, na) == (TOP_EXPORT_MAGIC, 1, 40, len(bids), len(asks))
    assert flags == 0b11 and seq == -(2**63)  # valid + verified; OKX 2022 sends no seqId
    assert et_ns == int(book.last_event_time.timestamp() * 1000) * 1_000_000  # type: ignore[union-attr]
    recs = struct.unpack_from(f"<{2 * (nb + na)}q", buf, hsize)
    levels = [
        (Decimal(recs[i]).scaleb(pexp), Decimal(recs[i + 1]).scaleb(sexp))
        for i in range(0, len(recs), 2)
    ]
    assert levels == list(bids + asks)  # exact values, bids then asks, best first
    decoded = decode_top_export(buf)
    assert (decoded.bids, decoded.asks) == (bids, asks)
    assert decoded.valid and decoded.verified and decoded.sequence is None
    with pytest.raises(ValueError):
        decode_top_export(b"XXXX" + buf[4:])


def test_export_top_round_trips_with_numpy() -> None:
    np = pytest.importorskip("numpy")
    book = built_book()
    buf = book.export_top(25)
    pexp, sexp = struct.unpack_from("<bb", buf, 16)
    nb = struct.unpack_from("<I", buf, 8)[0]
    rec = np.frombuffer(buf, dtype=[("price", "<i8"), ("size", "<i8")], offset=40)
    bids, asks = book.top(25)
    assert [int(v) for v in rec["price"]] == [int(p.scaleb(-pexp)) for p, _ in bids + asks]
    assert [int(v) for v in rec["size"]] == [int(s.scaleb(-sexp)) for _, s in bids + asks]
    assert nb == len(bids)
    fb, fa = book.export_top_numpy(25)
    assert fb.shape == (len(bids), 2) and fa.shape == (len(asks), 2)
    assert fb.tolist() == [[float(p), float(s)] for p, s in bids]
    assert fa.tolist() == [[float(p), float(s)] for p, s in asks]


def test_integrity_error_is_a_marketfeed_error() -> None:
    assert issubclass(BookIntegrityError, MarketfeedError)
