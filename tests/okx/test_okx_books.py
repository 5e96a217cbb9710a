"""Book integrity: checksum and sequence failures resync one instrument alone.

Frames here start from the real 2022-05-13 ``books`` pushes. Where a test needs what the
recordings lack (``seqId``/``prevSeqId``, ``books5``, ``bbo-tbt``, a corrupted level), it
modifies or builds frames from them: those frames are **constructed**.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from marketfeed import (
    BookDelta,
    BookSnapshot,
    Event,
    ResyncRequest,
    Subscription,
    SubscriptionStatus,
)
from marketfeed.book import L2Book
from marketfeed_okx import OkxNormaliser, book_checksum, book_checksum_columns
from okx_testdata import WS_2021, WS_2022, PlainBook, in_frames

NOW = dt.datetime(2022, 5, 13, 16, 27, 10, tzinfo=dt.UTC)


def _book_pushes() -> list[dict[str, Any]]:
    return [
        json.loads(f) for _, f in in_frames(WS_2022) if f.startswith('{"arg":{"channel":"books"')
    ]


def _dump(msg: dict[str, Any]) -> str:
    return json.dumps(msg, separators=(",", ":"))


def _feed(normaliser: OkxNormaliser, msgs: list[dict[str, Any]]) -> list[Event]:
    out: list[Event] = []
    for msg in msgs:
        out += normaliser(_dump(msg), NOW)
    return out


def _of(events: list[Event], inst: str, kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind) and e.native_symbol == inst]


def _with_sequence(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Constructed: add current OKX's seqId/prevSeqId (snapshot prevSeqId -1, each update
    linked to the previous push of the same instrument), checksum kept."""
    last: dict[str, int] = {}
    out = []
    for i, msg in enumerate(msgs):
        inst = msg["arg"]["instId"]
        msg = json.loads(json.dumps(msg))
        seq = 1000 + 7 * i
        msg["data"][0]["seqId"] = seq
        msg["data"][0]["prevSeqId"] = -1 if msg["action"] == "snapshot" else last[inst]
        last[inst] = seq
        out.append(msg)
    return out


def _first_update(msgs: list[dict[str, Any]], inst: str, after: int = 0) -> int:
    return next(
        i
        for i, m in enumerate(msgs)
        if i >= after
        and m["action"] == "update"
        and m["arg"]["instId"] == inst
        and (m["data"][0]["bids"] or m["data"][0]["asks"])
    )


def test_corrupted_level_resyncs_that_instrument_only() -> None:
    msgs = _book_pushes()
    instruments = {m["arg"]["instId"] for m in msgs}
    victim = "BTC-USDT"
    i = _first_update(msgs, victim, after=20)
    corrupted = json.loads(json.dumps(msgs[i]))
    side = "bids" if corrupted["data"][0]["bids"] else "asks"
    level = corrupted["data"][0][side][0]
    level[1] = str(Decimal(level[1]) + 1) if level[1] != "0" else "1"  # a wrong size
    msgs[i] = corrupted

    events = _feed(OkxNormaliser("okx"), msgs)

    resyncs = [e for e in events if isinstance(e, ResyncRequest)]
    assert [(r.channel, r.native_symbol) for r in resyncs] == [("books", victim)]
    assert "checksum" in resyncs[0].reason
    status = [e for e in events if isinstance(e, SubscriptionStatus)]
    assert [(s.native_symbol, s.state, s.code) for s in status] == [
        (victim, "resyncing", "checksum")
    ]
    # no book event for the victim after the failure (it waits for a snapshot) ...
    victim_updates_before = sum(
        1
        for m in msgs[:i]
        if m["arg"]["instId"] == victim
        and m["action"] == "update"
        and (m["data"][0]["bids"] or m["data"][0]["asks"])
    )
    assert len(_of(events, victim, BookDelta)) == victim_updates_before
    # ... while the others get every delta the capture holds
    for inst in instruments - {victim}:
        expected = sum(
            1
            for m in msgs
            if m["arg"]["instId"] == inst
            and m["action"] == "update"
            and (m["data"][0]["bids"] or m["data"][0]["asks"])
        )
        assert len(_of(events, inst, BookDelta)) == expected > 0


