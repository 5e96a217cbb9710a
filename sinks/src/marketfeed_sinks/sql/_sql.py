"""SQL text of the upserts, shared by the SQLite and PostgreSQL writers.

``INSERT ... ON CONFLICT (key) DO UPDATE SET ... WHERE ...`` has the same syntax on SQLite
(3.24+) and PostgreSQL, so one builder serves both; only a few expressions differ
(``max``/``GREATEST``). Every identifier is quoted (``"foreign"`` and ``"end"`` are
reserved words).
"""

from __future__ import annotations

from ._tables import TableSpec

__all__ = ["conflict_clause", "insert_select_sql", "insert_values_sql", "quote"]


def quote(name: str) -> str:
    """Quote an identifier (our own table/column names only; they contain no quotes)."""
    return '"' + name + '"'


def _columns(spec: TableSpec) -> str:
    return ", ".join(quote(c) for c in spec.columns)


def conflict_clause(spec: TableSpec, dialect: str) -> str:
    """``ON CONFLICT (key) DO NOTHING`` or ``DO UPDATE SET ... [WHERE ...]``."""
    key = ", ".join(quote(k) for k in spec.key)
    if not spec.update:
        return f"ON CONFLICT ({key}) DO NOTHING"
    sets = []
    for column in spec.update:
        custom = spec.custom_set.get(column, {})
        expr = custom.get(dialect) or custom.get("") or f"excluded.{quote(column)}"
        sets.append(f"{quote(column)} = {expr}")
    clause = f"ON CONFLICT ({key}) DO UPDATE SET {', '.join(sets)}"
    if spec.update_where:
        clause += f" WHERE {spec.update_where}"
    return clause


def insert_values_sql(spec: TableSpec, dialect: str, placeholder: str) -> str:
    """One-row upsert for ``executemany`` (``placeholder`` is ``?`` or ``%s``)."""
    marks = ", ".join([placeholder] * len(spec.columns))
    return f"INSERT INTO {quote(spec.name)} ({_columns(spec)}) VALUES ({marks}) " + conflict_clause(
        spec, dialect
    )


def insert_select_sql(spec: TableSpec, source: str) -> str:
    """Upsert every row of the staging table ``source`` (PostgreSQL)."""
    cols = _columns(spec)
    return (
        f"INSERT INTO {quote(spec.name)} ({cols}) SELECT {cols} FROM {quote(source)} "
        + conflict_clause(spec, "postgresql")
    )
