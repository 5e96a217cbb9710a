"""Benchmark: microseconds per frame to normalise OKX frames, marketfeed-okx vs cryptofeed.

Frames: the real recorded sessions in ``tests/okx/data`` (2022-05-13 ``books`` with ~24
levels per update; 2021-07-22 ``books-l2-tbt`` with ~2 levels per update), in recorded
order. Per frame kind (trade, ticker, book update, book snapshot) and for the whole file:

* **marketfeed-okx**: ``OkxNormaliser(frame, receive_time)`` with the plugin's default
  book emission policy ``book_emit="delta"`` (a ``BookDelta`` of exact decimals per update;
  checksum on and off) and with ``book_emit="top"`` (a top-25 ``BookSnapshot`` per second
  per book, no per-update event; checksum on);
* **cryptofeed**: ``OKX.message_handler(frame, conn, timestamp)`` of cryptofeed's OKX
  feed with no-op callbacks (checksum validation on and off), symbols loaded from the
  recorded ``/api/v5/public/instruments`` responses (no network: the REST reader is
  replaced by one serving the recorded bodies).

Each figure is the median over ``--repeat`` passes of the mean time per frame (a fresh
normaliser/feed per pass, frames timed one by one with ``perf_counter_ns``; the variants
alternate pass by pass, so load on a shared machine affects them alike). Every
marketfeed pass starts with empty decimal caches (the plugin's and the book engine's), so
each pass pays its cache misses like a fresh process; ``--warm`` keeps them across passes (the
per-connection caches of the plugin's C fast path live in the normaliser, so they start empty
with every pass either way). The header says whether the C speedups are loaded (the core's
``marketfeed._cbook``, the plugin's ``marketfeed_okx._cokx``); ``MARKETFEED_PURE_PYTHON=1``
runs both pure Python. Install cryptofeed in the venv to compare (``pip install
cryptofeed``; not a dependency).

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
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import marketfeed_okx
from marketfeed import Subscription, _book
from marketfeed_okx import BOOK_CHANNELS, OkxNormaliser
from marketfeed_okx._decode import decimal_cache

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


class _Times:
    """Per frame kind: summed nanoseconds and counts of one pass."""

    def __init__(self) -> None:
        self.total: dict[str, int] = defaultdict(int)
        self.count: dict[str, int] = defaultdict(int)

    def add(self, kind: str, elapsed: int) -> None:
        self.total[kind] += elapsed
        self.count[kind] += 1
        self.total["all frames"] += elapsed
        self.count["all frames"] += 1

    def means(self) -> dict[str, float]:
        """µs per frame, per kind."""
        return {k: self.total[k] / self.count[k] / 1000 for k in self.total}


def _pass(handle: Callable[[str, Any], object], frames: list[tuple[Any, str]]) -> dict[str, float]:
    times = _Times()
    clock = time.perf_counter_ns
    for ts, frame in frames:
        kind = _kind(frame)
        t0 = clock()
        handle(frame, ts)
        times.add(kind, clock() - t0)
    return times.means()


def _median(passes: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(p[k] for p in passes) for k in passes[0]}


def clear_caches() -> None:
    """Empty the decimal caches (marketfeed-okx's and the book engine's)."""
    decimal_cache.clear()
    _book._DECIMALS.clear()


def ours(
    checksum: bool, emit: str = "delta", insts: Sequence[str] = (), warm: bool = False
) -> Callable[[list[tuple[Any, str]]], dict[str, float]]:
    """One pass of marketfeed-okx over the frames (fresh normaliser; ``emit`` is the
    ``book_emit`` option of every book subscription)."""
    subs = [
        Subscription(venue="okx", channel=ch, symbol=inst, options={"book_emit": emit})
        for ch in BOOK_CHANNELS
        for inst in insts
    ]

    def one_pass(frames: list[tuple[Any, str]]) -> dict[str, float]:
        if not warm:
            clear_caches()
        return _pass(OkxNormaliser("okx", subs, checksum=checksum).function(), frames)

    return one_pass


def cryptofeed(
    http: Path, insts: list[str], checksum: bool
) -> Callable[[list[tuple[Any, str]]], dict[str, float]] | str:
    """One pass of cryptofeed's OKX feed over the frames, or why it cannot run."""
    try:
        from cryptofeed.defines import L2_BOOK, TICKER, TRADES
        from cryptofeed.exchanges import OKX
        from yapic import json as yjson
    except ImportError as exc:
        return f"cryptofeed not installed ({exc}); pip install cryptofeed"

    bodies = {}
    for line in http.read_text().splitlines():
        rec = json.loads(line)
        url = urlsplit(rec["url"])
        bodies[f"{url.path}?{url.query}"] = rec["body"]

    def read(address: str, *args: Any, json: bool = False, **kwargs: Any) -> Any:
        url = urlsplit(address)
        body = bodies[f"{url.path}?{url.query}"]
        return yjson.loads(body, parse_float=Decimal) if json else body

    OKX.http_sync.read = read  # no network: serve the recorded instruments responses
    std = {v: k for k, v in OKX.symbol_mapping(refresh=True).items()}
    symbols = [std[i] for i in insts]

    async def noop(*args: Any, **kwargs: Any) -> None:
        return None

    async def run(frames: list[tuple[Any, str]]) -> dict[str, float]:
        feed = OKX(
            symbols=symbols,
            channels=[TRADES, TICKER, L2_BOOK],
            callbacks={TRADES: noop, TICKER: noop, L2_BOOK: noop},
            checksum_validation=checksum,
        )
        times = _Times()
        clock = time.perf_counter_ns
        handler = feed.message_handler
        for ts, frame in frames:
            kind = _kind(frame)
            t0 = clock()
            await handler(frame, None, ts)
            times.add(kind, clock() - t0)
        return times.means()

    return lambda frames: asyncio.run(run(frames))