def test_a_fresh_snapshot_restores_the_book() -> None:
    msgs = _book_pushes()
    victim = "BTC-USDT"
    i = _first_update(msgs, victim, after=20)
    normaliser = OkxNormaliser("okx")
    _feed(normaliser, msgs[:i])
    skipped = msgs[i]  # dropped update: the next one cannot match its checksum
    j = _first_update(msgs, victim, after=i + 1)
    failure = _feed(normaliser, msgs[i + 1 : j + 1])
    assert [type(e) for e in failure if e.native_symbol == victim] == [  # type: ignore[union-attr]
        SubscriptionStatus,
        ResyncRequest,
    ]
    # constructed: the snapshot OKX would send on resubscribe, from the true book state
    book = PlainBook()
    for m in msgs[: j + 1]:
        if m["arg"]["instId"] != victim:
            continue
        d = m["data"][0]
        if m["action"] == "snapshot":
            book.snapshot(d["bids"], d["asks"])
        else:
            book.update(d["bids"], d["asks"])
    assert skipped is not None
    bids, asks = book.top(400)
    snapshot = {
        "arg": {"channel": "books", "instId": victim},
        "action": "snapshot",
        "data": [
            {
                "asks": [[p, s, "0", "1"] for p, s in asks],
                "bids": [[p, s, "0", "1"] for p, s in bids],
                "ts": msgs[j]["data"][0]["ts"],
                "checksum": book.checksum(),
            }
        ],
    }
    restored = _feed(normaliser, [snapshot, *msgs[j + 1 :]])
    first = [e for e in restored if getattr(e, "native_symbol", None) == victim][:2]
    assert isinstance(first[0], SubscriptionStatus) and first[0].state == "active"
    assert isinstance(first[1], BookSnapshot) and first[1].verified
    later = [
        m
        for m in msgs[j + 1 :]
        if m["arg"]["instId"] == victim and (m["data"][0]["bids"] or m["data"][0]["asks"])
    ]
    deltas = _of(restored, victim, BookDelta)
    assert len(deltas) == len(later) > 0 and all(d.verified for d in deltas)
    assert not [e for e in restored if isinstance(e, ResyncRequest)]


def test_sequence_ids_are_checked_when_present() -> None:
    msgs = _with_sequence(_book_pushes())
    events = _feed(OkxNormaliser("okx"), msgs)
    assert not [e for e in events if isinstance(e, ResyncRequest)]
    deltas = [e for e in events if isinstance(e, BookDelta)]
    assert deltas and all(d.sequence is not None and d.prev_sequence is not None for d in deltas)

    victim = "UNI-USD-SWAP"
    i = _first_update(msgs, victim, after=10)
    msgs[i]["data"][0]["prevSeqId"] -= 1  # a gap in the sequence; checksum still right
    events = _feed(OkxNormaliser("okx"), msgs)
    resyncs = [e for e in events if isinstance(e, ResyncRequest)]
    assert [r.native_symbol for r in resyncs] == [victim]
    status = [e for e in events if isinstance(e, SubscriptionStatus)]
    assert [(s.state, s.code) for s in status] == [("resyncing", "sequence")]


