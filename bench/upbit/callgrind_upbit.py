"""Instructions per Upbit frame through the normaliser (callgrind, deterministic).

For each frame kind (trade, orderbook, all: the capture's frames of that kind in capture
order) this replays ``upbit.20210405.ws.1`` through what the ``normalise`` hook returns
(``UpbitNormaliser.function()``; ``--call`` times ``UpbitNormaliser.__call__`` instead),
a new normaliser and session per pass ("fresh", as ``bench_upbit.py``), after a warm-up
normaliser has paid the process's one-time costs and ``gc.freeze()`` has taken the
import-time heap out of the collector. It runs once with 1 and once with 3 passes under
``valgrind --tool=callgrind``; the difference, less that of the same runs without frames
(the normalisers' construction), / 2 / frames is the figure. ``--tree PATHS`` runs another
tree (``PYTHONPATH``) to compare. Needs valgrind; ~3 minutes.

    python bench/upbit/callgrind_upbit.py [--call] [--tree PYTHONPATH]
    python bench/upbit/callgrind_upbit.py --run KIND PASSES ENTRY   (one replay)
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # bench/_callgrind.py

import _callgrind  # noqa: E402

CAPTURE = HERE.parents[1] / "tests" / "upbit" / "data" / "upbit.20210405.ws.1.jsonl"
KINDS = ("trade", "orderbook", "all")


def _payloads(kind: str) -> list[bytes]:
    out = []
    for line in CAPTURE.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["dir"] != "in":
            continue
        ty = json.loads(rec["frame"])["ty"]
        if kind == "all" or ty == kind:
            out.append(rec["frame"].encode())
    return [] if kind == "none" else out


def replay(kind: str, passes: int, entry: str) -> None:
    from marketfeed import ConnectionPlan
    from marketfeed_upbit import UpbitNormaliser

    plan = ConnectionPlan(name="upbit/0", url="wss://api.upbit.com/websocket/v1", subscriptions=())
    payloads = _payloads(kind)
    t = dt.datetime(2021, 4, 5, tzinfo=dt.UTC)
    warm = UpbitNormaliser(plan)  # one-time costs (imports, first market, tables) paid here
    for p in _payloads("all")[:50]:
        warm(p, t)
    gc.collect()
    gc.freeze()
    for _ in range(passes):
        norm = UpbitNormaliser(plan)
        fn = norm.function() if entry == "function" else norm
        for p in payloads:
            fn(p, t)


def main() -> None:
    if sys.argv[1:2] == ["--run"]:
        kind, passes, entry = sys.argv[2:5]
        replay(kind, int(passes), entry)
        return
    entry = "call" if "--call" in sys.argv else "function"
    tree = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv else None
    where = tree or "this checkout"
    print(f"instructions per fresh frame (callgrind), entry {entry}, tree: {where}")
    print("| frames | n | instructions |")
    print("|---|---:|---:|")

    def count(kind: str, passes: int) -> int:
        return _callgrind.instructions(__file__, [kind, str(passes), entry], tree)

    base = count("none", 3) - count("none", 1)
    for kind in KINDS:
        n = len(_payloads(kind))
        per_frame = (count(kind, 3) - count(kind, 1) - base) / 2 / n
        print(f"| {kind} | {n} | {per_frame:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
