"""Rows per second into SQLite and PostgreSQL: the ``sql`` sink versus the seed design.

Data: the real trades (Upbit 2021-04-05 + OKX 2022-05-13) and candles (Upbit KRW-BTC 1m +
OKX pushes) copied in ``tests/sinks/data``, converted by ``tests/sinks/sinkdata.py`` and
repeated with shifted keys/times (copy ``k`` gets trade id suffix ``-k`` and its times
moved by ``k`` days) until the run has enough rows. Every measurement writes into a fresh
database (SQLite file / PostgreSQL schema), through the sink's async handle (thread hop
included), and checks the row count afterwards.

The seed design (what the sink replaces) is written out below: one ``INSERT`` per row with
a subselect resolving the symbol foreign key, one commit per row, default driver settings.
It does not depend on the batch size, so it is measured once per backend and kind.

Usage::

    python bench/sink/bench_sink.py            # full run (about two minutes)
    python bench/sink/bench_sink.py --quick    # smaller totals
    python bench/sink/bench_sink.py --markdown # also print the README table
    python bench/sink/bench_sink.py --methods-only  # only the PostgreSQL method table

PostgreSQL: ``MARKETFEED_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); skipped when unreachable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sinks"))

import marketfeed as mf  # noqa: E402
import marketfeed_sinks as ms  # noqa: E402
import sinkdata  # noqa: E402

PG_URL = os.environ.get("MARKETFEED_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BATCH_SIZES = (100, 1_000, 10_000)
replace = msgspec.structs.replace


# ----------------------------------------------------------------------------- data


def real_events(kind: str) -> list[Any]:
    if kind == "trade":
        return sinkdata.upbit_trades() + sinkdata.okx_trades()
    return sinkdata.upbit_candles() + sinkdata.okx_candles()


def amplified(kind: str, n: int) -> list[Any]:
    """``n`` events: the real ones repeated with unique keys (copy k: ids/times shifted)."""
    base = real_events(kind)
    out: list[Any] = []
    k = 0
    while len(out) < n:
        day = dt.timedelta(days=k)
        if kind == "trade":
            out.extend(
                replace(t, trade_id=f"{t.trade_id}-{k}", event_time=t.event_time + day)
                for t in base
            )
        else:
            out.extend(replace(c, open_time=c.open_time + day) for c in base)
        k += 1
    return out[:n]


def distinct_keys(kind: str, events: list[Any]) -> int:
    if kind == "trade":
        return len({(e.venue, e.symbol, e.trade_id) for e in events})
    return len({(e.venue, e.symbol, e.timeframe, e.open_time) for e in events})


# ----------------------------------------------------------------------------- targets


class Target:
    """A fresh database per measurement."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._dir = tempfile.TemporaryDirectory(prefix="mf-bench-")
        self._n = 0
        self.url = ""
        self.schema: str | None = None

    def fresh(self) -> None:
        self._n += 1
        if self.backend == "sqlite":
            self.url = f"sqlite:///{self._dir.name}/bench{self._n}.db"
        else:
            self.drop()
            self.url = PG_URL
            self.schema = f"mf_bench_{os.getpid()}_{self._n}"
            checkpoint()

    def options(self, **extra: Any) -> dict[str, Any]:
        return {"schema": self.schema, **extra} if self.schema else dict(extra)

    def count(self, table: str) -> int:
        engine = ms.make_engine(self.url, schema=self.schema)
        try:
            with engine.connect() as conn:
                return int(conn.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar_one())
        finally:
            engine.dispose()

    def drop(self) -> None:
        if self.backend == "postgresql" and self.schema:
            import psycopg

            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            self.schema = None

    def close(self) -> None:
        self.drop()
        self._dir.cleanup()


def checkpoint() -> None:
    """Flush the previous measurement's dirty pages now, so that a checkpoint does not
    land in the middle of the next one (needs superuser; skipped otherwise)."""
    import psycopg

    try:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.Error:
        pass


def postgres_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# ----------------------------------------------------------------------------- the sink


def warm_up_events(kind: str, events: list[Any]) -> list[Any]:
    """One event per UTC month of the run, under other keys: persisting them first creates
    the month partitions (a once-a-month cost, measured on its own)."""
    attr = "event_time" if kind == "trade" else "open_time"
    months: dict[tuple[int, int], Any] = {}
    for e in events:
        t = getattr(e, attr).astimezone(dt.UTC)
        months.setdefault((t.year, t.month), e)
    if kind == "trade":
        return [replace(e, trade_id=f"warm-up-{i}") for i, e in enumerate(months.values())]
    return [replace(e, timeframe=f"warm-up-{i}") for i, e in enumerate(months.values())]


