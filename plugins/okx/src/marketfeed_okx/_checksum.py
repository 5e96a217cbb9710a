"""OKX order book checksum (CRC32 of the top 25 levels, signed 32-bit).

Source: OKX API v5, "WebSocket > Order book channel > Checksum": join with ``:`` the
top 25 levels interleaved as ``bidPx:bidSz:askPx:askSz:...`` (when one side has fewer
levels, only the other side's entries continue), using the exact strings OKX sent;
the checksum is the CRC32 of that text as a signed 32-bit integer.
"""

from __future__ import annotations

from collections.abc import Sequence
from zlib import crc32

__all__ = ["CHECKSUM_DEPTH", "checksum_text", "okx_checksum"]

CHECKSUM_DEPTH = 25
"""Levels per side that enter the checksum."""


def checksum_text(
    bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]], depth: int = CHECKSUM_DEPTH
) -> str:
    """The text OKX checksums: ``bidPx:bidSz:askPx:askSz:...`` over the top ``depth``.

    Args:
        bids: ``(price, size)`` strings best first (price descending); extra items in
            a level (OKX's ``"0"`` and order count) are ignored.
        asks: ``(price, size)`` strings best first (price ascending).
    """
    parts: list[str] = []
    append = parts.append
    nb = min(len(bids), depth)
    na = min(len(asks), depth)
    for i in range(max(nb, na)):
        if i < nb:
            level = bids[i]
            append(level[0])
            append(level[1])
        if i < na:
            level = asks[i]
            append(level[0])
            append(level[1])
    return ":".join(parts)


def okx_checksum(
    bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]], depth: int = CHECKSUM_DEPTH
) -> int:
    """OKX's checksum of a book given best-first ``(price, size)`` strings per side.

    Returns a signed 32-bit integer, comparable with the ``checksum`` field of OKX
    ``books``/``books-l2-tbt``/``books50-l2-tbt`` pushes.
    """
    value = crc32(checksum_text(bids, asks, depth).encode("ascii"))
    return value - 0x100000000 if value & 0x80000000 else value
