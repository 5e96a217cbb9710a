"""``marketfeed run examples/okx-upbit-replay.toml`` as a real subprocess, collecting the real
OKX and Upbit recordings from a replay server in the test process into SQLite and
PostgreSQL. Expected rows are counted from the captures with plain ``json``
(``e2e_support.expected``)."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from e2e_support import (
    CAPTURES,
    DEAD_LETTER_FILE,
    IN_FRAMES,
    OKX_PUBLIC,
    REPLAY_CONFIG,
    UPBIT_WS,
    Database,
    check_database,
    check_status,
    collection,
    expected,
    marketfeed_script,
    path_of,
)
from marketfeed.testing import Faults

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(sys.platform == "win32", reason="stops `marketfeed run` with SIGTERM"),
]


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'marketfeed.db'}"


async def _collect_all(tmp_path: Path, url: str, schema: str | None = None) -> None:
    want = expected()
    async with collection(tmp_path, url, schema=schema) as run:
        await run.wait_delivered()
        done = await run.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    check_status(done.status, want)
    assert all(c["reconnects"] == 0 for c in done.status["connections"])
    check_database(Database(url, schema), want)
    assert not (tmp_path / DEAD_LETTER_FILE).exists()


async def test_run_collects_the_recordings_into_sqlite(tmp_path: Path) -> None:
    await _collect_all(tmp_path, _sqlite(tmp_path))


@pytest.mark.postgres
async def test_run_collects_the_recordings_into_postgresql(
    tmp_path: Path, postgres_schema: tuple[str, str]
) -> None:
    url, schema = postgres_schema
    await _collect_all(tmp_path, url, schema)


async def test_dropped_connection_reconnects_records_a_gap_and_stores_each_row_once(
    tmp_path: Path,
) -> None:
    """The OKX public connection is dropped (no close frame) after 150 frames; the server
    replays the whole session again on the next connection, so the first 150 frames arrive
    twice: rows are upserts and the counts still match the capture."""
    url = _sqlite(tmp_path)
    want = expected()
    async with collection(tmp_path, url, faults={OKX_PUBLIC: Faults(drop_after=150)}) as run:
        await run.wait_delivered({**dict.fromkeys(CAPTURES, 1), OKX_PUBLIC: 2})
        first, second = [s for s in run.server.ws_sessions if s.path == OKX_PUBLIC]
        done = await run.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    assert first.closed_by == "dropped" and first.replayed == 150
    assert second.replayed == IN_FRAMES[OKX_PUBLIC]  # the whole session again
    public = next(c for c in done.status["connections"] if path_of(c["url"]) == OKX_PUBLIC)
    assert public["reconnects"] == 1 and public["gaps"] == 1
    others = [c for c in done.status["connections"] if c is not public]
    assert all(c["reconnects"] == 0 and c["gaps"] == 0 for c in others)
    check_status(done.status, want)
    db = Database(url)
    gaps = db.query("SELECT venue, connection, channels, symbols, reason FROM gap")
    assert len(gaps) == 1
    venue, connection, channels, symbols, reason = gaps[0]
    assert (venue, connection) == ("okx", public["name"])
    assert set(json.loads(channels)) == {"tickers", "trades", "books"}
    assert set(json.loads(symbols)) == {"BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"}
    assert "1006" in reason or "closed" in reason.lower(), reason
    check_database(db, want)


async def test_sigterm_mid_run_exits_quickly_and_stores_every_received_trade(
    tmp_path: Path,
) -> None:
    """At recorded pace the replay is still streaming when SIGTERM arrives: the process
    exits within seconds, and every trade it received (counted in the status file it
    writes at shutdown) is a row."""
    url = _sqlite(tmp_path)
    want = expected()

    def trades(status: dict[str, Any], venue: str) -> int:
        return sum(
            s["events"]
            for s in status["subscriptions"]
            if s["venue"] == venue and s["channel"] in ("trades", "trade")
        )

    async with collection(tmp_path, url, speed=2.0) as run:
        await run.wait_status(lambda st: trades(st, "okx") >= 5 and trades(st, "upbit") >= 20)
        upbit = next(s for s in run.server.ws_sessions if s.path == UPBIT_WS)
        assert upbit.next_frame < IN_FRAMES[UPBIT_WS], "the replay should still be streaming"
        done = await run.stop(timeout=10)
        replayed_before_exit = upbit.replayed
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.exit_seconds < 5, f"took {done.exit_seconds:.1f}s to exit after SIGTERM"
    assert replayed_before_exit < IN_FRAMES[UPBIT_WS]
    stored = collections.Counter(v for v, _s, _t in Database(url).trade_ids())
    for venue in ("okx", "upbit"):
        assert stored[venue] == trades(done.status, venue) > 0, venue
    assert set(Database(url).trade_ids()) <= want.trade_ids
    assert done.status["running"] is False
    assert done.status["dead_letters"] == 0


async def test_status_command_shows_a_running_collection(tmp_path: Path) -> None:
    url = _sqlite(tmp_path)
    async with collection(tmp_path, url, speed=2.0) as run:
        await run.wait_status(
            lambda st: (
                len(st["connections"]) == 3
                and all(c["state"] == "connected" and c["frames"] for c in st["connections"])
            )
        )
        with anyio.fail_after(20):
            shown = await anyio.run_process(
                [marketfeed_script(), "status", str(REPLAY_CONFIG)],
                cwd=tmp_path,
                env={**os.environ, "COLUMNS": "200"},
                check=False,
            )
        await run.stop()
    text = shown.stdout.decode()
    assert shown.returncode == 0, shown.stderr.decode()
    assert "(running," in text
    for name in ("okx/public/0", "okx/business/0", "upbit/0"):
        line = next(line for line in text.splitlines() if name in line)
        assert "connected" in line
    sub_lines = [line for line in text.splitlines() if "│ okx " in line or "│ upbit " in line]
    channels = {(line.split("│")[1].strip(), line.split("│")[2].strip()) for line in sub_lines}
    assert {
        ("okx", "books"),
        ("okx", "trades"),
        ("upbit", "trade"),
        ("upbit", "orderbook"),
    } <= channels
    assert any("active" in line and "BTC-USDT" in line for line in sub_lines)


def test_status_command_without_a_run_says_so(tmp_path: Path) -> None:
    shown = subprocess.run(
        [marketfeed_script(), "status", "--file", str(tmp_path / "none.json")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert shown.returncode == 2
    assert "no status file" in shown.stderr
