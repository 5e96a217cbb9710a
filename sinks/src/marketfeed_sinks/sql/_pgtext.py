"""PostgreSQL text-format ``COPY`` data built in Python, one buffer per chunk of rows.

Why (measured, see README): psycopg's binary ``NUMERIC`` dumper costs about 0.5 to 1 µs
per decimal (``Decimal.as_tuple()``), while ``str(Decimal)`` costs about 40 ns and is exact:
PostgreSQL's ``numeric_in`` reads ``"2.2E-7"``, ``"0E-8"`` or ``"123.45600000"`` back with
the same value and scale. So the rows are formatted with one generated f-string per
table and joined into one string per chunk.

Format (PostgreSQL docs, *COPY*, "Text Format"): columns separated by a tab, rows ended by
a newline, ``\\N`` for NULL; a backslash, tab, newline or carriage return inside a value
must be escaped. Values:

* text: as is (escaped when needed, see below);
* decimal: ``str(value)``; any other number: ``str`` too (a float's shortest repr, as
  ``decimal_text`` does for SQLite);
* timestamp: ``2022-05-13 16:27:05.298000+00``, in UTC; a naive datetime is UTC, an aware
  one in another zone is converted (``timestamp_copy_text``: about 3x faster than
  ``isoformat()``). Each distinct timestamp is still formatted only once per chunk
  (trades of one push share a receive time, and many trades share an event time);
* date: ISO ``YYYY-MM-DD``; bool: ``True``/``False`` (PostgreSQL's ``boolin`` accepts
  both); int: decimal digits.

Escaping without a per-value cost: the fast encoder writes every value unescaped, then
checks the whole chunk. It knows how many tabs (``rows * (columns - 1)``), newlines
(``rows``) and backslashes (one per NULL, counted in the tuples) it wrote itself. Any
value that contains one of those characters (or a carriage return) makes a count differ,
and the chunk is then rebuilt by the careful encoder, which escapes every value. A value
equal to ``\\N`` contains a backslash, so it can never pass for a NULL either.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer

from ._tables import TableSpec

__all__ = ["NULL", "TextEncoder", "copy_kinds", "timestamp_copy_text"]

NULL = "\\N"
"""Text ``COPY``'s NULL marker."""

_UTC = _dt.UTC
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


_PAD2 = [f"{i:02d}" for i in range(100)]
_PAD3 = [f"{i:03d}" for i in range(1000)]
_DAYS: dict[int, str] = {}
_DAYS_MAX = 100_000


def _day_text(value: _dt.datetime) -> str:
    if len(_DAYS) >= _DAYS_MAX:
        _DAYS.clear()
    text = _DAYS[value.toordinal()] = value.date().isoformat()
    return text


def timestamp_copy_text(value: _dt.datetime) -> str:
    """Text ``COPY`` form of a timestamp, in UTC: ``2022-05-13 16:27:05.298000+00``.

    A naive datetime is taken as UTC (as everywhere in marketfeed); an aware one in
    another zone is converted first. About 3x faster than ``isoformat()``: the date part
    comes from a cache by day, the rest from tables of zero-padded numbers.

    Raises:
        TypeError: ``value`` is not a datetime.
    """
    if not isinstance(value, _dt.datetime):
        raise TypeError(f"not a datetime: {value!r}")
    tz = value.tzinfo
    if tz is not _UTC and tz is not None:
        value = value.astimezone(_UTC)
    us = value.microsecond
    pad = _PAD2
    return (
        f"{_DAYS.get(value.toordinal()) or _day_text(value)} "
        f"{pad[value.hour]}:{pad[value.minute]}:{pad[value.second]}."
        f"{_PAD3[us // 1000]}{_PAD3[us % 1000]}+00"
    )


def copy_kinds(spec: TableSpec) -> tuple[str, ...]:
    """Per column of ``spec``: ``"ts"``, ``"dec"``, ``"date"``, ``"int"``, ``"bool"``,
    ``"text"``."""
    out = []
    for column, kind in zip(spec.columns, spec.kinds, strict=True):
        if kind:
            out.append(kind)
            continue
        t = spec.table.columns[column].type
        if isinstance(t, Boolean):
            out.append("bool")
        elif isinstance(t, (Integer, BigInteger)):
            out.append("int")
        else:
            out.append("text")
    return tuple(out)