async def _sink_run(
    target: Target,
    warm_up: list[Any],
    batches: list[list[Any]],
    options: dict[str, Any],
    repeat: bool,
) -> float:
    async with ms.open_sql_sink(target.url, target.options(**options)) as sink:
        await sink.persist(warm_up)
        if repeat:  # measure re-writing rows that are all stored already
            for batch in batches:
                await sink.persist(batch)
        t0 = time.perf_counter()
        for batch in batches:
            result = await sink.persist(batch)
            if result.rejected:
                raise RuntimeError(f"rejected rows in the benchmark: {result.rejected[:1]}")
        return time.perf_counter() - t0


async def _new_month_latency(target: Target, kind: str) -> float:
    first = real_events(kind)[0]
    later = dt.timedelta(days=3650)  # a month no partition exists for yet
    if kind == "trade":
        event = replace(first, trade_id="new-month", event_time=first.event_time + later)
    else:
        event = replace(first, open_time=first.open_time + later)
    async with ms.open_sql_sink(target.url, target.options()) as sink:
        await sink.persist([first])  # connection and the first month
        t0 = time.perf_counter()
        await sink.persist([event])
        return time.perf_counter() - t0


def new_month_latency(target: Target, kind: str) -> float:
    """Seconds for a one-row batch that needs a new month partition (PostgreSQL)."""
    target.fresh()
    return anyio.run(_new_month_latency, target, kind)


def bench_sink(
    target: Target,
    kind: str,
    batch_size: int,
    total: int,
    *,
    repeat: bool = False,
    **options: Any,
) -> float:
    """Rows per second of the sql sink for ``total`` rows in batches of ``batch_size``."""
    events = amplified(kind, total)
    batches = [events[i : i + batch_size] for i in range(0, len(events), batch_size)]
    target.fresh()
    warm_up = warm_up_events(kind, events)
    elapsed = anyio.run(_sink_run, target, warm_up, batches, options, repeat)
    stored = target.count(kind) - len(warm_up)
    if stored != distinct_keys(kind, events):
        raise RuntimeError(f"{kind}: {stored} rows stored, expected {len(events)}")
    return len(events) / elapsed


