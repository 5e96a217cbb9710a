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

marketfeed rows run twice: with the C speedups (``marketfeed._cbook``, "C") and with the
pure-Python engine ("py"), switched in the same process (``marketfeed._book._c``), passes
alternating. ``crc32_pairs`` rows use ``Crc32Checksum(25, ":")`` (``L2Book.crc32_pairs(25)``
made signed; a function calling it on cores without that class) as the OKX checksum (the
C primitive); ``okx-plugin`` rows marketfeed-okx's own checksum functions. Besides the
figure over all messages, snapshots and updates are timed apart (each message timed with
``perf_counter_ns``). Instruction counts (steadier on a shared machine):
``bench/book/callgrind_book.py``.

Every checksum-on run must match every checksum in the captures; mismatches are printed.
Each ``BookEngine`` run starts with the engine's (process-wide) decimal cache empty; the
``--loops`` passes of one run replay the same captures, so later passes find the cache warm.

    python bench/book/bench_book.py [--repeat 15] [--loops 1] [--no-c] [CAPTURE.jsonl ...]
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

try:
    from marketfeed import _cbook
except ImportError:
    _cbook = None  # type: ignore[assignment]

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


def _crc32_pairs_function(book: L2Book) -> int:
    """OKX's checksum through the engine's primitive ``L2Book.crc32_pairs`` (signed)."""
    v = book.crc32_pairs(25, ":")
    return v - 4294967296 if v > 2147483647 else v


try:  # the core's declarative form, computed inside apply_delta by the C speedups
    from marketfeed.book import Crc32Checksum

    crc32_pairs_checksum: Callable[[L2Book], int] = Crc32Checksum(25, ":")
except ImportError:  # an older core (e.g. callgrind_book.py over an older tree)
    crc32_pairs_checksum = _crc32_pairs_function


# (mismatches, ns in snapshots, ns in updates)
Result = tuple[int, int, int]


def checksum_fn(channel: str, checksum: str) -> Callable[[L2Book], int] | None:
    if checksum == "off":
        return None
    if checksum == "crc32_pairs":
        return crc32_pairs_checksum
    return okx_checksum(channel)


def run_l2book(msgs: list[Msg], checksum: str) -> Result:
    books: dict[str, L2Book] = {}
    clock = time.perf_counter_ns
    t_snap = t_upd = 0
    for key, snap, bids, asks, ck, _ in msgs:
        book = books.get(key)
        if book is None:
            fn = checksum_fn(key.split(":")[1], checksum)
            book = books[key] = L2Book("okx", key, key, checksum=fn)
        if snap:
            t0 = clock()
            book.apply_snapshot(bids, asks, checksum=ck)
            t_snap += clock() - t0
        else:
            t0 = clock()
            book.apply_delta(bids, asks, checksum=ck)  # raises on any mismatch
            t_upd += clock() - t0
    return 0, t_snap, t_upd


def run_engine(msgs: list[Msg], emit: Any, checksum: str) -> Result:
    _book._DECIMALS.clear()  # each run starts with the engine's decimal cache empty
    engines: dict[str, BookEngine] = {}
    bad = 0
    clock = time.perf_counter_ns
    t_snap = t_upd = 0
    for key, snap, bids, asks, ck, t in msgs:
        channel = key.split(":")[1]
        engine = engines.get(channel)
        if engine is None:
            engine = engines[channel] = BookEngine(
                "okx", channel, checksum=checksum_fn(channel, checksum), emit=emit
            )
        t0 = clock()
        if snap:
            events = engine.snapshot(
                key, key, bids, asks, event_time=t, receive_time=t, checksum=ck
            )
            t_snap += clock() - t0
        else:
            events = engine.delta(key, key, bids, asks, event_time=t, receive_time=t, checksum=ck)
            t_upd += clock() - t0
        for event in events:
            if type(event).__name__ == "ResyncRequest":
                bad += 1
    return bad, t_snap, t_upd


def run_order_book(msgs: list[Msg], checksum: bool) -> Result:
    from order_book import OrderBook

    books: dict[str, Any] = {}
    bad = 0
    clock = time.perf_counter_ns
    t_snap = t_upd = 0
    for key, snap, bids, asks, ck, _ in msgs:
        t0 = clock()
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
        if snap:
            t_snap += clock() - t0
        else:
            t_upd += clock() - t0
    return bad, t_snap, t_upd


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captures", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=15, help="runs per row; best is shown")
    parser.add_argument("--loops", type=int, default=1, help="capture passes per run")
    parser.add_argument("--no-c", action="store_true", help="pure-Python rows only")
    args = parser.parse_args(argv)
    paths = args.captures or [DATA / name for name in CAPTURES]
    msgs = load(paths) * args.loops
    n_snap = sum(1 for m in msgs if m[1])
    n_upd = len(msgs) - n_snap

    impls: list[tuple[str, Any]] = [("py", None)]
    if _cbook is not None and not args.no_c:
        impls.insert(0, ("C", _cbook))
    elif not args.no_c:
        print("marketfeed._cbook is not built: pure-Python rows only", file=sys.stderr)

    def with_impl(module: Any, fn: Callable[[], Result]) -> Callable[[], Result]:
        def run() -> Result:
            saved = _book._c
            _book._c = module
            try:
                return fn()
            finally:
                _book._c = saved

        return run

    rows: list[tuple[str, Callable[[], Result]]] = []
    for label, module in impls:
        rows += [
            (f"{label}: L2Book, checksum off", with_impl(module, lambda: run_l2book(msgs, "off"))),
            (
                f"{label}: L2Book, checksum okx-plugin",
                with_impl(module, lambda: run_l2book(msgs, "plugin")),
            ),
            (
                f"{label}: L2Book, checksum crc32_pairs",
                with_impl(module, lambda: run_l2book(msgs, "crc32_pairs")),
            ),
            (
                f"{label}: BookEngine emit=delta, crc32_pairs",
                with_impl(module, lambda: run_engine(msgs, "delta", "crc32_pairs")),
            ),
            (
                f"{label}: BookEngine emit=top, crc32_pairs",
                with_impl(module, lambda: run_engine(msgs, "top", "crc32_pairs")),
            ),
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
    best_snap = dict(best)
    best_upd = dict(best)
    mismatches = {name: 0 for name, _ in rows}
    for _ in range(args.repeat):
        for name, fn in rows:  # interleaved so load changes hit every row alike
            t0 = time.perf_counter()
            mismatches[name], t_snap, t_upd = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
            best_snap[name] = min(best_snap[name], t_snap / 1e3 / max(n_snap, 1))
            best_upd[name] = min(best_upd[name], t_upd / 1e3 / max(n_upd, 1))

    print(
        f"OKX book messages: {len(msgs)} ({n_snap} snapshots, {n_upd} updates) "
        f"from {len(paths)} captures x {args.loops}; best of {args.repeat} runs; "
        f"Python {platform.python_version()} on {platform.machine()}"
    )
    width = max(len(name) for name, _ in rows)
    print(
        f"{'implementation':<{width}}  {'msgs/s':>10}  {'us/msg':>7}  {'us/update':>9}  "
        f"{'us/snapshot':>11}  mismatches"
    )
    for name, _ in rows:
        secs = best[name]
        print(
            f"{name:<{width}}  {len(msgs) / secs:>10,.0f}  {secs / len(msgs) * 1e6:>7.2f}  "
            f"{best_upd[name]:>9.2f}  {best_snap[name]:>11.1f}  {mismatches[name]}"
        )


if __name__ == "__main__":
    main()
