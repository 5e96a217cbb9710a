"""Upbit normaliser speed on the real 2021 capture, beside cryptofeed's Upbit handler.

Run: ``python bench/upbit/bench_upbit.py [--repeat N]`` (needs ``pip install cryptofeed``
for the comparison; without it only marketfeed is measured). No network: cryptofeed's
symbol table is filled from the capture's market codes instead of Upbit's REST API.

Both sides get the same frames in capture order: marketfeed gets the binary payload (what
the transport delivers), cryptofeed the text (what its connection hands to
``message_handler``). Each pass starts from a fresh normaliser (empty caches, so cache
misses are counted as they happen on a live stream) and a fresh cryptofeed feed; the table
shows the best pass and the median pass, in microseconds per frame.

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


def marketfeed_pass(payloads: Sequence[bytes]) -> float:
    """One pass over ``payloads`` with a fresh normaliser; microseconds per frame."""
    now = dt.datetime.now(dt.UTC)
    norm = UpbitNormaliser(PLAN)
    t0 = time.perf_counter()
    for p in payloads:
        norm(p, now)
    return (time.perf_counter() - t0) / len(payloads) * 1e6


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
    t0 = time.perf_counter()
    for f in frames:
        await handler(f, None, 1.0)
    return (time.perf_counter() - t0) / len(frames) * 1e6


async def measure(
    frames: Sequence[str], make: Callable[[], object] | None, repeat: int
) -> tuple[list[float], list[float]]:
    """Alternate passes (ours, theirs, ours, ...) so both see the same machine load."""
    payloads = [f.encode("utf-8") for f in frames]
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(repeat):
        ours.append(marketfeed_pass(payloads))
        if make is not None:
            theirs.append(await cryptofeed_pass(make, frames))
    return ours, theirs


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
    rows = []
    for kind in ("trade", "orderbook", "all"):
        ours, theirs = asyncio.run(measure(frames[kind], make, args.repeat))
        rows.append((kind, len(frames[kind]), ours, theirs))
    print(f"Upbit capture {CAPTURE.name}; {args.repeat} alternating passes; µs per frame")
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


if __name__ == "__main__":
    main()