def bench_sqlalchemy(target: Target, batch_size: int, total: int, *, returning: bool) -> float:
    """Trades through SQLAlchemy Core ``INSERT ... ON CONFLICT DO NOTHING`` executed with a
    list of parameter dicts: psycopg's executemany, or with ``RETURNING`` SQLAlchemy's
    "insertmanyvalues" (multi-row VALUES pages). Same tables and partitions as the sink."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    events = amplified("trade", total)
    target.fresh()
    spec = ms.TABLES["trade"]

    async def prepare() -> None:  # schema + partitions through the sink, then empty it
        async with ms.open_sql_sink(target.url, target.options()) as sink:
            await sink.persist(events)

    anyio.run(prepare)
    engine = ms.make_engine(target.url, schema=target.schema)
    table = spec.table
    stmt = pg_insert(table).on_conflict_do_nothing(index_elements=list(spec.key))
    if returning:
        stmt = stmt.returning(table.c.trade_id)  # type: ignore[assignment]
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql('TRUNCATE "trade"')
        t0 = time.perf_counter()
        for i in range(0, len(events), batch_size):
            params = [
                dict(zip(spec.columns, spec.row(e), strict=True))
                for e in events[i : i + batch_size]
            ]
            with engine.begin() as conn:
                conn.execute(stmt, params)
        elapsed = time.perf_counter() - t0
    finally:
        engine.dispose()
    if target.count("trade") != distinct_keys("trade", events):
        raise RuntimeError("sqlalchemy bench: row count mismatch")
    return len(events) / elapsed


# ----------------------------------------------------------------------------- the seed


SEED_SCHEMA = [
    "CREATE TABLE symbol (id {serial} PRIMARY KEY, venue TEXT NOT NULL, name TEXT NOT NULL, "
    "UNIQUE (venue, name))",
    "CREATE TABLE trade (id {serial} PRIMARY KEY, symbol_id INTEGER REFERENCES symbol(id), "
    "trade_id TEXT, ts TIMESTAMP, price NUMERIC, size NUMERIC, side TEXT)",
    "CREATE TABLE candle (id {serial} PRIMARY KEY, symbol_id INTEGER REFERENCES symbol(id), "
    "timeframe TEXT, open_time TIMESTAMP, open NUMERIC, high NUMERIC, low NUMERIC, "
    "close NUMERIC, volume NUMERIC, closed BOOLEAN)",
]
SEED_TRADE = (
    "INSERT INTO trade (symbol_id, trade_id, ts, price, size, side) VALUES "
    "((SELECT id FROM symbol WHERE venue = {p} AND name = {p}), {p}, {p}, {p}, {p}, {p})"
)
SEED_CANDLE = (
    "INSERT INTO candle (symbol_id, timeframe, open_time, open, high, low, close, volume, "
    "closed) VALUES ((SELECT id FROM symbol WHERE venue = {p} AND name = {p}), "
    "{p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)


def _seed_params(kind: str, e: Any, text: bool) -> tuple[Any, ...]:
    conv: Callable[[Any], Any] = str if text else (lambda v: v)
    if kind == "trade":
        return (
            e.venue,
            e.symbol,
            e.trade_id,
            conv(e.event_time),
            conv(e.price),
            conv(e.size),
            e.side,
        )
    return (
        e.venue,
        e.symbol,
        e.timeframe,
        conv(e.open_time),
        conv(e.open),
        conv(e.high),
        conv(e.low),
        conv(e.close),
        conv(e.volume),
        e.closed,
    )


def bench_seed(target: Target, kind: str, max_rows: int, max_seconds: float) -> float:
    """The seed design: row-at-a-time INSERT with a FK subselect, commit per row."""
    events = amplified(kind, max_rows)
    symbols = sorted({(e.venue, e.symbol) for e in events})
    target.fresh()
    insert = SEED_TRADE if kind == "trade" else SEED_CANDLE
    if target.backend == "sqlite":
        path = target.url.removeprefix("sqlite:///")
        conn: Any = sqlite3.connect(path)  # driver defaults, as the seed had them
        for ddl in SEED_SCHEMA:
            conn.execute(ddl.format(serial="INTEGER"))
        conn.executemany("INSERT INTO symbol (venue, name) VALUES (?, ?)", symbols)
        conn.commit()
        sql = insert.format(p="?")
        text = True
    else:
        import psycopg

        conn = psycopg.connect(PG_URL)
        conn.execute(f'CREATE SCHEMA "{target.schema}"')
        conn.execute(f'SET search_path TO "{target.schema}"')
        for ddl in SEED_SCHEMA:
            conn.execute(ddl.format(serial="SERIAL"))
        conn.cursor().executemany("INSERT INTO symbol (venue, name) VALUES (%s, %s)", symbols)
        conn.commit()
        sql = insert.format(p="%s")
        text = False
    n = 0
    t0 = time.perf_counter()
    try:
        for e in events:
            conn.execute(sql, _seed_params(kind, e, text))
            conn.commit()
            n += 1
            if time.perf_counter() - t0 > max_seconds:
                break
        elapsed = time.perf_counter() - t0
    finally:
        conn.close()
    return n / elapsed


# ----------------------------------------------------------------------------- main


def retry(fn: Callable[..., float], *a: Any, **kw: Any) -> float:
    """``fn(*a, **kw)``, measured again if the PostgreSQL server went away meanwhile (on a
    shared machine another job may restart it: the sink tests' restart test does). The
    interrupted measurement is discarded, never counted."""
    import psycopg
    import sqlalchemy.exc as sa_exc

    for attempt in range(4):
        try:
            return fn(*a, **kw)
        except (psycopg.OperationalError, sa_exc.OperationalError, mf.TransientSinkError) as exc:
            if attempt == 3 or getattr(a[0], "backend", "") != "postgresql":
                raise
            print(f"  (server went away: {type(exc).__name__}; measuring again)", flush=True)
            deadline = time.monotonic() + 120
            while postgres_available() is not None and time.monotonic() < deadline:
                time.sleep(2)
    raise AssertionError("unreachable")


def fmt(x: float) -> str:
    return f"{x:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller totals")
    parser.add_argument("--markdown", action="store_true", help="print the README table")
    parser.add_argument("--runs", type=int, default=3, help="median of this many runs")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], help="only this one")
    parser.add_argument("--kind", choices=["trade", "candle"], help="only this kind")
    parser.add_argument(
        "--no-methods", action="store_true", help="skip the PostgreSQL bulk-method comparison"
    )
    parser.add_argument(
        "--methods-only", action="store_true", help="only the PostgreSQL bulk-method comparison"
    )
    args = parser.parse_args()
    runs = max(1, args.runs)

    def median(fn: Callable[..., float], *a: Any, **kw: Any) -> float:
        return statistics.median(retry(fn, *a, **kw) for _ in range(runs))

    totals = {100: 10_000, 1_000: 20_000, 10_000: 50_000}
    if args.quick:
        totals = {100: 3_000, 1_000: 10_000, 10_000: 20_000}
    seed_rows, seed_seconds = (3_000, 2.0) if not args.quick else (1_000, 1.0)

    if args.methods_only:
        args.backend = "postgresql"
    backends = ["sqlite"]
    reason = postgres_available()
    if reason is None:
        backends.append("postgresql")
    else:
        print(f"PostgreSQL skipped: {reason}")
    if args.backend:
        backends = [b for b in backends if b == args.backend]
    kinds = [args.kind] if args.kind else ["trade", "candle"]

    python = sys.version.split()[0]
    print(f"machine: {os.cpu_count()} CPUs, Python {python}, marketfeed {mf.__version__}")
    rows: list[tuple[str, str, int, float, float]] = []
    extra: list[tuple[str, int, list[float | None]]] = []
    months: list[tuple[str, float]] = []
    for backend in backends:
        target = Target(backend)
        try:
            for kind in [] if args.methods_only else kinds:
                # Seed and sink alternate within each run, so that a ratio compares
                # measurements taken at about the same time (the machine is shared).
                seeds: list[float] = []
                rates: dict[int, list[float]] = {size: [] for size in BATCH_SIZES}
                for _ in range(runs):
                    seeds.append(retry(bench_seed, target, kind, seed_rows, seed_seconds))
                    for size in BATCH_SIZES:
                        rates[size].append(retry(bench_sink, target, kind, size, totals[size]))
                seed = statistics.median(seeds)
                for size in BATCH_SIZES:
                    rate = statistics.median(rates[size])
                    ratios = sorted(r / s for r, s in zip(rates[size], seeds, strict=True))
                    rows.append((backend, kind, size, rate, seed))
                    print(
                        f"{backend:10} {kind:6} batch {size:>6,}: sink {fmt(rate):>9} rows/s   "
                        f"seed {fmt(seed):>7} rows/s   x{rate / seed:,.0f} "
                        f"(per-run ratios {', '.join(f'{r:.0f}' for r in ratios)})",
                        flush=True,
                    )
            if backend == "postgresql" and not args.no_methods:
                for kind in kinds:
                    for size in BATCH_SIZES:
                        n = totals[size]
                        found: dict[str, list[float]] = {name: [] for name in METHODS}
                        for _ in range(runs):  # methods alternate within each run
                            for name, (fn, kw) in METHODS.items():
                                if name.startswith("SQLAlchemy") and kind != "trade":
                                    continue
                                found[name].append(retry(fn, target, kind, size, n, **kw))
                        medians = [statistics.median(v) if v else None for v in found.values()]
                        extra.append((kind, size, medians))
                        print(
                            f"postgresql {kind} batch {size:>6,}: "
                            + ", ".join(
                                f"{name} {fmt(m)}"
                                for name, m in zip(METHODS, medians, strict=True)
                                if m is not None
                            )
                            + " rows/s",
                            flush=True,
                        )
                for kind in kinds:
                    latency = median(new_month_latency, target, kind)
                    months.append((kind, latency))
                    print(
                        f"postgresql {kind}: one-row batch creating a new month partition "
                        f"{latency * 1000:.0f} ms (once per table and month)",
                        flush=True,
                    )
        finally:
            target.close()

    if args.markdown:
        print()
        print("| backend | kind | batch | sql sink rows/s | seed rows/s | ratio |")
        print("|---|---|---:|---:|---:|---:|")
        for backend, kind, size, rate, seed in rows:
            print(
                f"| {backend} | {kind} | {size:,} | {fmt(rate)} | {fmt(seed)} | "
                f"{rate / seed:,.0f}x |"
            )
        if extra:
            print()
            print("| PostgreSQL kind, batch | " + " | ".join(METHODS) + " |")
            print("|---|" + "---:|" * len(METHODS))
            for kind, size, medians in extra:
                cells = ["n/a" if m is None else fmt(m) for m in medians]
                print(f"| {kind}, {size:,} | " + " | ".join(cells) + " |")
        for kind, latency in months:
            print(
                f"\nPostgreSQL {kind}: a one-row batch that needs a new month partition takes "
                f"{latency * 1000:.0f} ms (once per table and month; excluded above by a "
                "warm-up batch)."
            )


def _sqlalchemy(target: Target, kind: str, size: int, n: int, *, returning: bool) -> float:
    return bench_sqlalchemy(target, size, n, returning=returning)


METHODS: dict[str, tuple[Callable[..., float], dict[str, Any]]] = {
    "sink default (COPY, format per table)": (bench_sink, {}),
    "sink: text COPY": (bench_sink, {"pg_bulk": "copy_text"}),
    "sink: binary COPY": (bench_sink, {"pg_bulk": "copy_binary"}),
    "sink default, every row already stored": (bench_sink, {"repeat": True}),
    "sink: psycopg executemany": (bench_sink, {"pg_bulk": "executemany"}),
    "SQLAlchemy Core executemany": (_sqlalchemy, {"returning": False}),
    "SQLAlchemy insertmanyvalues (RETURNING)": (_sqlalchemy, {"returning": True}),
}
"""The PostgreSQL bulk methods compared (SQLAlchemy ones for trades only)."""


if __name__ == "__main__":
    main()