def loop_table(raw: list[tuple[float, str]], http: Path, insts: list[str], repeat: int) -> None:
    """Trades and tickers alone, in a tight loop (no per-frame timer, no book work in
    between): the cost of the normalisation itself, best of ``repeat`` loops (caches warm
    after the first)."""
    timed = [(dt.datetime.fromtimestamp(t, dt.UTC), f) for t, f in raw]
    print("| frames (tight loop) | marketfeed-okx | cryptofeed | speed-up |")
    print("|---|---:|---:|---:|")
    for kind in ("trade", "ticker"):
        ours_frames = [x for x in timed if _kind(x[1]) == kind]
        cf_frames = [x for x in raw if _kind(x[1]) == kind]
        normaliser = OkxNormaliser("okx").function()
        best_ours = best_cf = float("inf")
        cf_loop = _cryptofeed_loop(http, insts, cf_frames)
        for _ in range(repeat):
            t0 = time.perf_counter_ns()
            for ts, frame in ours_frames:
                normaliser(frame, ts)
            best_ours = min(best_ours, (time.perf_counter_ns() - t0) / len(ours_frames) / 1000)
            if cf_loop is not None:
                best_cf = min(best_cf, cf_loop() / len(cf_frames) / 1000)
        cf = None if cf_loop is None else best_cf
        ratio = f"{cf / best_ours:.1f}x" if cf else "-"
        print(f"| {kind} | {_fmt(best_ours)} | {_fmt(cf)} | {ratio} |")
    print()


def _cryptofeed_loop(
    http: Path, insts: list[str], frames: list[tuple[float, str]]
) -> Callable[[], int] | None:
    runner = cryptofeed(http, insts, True)
    if isinstance(runner, str):
        return None
    from cryptofeed.defines import L2_BOOK, TICKER, TRADES
    from cryptofeed.exchanges import OKX

    std = {v: k for k, v in OKX.symbol_mapping().items()}

    async def noop(*args: Any, **kwargs: Any) -> None:
        return None

    feed = OKX(
        symbols=[std[i] for i in insts],
        channels=[TRADES, TICKER, L2_BOOK],
        callbacks={TRADES: noop, TICKER: noop, L2_BOOK: noop},
        checksum_validation=True,
    )

    async def run() -> int:
        handler = feed.message_handler
        t0 = time.perf_counter_ns()
        for ts, frame in frames:
            await handler(frame, None, ts)
        return time.perf_counter_ns() - t0

    return lambda: asyncio.run(run())


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="passes per measurement")
    parser.add_argument("--warm", action="store_true", help="keep decimal caches across passes")
    args = parser.parse_args()
    caches = "warm" if args.warm else "cold"
    core_c = getattr(_book, "_c", None) is not None
    plugin_c = bool(getattr(marketfeed_okx, "SPEEDUPS", False))
    print(
        f"# marketfeed-okx vs cryptofeed, µs per frame (median of {args.repeat} passes, "
        f"{caches} decimal caches; C speedups: core {core_c}, plugin {plugin_c})\n"
    )
    for name, (ws, http) in SESSIONS.items():
        raw = _frames(ws)
        ours_frames = [(dt.datetime.fromtimestamp(t, dt.UTC), f) for t, f in raw]
        counts: dict[str, int] = defaultdict(int)
        for _, f in raw:
            counts[_kind(f)] += 1
        counts["all frames"] = len(raw)
        insts = sorted({json.loads(f)["arg"]["instId"] for _, f in raw if f.startswith('{"arg"')})
        Runner = Callable[[list[tuple[Any, str]]], dict[str, float]]
        runners: dict[str, tuple[Runner, list[tuple[Any, str]]]] = {
            "ours on": (ours(True, "delta", insts, args.warm), ours_frames),
            "ours off": (ours(False, "delta", insts, args.warm), ours_frames),
            "ours top": (ours(True, "top", insts, args.warm), ours_frames),
        }
        missing = None
        for label, ck in (("cf on", True), ("cf off", False)):
            runner = cryptofeed(http, insts, ck)
            if isinstance(runner, str):
                missing = runner
            else:
                runners[label] = (runner, list(raw))
        # Alternate the variants pass by pass so that load on the machine hits all alike.
        passes: dict[str, list[dict[str, float]]] = defaultdict(list)
        for _ in range(args.repeat):
            for label, (run, frames) in runners.items():
                passes[label].append(run(frames))
        result = {label: _median(p) for label, p in passes.items()}
        print(f"## {name} ({ws.name})\n")
        print(
            "| frames | n | marketfeed-okx delta, checksum on | delta, off | top, on "
            "| cryptofeed checksum on | off | speed-up delta (on) | speed-up top (on) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for kind in KINDS:
            if kind not in result["ours on"]:
                continue
            on, off = result["ours on"][kind], result["ours off"][kind]
            top = result["ours top"][kind]
            cfo = result["cf on"].get(kind) if "cf on" in result else None
            cff = result["cf off"].get(kind) if "cf off" in result else None
            ratio = f"{cfo / on:.1f}x" if cfo else "-"
            ratio_top = f"{cfo / top:.1f}x" if cfo else "-"
            print(
                f"| {kind} | {counts[kind]} | {_fmt(on)} | {_fmt(off)} | {_fmt(top)} "
                f"| {_fmt(cfo)} | {_fmt(cff)} | {ratio} | {ratio_top} |"
            )
        if missing:
            print(f"\ncryptofeed: {missing}")
        print()
        loop_table(raw, http, insts, args.repeat)


if __name__ == "__main__":
    main()
