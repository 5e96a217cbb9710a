"""Schema creation, version row, migration and refusal; URL and option errors."""

from __future__ import annotations

from typing import Any

import marketfeed as mf
import marketfeed_sinks as ms
import pytest
import sqlalchemy as sa
from sink_targets import Target
from sinkdata import okx_trades

pytestmark = pytest.mark.anyio


def _version(target: Target) -> int | None:
    engine = target.engine()
    try:
        with engine.connect() as conn:
            return ms.read_schema_version(conn)
    finally:
        engine.dispose()


async def test_first_start_creates_tables_and_version_row(target: Target) -> None:
    assert _version(target) is None
    async with ms.open_sql_sink(target.url, target.options) as sink:
        assert sink.schema_version == ms.SCHEMA_VERSION
    assert _version(target) == ms.SCHEMA_VERSION
    engine = target.engine()
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(ms.METADATA.tables) <= tables
    if target.backend == "sqlite":
        engine = target.engine()
        try:
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        finally:
            engine.dispose()
    # A second start finds the same version and changes nothing.
    async with ms.open_sql_sink(target.url, target.options) as sink:
        await sink.persist(okx_trades())
    assert _version(target) == ms.SCHEMA_VERSION
    assert target.count("schema_version") == 1


def _add_note_column(conn: sa.Connection) -> None:
    conn.exec_driver_sql('ALTER TABLE "gap" ADD COLUMN "note" TEXT')


async def test_older_schema_migrates_and_newer_schema_is_refused(target: Target) -> None:
    async with ms.open_sql_sink(target.url, target.options) as sink:
        await sink.persist(okx_trades())
    newer = ms.SCHEMA_VERSION + 1

    # A newer marketfeed-sinks (simulated: target version + one migration step) upgrades
    # the database it finds at our version.
    engine = target.engine()
    try:
        got = ms.ensure_schema(
            engine, schema=target.schema, target=newer, migrations={newer: _add_note_column}
        )
        columns = {c["name"] for c in sa.inspect(engine).get_columns("gap")}
    finally:
        engine.dispose()
    assert got == newer
    assert "note" in columns
    assert _version(target) == newer
    assert target.count("trade") == len(okx_trades())  # data kept

    # This code (SCHEMA_VERSION) must now refuse, naming both versions, touching nothing.
    with pytest.raises(ms.SchemaVersionError) as info:
        async with ms.open_sql_sink(target.url, target.options):
            pass
    message = str(info.value)
    assert f"version {newer}" in message and f"version {ms.SCHEMA_VERSION}" in message
    assert (info.value.database_version, info.value.code_version) == (
        newer,
        ms.SCHEMA_VERSION,
    )
    assert _version(target) == newer


async def test_missing_migration_step_is_refused(target: Target) -> None:
    async with ms.open_sql_sink(target.url, target.options):
        pass
    engine = target.engine()
    try:
        with pytest.raises(ms.SchemaVersionError, match="no migration"):
            ms.ensure_schema(
                engine, schema=target.schema, target=ms.SCHEMA_VERSION + 2, migrations={}
            )
    finally:
        engine.dispose()
    assert _version(target) == ms.SCHEMA_VERSION


async def test_foreign_tables_without_version_row_are_refused(target: Target) -> None:
    # The seed design's own trade table: a database marketfeed-sinks did not create.
    engine = target.engine()
    try:
        with engine.begin() as conn:
            if target.schema:
                conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{target.schema}"')
            conn.exec_driver_sql("CREATE TABLE trade (id INTEGER PRIMARY KEY, symbol_id INTEGER)")
    finally:
        engine.dispose()
    with pytest.raises(ms.SchemaVersionError, match="trade") as info:
        async with ms.open_sql_sink(target.url, target.options):
            pass
    assert info.value.database_version is None
    assert _version(target) is None


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"book_depht": 5}, "sinks.options.book_depht"),
        ({"book_depth": "five"}, "sinks.options.book_depth"),
        ({"pg_bulk": "insert"}, "sinks.options.pg_bulk"),
        ({"schema": "bad name; drop"}, "sinks.options.schema"),
    ],
)
async def test_bad_options_name_the_key(
    sqlite_target: Target, options: dict[str, Any], path: str
) -> None:
    with pytest.raises(mf.ConfigError) as info:
        async with ms.open_sql_sink(sqlite_target.url, options):
            pass
    assert info.value.path == path


@pytest.mark.parametrize(
    "url", ["mysql://root@localhost/db", "sqlite://", "sqlite:///:memory:", "not a url"]
)
async def test_unsupported_urls_are_config_errors(url: str) -> None:
    with pytest.raises(mf.ConfigError) as info:
        async with ms.open_sql_sink(url):
            pass
    assert info.value.path == "sinks.url"


def test_postgres_urls_use_psycopg_and_hide_passwords() -> None:
    from marketfeed_sinks.sql._engine import normalise_url, redact

    for url in ("postgresql://u:secret@h/db", "postgres://u:secret@h/db"):
        assert normalise_url(url).drivername == "postgresql+psycopg"
        assert "secret" not in redact(url)
