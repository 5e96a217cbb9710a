"""Helpers of the end-to-end tests: what the captures hold (read with plain ``json``, never
through marketfeed), what the database holds (plain SQL), and a ``marketfeed run`` subprocess
collecting from a replay server in the test process.

The captures are the real recordings bundled with the plugins for ``marketfeed demo``
(``marketfeed_okx.demo``, ``marketfeed_upbit.demo``; provenance in the READMEs beside them).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import anyio
import marketfeed_okx.demo as okx_demo
import marketfeed_upbit.demo as upbit_demo
import sqlalchemy as sa
from anyio.abc import Process
from marketfeed.testing import Faults, ReplayServer, read_capture
from marketfeed_sinks import make_engine

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
REPLAY_CONFIG = EXAMPLES / "okx-upbit-replay.toml"
LIVE_CONFIG = EXAMPLES / "okx-upbit.toml"

OKX_PUBLIC = "/ws/v5/public"
OKX_BUSINESS = "/ws/v5/business"
UPBIT_WS = "/websocket/v1"
CAPTURES: dict[str, str] = {
    OKX_PUBLIC: okx_demo.PUBLIC_SESSION,
    OKX_BUSINESS: okx_demo.CANDLES,
    UPBIT_WS: upbit_demo.SESSION,
}
"""Replay path -> capture file."""

IN_FRAMES = {
    path: sum(1 for f in read_capture(file) if f.dir == "in") for path, file in CAPTURES.items()
}
"""Replay path -> frames the server replays per connection."""

OKX_TIMEFRAMES = {"candle1m": "1m", "candle1H": "1h"}
"""OKX candle channel -> marketfeed timeframe (documented on ``marketfeed.Candle``)."""

STATUS_FILE = "marketfeed-status.json"
DEAD_LETTER_FILE = "marketfeed-dead-letters.jsonl"


def marketfeed_script() -> str:
    """The ``marketfeed`` console script of the interpreter running the tests."""
    bindir = Path(sys.executable).parent
    for name in ("marketfeed", "marketfeed.exe"):
        if (bindir / name).exists():
            return str(bindir / name)
    raise AssertionError(f"no marketfeed console script next to {sys.executable}")


# --------------------------------------------------------------------------- the captures


def messages(path: str) -> list[Any]:
    """The capture's received frames, each parsed as JSON (plain ``json``)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record["dir"] == "in":
                out.append(json.loads(record["frame"]))
    return out


@dataclass
class Expected:
    """What the captures hold, counted independently of marketfeed.

    Attributes:
        rows: ``(table, venue, native_symbol) -> rows`` the sink must hold for ``trade``
            (distinct trade ids), ``ticker`` (distinct event times) and ``candle``
            (distinct timeframe and open time).
        candles: ``(venue, native_symbol, timeframe) -> candles``.
        trade_ids: ``(venue, native_symbol, trade_id)`` of every trade.
        book_frames: ``(venue, native_symbol) -> book frames`` (snapshots and updates).
        okx_checksummed: OKX book frames that carry a checksum.
    """

    rows: dict[tuple[str, str, str], int] = field(default_factory=dict)
    candles: dict[tuple[str, str, str], int] = field(default_factory=dict)
    trade_ids: set[tuple[str, str, str]] = field(default_factory=set)
    book_frames: dict[tuple[str, str], int] = field(default_factory=dict)
    okx_checksummed: int = 0


def expected() -> Expected:
    """Count trades, tickers, candles and book frames in the three captures."""
    tickers: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    candles: dict[tuple[str, str, str], set[str]] = collections.defaultdict(set)
    books: collections.Counter[tuple[str, str]] = collections.Counter()
    result = Expected()
    for msg in messages(CAPTURES[OKX_PUBLIC]) + messages(CAPTURES[OKX_BUSINESS]):
        if "data" not in msg:
            continue  # subscribe acks
        channel, inst = msg["arg"]["channel"], msg["arg"]["instId"]
        for d in msg["data"]:
            if channel == "trades":
                result.trade_ids.add(("okx", d["instId"], d["tradeId"]))
            elif channel == "tickers":
                tickers[("okx", d["instId"])].add(d["ts"])
            elif channel == "books":
                books[("okx", inst)] += 1
                result.okx_checksummed += "checksum" in d
            elif channel in OKX_TIMEFRAMES:
                candles[("okx", inst, OKX_TIMEFRAMES[channel])].add(d[0])
            else:
                raise AssertionError(f"unexpected OKX channel {channel}")
    for msg in messages(CAPTURES[UPBIT_WS]):
        if msg["ty"] == "trade":
            result.trade_ids.add(("upbit", msg["cd"], str(msg["sid"])))
        elif msg["ty"] == "orderbook":
            books[("upbit", msg["cd"])] += 1
    trades = collections.Counter((v, s) for v, s, _ in result.trade_ids)
    for (venue, symbol), n in trades.items():
        result.rows[("trade", venue, symbol)] = n
    for (venue, symbol), stamps in tickers.items():
        result.rows[("ticker", venue, symbol)] = len(stamps)
    for (venue, symbol, tf), opens in candles.items():
        result.candles[(venue, symbol, tf)] = len(opens)
        key = ("candle", venue, symbol)
        result.rows[key] = result.rows.get(key, 0) + len(opens)
    result.book_frames = dict(books)
    return result


