"""The database a sql sink test runs against (a uniquely named module, not ``conftest``,
so ``import`` finds it whichever test folders pytest collects together)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import marketfeed_sinks as ms
import sqlalchemy as sa


@dataclass
class Target:
    """A database to test against: URL, sink options, and an engine for checks."""

    backend: str
    url: str
    schema: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def engine(self) -> sa.Engine:
        return ms.make_engine(self.url, schema=self.schema)

    def count(self, table: str) -> int:
        engine = self.engine()
        try:
            with engine.connect() as conn:
                return int(conn.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar_one())
        finally:
            engine.dispose()

    def rows(self, table: str, order_by: str) -> list[tuple[Any, ...]]:
        engine = self.engine()
        try:
            with engine.connect() as conn:
                result = conn.exec_driver_sql(f'SELECT * FROM "{table}" ORDER BY {order_by}')
                return [tuple(r) for r in result]
        finally:
            engine.dispose()
