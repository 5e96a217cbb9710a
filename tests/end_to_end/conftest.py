"""Fixtures of the end-to-end tests: the anyio backend and a fresh PostgreSQL schema.

PostgreSQL: ``MARKETFEED_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Unreachable server: the PostgreSQL test is
skipped with the reason on a developer machine, and FAILS when ``CI`` is set. Each test gets a
fresh schema (``mfe2e_<pid>_<random>``), dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

PG_URL = os.environ.get("MARKETFEED_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _redacted() -> str:
    import sqlalchemy as sa

    return sa.make_url(PG_URL).render_as_string(hide_password=True)


def _unusable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but PostgreSQL is not usable: {reason}", pytrace=False)
    pytest.skip(
        f"PostgreSQL not usable ({reason}); start a server at {_redacted()} "
        "or set MARKETFEED_TEST_POSTGRES_URL"
    )


@pytest.fixture
def postgres_schema() -> Iterator[tuple[str, str]]:
    """``(url, schema)``: a reachable PostgreSQL server and a fresh schema name (the sink
    creates it); the schema is dropped after the test."""
    try:
        import psycopg
    except ImportError:
        _unusable("psycopg is not installed: pip install 'marketfeed-sinks[postgresql]'")
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        _unusable(f"{_redacted()}: {type(exc).__name__}: {exc}".strip())
    schema = f"mfe2e_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        yield PG_URL, schema
    finally:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