# --------------------------------------------------------------------------- the database


class Database:
    """Plain SQL over the sink's tables (``schema``: PostgreSQL schema, or ``None``)."""

    def __init__(self, url: str, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        engine = make_engine(self.url, schema=self.schema)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(sql))]
        finally:
            engine.dispose()

    def rows(self) -> dict[tuple[str, str, str], int]:
        """``(table, venue, native_symbol) -> rows`` of trade, ticker and candle."""
        out = {}
        for table in ("trade", "ticker", "candle"):
            sql = f"SELECT venue, native_symbol, COUNT(*) FROM {table} GROUP BY 1, 2"
            for venue, symbol, n in self.query(sql):
                out[(table, venue, symbol)] = int(n)
        return out

    def candles(self) -> dict[tuple[str, str, str], int]:
        sql = "SELECT venue, native_symbol, timeframe, COUNT(*) FROM candle GROUP BY 1, 2, 3"
        return {(v, s, tf): int(n) for v, s, tf, n in self.query(sql)}

    def trade_ids(self) -> list[tuple[str, str, str]]:
        """Every stored trade's ``(venue, native_symbol, trade_id)`` (duplicates kept)."""
        return [
            (v, s, t) for v, s, t in self.query("SELECT venue, native_symbol, trade_id FROM trade")
        ]

    def book_top(self) -> dict[tuple[str, str], list[tuple[bool, int | None]]]:
        """``(venue, native_symbol) -> [(verified, checksum), ...]`` of ``book_top``."""
        out: dict[tuple[str, str], list[tuple[bool, int | None]]] = collections.defaultdict(list)
        for v, s, ok, checksum in self.query(
            "SELECT venue, native_symbol, verified, checksum FROM book_top"
        ):
            out[(v, s)].append((bool(ok), checksum))
        return dict(out)

    def count(self, table: str, where: str = "") -> int:
        sql = f"SELECT COUNT(*) FROM {table}" + (f" WHERE {where}" if where else "")
        return int(self.query(sql)[0][0])


def check_database(db: Database, want: Expected) -> None:
    """The database holds exactly what the captures hold (see :class:`Expected`): rows per
    table, venue and symbol; candles per timeframe; every trade once; a valid book_top row
    for every instrument with a book; every OKX book checksum verified; no dead letter."""
    assert db.rows() == want.rows
    assert db.candles() == want.candles
    stored = db.trade_ids()
    duplicated = [k for k, n in collections.Counter(stored).items() if n > 1]
    assert not duplicated, f"trades stored twice: {duplicated[:5]}"
    assert set(stored) == want.trade_ids
    books = db.book_top()
    assert set(books) == set(want.book_frames), "book_top instruments differ from the capture"
    for key, rows in books.items():
        assert 1 <= len(rows) <= want.book_frames[key]
        if key[0] == "okx":
            assert all(ok and checksum is not None for ok, checksum in rows), key
    assert db.count("dead_letter") == 0


def check_status(status: Mapping[str, Any], want: Expected) -> None:
    """The final status file: nothing failed, nothing resynchronised, nothing malformed or
    dead-lettered, and every subscription the captures feed is active."""
    assert status["dead_letters"] == 0
    assert all(c["malformed"] == 0 for c in status["connections"])
    assert all(k["dead_letters"] == 0 and k["queue_depth"] == 0 for k in status["sinks"])
    fed = {(v, s) for (_t, v, s) in want.rows} | set(want.book_frames)
    for sub in status["subscriptions"]:
        assert sub["resyncs"] == 0, sub
        assert sub["state"] != "failed", sub
        if (sub["venue"], sub["symbol"]) in fed and sub["events"]:
            assert sub["state"] == "active", sub


# --------------------------------------------------------------------------- the run


def path_of(url: str) -> str:
    return urlsplit(url).path.rstrip("/") or "/"


@dataclass
class Finished:
    """A ``marketfeed run`` that ended: exit code, output, the final status file and how
    long it took to exit after SIGTERM."""

    returncode: int
    stdout: str
    stderr: str
    status: dict[str, Any]
    exit_seconds: float


