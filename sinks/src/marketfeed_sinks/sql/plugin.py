"""pluggy hooks of the ``sql`` sink (entry point ``sql`` in group ``marketfeed``)."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import marketfeed as mf

from ._handle import SqlSinkHandle, open_sql_sink
from ._tables import SKIPPED_KINDS, TABLES

__all__ = ["SINK_INFO", "open_sink", "persist", "register"]

SINK_INFO = mf.SinkInfo(
    name="sql",
    description=(
        "SQLite (default sqlite:///marketfeed.db) or month-partitioned PostgreSQL via "
        "SQLModel; idempotent bulk upserts, dead_letter table. Not stored: "
        + ", ".join(SKIPPED_KINDS)
    ),
    url_schemes=("sqlite", "postgresql", "postgresql+psycopg"),
    accepts=tuple(TABLES),
)
"""What ``marketfeed plugins`` lists; ``accepts`` are the stored event kinds."""


@mf.hookimpl
def register(registry: mf.Registry) -> None:
    """Declare the ``sql`` sink."""
    registry.sink(SINK_INFO)


@mf.hookimpl
def open_sink(
    sink: str, url: str, options: dict[str, Any]
) -> AbstractAsyncContextManager[SqlSinkHandle] | None:
    """Open the sink: an async context manager yielding a :class:`SqlSinkHandle`
    (see ``open_sql_sink`` for errors). ``None`` for other sink names."""
    if sink != "sql":
        return None
    return open_sql_sink(url, options)


@mf.hookimpl
def persist(
    sink: str, handle: Any, batch: Sequence[mf.Event]
) -> Awaitable[mf.PersistResult] | None:
    """Store a batch: returns an awaitable of ``PersistResult`` (raises
    ``TransientSinkError`` on connection failures). ``None`` for other sink names."""
    if sink != "sql":
        return None
    assert isinstance(handle, SqlSinkHandle), f"not a sql sink handle: {handle!r}"
    return handle.persist(batch)
