"""Schema creation, the version row, and migrations.

On first start the tables are created and ``schema_version`` gets one row
(``id = 1, version = SCHEMA_VERSION``). On later starts:

* same version: missing tables (if any) are created, nothing else changes;
* older version in the database: each step ``MIGRATIONS[v]`` for ``v`` in
  ``(db_version, SCHEMA_VERSION]`` runs in order, in one transaction, then the row is
  updated;
* newer version in the database (written by a newer marketfeed-sinks): refused with
  :class:`SchemaVersionError` naming both versions; nothing is touched;
* marketfeed table names present but no version row (a database made by something else,
  e.g. the seed design): refused, nothing is touched.

On PostgreSQL the whole check runs under a transaction-level advisory lock, so sinks
starting together do not race.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping

import sqlalchemy as sa
from marketfeed import MarketfeedError
from sqlalchemy.engine import Connection, Engine

from ._engine import redact
from ._tables import METADATA, SCHEMA_VERSION, SchemaVersionRow

__all__ = ["MIGRATIONS", "SchemaVersionError", "ensure_schema", "read_schema_version"]

Migration = Callable[[Connection], None]

MIGRATIONS: dict[int, Migration] = {}
"""Target version -> step that upgrades a database from the version before it. Version 1
is the first layout, so there are no steps yet; a layout change adds one here and bumps
``SCHEMA_VERSION``."""

_LOCK_KEY = 0x6D666565  # "mfee": advisory lock id for schema work


class SchemaVersionError(MarketfeedError):
    """The database's marketfeed schema cannot be used by this version of the sink.

    Attributes:
        database_version: Version found in the database (``None``: no version row).
        code_version: Version this code writes.
    """

    def __init__(self, message: str, database_version: int | None, code_version: int) -> None:
        self.database_version = database_version
        self.code_version = code_version
        super().__init__(message)


def read_schema_version(conn: Connection) -> int | None:
    """The version row's value, or ``None`` when there is no ``schema_version`` table/row."""
    if not sa.inspect(conn).has_table(SchemaVersionRow.__tablename__):
        return None
    row = conn.execute(
        sa.select(SchemaVersionRow.__table__.c.version).where(  # type: ignore[attr-defined]
            SchemaVersionRow.__table__.c.id == 1  # type: ignore[attr-defined]
        )
    ).first()
    return None if row is None else int(row[0])


def _write_version(conn: Connection, version: int, *, insert: bool) -> None:
    table = SchemaVersionRow.__table__  # type: ignore[attr-defined]
    now = _dt.datetime.now(_dt.UTC)
    if insert:
        conn.execute(sa.insert(table).values(id=1, version=version, updated_at=now))
    else:
        conn.execute(
            sa.update(table).where(table.c.id == 1).values(version=version, updated_at=now)
        )


def ensure_schema(
    engine: Engine,
    *,
    schema: str | None = None,
    target: int | None = None,
    migrations: Mapping[int, Migration] | None = None,
) -> int:
    """Create or check (and migrate) the marketfeed tables; returns the version in use.

    Args:
        engine: Engine from :func:`make_engine`.
        schema: PostgreSQL schema to create first when missing (the engine's
            ``search_path`` must point at it).
        target: Version to end at (default :data:`SCHEMA_VERSION`; tests pass others).
        migrations: Steps by target version (default :data:`MIGRATIONS`).

    Raises:
        SchemaVersionError: the database is newer than ``target``, a migration step is
            missing, or marketfeed table names exist without a version row.
        sqlalchemy.exc.OperationalError: the database cannot be reached.
    """
    target = SCHEMA_VERSION if target is None else target
    steps = MIGRATIONS if migrations is None else migrations
    where = redact(engine.url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
            if schema:
                conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        else:
            # WAL is persistent in the file; then take SQLite's write lock at once, so two
            # processes creating tables serialise (the stdlib driver would not begin a
            # transaction for DDL by itself).
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        found = read_schema_version(conn)
        if found is None:
            inspector = sa.inspect(conn)
            present = sorted(t for t in METADATA.tables if inspector.has_table(t))
            if present:
                raise SchemaVersionError(
                    f"{where} already has tables named {', '.join(present)} but no "
                    "marketfeed schema_version row: it was not created by marketfeed-sinks "
                    "(maybe by an older design). Use another database or schema, or "
                    "move those tables away.",
                    None,
                    target,
                )
            METADATA.create_all(conn)
            _write_version(conn, target, insert=True)
            return target
        if found > target:
            raise SchemaVersionError(
                f"{where} has marketfeed schema version {found}, newer than version "
                f"{target} that this marketfeed-sinks knows; upgrade marketfeed-sinks "
                "(pip install -U marketfeed-sinks) or point the sink at another database. "
                "Nothing was changed.",
                found,
                target,
            )
        if found < target:
            missing = [v for v in range(found + 1, target + 1) if v not in steps]
            if missing:
                raise SchemaVersionError(
                    f"{where} has marketfeed schema version {found}; no migration to "
                    f"version(s) {missing} is known (this code writes version {target})",
                    found,
                    target,
                )
            for version in range(found + 1, target + 1):
                steps[version](conn)
        METADATA.create_all(conn, checkfirst=True)
        if found < target:
            _write_version(conn, target, insert=False)
    return target
