"""Benchmark: L2 book updates per second on the real OKX book captures.

Applies every book message (snapshots and updates, in file order) of the four OKX captures
in ``tests/core/data/book/`` with marketfeed's book engine (checksum on and off, and through
``BookEngine`` with its event emission, both policies: ``delta`` builds a ``BookDelta`` of
exact decimals per update, ``top`` a top-25 ``BookSnapshot`` per second of receive time;
the checksum functions are marketfeed-okx's, chosen per channel as the plugin does) and
with bmoscon's ``order-book`` C library (``pip install order-book``, import ``order_book``;
levels converted to ``Decimal`` and its OKX checksum compared, as cryptofeed does) on the
same updates in the same run. Frames are decoded before timing: this measures book maintenance,
not JSON decoding.

Every checksum-on run must match every checksum in the captures; mismatches are printed.
Each ``BookEngine`` run starts with the engine's (process-wide) decimal cache empty; the
``--loops`` passes of one run replay the same captures, so later passes find the cache warm.

    python bench/book/bench_book.py [--repeat 15] [--loops 1] [CAPTURE.jsonl ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
import zlib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from marketfeed import _book
from marketfeed.book import BookEngine, L2Book

DATA = Path(__file__).resolve().parents[2] / "tests" / "core" / "data" / "book"
CAPTURES = [
    "okx.20220513.ws.1.jsonl",
    "okx.20210722.ws.1.jsonl",
    "okx.20210722.ws.2.jsonl",
    "okx.20210722.ws.3.jsonl",
]

# (book key "file:channel:instId", is snapshot, bids, asks, checksum, receive time)
Msg = tuple[str, bool, list[list[str]], list[list[str]], int, dt.datetime]


def load(paths: list[Path]) -> list[Msg]:
    """Every OKX book message of the captures, decoded, in file order."""
    out: list[Msg] = []
    for path in paths:
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec["dir"] != "in":
                continue
            msg = json.loads(rec["frame"])
            arg = msg.get("arg", {})
            if "data" not in msg or not arg.get("channel", "").startswith("books"):
                continue
            t = dt.datetime.fromtimestamp(rec["t"], dt.UTC)
            for d in msg["data"]:
                key = f"{path.name}:{arg['channel']}:{arg['instId']}"
                snap = msg["action"] == "snapshot"
                out.append((key, snap, d["bids"], d["asks"], d["checksum"], t))
    return out


def _reference_checksum(book: L2Book) -> int:
    """OKX CRC32 of the top 25 levels, ``bidPx:bidSz:askPx:askSz`` interleaved, signed
    (the plain rule over ``raw_top``; used only when marketfeed-okx is not installed)."""
    bids, asks = book.raw_top(25)
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        for side in (bids, asks):
            if i < len(side):
                parts += side[i]
    v = zlib.crc32(":".join(parts).encode())
    return v - 4294967296 if v > 2147483647 else v


try:  # the checksum functions the OKX plugin gives the engine, per channel
    from marketfeed_okx import book_checksum, book_checksum_columns

    def okx_checksum(channel: str) -> Callable[[L2Book], int]:
        """As marketfeed-okx chooses: columns for ``books``, kept pairs for tick-by-tick."""
        return book_checksum_columns if channel == "books" else book_checksum
except ImportError:
    print("marketfeed-okx not installed: plain reference checksum", file=sys.stderr)

    def okx_checksum(channel: str) -> Callable[[L2Book], int]:
        return _reference_checksum


def run_l2book(msgs: list[Msg], checksum: bool) -> int:
    books: dict[str, L2Book] = {}
    for key, snap, bids, asks, ck, _ in msgs:
        book = books.get(key)
        if book is None:
            fn = okx_checksum(key.split(":")[1]) if checksum else None
            book = books[key] = L2Book("okx", key, key, checksum=fn)
        if snap:
            book.apply_snapshot(bids, asks, checksum=ck)
        else:
            book.apply_delta(bids, asks, checksum=ck)  # raises on any mismatch
    return 0


def run_engine(msgs: list[Msg], emit: Any) -> int:
    _book._DECIMALS.clear()  # each run starts with the engine's decimal cache empty
    engines: dict[str, BookEngine] = {}
    bad = 0
    for key, snap, bids, asks, ck, t in msgs:
        channel = key.split(":")[1]
        engine = engines.get(channel)
        if engine is None:
            engine = engines[channel] = BookEngine(
                "okx", channel, checksum=okx_checksum(channel), emit=emit
            )
        apply = engine.snapshot if snap else engine.delta
        events = apply(key, key, bids, asks, event_time=t, receive_time=t, checksum=ck)
        for event in events:
            if type(event).__name__ == "ResyncRequest":
                bad += 1
    return bad


def run_order_book(msgs: list[Msg], checksum: bool) -> int:
    from order_book import OrderBook

    books: dict[str, Any] = {}
    bad = 0
    for key, snap, bids, asks, ck, _ in msgs:
        if snap:
            ob = books[key] = OrderBook(checksum_format="OKX")
            ob.bids = {Decimal(lv[0]): Decimal(lv[1]) for lv in bids}
            ob.asks = {Decimal(lv[0]): Decimal(lv[1]) for lv in asks}
        else:
            ob = books[key]
            for side, levels in ((ob.bids, bids), (ob.asks, asks)):
                for lv in levels:
                    price = Decimal(lv[0])
                    size = Decimal(lv[1])
                    if size == 0:
                        if price in side:
                            del side[price]
                    else:
                        side[price] = size
        if checksum and ob.checksum() != ck & 0xFFFFFFFF:
            bad += 1
    return bad


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captures", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=15, help="runs per row; best is shown")
    parser.add_argument("--loops", type=int, default=1, help="capture passes per run")
    args = parser.parse_args(argv)
    paths = args.captures or [DATA / name for name in CAPTURES]
    msgs = load(paths) * args.loops
    n_snap = sum(1 for m in msgs if m[1])

    rows: list[tuple[str, Callable[[], int]]] = [
        ("marketfeed L2Book, checksum off", lambda: run_l2book(msgs, False)),
        ("marketfeed L2Book, checksum on", lambda: run_l2book(msgs, True)),
        ("marketfeed BookEngine emit=delta, checksum on", lambda: run_engine(msgs, "delta")),
        ("marketfeed BookEngine emit=top, checksum on", lambda: run_engine(msgs, "top")),
    ]
    try:
        import order_book  # noqa: F401

        rows += [
            ("order-book (C) + Decimal, checksum off", lambda: run_order_book(msgs, False)),
            ("order-book (C) + Decimal, checksum on", lambda: run_order_book(msgs, True)),
        ]
    except ImportError:
        print("order-book not installed: pip install order-book", file=sys.stderr)

    best = {name: float("inf") for name, _ in rows}
    mismatches = {name: 0 for name, _ in rows}
    for _ in range(args.repeat):
        for name, fn in rows:  # interleaved so load changes hit every row alike
            t0 = time.perf_counter()
            mismatches[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)

    print(
        f"OKX book messages: {len(msgs)} ({n_snap} snapshots, {len(msgs) - n_snap} updates) "
        f"from {len(paths)} captures x {args.loops}; best of {args.repeat} runs; "
        f"Python {platform.python_version()} on {platform.machine()}"
    )
    width = max(len(name) for name, _ in rows)
    print(f"{'implementation':<{width}}  {'updates/s':>10}  {'us/update':>9}  mismatches")
    for name, _ in rows:
        secs = best[name]
        print(
            f"{name:<{width}}  {len(msgs) / secs:>10,.0f}  {secs / len(msgs) * 1e6:>9.2f}  "
            f"{mismatches[name]}"
        )


if __name__ == "__main__":
    main()
