"""SQLite writer: WAL, ``synchronous=NORMAL``, one ``BEGIN IMMEDIATE`` transaction per
batch, ``executemany`` of ``INSERT ... ON CONFLICT`` per table.

Decimals are bound as exact text, times as fixed-width UTC ISO text, dates as ISO text
(see ``_types``); the per-table row converter is compiled once from the column kinds so
the hot loop is a single list comprehension.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy.exc as sa_exc

from ._sql import insert_values_sql
from ._tables import TableSpec
from ._types import date_text, decimal_text, timestamp_text
from ._writer import Writer

__all__ = ["SqliteWriter", "sqlite_converter"]

# Primary result codes worth a retry: busy/locked by another writer, out of memory, I/O
# error, disk full, cannot open, lock protocol.
_TRANSIENT_CODES = {5, 6, 7, 10, 13, 14, 15}
_DATA_CODES = {18, 19, 20, 25}  # too big, constraint, mismatch, range


def sqlite_converter(kinds: tuple[str, ...]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """Compile ``row -> row`` that turns decimals, times and dates into SQLite text.

    ``kinds`` holds per column ``"dec"``, ``"ts"``, ``"date"`` or ``""`` (as is).
    """
    funcs = {"dec": "D", "ts": "T", "date": "A"}
    parts = []
    for i, kind in enumerate(kinds):
        f = funcs.get(kind)
        parts.append(f"r[{i}]" if f is None else f"(None if r[{i}] is None else {f}(r[{i}]))")
    source = "lambda r: (" + ", ".join(parts) + ",)"
    names = {"D": decimal_text, "T": timestamp_text, "A": date_text}
    return eval(source, names)  # type: ignore[no-any-return]


class SqliteWriter(Writer):
    """Batch writer for ``sqlite:///`` databases."""

    backend = "sqlite"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sql = {k: insert_values_sql(s, "sqlite", "?") for k, s in self.specs.items()}
        self._convert = {s.name: sqlite_converter(s.kinds) for s in self.specs.values()}
        self._savepoints = 0

    def _setup(self, con: sqlite3.Connection) -> sqlite3.Connection:
        con.isolation_level = None  # we issue BEGIN/COMMIT ourselves
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute(f"PRAGMA busy_timeout={max(0, round(self.options.busy_timeout * 1000))}")
        return con

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        con = self._con
        assert con is not None
        con.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        con = self._con
        assert con is not None
        self._savepoints += 1
        name = f"mf_sp{self._savepoints}"
        con.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            con.execute(f"ROLLBACK TO {name}")
            con.execute(f"RELEASE {name}")
            raise
        con.execute(f"RELEASE {name}")

    def _bulk(self, spec: TableSpec, rows: list[tuple[Any, ...]], *, fast: bool) -> None:
        con = self._con
        assert con is not None
        convert = self._convert[spec.name]
        con.executemany(self._sql[spec.kind], [convert(r) for r in rows])

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
            exc = exc.orig
        if isinstance(exc, sqlite3.OperationalError):
            code = getattr(exc, "sqlite_errorcode", None)
            if code is None:
                text = str(exc).lower()
                return "locked" in text or "busy" in text or "disk i/o" in text
            return (code & 0xFF) in _TRANSIENT_CODES
        return False

    def is_data_error(self, exc: BaseException) -> bool:
        if isinstance(exc, (sqlite3.IntegrityError, sqlite3.DataError)):
            return True
        if isinstance(exc, sqlite3.OperationalError):
            code = getattr(exc, "sqlite_errorcode", None)
            return code is not None and (code & 0xFF) in _DATA_CODES
        if isinstance(exc, sqlite3.ProgrammingError):
            return "binding parameter" in str(exc)
        if isinstance(exc, sqlite3.Error):
            return False
        return isinstance(exc, (TypeError, ValueError, OverflowError, ArithmeticError))
