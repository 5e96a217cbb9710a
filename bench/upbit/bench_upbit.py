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

* marketfeed: decode once with msgspec (exact ``Decimal`` prices and sizes), normalised
  symbols, UTC datetimes, trade dedup, crossed-book check, one frozen event
  (``Trade``/``BookSnapshot``) per frame.
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
from marketfeed_upbit import UpbitNormaliser

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


def marketfeed_pass(payloads: Sequence[bytes], warm: bool = False) -> float:
    """One pass over ``payloads``; microseconds per frame. ``warm``: the normaliser has
    normalised the same payloads once before the timed pass (every unit cached)."""
    now = dt.datetime.now(dt.UTC)
    norm = UpbitNormaliser(PLAN)
    if warm:
        for p in payloads:
            norm(p, now)
    t0 = _clock()
    for p in payloads:
        norm(p, now)
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
    frames: Sequence[str], make: Callable[[], object] | None, repeat: int
) -> tuple[list[float], list[float], list[float]]:
    """Alternate passes (fresh, warm, theirs, fresh, ...) so all see the same machine load."""
    payloads = [f.encode("utf-8") for f in frames]
    fresh: list[float] = []
    warm: list[float] = []
    theirs: list[float] = []
    for _ in range(repeat):
        fresh.append(marketfeed_pass(payloads))
        warm.append(marketfeed_pass(payloads, warm=True))
        if make is not None:
            theirs.append(await cryptofeed_pass(make, frames))
    return fresh, warm, theirs


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
    args = parser.parse_args()
    frames = load()
    frames["all"] = [
        json.loads(line)["frame"]
        for line in CAPTURE.read_text(encoding="utf-8").splitlines()
        if json.loads(line)["dir"] == "in"
    ]
    make = _cryptofeed_factory()
    fresh_rows, warm_rows = [], []
    for kind in ("trade", "orderbook", "all"):
        fresh, warm, theirs = asyncio.run(measure(frames[kind], make, args.repeat))
        fresh_rows.append((kind, len(frames[kind]), fresh, theirs))
        warm_rows.append((kind, len(frames[kind]), warm, theirs))
    print(f"Upbit capture {CAPTURE.name}; {args.repeat} alternating passes; µs per frame")
    print()
    _table("Fresh normaliser per pass (cache misses counted, as on a live stream):", fresh_rows)
    _table("Warm normaliser (same frames seen once before: every unit cached):", warm_rows)


if __name__ == "__main__":
    main()
