"""PostgreSQL writer (psycopg 3): month partitions on demand, COPY bulk upserts.

Partitions: ``trade`` and ``candle`` are ``PARTITION BY RANGE`` on their time column. Before
a batch, the UTC months its rows span are compared with a per-writer cache (filled from
``pg_inherits`` on connect); missing months are created with ``CREATE TABLE IF NOT EXISTS
<table>_pYYYY_MM PARTITION OF <table> FOR VALUES FROM (...) TO (...)`` in their own short
transaction, so a concurrent writer creating the same month is harmless.

Bulk writes (``pg_bulk = "copy"``, the default, chosen by measurement: see README):

* COPY format per table (``_copy_as_text``): text, built in Python by ``_pgtext``, for
  tables with at least two decimals per timestamp (candles, tickers, ...); psycopg's
  binary COPY for the others (trades, book snapshots, gaps, dead letters).
* first attempt of a batch: an optimistic ``COPY`` straight into each table (rows of one
  key were merged in Python first, so without stored rows this is exactly what the upsert
  would do). A batch of one table is that single statement in autocommit (its own
  transaction: no BEGIN/COMMIT round trips); several tables share one transaction. A
  unique violation (rows already stored: a replay, a backfill overlap, a candle updated
  again) rolls it back; the batch is redone through the staging path, and that table
  skips the optimistic attempt for a while (``_Optimism``).
* staging path: ``COPY`` into a temporary staging table (``LIKE`` the target,
  ``ON COMMIT DELETE ROWS``), then ``INSERT INTO t SELECT ... FROM stage ON CONFLICT ...``.

``pg_bulk = "copy_text"`` / ``"copy_binary"`` force one format for every table, and
``"executemany"`` uses psycopg's pipelined ``executemany`` of the one-row upsert (kept for
the benchmark and as a fallback).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from contextlib import contextmanager
from operator import attrgetter
from typing import Any

import sqlalchemy.exc as sa_exc
from sqlalchemy import BigInteger, Boolean, Integer

from ._pgtext import TextEncoder
from ._sql import insert_select_sql, insert_values_sql, quote
from ._tables import TableSpec
from ._writer import Writer, iter_months

try:  # the ``postgresql`` extra
    import psycopg
    import psycopg.errors as pg_errors
except ImportError:  # pragma: no cover - exercised only without the extra
    psycopg = None  # type: ignore[assignment]
    pg_errors = None  # type: ignore[assignment]

__all__ = ["PostgresWriter", "partition_name"]

_UTC = _dt.UTC


def partition_name(table: str, year: int, month: int) -> str:
    """Name of a month partition, e.g. ``trade_p2022_05``."""
    return f"{table}_p{year:04d}_{month:02d}"


def _stage_name(spec: TableSpec) -> str:
    return f"_mf_stage_{spec.name}"


def _pg_type(spec: TableSpec, column: str) -> str:
    kind = spec.kinds[spec.columns.index(column)]
    if kind == "dec":
        return "numeric"
    if kind == "ts":
        return "timestamptz"
    if kind == "date":
        return "date"
    t = spec.table.columns[column].type
    if isinstance(t, BigInteger):
        return "int8"
    if isinstance(t, Integer):
        return "int4"
    if isinstance(t, Boolean):
        return "bool"
    return "text"


def _missing_partition(exc: BaseException) -> bool:
    return (
        pg_errors is not None
        and isinstance(exc, pg_errors.CheckViolation)
        and "no partition of relation" in str(exc)
    )


_SPARSE_MONTHS = 24


def _months(times: list[_dt.datetime]) -> list[tuple[int, int]]:
    """UTC ``(year, month)`` partitions a batch needs: every month between the earliest
    and the latest time, or only the months present when that span is implausibly long
    (one bad timestamp must not create thousands of partitions)."""
    try:
        lo, hi = min(times), max(times)
    except TypeError:  # naive and aware mixed: naive ones are UTC
        times = [t if t.tzinfo else t.replace(tzinfo=_UTC) for t in times]
        lo, hi = min(times), max(times)
    span = list(iter_months(lo, hi))
    if len(span) <= _SPARSE_MONTHS:
        return span
    present = set()
    for t in times:
        u = t.astimezone(_UTC) if t.tzinfo else t
        present.add((u.year, u.month))
    return sorted(present)


def _copy_as_text(spec: TableSpec, method: str) -> bool:
    """Whether ``spec``'s rows go in as text ``COPY`` (else binary).

    ``"copy"`` decides per table by its columns, from measurements on this project's
    data (README): psycopg's binary ``NUMERIC`` encoding costs the client about 0.5 to
    1 µs per decimal where text costs 0.04 µs, while a text timestamp costs the server
    about 0.2 to 0.35 µs more to parse than a binary one (and the client about 0.1 to
    0.5 µs to format). Trades (2 decimals, 2 timestamps) measured faster binary, candles
    (6 decimals, 3 timestamps) faster as text; tables with at least two decimals per
    timestamp go as text.
    """
    if method == "copy_text":
        return True
    if method != "copy":
        return False
    decimals = spec.kinds.count("dec")
    timestamps = spec.kinds.count("ts")
    return decimals > 0 and decimals >= 2 * timestamps


def _naive_as_utc(rows: list[tuple[Any, ...]], ts_index: list[int]) -> list[tuple[Any, ...]]:
    """``rows`` with every naive datetime in the ``ts_index`` columns marked UTC."""
    out = []
    for row in rows:
        if any(isinstance(row[i], _dt.datetime) and row[i].tzinfo is None for i in ts_index):
            fixed = list(row)
            for i in ts_index:
                value = fixed[i]
                if isinstance(value, _dt.datetime) and value.tzinfo is None:
                    fixed[i] = value.replace(tzinfo=_UTC)
            row = tuple(fixed)
        out.append(row)
    return out


_COPY_CHUNK = 1000
"""Rows per text ``COPY`` buffer (measured: see README)."""


class _Optimism:
    """When to try a plain COPY into the target table first.

    A conflict (rows already stored) makes the batch go through staging and skips the
    optimistic attempt for the next 1, 2, 4, ... 256 batches of that table; a clean COPY
    resets the backoff. Live candle updates (which conflict by nature) so cost one wasted
    attempt in 256 batches; trades, tickers and backfills stay on the fast path.
    """

    MAX_SKIP = 256

    def __init__(self) -> None:
        self._skip: dict[str, int] = {}
        self._penalty: dict[str, int] = {}

    def would_try(self, table: str) -> bool:
        """Whether the next ``ready(table)`` says yes (without counting a batch)."""
        return not self._skip.get(table, 0)

    def ready(self, table: str) -> bool:
        left = self._skip.get(table, 0)
        if left:
            self._skip[table] = left - 1
            return False
        return True

    def conflict(self, table: str) -> None:
        penalty = min(max(1, 2 * self._penalty.get(table, 0)), self.MAX_SKIP)
        self._penalty[table] = self._skip[table] = penalty

    def success(self, table: str) -> None:
        self._penalty[table] = 0


class PostgresWriter(Writer):
    """Batch writer for ``postgresql://`` databases."""

    backend = "postgresql"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if psycopg is None:
            from marketfeed import ConfigError

            raise ConfigError(
                "sinks.url",
                "PostgreSQL needs psycopg 3: pip install 'marketfeed-sinks[postgresql]'",
            )
        super().__init__(*args, **kwargs)
        self._partitions: set[tuple[str, int, int]] = set()
        self._optimism = _Optimism()
        specs = self.specs.values()
        self._values_sql = {s.name: insert_values_sql(s, "postgresql", "%s") for s in specs}
        self._select_sql = {s.name: insert_select_sql(s, _stage_name(s)) for s in specs}
        # Builtin type OIDs, resolved once (set_types by name looks each one up per COPY).
        registry = psycopg.adapters.types
        self._types = {s.name: [registry[_pg_type(s, c)].oid for c in s.columns] for s in specs}
        cols = {s.name: ", ".join(quote(c) for c in s.columns) for s in specs}
        method = self.options.pg_bulk
        self._executemany = method == "executemany"
        self._text: dict[str, TextEncoder | None] = {
            s.name: TextEncoder(s) if _copy_as_text(s, method) else None for s in specs
        }
        self._copy_sql = {
            s.name: f"COPY {{}} ({cols[s.name]}) FROM STDIN"
            + ("" if self._text[s.name] else " (FORMAT BINARY)")
            for s in specs
        }
        self._part_time = {s.kind: attrgetter(s.partition) for s in specs if s.partition}
        self._ts_index = {s.name: [i for i, k in enumerate(s.kinds) if k == "ts"] for s in specs}

    # ------------------------------------------------------------------ connection

    def _setup(self, con: Any) -> Any:
        con.autocommit = True  # transactions are explicit: con.transaction()
        self._load_partitions(con)
        self._create_stages(con)
        return con

    def _load_partitions(self, con: Any) -> None:
        self._partitions.clear()
        tables = [s.name for s in self.specs.values() if s.partition]
        rows = con.execute(
            "SELECT p.relname, c.relname FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE i.inhparent = ANY(%s::regclass[])",
            [[quote(t) for t in tables]],
        ).fetchall()
        for parent, child in rows:
            suffix = child[len(parent) :]
            if len(suffix) == 9 and suffix.startswith("_p") and suffix[6] == "_":
                try:
                    self._partitions.add((parent, int(suffix[2:6]), int(suffix[7:9])))
                except ValueError:
                    continue

    # ------------------------------------------------------------------ partitions

    def _prepare(self, groups: dict[str, list[Any]]) -> None:
        for kind, get_time in self._part_time.items():
            events = groups.get(kind)
            if not events:
                continue
            table = self.specs[kind].name
            for year, month in _months(list(map(get_time, events))):
                if (table, year, month) not in self._partitions:
                    self._create_partition(table, year, month)

    def create_partition(self, table: str, year: int, month: int) -> None:
        """Create one month partition now (normally done on demand)."""
        self._ensure_connected()
        self._create_partition(table, year, month)

    def _create_partition(self, table: str, year: int, month: int) -> None:
        ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
        name = partition_name(table, year, month)
        sql = (
            f"CREATE TABLE IF NOT EXISTS {quote(name)} PARTITION OF {quote(table)} "
            f"FOR VALUES FROM ('{year:04d}-{month:02d}-01 00:00:00+00') "
            f"TO ('{ny:04d}-{nm:02d}-01 00:00:00+00')"
        )
        try:
            self._con.execute(sql)
        except (pg_errors.DuplicateTable, pg_errors.UniqueViolation):
            pass  # another writer created it at the same moment
        self._partitions.add((table, year, month))

    # ------------------------------------------------------------------ transactions

    def _write_groups(
        self, groups: dict[str, list[Any]], *, careful: bool
    ) -> tuple[int, list[tuple[Any, str]]]:
        if not careful and len(groups) == 1 and not self._executemany:
            ((kind, events),) = groups.items()
            spec = self.specs[kind]
            if self._optimism.would_try(spec.name):
                n, events, rows, rejected = self._rows(spec, events)
                if not rejected:
                    # One table, straight into it: the COPY is the only statement, so it
                    # runs as its own transaction (autocommit). That saves the BEGIN and
                    # COMMIT round trips; the commit is just as durable. Any error rolls
                    # the COPY back as a whole, and the batch is redone carefully.
                    if rows:
                        self._bulk(spec, rows, fast=True)
                    return n, []
        return super()._write_groups(groups, careful=careful)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._con.transaction():
            yield

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        with self._con.transaction():
            yield

    # ------------------------------------------------------------------ bulk

    def _bulk(self, spec: TableSpec, rows: list[tuple[Any, ...]], *, fast: bool) -> None:
        con = self._con
        name = spec.name
        with con.cursor() as cur:
            if self._executemany:
                cur.executemany(self._values_sql[name], rows)
                return
            if fast and self._optimism.ready(name):
                try:
                    self._copy(cur, name, name, rows)
                except pg_errors.UniqueViolation:
                    self._optimism.conflict(name)
                    raise  # the batch is redone carefully, through the staging table
                self._optimism.success(name)
                return
            if not fast and self._text[name] is None:
                # psycopg's binary timestamptz refuses naive datetimes; they are UTC
                # (the text format writes them so). Done only here, on the careful
                # redo, so the fast path pays nothing for it.
                rows = _naive_as_utc(rows, self._ts_index[name])
            stage = _stage_name(spec)
            self._copy(cur, name, stage, rows)
            cur.execute(self._select_sql[name])
            if not fast:  # the stage may be used again in this transaction (bisection)
                cur.execute(f"DELETE FROM {quote(stage)}")

    def _copy(self, cur: Any, spec_name: str, target: str, rows: list[tuple[Any, ...]]) -> None:
        with cur.copy(self._copy_sql[spec_name].format(quote(target))) as copy:
            encode = self._text[spec_name]
            if encode is None:
                copy.set_types(self._types[spec_name])
                write_row = copy.write_row
                for row in rows:
                    write_row(row)
                return
            write = copy.write
            step = _COPY_CHUNK
            if len(rows) <= step:
                write(encode(rows))
                return
            # Chunks: the server parses one while the next is being formatted.
            cache: dict[Any, str] = {}
            for i in range(0, len(rows), step):
                write(encode(rows[i : i + step], cache))

    def _create_stages(self, con: Any) -> None:
        # Outside any transaction, so a rolled-back batch never takes a stage with it.
        for spec in self.specs.values():
            con.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {quote(_stage_name(spec))} "
                f"(LIKE {quote(spec.name)} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )

    # ------------------------------------------------------------------ error kinds

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
            exc = exc.orig
        if psycopg is None or isinstance(exc, pg_errors.ProgramLimitExceeded):
            return False
        # A partition dropped behind our back: reconnecting reloads the partition cache
        # and the retry recreates it (never dead-letter good rows for that).
        return isinstance(exc, psycopg.OperationalError) or _missing_partition(exc)

    def is_data_error(self, exc: BaseException) -> bool:
        if psycopg is None or _missing_partition(exc):
            return False
        if isinstance(
            exc, (psycopg.DataError, psycopg.IntegrityError, pg_errors.ProgramLimitExceeded)
        ):
            return True
        if isinstance(exc, psycopg.ProgrammingError) and exc.sqlstate is None:
            return True  # raised client-side while adapting a value
        if isinstance(exc, psycopg.Error):
            return False
        return isinstance(exc, (TypeError, ValueError, OverflowError, ArithmeticError))
