"""Upbit normaliser speed on the real 2021 capture, beside cryptofeed's Upbit handler.

Run: ``python bench/upbit/bench_upbit.py [--repeat N]`` (needs ``pip install cryptofeed``
for the comparison; without it only marketfeed is measured). No network: cryptofeed's
symbol table is filled from the capture's market codes instead of Upbit's REST API.

Both sides get the same frames in capture order: marketfeed gets the binary payload (what
the transport delivers), cryptofeed the text (what its connection hands to
``message_handler``). Two marketfeed figures per row:

* **fresh**: each pass starts from a fresh normaliser (empty unit and number caches), so
  cache misses count as they happen on a live stream: every order book unit text the
  capture shows for the first time is decoded then. This is the headline figure.
* **warm**: the normaliser has already normalised the same frames once (a replay: every
  unit text is cached, no misses). An upper bound, not what a live stream sees.

Passes alternate (fresh, warm, cryptofeed, fresh, ...) so all three see the same machine
load; cryptofeed gets a fresh feed per pass (it keeps no caches). Each pass is timed in CPU
time of this process (``time.process_time``), so time while other jobs hold a shared CPU
is not counted. The tables show the best pass and the median pass, in microseconds per
frame, and the median of the per-pass ratios.

What each side does per frame:

* marketfeed: the normalise hook's callable (``UpbitNormaliser.function()``: the C
  ``Dispatch`` with the fast path, else the bound ``__call__``); decode once with msgspec
  (exact ``Decimal`` prices and sizes), normalised symbols, UTC datetimes, trade dedup,
  crossed-book check, one frozen event (``Trade``/``BookSnapshot``) per frame.
* cryptofeed: ``json.loads(parse_float=Decimal)``, its ``Trade`` object or a sorted
  ``OrderBook`` rebuilt per frame, and an (empty) async callback.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from marketfeed import ConnectionPlan
from marketfeed_upbit import UpbitNormaliser, _normalise

# CPU time of this process: time while other jobs hold the (shared) CPU is not counted.
_clock = time.process_time

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = ROOT / "tests" / "upbit" / "data" / "upbit.20210405.ws.1.jsonl"
PLAN = ConnectionPlan(name="upbit/0", url="wss://api.upbit.com/websocket/v1", subscriptions=())


def load() -> dict[str, list[str]]:
    frames: dict[str, list[str]] = {"trade": [], "orderbook": []}
    for line in CAPTURE.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["dir"] == "in":
            frames[json.loads(rec["frame"])["ty"]].append(rec["frame"])
    return frames


def marketfeed_pass(payloads: Sequence[bytes], warm: bool = False, pure: bool = False) -> float:
    """One pass over ``payloads``; microseconds per frame. ``warm``: the normaliser has
    normalised the same payloads once before the timed pass (every unit cached). ``pure``:
    the normaliser is built without the C fast path (``marketfeed_upbit._cupbit``)."""
    now = dt.datetime.now(dt.UTC)
    if pure:
        saved, _normalise._cupbit = _normalise._cupbit, None
        try:
            norm = UpbitNormaliser(PLAN)
        finally:
            _normalise._cupbit = saved
    else:
        norm = UpbitNormaliser(PLAN)
    fn = norm.function()  # what the normalise hook hands the supervisor
    if warm:
        for p in payloads:
            fn(p, now)
    t0 = _clock()
    for p in payloads:
        fn(p, now)
    return (_clock() - t0) / len(payloads) * 1e6


def _cryptofeed_factory() -> Callable[[], object] | None:
    try:
        from cryptofeed.defines import L2_BOOK, TRADES, UPBIT
        from cryptofeed.exchanges.upbit import Upbit
        from cryptofeed.symbols import Symbols
    except ImportError:
        return None
    frames = load()
    codes = sorted({json.loads(f)["cd"] for fs in frames.values() for f in fs})
    syms, info = Upbit._parse_symbol_data([{"market": c} for c in codes])
    Symbols.set(UPBIT, syms, info)

    async def noop(*args: object) -> None:
        pass

    def make() -> object:
        return Upbit(
            symbols=list(syms), channels=[TRADES, L2_BOOK], callbacks={TRADES: noop, L2_BOOK: noop}
        )

    return make


async def cryptofeed_pass(make: Callable[[], object], frames: Sequence[str]) -> float:
    """One pass over ``frames`` with a fresh cryptofeed feed; microseconds per frame."""
    handler = make().message_handler  # type: ignore[attr-defined]
    t0 = _clock()
    for f in frames:
        await handler(f, None, 1.0)
    return (_clock() - t0) / len(frames) * 1e6


async def measure(
    frames: Sequence[str], make: Callable[[], object] | None, repeat: int, pure: bool
) -> tuple[list[float], list[float], list[float], list[float], list[float]]:
    """Alternate passes (fresh, warm, theirs, [pure fresh, pure warm,] fresh, ...) so all see
    the same machine load."""
    payloads = [f.encode("utf-8") for f in frames]
    fresh: list[float] = []
    warm: list[float] = []
    theirs: list[float] = []
    pure_fresh: list[float] = []
    pure_warm: list[float] = []
    for _ in range(repeat):
        fresh.append(marketfeed_pass(payloads))
        warm.append(marketfeed_pass(payloads, warm=True))
        if make is not None:
            theirs.append(await cryptofeed_pass(make, frames))
        if pure:
            pure_fresh.append(marketfeed_pass(payloads, pure=True))
            pure_warm.append(marketfeed_pass(payloads, warm=True, pure=True))
    return fresh, warm, theirs, pure_fresh, pure_warm


def _table(title: str, rows: list[tuple[str, int, list[float], list[float]]]) -> None:
    print(title)
    print()
    print(
        "| frames | n | marketfeed best | marketfeed median | cryptofeed best "
        "| cryptofeed median | speed-up (median of per-pass ratios) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, n, ours, theirs in rows:
        if theirs:
            ratio = statistics.median(t / o for o, t in zip(ours, theirs, strict=True))
            extra = f"{min(theirs):.2f} | {statistics.median(theirs):.2f} | {ratio:.1f}x"
        else:
            extra = "n/a | n/a | n/a"
        print(f"| {kind} | {n} | {min(ours):.2f} | {statistics.median(ours):.2f} | {extra} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="passes per measurement")
    parser.add_argument(
        "--no-pure",
        action="store_true",
        help="do not also time the pure-Python normaliser (only with the C fast path built)",
    )
    args = parser.parse_args()
    frames = load()
    frames["all"] = [
        json.loads(line)["frame"]
        for line in CAPTURE.read_text(encoding="utf-8").splitlines()
        if json.loads(line)["dir"] == "in"
    ]
    make = _cryptofeed_factory()
    pure = _normalise.SPEEDUPS and not args.no_pure
    fresh_rows, warm_rows, pure_rows = [], [], []
    for kind in ("trade", "orderbook", "all"):
        fresh, warm, theirs, pfresh, pwarm = asyncio.run(
            measure(frames[kind], make, args.repeat, pure)
        )
        fresh_rows.append((kind, len(frames[kind]), fresh, theirs))
        warm_rows.append((kind, len(frames[kind]), warm, theirs))
        pure_rows.append((kind, len(frames[kind]), fresh, warm, pfresh, pwarm))
    path = "C fast path (marketfeed_upbit._cupbit)" if _normalise.SPEEDUPS else "pure Python"
    print(f"Upbit capture {CAPTURE.name}; {args.repeat} alternating passes; µs per frame; {path}")
    print()
    _table("Fresh normaliser per pass (cache misses counted, as on a live stream):", fresh_rows)
    _table("Warm normaliser (same frames seen once before: every unit cached):", warm_rows)
    if pure:
        print("C fast path against pure Python (same run, alternating passes):")
        print()
        print(
            "| frames | C fresh best | Python fresh best | fresh speed-up | C warm best "
            "| Python warm best | warm speed-up |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for kind, _, cf, cw, pf, pw in pure_rows:
            fr = statistics.median(p / c for c, p in zip(cf, pf, strict=True))
            wr = statistics.median(p / c for c, p in zip(cw, pw, strict=True))
            print(
                f"| {kind} | {min(cf):.2f} | {min(pf):.2f} | {fr:.1f}x "
                f"| {min(cw):.2f} | {min(pw):.2f} | {wr:.1f}x |"
            )
        print()
        print("(speed-up: median of per-pass ratios)")


if __name__ == "__main__":
    main()