class Collection:
    """A ``marketfeed run`` subprocess collecting from the test's replay server."""

    def __init__(self, server: ReplayServer, process: Process, workdir: Path) -> None:
        self.server = server
        self.process = process
        self.workdir = workdir
        self.stdout = workdir / "run.stdout"
        self.stderr = workdir / "run.stderr"

    def status(self) -> dict[str, Any] | None:
        """The status file as last written (``None`` before the first write)."""
        try:
            data: dict[str, Any] = json.loads((self.workdir / STATUS_FILE).read_bytes())
        except FileNotFoundError:
            return None
        return data

    def _why(self) -> str:
        return (
            f"exit code {self.process.returncode}; stderr tail: "
            f"{self.stderr.read_text(errors='replace')[-2000:]}"
        )

    async def wait_status(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        """Poll the status file until ``predicate(status)`` holds.

        Raises:
            TimeoutError: not within ``timeout`` seconds (or the process ended).
        """
        with anyio.fail_after(timeout):
            while True:
                if self.process.returncode is not None:
                    raise AssertionError(f"marketfeed run ended early: {self._why()}")
                status = self.status()
                if status is not None and predicate(status):
                    return status
                await anyio.sleep(0.05)

    def _delivered(self, status: dict[str, Any], sessions: Mapping[str, int]) -> bool:
        received: collections.Counter[str] = collections.Counter()
        for c in status["connections"]:
            received[path_of(c["url"])] += c["frames"]
        for path, count in sessions.items():
            mine = [s for s in self.server.ws_sessions if s.path == path]
            if len(mine) < count or mine[-1].closed or mine[-1].next_frame < IN_FRAMES[path]:
                return False
            if received[path] != sum(s.sent for s in mine):
                return False
        return True

    async def wait_delivered(
        self, sessions: Mapping[str, int] | None = None, timeout: float = 20.0
    ) -> dict[str, Any]:
        """Until every path's last connection replayed its whole capture and the run
        received every frame the server sent (by its status file).

        Args:
            sessions: Path -> connections expected on it (default: one each).
        """
        wanted = dict(sessions or dict.fromkeys(CAPTURES, 1))
        try:
            return await self.wait_status(lambda st: self._delivered(st, wanted), timeout)
        except TimeoutError:
            raise AssertionError(
                f"replays not delivered within {timeout}s: {self.server.ws_sessions}; "
                f"status {self.status()}; {self._why()}"
            ) from None

    async def stop(self, timeout: float = 10.0) -> Finished:
        """SIGTERM, then wait for the exit (at most ``timeout`` seconds)."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(timeout):
            await self.process.wait()
        seconds = time.monotonic() - sent
        status = self.status()
        assert status is not None, f"no status file: {self._why()}"
        return Finished(
            returncode=self.process.returncode or 0,
            stdout=self.stdout.read_text(errors="replace"),
            stderr=self.stderr.read_text(errors="replace"),
            status=status,
            exit_seconds=seconds,
        )


def run_env(port: int, db_url: str, schema: str | None = None) -> dict[str, str]:
    """Environment of a ``marketfeed run`` of the replay config."""
    env = dict(os.environ)
    env.update(
        MARKETFEED_REPLAY=f"127.0.0.1:{port}",
        MARKETFEED_DB=db_url,
        MARKETFEED_DB_SCHEMA=schema or "public",
        COLUMNS="200",
    )
    return env


@asynccontextmanager
async def collection(
    workdir: Path,
    db_url: str,
    *,
    schema: str | None = None,
    speed: float | None = None,
    faults: Mapping[str, Faults] | None = None,
    duration: float = 60.0,
) -> AsyncIterator[Collection]:
    """Serve the captures on loopback and run ``marketfeed run examples/okx-upbit-replay.toml``
    against them in ``workdir``; the process is killed on the way out if still running.

    Args:
        speed: Replay pace (``None``: as fast as possible).
        faults: Path -> faults of the first connection on it (``on_reconnect="restart"``).
        duration: ``--duration`` safety bound of the run.
    """
    faults = faults or {}
    async with ReplayServer() as server:
        for path, file in CAPTURES.items():
            server.add_ws(
                path,
                read_capture(file),
                speed=speed,
                faults=faults.get(path),
                on_reconnect="restart",
            )
        out: IO[bytes] = (workdir / "run.stdout").open("wb")
        err: IO[bytes] = (workdir / "run.stderr").open("wb")
        try:
            process = await anyio.open_process(
                [marketfeed_script(), "run", str(REPLAY_CONFIG), "--duration", str(duration)],
                cwd=workdir,
                env=run_env(server.port, db_url, schema),
                stdout=out,
                stderr=err,
            )
            try:
                yield Collection(server, process, workdir)
            finally:
                if process.returncode is None:
                    process.kill()
                    with anyio.move_on_after(5), anyio.CancelScope(shield=True):
                        await process.wait()
        finally:
            out.close()
            err.close()
