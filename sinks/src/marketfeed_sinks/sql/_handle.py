"""The async face of the sink: ``open_sql_sink`` and :class:`SqlSinkHandle`.

All database work runs in a worker thread (``anyio.to_thread.run_sync``), one call at a
time per handle (an ``anyio.Lock``), so the event loop is never blocked by the driver.
A cancelled ``persist`` still waits for its thread to finish the transaction, so the
connection is never used by two threads at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
import marketfeed as mf

from ._engine import DEFAULT_URL, backend_of, normalise_url
from ._writer import SqlOptions, Writer

__all__ = ["SqlSinkHandle", "open_sql_sink", "parse_options"]


def parse_options(options: Mapping[str, Any] | None) -> SqlOptions:
    """Decode the sink's ``options`` table.

    Raises:
        ConfigError: unknown key or wrong type (the message names ``sinks.options.KEY``).
    """
    return mf.convert_config(dict(options or {}), SqlOptions, path="sinks.options")


def _writer_for(url: str, options: SqlOptions) -> Writer:
    parsed = normalise_url(url)
    if backend_of(parsed) == "sqlite":
        from ._sqlite import SqliteWriter

        return SqliteWriter(parsed, options)
    from ._postgres import PostgresWriter

    return PostgresWriter(parsed, options)


class SqlSinkHandle:
    """An open ``sql`` sink: what ``open_sink`` yields and ``persist`` receives.

    Attributes:
        url: The database URL with any password masked.
        backend: ``"sqlite"`` or ``"postgresql"``.
        engine: SQLAlchemy engine of the database (for the query helpers).
        schema_version: Layout version in use.
    """

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self._lock = anyio.Lock()
        self.url = writer.where
        self.backend = writer.backend
        self.engine = writer.engine
        self.schema_version = writer.schema_version
        self.options = writer.options

    def __repr__(self) -> str:
        return f"SqlSinkHandle({self.url!r}, backend={self.backend!r})"

    async def persist(self, batch: Sequence[mf.Event]) -> mf.PersistResult:
        """Store a batch without blocking the event loop.

        Returns:
            ``PersistResult``: ``stored`` events now in the database; ``rejected`` poison
            events with the database's reason (already written to ``dead_letter``).

        Raises:
            TransientSinkError: connection lost / server restarting / database locked;
                retry the same batch (the next call reconnects).
        """
        events = list(batch)
        async with self._lock:
            return await anyio.to_thread.run_sync(self._writer.persist, events)

    async def aclose(self) -> None:
        """Close the connection."""
        async with self._lock:
            await anyio.to_thread.run_sync(self._writer.close)


@asynccontextmanager
async def open_sql_sink(
    url: str = DEFAULT_URL, options: Mapping[str, Any] | None = None
) -> AsyncIterator[SqlSinkHandle]:
    """Open the ``sql`` sink at ``url``: create or check the schema, connect, yield a handle.

    Args:
        url: ``sqlite:///path.db`` (default ``sqlite:///marketfeed.db``) or
            ``postgresql://user@host:port/db``.
        options: See :class:`SqlOptions` (``schema``, ``book_depth``, ``book_interval``,
            ``pg_bulk``, ``connect_timeout``).

    Raises:
        ConfigError: bad URL or options.
        SchemaVersionError: the database holds a newer (or foreign) schema.
        TransientSinkError: the database cannot be reached now.
    """
    opts = parse_options(options)
    writer = _writer_for(url, opts)
    try:
        await anyio.to_thread.run_sync(writer.open)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(writer.close)
        raise
    handle = SqlSinkHandle(writer)
    try:
        yield handle
    finally:
        with anyio.CancelScope(shield=True):
            await handle.aclose()
