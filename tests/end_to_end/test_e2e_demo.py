"""``marketfeed demo`` as a subprocess: the bundled recordings end up in SQLite exactly as
the captures hold them, the summary says so, and a second run stores nothing new."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from e2e_support import IN_FRAMES, Database, check_database, expected, marketfeed_script


def _demo(tmp_path: Path, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [marketfeed_script(), "demo", "--db", str(db)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "160"},
    )


def _line(text: str, venue: str, channel: str) -> list[str]:
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells[:2] == [venue, channel]:
            return cells
    raise AssertionError(f"no summary line for {venue} {channel} in:\n{text}")


def test_demo_stores_the_recordings_and_prints_the_summary(tmp_path: Path) -> None:
    want = expected()
    db = tmp_path / "demo.db"
    first = _demo(tmp_path, db)
    assert first.returncode == 0, first.stdout + first.stderr
    check_database(Database(f"sqlite:///{db}"), want)

    text = first.stdout
    assert "marketfeed demo" in text and "elapsed" in text
    okx_books = sum(n for (venue, _), n in want.book_frames.items() if venue == "okx")
    assert want.okx_checksummed == okx_books  # every recorded OKX book frame has a checksum
    books = _line(text, "okx", "books")
    assert books[5] == f"{okx_books}/{okx_books}"  # books validated: every checksum passed
    assert books[3] == str(okx_books)  # one top-N snapshot per checked book frame
    trades = _line(text, "upbit", "trade")
    upbit_trades = sum(1 for v, _s, _t in want.trade_ids if v == "upbit")
    assert trades[3] == trades[4] == f"{upbit_trades:,}"  # events and rows stored
    totals = [_line(text, venue, "all") for venue in ("okx", "upbit")]
    assert sum(int(t[2].replace(",", "")) for t in totals) == sum(IN_FRAMES.values())
    assert all(t[6] == "0" and t[7] == "0" for t in totals)  # errors, dead letters

    rows = Database(f"sqlite:///{db}").rows()
    second = _demo(tmp_path, db)
    assert second.returncode == 0, second.stdout + second.stderr
    assert Database(f"sqlite:///{db}").rows() == rows  # idempotent: upserts on natural keys
    assert _line(second.stdout, "upbit", "trade")[4] == f"{upbit_trades:,}"
