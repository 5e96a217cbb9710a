"""Instructions per OKX frame through the whole normaliser (callgrind, deterministic).

Timings on the shared 2-core machine move by 10-50 % between runs; instruction counts do
not. For each frame kind this replays one capture's frames of that kind (plus the control
frames) through ``OkxNormaliser`` (checksum on, every pass with empty decimal caches and a
new normaliser, as ``bench_okx.py`` does) under ``valgrind --tool=callgrind`` once with 1
and once with 4 passes; the difference, less that of the same runs without frames (the
normalisers' construction), / 3 / frames is the figure. ``PYTHONHASHSEED=0`` and
``gc.freeze()`` after the imports keep runs comparable (a hash seed changes dict layouts;
a full collection over the imported modules would land in some passes and not others).
"book frames" are the updates and snapshots together (snapshots amortised). ``--tree
PATHS`` runs another tree (``PYTHONPATH``, e.g. an older checkout of ``core/src`` and
``plugins/okx/src`` with its extensions built) to compare. Needs valgrind; ~10 minutes.

    python bench/okx/callgrind_okx.py [--tree PYTHONPATH]
    python bench/okx/callgrind_okx.py --run YEAR PASSES EMIT KIND   (one replay)
"""

from __future__ import annotations

import datetime as dt
import gc
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # bench/_callgrind.py

import _callgrind  # noqa: E402

CONFIGS = [
    ("2022", "delta", "trade"),
    ("2022", "delta", "ticker"),
    ("2022", "delta", "books"),
    ("2022", "top", "books"),
    ("2021", "delta", "books"),
]
KEEP: dict[str, tuple[str, ...]] = {
    "none": (),  # a new normaliser per pass and nothing else: subtracted
    "books": ("book update", "book snapshot", "control"),
    "trade": ("trade", "control"),
    "ticker": ("ticker", "control"),
}


def _frames(year: str, kind: str) -> tuple[list[tuple[dt.datetime, str]], list[str], int]:
    sys.path.insert(0, str(HERE))
    import bench_okx as bo

    name = "okx.20220513.ws.1.jsonl" if year == "2022" else "okx.20210722.ws.1.jsonl"
    raw = bo._frames(bo.DATA / name)
    frames = [
        (dt.datetime.fromtimestamp(t, dt.UTC), f) for t, f in raw if bo._kind(f) in KEEP[kind]
    ]
    insts = sorted({f.split('"instId":"')[1].split('"')[0] for _, f in raw if '"instId":"' in f})
    counted = sum(1 for _, f in frames if bo._kind(f) != "control")
    if kind == "none":
        frames = []
    return frames, insts, counted


def replay(year: str, passes: int, emit: str, kind: str) -> None:
    sys.path.insert(0, str(HERE))
    import bench_okx as bo
    from marketfeed import Subscription
    from marketfeed_okx import BOOK_CHANNELS, OkxNormaliser

    frames, insts, _ = _frames(year, kind)
    gc.collect()
    gc.freeze()  # a full collection over the imported modules would land in some passes
    subs = [
        Subscription(venue="okx", channel=ch, symbol=i, options={"book_emit": emit})
        for ch in BOOK_CHANNELS
        for i in insts
    ]
    for _ in range(passes):
        bo.clear_caches()
        fn = OkxNormaliser("okx", subs, checksum=True).function()
        for ts, f in frames:
            fn(f, ts)


def instructions(tree: str | None, *args: str) -> int:
    return _callgrind.instructions(__file__, list(args), tree)


def main() -> None:
    if sys.argv[1:2] == ["--run"]:
        year, passes, emit, kind = sys.argv[2:6]
        replay(year, int(passes), emit, kind)
        return
    tree = sys.argv[2] if sys.argv[1:2] == ["--tree"] else None
    print(f"instructions per frame (callgrind), tree: {tree or 'this checkout'}")
    print("| frames | instructions |")
    print("|---|---:|")
    base: dict[tuple[str, str], float] = {}
    for year, emit, kind in CONFIGS:
        _, _, n = _frames(year, kind)
        if (year, emit) not in base:
            base[year, emit] = instructions(tree, year, "4", emit, "none") - instructions(
                tree, year, "1", emit, "none"
            )
        one = instructions(tree, year, "1", emit, kind)
        four = instructions(tree, year, "4", emit, kind) - base[year, emit]
        label = f"{year} {'book frame' if kind == 'books' else kind}"
        if emit != "delta":
            label += f", `{emit}`"
        print(f"| {label} | {(four - one) / 3 / n:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
