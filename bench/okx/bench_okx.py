"""Benchmark: microseconds per frame to normalise OKX frames, marketfeed-okx vs cryptofeed.

Frames: the real recorded sessions in ``tests/okx/data`` (2022-05-13 ``books`` with ~24
levels per update; 2021-07-22 ``books-l2-tbt`` with ~2 levels per update), in recorded
order. Per frame kind (trade, ticker, book update, book snapshot) and for the whole file:

* **marketfeed-okx**: ``OkxNormaliser(frame, receive_time)`` (checksum on and off);
* **cryptofeed**: ``OKX.message_handler(frame, conn, timestamp)`` of cryptofeed's OKX
  feed with no-op callbacks (checksum validation on and off), symbols loaded from the
  recorded ``/api/v5/public/instruments`` responses (no network: the REST reader is
  replaced by one serving the recorded bodies).

Each figure is the median over ``--repeat`` passes of the mean time per frame (a fresh
normaliser/feed per pass, frames timed one by one with ``perf_counter_ns``). Install
cryptofeed in the venv to compare (``pip install cryptofeed``; not a dependency).

Run: ``python bench/okx/bench_okx.py [--repeat 30]``
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from marketfeed_okx import OkxNormaliser

DATA = Path(__file__).resolve().parents[2] / "tests" / "okx" / "data"
SESSIONS = {
    "2022-05-13 books": (
        DATA / "okx.20220513.ws.1.jsonl",
        DATA / "okx.20220513.http.trimmed.jsonl",
    ),
    "2021-07-22 books-l2-tbt": (
        DATA / "okx.20210722.ws.1.jsonl",
        DATA / "okx.20210722.http.trimmed.jsonl",
    ),
}
KINDS = ("trade", "ticker", "book update", "book snapshot", "all frames")


def _frames(path: Path) -> list[tuple[float, str]]:
    out = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["dir"] == "in":
            out.append((rec["t"], rec["frame"]))
    return out


def _kind(frame: str) -> str:
    if frame.startswith('{"event"'):
        return "control"
    head = frame[:80]
    if '"channel":"trades"' in head:
        return "trade"
    if '"channel":"tickers"' in head:
        return "ticker"
    if '"action":"snapshot"' in head:
        return "book snapshot"
    return "book update"


def _pass(handle: Callable[[str, Any], None], frames: list[tuple[Any, str]]) -> dict[str, float]:
    total: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    clock = time.perf_counter_ns
    for ts, frame in frames:
        kind = _kind(frame)
        t0 = clock()
        handle(frame, ts)
        elapsed = clock() - t0
        total[kind] += elapsed
        count[kind] += 1
        total["all frames"] += elapsed
        count["all frames"] += 1
    return {k: total[k] / count[k] / 1000 for k in total}


def _median(passes: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(p[k] for p in passes) for k in passes[0]}


def bench_ours(frames: list[tuple[float, str]], checksum: bool, repeat: int) -> dict[str, float]:
    timed = [(dt.datetime.fromtimestamp(t, dt.UTC), f) for t, f in frames]
    passes = []
    for _ in range(repeat):
        normaliser = OkxNormaliser("okx", checksum=checksum)
        passes.append(_pass(normaliser, timed))
    return _median(passes)


def bench_cryptofeed(
    frames: list[tuple[float, str]], http: Path, checksum: bool, repeat: int
) -> dict[str, float] | str:
    try:
        from cryptofeed.defines import L2_BOOK, TICKER, TRADES
        from cryptofeed.exchanges import OKX
        from cryptofeed.symbols import Symbols
        from yapic import json as yjson
    except ImportError as exc:
        return f"cryptofeed not installed ({exc}); pip install cryptofeed"

    bodies = {}
    for line in http.read_text().splitlines():
        rec = json.loads(line)
        url = urlsplit(rec["url"])
        bodies[f"{url.path}?{url.query}"] = rec["body"]

    def read(
        address: str,
        params: Any = None,
        headers: Any = None,
        json: bool = False,
        text: bool = True,
        uuid: Any = None,
    ) -> Any:
        url = urlsplit(address)
        body = bodies[f"{url.path}?{url.query}"]
        return yjson.loads(body, parse_float=Decimal) if json else body

    OKX.http_sync.read = read  # no network: serve the recorded instruments responses
    Symbols.data.pop(OKX.id, None) if hasattr(Symbols, "data") else None
    std = {v: k for k, v in OKX.symbol_mapping(refresh=True).items()}
    insts = sorted({json.loads(f)["arg"]["instId"] for _, f in frames if f.startswith('{"arg"')})

    async def noop(*args: Any, **kwargs: Any) -> None:
        return None

    async def run() -> list[dict[str, float]]:
        passes = []
        for _ in range(repeat):
            feed = OKX(
                symbols=[std[i] for i in insts],
                channels=[TRADES, TICKER, L2_BOOK],
                callbacks={TRADES: noop, TICKER: noop, L2_BOOK: noop},
                checksum_validation=checksum,
            )
            total: dict[str, int] = defaultdict(int)
            count: dict[str, int] = defaultdict(int)
            clock = time.perf_counter_ns
            handler = feed.message_handler
            for ts, frame in frames:
                kind = _kind(frame)
                t0 = clock()
                await handler(frame, None, ts)
                elapsed = clock() - t0
                total[kind] += elapsed
                count[kind] += 1
                total["all frames"] += elapsed
                count["all frames"] += 1
            passes.append({k: total[k] / count[k] / 1000 for k in total})
        return passes

    return _median(asyncio.run(run()))


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="passes per measurement")
    args = parser.parse_args()
    print(f"# marketfeed-okx vs cryptofeed, µs per frame (median of {args.repeat} passes)\n")
    for name, (ws, http) in SESSIONS.items():
        frames = _frames(ws)
        counts = defaultdict(int)
        for _, f in frames:
            counts[_kind(f)] += 1
        counts["all frames"] = len(frames)
        ours_on = bench_ours(frames, True, args.repeat)
        ours_off = bench_ours(frames, False, args.repeat)
        cf_on = bench_cryptofeed(frames, http, True, args.repeat)
        cf_off = bench_cryptofeed(frames, http, False, args.repeat)
        print(f"## {name} ({ws.name})\n")
        print(
            "| frames | n | marketfeed-okx checksum on | off | cryptofeed checksum on | off "
            "| speed-up (checksum on) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for kind in KINDS:
            if kind not in ours_on:
                continue
            on, off = ours_on[kind], ours_off[kind]
            if isinstance(cf_on, str) or isinstance(cf_off, str):
                cfo = cff = None
            else:
                cfo, cff = cf_on.get(kind), cf_off.get(kind)
            ratio = f"{cfo / on:.1f}x" if cfo else "-"
            print(
                f"| {kind} | {counts[kind]} | {_fmt(on)} | {_fmt(off)} | {_fmt(cfo)} "
                f"| {_fmt(cff)} | {ratio} |"
            )
        if isinstance(cf_on, str):
            print(f"\ncryptofeed: {cf_on}")
        print()


if __name__ == "__main__":
    main()
