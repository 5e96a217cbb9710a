"""Instructions per book update and per snapshot, C speedups vs pure Python (callgrind).

Timings on a shared 2-core machine move by 10-50 % between runs; instruction counts do
not. For each configuration this runs the replay of one capture (default: the 2022 OKX
``books`` capture, 400-level books, ~24 levels per update) under
``valgrind --tool=callgrind`` once with 1 and once with 4 passes, and once more with the
snapshots alone; the difference gives the instructions of 3 passes, the snapshot-only run
is subtracted, and the rest is divided by the number of updates. Configurations: ``L2Book``
with checksum off, with marketfeed-okx's checksum functions (``okx-plugin``) and with
``L2Book.crc32_pairs``; ``BookEngine`` ``emit="delta"`` (cold decimal cache each pass, as in
``bench_book.py``) with both checksums. ``PYTHONHASHSEED=0`` and ``gc.freeze()`` after the
imports keep runs comparable. Needs valgrind. Takes ~10 minutes.

    python bench/book/callgrind_book.py [CAPTURE.jsonl]
    python bench/book/callgrind_book.py --run IMPL WHAT CHECKSUM PASSES CAPTURE  (one replay)
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # bench/_callgrind.py

import _callgrind  # noqa: E402

DEFAULT = HERE.parents[1] / "tests" / "core" / "data" / "book" / "okx.20220513.ws.1.jsonl"
CONFIGS = [
    ("l2book", "off"),
    ("l2book", "plugin"),
    ("l2book", "crc32_pairs"),
    ("engine", "plugin"),
    ("engine", "crc32_pairs"),
]


def replay(impl: str, what: str, checksum: str, passes: int, capture: str) -> None:
    sys.path.insert(0, str(HERE))
    import bench_book as bb
    from marketfeed import _book

    if impl == "C":
        from marketfeed import _cbook

        _book._c = _cbook
    else:
        _book._c = None
    msgs = bb.load([Path(capture)])
    gc.collect()
    gc.freeze()  # a full collection over the imported modules would land in some passes
    if what.endswith("-snapshots"):
        msgs = [m for m in msgs if m[1]]
    for _ in range(passes):
        if what.startswith("engine"):
            bb.run_engine(msgs, "delta", checksum)
        else:
            bb.run_l2book(msgs, checksum)


def instructions(*args: str) -> int:
    return _callgrind.instructions(__file__, list(args))


def per_pass(impl: str, what: str, checksum: str, capture: str) -> float:
    return (
        instructions(impl, what, checksum, "4", capture)
        - instructions(impl, what, checksum, "1", capture)
    ) / 3


def main() -> None:
    if sys.argv[1:2] == ["--run"]:
        impl, what, checksum, passes, capture = sys.argv[2:7]
        replay(impl, what, checksum, int(passes), capture)
        return
    capture = sys.argv[1] if len(sys.argv) > 1 else str(DEFAULT)
    sys.path.insert(0, str(HERE))
    import bench_book as bb

    msgs = bb.load([Path(capture)])
    n_snap = sum(1 for m in msgs if m[1])
    n_upd = len(msgs) - n_snap
    print(
        f"{Path(capture).name}: {n_upd} updates, {n_snap} snapshots; "
        "instructions (callgrind), thousands"
    )
    print(f"{'configuration':<28} {'py':>9} {'C':>9} {'py/C':>6}")
    snaps = {}
    for impl in ("py", "C"):
        snaps[impl, "l2book"] = per_pass(impl, "l2book-snapshots", "off", capture)
        snaps[impl, "engine"] = per_pass(impl, "engine-snapshots", "crc32_pairs", capture)
    for kind in ("l2book", "engine"):
        py, c = (snaps[impl, kind] / n_snap / 1e3 for impl in ("py", "C"))
        print(f"{kind + ' snapshot':<28} {py:>9.1f} {c:>9.1f} {py / c:>5.1f}x")
    for what, checksum in CONFIGS:
        figures = []
        for impl in ("py", "C"):
            total = per_pass(impl, what, checksum, capture) - snaps[impl, what]
            figures.append(total / n_upd / 1e3)
        py, c = figures
        print(f"{what + ' update, ' + checksum:<28} {py:>9.1f} {c:>9.1f} {py / c:>5.1f}x")


if __name__ == "__main__":
    main()
