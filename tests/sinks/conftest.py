"""Fixtures of the sql sink tests: SQLite always, PostgreSQL whenever reachable.

PostgreSQL: ``MARKETFEED_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Unreachable server: the PostgreSQL tests
are skipped with the reason on a developer machine, and FAIL when ``CI`` is set. Every
test gets a fresh schema (``mft_<pid>_<random>``), dropped afterwards, so runs never
collide.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sink_targets import Target

PG_URL = os.environ.get("MARKETFEED_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _unreachable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but PostgreSQL is not usable: {reason}", pytrace=False)
    pytest.skip(
        f"PostgreSQL not usable ({reason}); start a server at {_redacted()} "
        "or set MARKETFEED_TEST_POSTGRES_URL"
    )


def _redacted() -> str:
    return sa.make_url(PG_URL).render_as_string(hide_password=True)


@pytest.fixture(scope="session")
def _postgres_server() -> str:
    try:
        import psycopg
    except ImportError:
        _unreachable("psycopg is not installed: pip install 'marketfeed-sinks[postgresql]'")
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        _unreachable(f"{_redacted()}: {type(exc).__name__}: {exc}".strip())
    return PG_URL


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def postgres_url(_postgres_server: str) -> Iterator[Target]:
    """A PostgreSQL target with a fresh schema, dropped after the test."""
    schema = f"mft_{os.getpid()}_{secrets.token_hex(4)}"
    target = Target("postgresql", _postgres_server, schema, {"schema": schema})
    try:
        yield target
    finally:
        _drop_schema(schema)


@pytest.fixture
def sqlite_target(tmp_path: Any) -> Target:
    return Target("sqlite", f"sqlite:///{tmp_path}/marketfeed.db")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Any) -> Target:
    """Each behaviour test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return Target("sqlite", f"sqlite:///{tmp_path}/marketfeed.db")
    pg: Target = request.getfixturevalue("postgres_url")
    return pg