def test_keepalive_with_equal_ids_and_a_sequence_reset_pass() -> None:
    """OKX: an update without change may have ``prevSeqId == seqId``; after maintenance
    ``seqId`` may be smaller than ``prevSeqId``. Both link to the previous push."""
    msgs = _with_sequence(_book_pushes())
    victim = "BTC-USD-220527"
    i = _first_update(msgs, victim, after=10)
    prev = msgs[i]["data"][0]["prevSeqId"]
    keepalive = {  # constructed: no change, prevSeqId == seqId == the last seqId
        "arg": {"channel": "books", "instId": victim},
        "action": "update",
        "data": [
            {
                "asks": [],
                "bids": [],
                "ts": msgs[i]["data"][0]["ts"],
                "seqId": prev,
                "prevSeqId": prev,
            }
        ],
    }
    msgs.insert(i, keepalive)
    # a reset: the next update of the victim gets a small seqId, later ones link to it
    j = _first_update(msgs, victim, after=i + 2)
    msgs[j]["data"][0]["seqId"] = 5
    k = _first_update(msgs, victim, after=j + 1)
    msgs[k]["data"][0]["prevSeqId"] = 5
    events = _feed(OkxNormaliser("okx"), msgs)
    assert not [e for e in events if isinstance(e, ResyncRequest | SubscriptionStatus)]


def test_checksum_zero_next_to_seq_id_is_the_deprecated_field() -> None:
    """Since 2026-06-23 OKX sends checksum 0 on book channels; with seqId present it is
    ignored. Without seqId (old servers) a 0 is a real value and fails."""
    msgs = _with_sequence(_book_pushes())
    for m in msgs:
        m["data"][0]["checksum"] = 0
    events = _feed(OkxNormaliser("okx"), msgs)
    assert not [e for e in events if isinstance(e, ResyncRequest)]
    assert [e for e in events if isinstance(e, BookDelta)]

    plain = _book_pushes()
    for m in plain:
        m["data"][0]["checksum"] = 0
    events = _feed(OkxNormaliser("okx"), plain)
    assert {e.native_symbol for e in events if isinstance(e, ResyncRequest)} == {
        m["arg"]["instId"] for m in plain
    }


def test_checksum_off_does_not_verify() -> None:
    msgs = _book_pushes()
    i = _first_update(msgs, "BTC-USDT", after=20)
    msgs[i]["data"][0]["checksum"] += 1
    events = _feed(OkxNormaliser("okx", checksum=False), msgs)
    assert not [e for e in events if isinstance(e, ResyncRequest)]
    assert not any(e.verified for e in events if isinstance(e, BookDelta | BookSnapshot))


def test_books5_and_bbo_tbt_are_full_snapshots() -> None:
    """Constructed from the first real BTC-USDT snapshot's top levels (shape per OKX docs:
    no ``action``, no checksum, ``instId`` and ``seqId`` in the data)."""
    snap = next(m for m in _book_pushes() if m["arg"]["instId"] == "BTC-USDT")["data"][0]
    normaliser = OkxNormaliser("okx")
    for channel, depth in (("books5", 5), ("bbo-tbt", 1)):
        for step in range(3):
            frame = {
                "arg": {"channel": channel, "instId": "BTC-USDT"},
                "data": [
                    {
                        "asks": snap["asks"][step : step + depth],
                        "bids": snap["bids"][step : step + depth],
                        "instId": "BTC-USDT",
                        "ts": str(int(snap["ts"]) + step),
                        "seqId": 100 + step,
                    }
                ],
            }
            (ev,) = normaliser(_dump(frame), NOW)
            assert isinstance(ev, BookSnapshot)
            assert len(ev.bids) == len(ev.asks) == depth
            assert ev.bids[0] == (Decimal(snap["bids"][step][0]), Decimal(snap["bids"][step][1]))
            assert ev.sequence == 100 + step


