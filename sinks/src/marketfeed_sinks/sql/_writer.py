"""The synchronous batch writer both backends share: grouping, poison-row isolation,
dead letters, transient-failure mapping.

One writer owns one database connection. ``persist`` runs in a worker thread (see
``_handle``), one call at a time. A batch is written in one transaction:

1. events are grouped by kind (unknown or unstored kinds are skipped), rows are built;
2. each group is bulk-upserted (fast path: no savepoints). On a *data* error (a row that
   can never be stored: constraint, out of range, unencodable value) the transaction is
   rolled back and the batch is redone carefully: each group in a savepoint, and a group
   that fails is bisected, each half in its own savepoint, down to the single poison
   rows; the good rows stay;
3. poison rows are written to ``dead_letter`` in the same transaction (source
   ``sink:sql``, reason = the database's error) **and** returned in
   ``PersistResult.rejected`` for the caller's counters. The supervisor writes its own
   dead-letter record only for sinks that do not accept ``dead_letter``, so nothing is
   written twice;
4. commit.

A *transient* error (connection lost, server restarting, database locked) aborts the
transaction, drops the connection (the next call reconnects) and raises
:class:`marketfeed.TransientSinkError`; the caller retries the same batch, which is safe
because every write is an idempotent upsert.
"""

from __future__ import annotations

import datetime as _dt
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from operator import itemgetter
from typing import Any, Literal

import marketfeed as mf
import msgspec
from sqlalchemy.engine import URL, Engine

from ._engine import make_engine, redact
from ._schema import ensure_schema
from ._tables import TABLES, TableSpec, book_top_row

__all__ = ["SqlOptions", "Writer"]

log = logging.getLogger("marketfeed.sink.sql")

_event_json = msgspec.json.Encoder(decimal_format="string")

_TYPES: dict[type[Any], str] = {
    mf.Trade: "trade",
    mf.Candle: "candle",
    mf.Ticker: "ticker",
    mf.BookSnapshot: "book_snapshot",
    mf.Instrument: "instrument",
    mf.DailyBar: "daily_bar",
    mf.InvestorFlow: "investor_flow",
    mf.EtfHolding: "etf_holding",
    mf.EtfHoldingChange: "etf_holding_change",
    mf.Gap: "gap",
    mf.DeadLetter: "dead_letter",
}

_REASON_MAX = 2000


class SqlOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of the ``sql`` sink (``[[sinks]] options = {...}``).

    Attributes:
        schema: PostgreSQL schema for the tables (created when missing); default: the
            server's ``search_path`` (normally ``public``). Ignored for SQLite.
        book_depth: Levels per side kept in ``book_top``.
        book_interval: Seconds between stored snapshots per (venue, symbol), by venue event
            time; ``0`` stores every snapshot.
        pg_bulk: PostgreSQL bulk method: ``"copy"`` (default: COPY, text format for
            tables with at least two decimals per timestamp, binary for the others;
            measured fastest, see README), ``"copy_text"`` or ``"copy_binary"`` (one COPY
            format for every table), or ``"executemany"`` (pipelined
            ``INSERT ... ON CONFLICT``).
        connect_timeout: Seconds to wait for a PostgreSQL connection.
        busy_timeout: Seconds SQLite waits for another writer's lock before the batch
            fails as transient (retried by the supervisor).
    """

    schema: str | None = None
    book_depth: int = 10
    book_interval: float = 1.0
    pg_bulk: Literal["copy", "copy_text", "copy_binary", "executemany"] = "copy"
    connect_timeout: float = 10.0
    busy_timeout: float = 10.0


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().replace("\x00", "\\x00")
    return text if len(text) <= _REASON_MAX else text[: _REASON_MAX - 3] + "..."


def _clean(text: str) -> str:
    return text.replace("\x00", "\\x00")


Row = tuple[Any, ...]


class Writer(ABC):
    """Writes batches of events to one database over one connection (not thread-safe:
    the async handle serialises calls).

    Args:
        url: Normalised URL (``normalise_url``).
        options: Decoded :class:`SqlOptions`.
    """

    backend: str = ""

    def __init__(self, url: URL, options: SqlOptions) -> None:
        self.url = url
        self.options = options
        self.where = redact(url)
        self.engine: Engine = make_engine(
            url, schema=options.schema, connect_timeout=options.connect_timeout
        )
        self.specs: dict[str, TableSpec] = dict(TABLES)
        depth = options.book_depth
        book = self.specs["book_snapshot"]
        self._book_spec = _rebind(book, lambda e: book_top_row(e, depth))
        self.specs["book_snapshot"] = self._book_spec
        self._book_last: dict[tuple[str, str], _dt.datetime] = {}
        self._book_interval = _dt.timedelta(seconds=max(0.0, options.book_interval))
        self.schema_version = 0
        self._raw: Any = None  # SQLAlchemy pool proxy, invalidated on disconnect
        self._con: Any = None  # the driver connection (sqlite3 / psycopg)

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Create or check the schema, then connect.

        Raises:
            SchemaVersionError: the database's schema cannot be used.
            TransientSinkError: the database cannot be reached now.
        """
        try:
            self.schema_version = ensure_schema(self.engine, schema=self.options.schema)
            self._connect()
        except Exception as exc:
            if self.is_transient(exc):
                self._disconnect()
                raise mf.TransientSinkError(
                    f"sql sink {self.where}: cannot open the database: {_reason(exc)}"
                ) from exc
            raise

    def close(self) -> None:
        """Close the connection and the engine."""
        self._disconnect()
        self.engine.dispose()

    # ------------------------------------------------------------------ persist

    def persist(self, batch: Sequence[Any]) -> mf.PersistResult:
        """Store ``batch`` (see the module docstring for the steps and guarantees).

        Returns:
            ``PersistResult(stored, rejected)``: ``stored`` counts the events now present
            in the database (inserted, updated or already there); ``rejected`` lists
            ``(event, reason)`` for poison rows, already written to ``dead_letter``.

        Raises:
            TransientSinkError: connection-level failure; retry the same batch.
        """
        groups: dict[str, list[Any]] = {}
        types = _TYPES
        if batch and len(set(map(type, batch))) == 1:  # one kind: no per-event loop
            kind = types.get(type(batch[0]))
            if kind is not None:
                groups[kind] = list(batch)
        else:
            for ev in batch:
                kind = types.get(type(ev))
                if kind is not None:
                    groups.setdefault(kind, []).append(ev)
        book_state: dict[tuple[str, str], _dt.datetime] = {}
        if "book_snapshot" in groups:
            kept = self._throttle_books(groups["book_snapshot"], book_state)
            if kept:
                groups["book_snapshot"] = kept
            else:
                del groups["book_snapshot"]
        if not groups:
            return mf.PersistResult()
        try:
            self._ensure_connected()
            self._prepare(groups)
            try:
                stored, rejected = self._write_groups(groups, careful=False)
            except Exception as exc:
                if self.is_transient(exc) or not self.is_data_error(exc):
                    raise
                # A poison row or an optimistic COPY that met stored rows: the transaction
                # was rolled back; redo it with a savepoint per group and bisection.
                stored, rejected = self._write_groups(groups, careful=True)
        except Exception as exc:
            self._disconnect()
            if self.is_transient(exc):
                raise mf.TransientSinkError(
                    f"sql sink {self.where}: {_reason(exc)} (batch not stored; retry)"
                ) from exc
            raise
        self._book_last.update(book_state)
        return mf.PersistResult(stored=stored, rejected=rejected)

    def _throttle_books(
        self, snapshots: list[Any], state: dict[tuple[str, str], _dt.datetime]
    ) -> list[Any]:
        interval = self._book_interval
        if not interval:
            return snapshots
        kept = []
        last_seen = self._book_last
        for ev in snapshots:
            key = (ev.venue, ev.symbol)
            last = state.get(key) or last_seen.get(key)
            t = ev.event_time
            if last is None or t >= last + interval or t < last:
                kept.append(ev)
                state[key] = t
        return kept

    def _write_groups(
        self, groups: dict[str, list[Any]], *, careful: bool
    ) -> tuple[int, list[tuple[Any, str]]]:
        stored = 0
        rejected: list[tuple[Any, str]] = []
        with self._transaction():
            for kind, events in groups.items():
                ok, bad = self._write_events(self.specs[kind], events, careful=careful)
                stored += ok
                rejected.extend(bad)
            if rejected:
                self._dead_letter(rejected)
        return stored, rejected

    def _write_events(
        self, spec: TableSpec, events: list[Any], *, careful: bool = True
    ) -> tuple[int, list[Any]]:
        n, events, rows, rejected = self._rows(spec, events)
        if not rows:
            pass
        elif careful or rejected:
            rejected.extend(self._bisect(spec, events, rows))
        else:
            self._bulk(spec, rows, fast=True)
        return n - len(rejected), rejected

    def _rows(
        self, spec: TableSpec, events: list[Any]
    ) -> tuple[int, list[Any], list[Row], list[tuple[Any, str]]]:
        """``(n, events, rows, rejected)``: the rows of ``events`` (one per key after the
        in-batch merge), the events they came from, and the events that could not even
        become a row, with the reason. ``n`` is the number of events given."""
        rejected: list[tuple[Any, str]] = []
        row = spec.row
        try:
            rows = list(map(row, events))
        except Exception:
            kept, rows = [], []
            for e in events:
                try:
                    rows.append(row(e))
                    kept.append(e)
                except Exception as exc:  # an event that cannot even become a row
                    rejected.append((e, _reason(exc)))
            n, events = len(events), kept
        else:
            n = len(events)
        if spec.dedupe and len(rows) > 1:
            events, rows = _dedupe(spec, events, rows)
        return n, events, rows, rejected

    def _bisect(self, spec: TableSpec, events: list[Any], rows: list[Row]) -> list[Any]:
        try:
            with self._savepoint():
                self._bulk(spec, rows, fast=False)
            return []
        except Exception as exc:
            if not self.is_data_error(exc):
                raise
            if len(rows) == 1:
                return [(events[0], _reason(exc))]
        mid = len(rows) // 2
        return self._bisect(spec, events[:mid], rows[:mid]) + self._bisect(
            spec, events[mid:], rows[mid:]
        )

    def _dead_letter(self, rejected: list[tuple[Any, str]]) -> None:
        now = _dt.datetime.now(_dt.UTC)
        letters = []
        for ev, reason in rejected:
            try:
                payload = _event_json.encode(ev).decode()
            except Exception as exc:  # unencodable event: keep its repr
                payload = f"<unencodable {type(ev).__name__}: {exc}> {ev!r}"
            letters.append(
                mf.DeadLetter(
                    venue=_clean(str(getattr(ev, "venue", ""))),
                    source="sink:sql",
                    reason=reason,
                    payload=_clean(payload),
                    first_failure=now,
                    last_failure=now,
                )
            )
        _, failed = self._write_events(self.specs["dead_letter"], letters)
        for letter, reason in failed:
            log.error(
                "sql sink %s: could not store a dead letter (%s): %s",
                self.where,
                reason,
                letter.payload[:500],
            )

    # ------------------------------------------------------------------ connection

    def _connect(self) -> None:
        raw = self.engine.raw_connection()
        try:
            con = self._setup(raw.driver_connection)
        except BaseException:
            raw.invalidate()
            raise
        self._raw, self._con = raw, con

    def _disconnect(self) -> None:
        """Drop the connection, ignoring errors; the next call reconnects."""
        raw, self._raw, self._con = self._raw, None, None
        if raw is not None:
            try:
                raw.invalidate()
            except Exception:
                pass

    def _ensure_connected(self) -> None:
        if self._con is None or getattr(self._con, "closed", False):
            self._disconnect()
            self._connect()

    # ------------------------------------------------------------------ backend hooks

    @abstractmethod
    def _setup(self, con: Any) -> Any:
        """Configure a fresh driver connection (and per-connection state); return it."""

    def _prepare(self, groups: dict[str, list[Any]]) -> None:
        """Work before the batch transaction (PostgreSQL: create partitions)."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[None]:
        """The batch transaction: commit on success, roll back on error."""

    @abstractmethod
    def _savepoint(self) -> AbstractContextManager[None]:
        """A savepoint inside the batch transaction."""

    @abstractmethod
    def _bulk(self, spec: TableSpec, rows: list[tuple[Any, ...]], *, fast: bool) -> None:
        """Upsert ``rows`` into ``spec``'s table. ``fast``: first attempt of the batch,
        without savepoints (a failure rolls the whole transaction back and the batch is
        redone carefully); else inside a savepoint, possibly several times per table."""

    @abstractmethod
    def is_transient(self, exc: BaseException) -> bool:
        """A connection-level failure worth retrying."""

    @abstractmethod
    def is_data_error(self, exc: BaseException) -> bool:
        """An error caused by the rows themselves (bisect to find the poison ones)."""


def _rebind(spec: TableSpec, row: Any) -> TableSpec:
    clone = object.__new__(TableSpec)
    clone.__dict__.update(spec.__dict__)
    clone.row = row
    return clone


def _dedupe(spec: TableSpec, events: list[Any], rows: list[Row]) -> tuple[list[Any], list[Row]]:
    key_of = itemgetter(*spec.key_index)
    if len(set(map(key_of, rows))) == len(rows):
        return events, rows  # every key once: the common case, checked at C speed
    merge = spec.merge
    seen: dict[Any, tuple[Any, Row]] = {}
    for event, row in zip(events, rows, strict=True):
        key = key_of(row)
        old = seen.get(key)
        if old is not None and merge is not None:
            merged = merge(old[1], row)
            seen[key] = (event if merged is row else old[0], merged)
        else:
            seen[key] = (event, row)
    return [e for e, _ in seen.values()], [r for _, r in seen.values()]


def iter_months(start: _dt.datetime, end: _dt.datetime) -> Iterator[tuple[int, int]]:
    """``(year, month)`` of every UTC month from ``start``'s to ``end``'s, inclusive."""
    start = _utc(start)
    end = _utc(end)
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        yield y, m
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


def _utc(value: _dt.datetime) -> _dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=_dt.UTC)
    return value.astimezone(_dt.UTC)