def _careful_value(kind: str, value: Any) -> str:
    if value is None:
        return NULL
    if kind == "ts":
        return timestamp_copy_text(value)
    return str(value).translate(_ESCAPES)


class TextEncoder:
    """Encodes rows of one table (tuples in ``spec.columns`` order) as text ``COPY``
    data.

    ``encoder(rows, cache=None) -> bytes`` (UTF-8). Raises ``UnicodeEncodeError`` (a ``ValueError``)
    for a string that UTF-8 cannot encode (a lone surrogate), ``ValueError`` for a row
    of the wrong length, and whatever a value's ``str`` raises: the writer treats those
    as poison rows.
    """

    def __init__(self, spec: TableSpec) -> None:
        self.kinds = copy_kinds(spec)
        self.width = len(self.kinds)
        self._nullable = [
            itemgetter(i) for i, c in enumerate(spec.columns) if spec.table.columns[c].nullable
        ]
        self._fast = self._compile()

    def _compile(self) -> Callable[..., str]:
        fields = []
        for i, kind in enumerate(self.kinds):
            v = f"c{i}"
            if kind == "ts":
                fields.append(f"{{get({v}) or ts({v})}}")
            elif kind in ("dec", "date"):
                fields.append(f"{{NULL if {v} is None else {v}!s}}")
            else:
                fields.append(f"{{NULL if {v} is None else {v}}}")
        names = ", ".join(f"c{i}" for i in range(self.width))
        row = "\\t".join(fields)
        target = names + ("," if self.width == 1 else "")
        source = (
            f'def fast(rows, get, ts):\n    return "".join([f"{row}\\n" for {target} in rows])\n'
        )
        namespace: dict[str, Any] = {"NULL": NULL}
        exec(source, namespace)
        fast: Callable[..., str] = namespace["fast"]
        return fast

    def __call__(self, rows: list[tuple[Any, ...]], cache: dict[Any, str] | None = None) -> bytes:
        """The text ``COPY`` data of ``rows``. ``cache`` (timestamp -> text) may be shared
        by the chunks of one batch, so a timestamp is formatted once per batch."""
        if cache is None:
            cache = {}
        cache[None] = NULL
        day, pad, pad3 = _DAYS.get, _PAD2, _PAD3

        def ts(value: Any) -> str:
            # timestamp_copy_text, inlined for the common aware-UTC case (one call less).
            if getattr(value, "tzinfo", None) is _UTC:
                us = value.microsecond
                text = cache[value] = (
                    f"{day(value.toordinal()) or _day_text(value)} "
                    f"{pad[value.hour]}:{pad[value.minute]}:{pad[value.second]}."
                    f"{pad3[us // 1000]}{pad3[us % 1000]}+00"
                )
            else:
                text = cache[value] = timestamp_copy_text(value)
            return text

        text = self._fast(rows, cache.get, ts)
        n = len(rows)
        # NULLs of nullable columns; a None in a NOT NULL column makes the count differ,
        # and the careful encoder writes it as NULL too (the database then refuses it).
        nulls = sum([list(map(column, rows)).count(None) for column in self._nullable])
        if (
            text.count("\t") != n * (self.width - 1)
            or text.count("\n") != n
            or text.count("\\") != nulls
            or "\r" in text
        ):
            text = self.careful(rows)
        return text.encode()

    def careful(self, rows: list[tuple[Any, ...]]) -> str:
        """Every value escaped (the slow path for chunks with special characters)."""
        kinds = self.kinds
        width = self.width
        lines = []
        for row in rows:
            if len(row) != width:
                raise ValueError(f"row has {len(row)} values, expected {width}")
            lines.append(
                "\t".join([_careful_value(k, v) for k, v in zip(kinds, row, strict=True)]) + "\n"
            )
        return "".join(lines)