def test_book_emit_top_gives_periodic_top_n_snapshots() -> None:
    msgs = _book_pushes()
    subs = [
        Subscription(
            venue="okx",
            channel="books",
            symbol="BTC-USDT",
            options={"book_emit": "top", "book_top_depth": 3, "book_top_interval": 0},
        )
    ]
    normaliser = OkxNormaliser("okx", subs)
    events = _feed(normaliser, msgs)
    tops = _of(events, "BTC-USDT", BookSnapshot)
    assert tops and all(t.depth == 3 and len(t.bids) == 3 for t in tops)
    assert not _of(events, "BTC-USDT", BookDelta)
    # other instruments keep the default (deltas)
    assert _of(events, "UNI-USD-SWAP", BookDelta)
    # the top view equals an independent rebuild at the end
    book = PlainBook()
    for m in msgs:
        if m["arg"]["instId"] == "BTC-USDT":
            d = m["data"][0]
            (book.snapshot if m["action"] == "snapshot" else book.update)(d["bids"], d["asks"])
    bids, asks = book.top(3)
    assert tops[-1].bids == tuple((Decimal(p), Decimal(s)) for p, s in bids)
    assert tops[-1].asks == tuple((Decimal(p), Decimal(s)) for p, s in asks)


def test_levels_of_other_lengths() -> None:
    """Constructed: the real first snapshot and update with two-field levels (no
    deprecated ``"0"`` nor order count) still verify; a one-field level is malformed and
    resyncs that book instead of raising."""
    msgs = [m for m in _book_pushes() if m["arg"]["instId"] == "UNI-USD-SWAP"][:5]
    for m in msgs:
        for side in ("bids", "asks"):
            m["data"][0][side] = [lv[:2] for lv in m["data"][0][side]]
    events = _feed(OkxNormaliser("okx"), msgs)
    books = [e for e in events if isinstance(e, BookSnapshot | BookDelta)]
    assert len(books) == 5 and all(b.verified for b in books)

    broken = json.loads(json.dumps(msgs[1]))
    broken["data"][0]["bids" if broken["data"][0]["bids"] else "asks"][0] = ["1.5"]
    normaliser = OkxNormaliser("okx")
    _feed(normaliser, msgs[:1])
    events = _feed(normaliser, [broken])
    assert [type(e) for e in events] == [SubscriptionStatus, ResyncRequest]
    assert events[0].code == "malformed"  # type: ignore[union-attr]


def test_both_checksum_functions_give_the_venues_checksum() -> None:
    """The pair-based and the column-based checksum functions (the engine uses one or the
    other per channel) agree with every checksum OKX sent in both captures, and with an
    independent book, whichever channel they run on and however many top levels each
    update changes; also on books with sides of unequal length (constructed)."""
    checked = 0
    for path in (WS_2022, WS_2021):
        for fn in (book_checksum, book_checksum_columns):
            books: dict[str, L2Book] = {}
            plain: dict[str, PlainBook] = {}
            for _, frame in in_frames(path):
                msg = json.loads(frame)
                if "data" not in msg or not msg["arg"]["channel"].startswith("books"):
                    continue  # acks, trades, tickers
                inst = msg["arg"]["instId"]
                d = msg["data"][0]
                book = books.setdefault(inst, L2Book("okx", inst, inst, checksum=fn))
                ref = plain.setdefault(inst, PlainBook())
                if msg["action"] == "snapshot":
                    book.apply_snapshot(d["bids"], d["asks"], checksum=d["checksum"])
                    ref.snapshot(d["bids"], d["asks"])
                else:  # raises on a mismatch
                    book.apply_delta(d["bids"], d["asks"], checksum=d["checksum"])
                    ref.update(d["bids"], d["asks"])
                assert fn(book) == ref.checksum() == d["checksum"]
                checked += 1
    assert checked > 3000
    for bids, asks in (
        ([("10", "1"), ("9", "2"), ("8", "3")], [("11", "1")]),
        ([("10", "1")], [("11", "1"), ("12", "2"), ("13", "3")]),
        ([], [("11", "1"), ("12", "2")]),
        ([("10", "1")], []),
    ):
        ref = PlainBook()
        ref.snapshot([list(lv) for lv in bids], [list(lv) for lv in asks])
        for fn in (book_checksum, book_checksum_columns):
            book = L2Book("okx", "X", "X", checksum=fn)
            book.apply_snapshot(bids, asks)
            assert fn(book) == ref.checksum()
