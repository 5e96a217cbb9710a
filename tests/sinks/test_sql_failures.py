"""Transient failures: the batch raises TransientSinkError, a retry lands it, nothing is
lost. Includes a real PostgreSQL restart while a writer keeps persisting."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import marketfeed as mf
import marketfeed_sinks as ms
import pytest
from sink_targets import Target
from sinkdata import okx_trades, upbit_trades

pytestmark = pytest.mark.anyio


async def _persist_until_stored(
    sink: ms.SqlSinkHandle, batch: list[Any], transient: list[str], *, pause: float = 0.1
) -> mf.PersistResult:
    """What the supervisor does: retry the same batch on TransientSinkError."""
    while True:
        try:
            return await sink.persist(batch)
        except mf.TransientSinkError as exc:
            transient.append(str(exc))
            await anyio.sleep(pause)


async def test_sqlite_locked_database_is_transient_then_lands(sqlite_target: Target) -> None:
    trades = okx_trades()
    async with ms.open_sql_sink(sqlite_target.url, {"busy_timeout": 0.05}) as sink:
        path = Path(sqlite_target.url.removeprefix("sqlite:///"))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        with pytest.raises(mf.TransientSinkError, match="locked"):
            await sink.persist(trades)
        other.execute("ROLLBACK")
        other.close()
        result = await sink.persist(trades)
    assert result.stored == len(trades)
    assert sqlite_target.count("trade") == len(trades)


@pytest.mark.postgres
async def test_postgres_connection_killed_is_transient_then_reconnects(
    postgres_url: Target,
) -> None:
    import psycopg

    first, second = upbit_trades()[:300], upbit_trades()[300:]
    async with ms.open_sql_sink(postgres_url.url, postgres_url.options) as sink:
        await sink.persist(first)
        pid = sink._writer._con.info.backend_pid  # test-only peek at the connection
        with psycopg.connect(postgres_url.url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        with pytest.raises(mf.TransientSinkError):
            await sink.persist(second)
        result = await sink.persist(second)  # reconnects
    assert result.stored == len(second)
    assert postgres_url.count("trade") == len(first) + len(second)


def _cluster() -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("restarting PostgreSQL needs root (pg_ctlcluster)")
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        pytest.skip("no pg_ctlcluster on this machine (Debian postgresql-common)")
    versions = sorted(os.listdir("/etc/postgresql"))
    if len(versions) != 1:
        pytest.skip(f"expected one PostgreSQL version in /etc/postgresql, found {versions}")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main"]


@pytest.mark.postgres
async def test_postgres_restart_during_a_run_loses_nothing(postgres_url: Target) -> None:
    cluster = _cluster()
    trades = upbit_trades() + okx_trades()
    batches = [trades[i : i + 40] for i in range(0, len(trades), 40)]
    transient: list[str] = []
    stopped = anyio.Event()
    restarted = anyio.Event()

    async def restart() -> None:
        try:
            await anyio.run_process([*cluster, "stop"])
            stopped.set()
            await anyio.sleep(1.0)  # the writer keeps trying while the server is down
        finally:
            await anyio.run_process([*cluster, "start"])
            restarted.set()

    stored = 0
    with anyio.fail_after(90):
        async with ms.open_sql_sink(postgres_url.url, postgres_url.options) as sink:
            async with anyio.create_task_group() as tg:
                for i, batch in enumerate(batches):
                    if i == len(batches) // 3:
                        tg.start_soon(restart)
                        await stopped.wait()
                    result = await _persist_until_stored(sink, batch, transient)
                    stored += result.stored
            assert restarted.is_set()

    assert transient, "the restart never hit the writer"
    assert stored == len(trades)
    assert postgres_url.count("trade") == len(trades)
    assert postgres_url.count("dead_letter") == 0


@pytest.mark.postgres
async def test_partition_dropped_behind_the_writer_is_recreated(postgres_url: Target) -> None:
    import psycopg

    trades = upbit_trades()
    month = trades[0].event_time
    name = ms.partition_name("trade", month.year, month.month)
    transient: list[str] = []
    async with ms.open_sql_sink(postgres_url.url, postgres_url.options) as sink:
        await sink.persist(trades[:100])
        with psycopg.connect(postgres_url.url, autocommit=True) as admin:
            admin.execute(f'DROP TABLE "{postgres_url.schema}"."{name}"')
        result = await _persist_until_stored(sink, trades[100:], transient, pause=0)
    assert len(transient) == 1  # the cached partition was gone once, then recreated
    assert result.stored == len(trades) - 100 and result.rejected == []
    assert postgres_url.count("trade") == len(trades) - 100
    assert postgres_url.count("dead_letter") == 0
