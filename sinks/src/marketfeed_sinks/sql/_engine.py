"""URLs and SQLAlchemy engines for the ``sql`` sink.

Accepted URLs:

* ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (the default is
  ``sqlite:///marketfeed.db``; the parent folder is created when missing);
* ``postgresql://user@host:port/db`` (also ``postgres://`` and ``postgresql+psycopg://``),
  always driven by psycopg 3 (``pip install marketfeed-sinks[postgresql]``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from marketfeed import ConfigError
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

__all__ = ["DEFAULT_URL", "backend_of", "make_engine", "normalise_url", "redact"]

DEFAULT_URL = "sqlite:///marketfeed.db"
"""Where the sink writes when no sink is configured."""

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_PG_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg", "postgres+psycopg"}


def normalise_url(url: str | URL) -> URL:
    """Parse ``url`` and pin the driver: ``postgresql://`` uses psycopg 3.

    Raises:
        ConfigError: the URL cannot be parsed or names another database or driver.
    """
    try:
        parsed = sa.make_url(url) if isinstance(url, str) else url
    except Exception as exc:
        raise ConfigError("sinks.url", f"not a database URL ({exc})") from None
    driver = parsed.drivername
    if driver in _PG_DRIVERS:
        return parsed.set(drivername="postgresql+psycopg")
    if driver in ("sqlite", "sqlite+pysqlite"):
        if parsed.database in (None, "", ":memory:"):
            raise ConfigError(
                "sinks.url",
                "an in-memory SQLite database would lose everything at exit and cannot be "
                "shared by the writer thread; give a file, e.g. sqlite:///marketfeed.db",
            )
        return parsed.set(drivername="sqlite")
    raise ConfigError(
        "sinks.url",
        f"the sql sink supports sqlite:// and postgresql:// URLs, not {driver}://",
    )


def backend_of(url: URL) -> str:
    """``"sqlite"`` or ``"postgresql"``."""
    return "sqlite" if url.drivername.startswith("sqlite") else "postgresql"


def redact(url: str | URL) -> str:
    """The URL with its password masked, for logs and error messages."""
    try:
        parsed = sa.make_url(url) if isinstance(url, str) else url
        return parsed.render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


def check_schema_name(schema: str | None) -> str | None:
    """Validate a PostgreSQL schema name (a plain identifier).

    Raises:
        ConfigError: not a plain identifier.
    """
    if schema is None:
        return None
    if not _IDENT.match(schema):
        raise ConfigError(
            "sinks.options.schema",
            f"{schema!r} is not a plain identifier (letters, digits, underscore)",
        )
    return schema


def make_engine(
    url: str | URL = DEFAULT_URL, *, schema: str | None = None, connect_timeout: float = 10.0
) -> Engine:
    """A SQLAlchemy engine for a marketfeed database (what the query helpers accept).

    Args:
        url: ``sqlite:///...`` or ``postgresql://...`` (psycopg 3 is used).
        schema: PostgreSQL schema holding the tables (sets ``search_path``); ``None`` for
            the server default (``public``). Ignored for SQLite.
        connect_timeout: Seconds to wait for a PostgreSQL connection.

    Connections are not pooled (``NullPool``): the sink holds its one connection itself and
    the query helpers are occasional readers.

    Raises:
        ConfigError: unsupported URL or bad schema name.
    """
    parsed = normalise_url(url)
    schema = check_schema_name(schema)
    connect_args: dict[str, Any]
    if backend_of(parsed) == "sqlite":
        path = Path(parsed.database or "")
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"check_same_thread": False, "timeout": 10.0}
    else:
        options = "-c TimeZone=UTC"
        if schema:
            options += f" -c search_path={schema}"
        connect_args = {
            "connect_timeout": max(1, round(connect_timeout)),
            "options": options,
            "application_name": "marketfeed-sql-sink",
        }
    return sa.create_engine(parsed, poolclass=NullPool, connect_args=connect_args)
