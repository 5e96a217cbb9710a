"""The local dead-letter file: JSON Lines of :class:`DeadLetter` records.

Used for what no sink could store (a sink that never recovered before shutdown, a sink
that does not accept dead letters). One JSON object per line, appended and flushed at once.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from pathlib import Path

import msgspec

from ._models import DeadLetter, Event

__all__ = ["DeadLetterFile", "dead_letter_for", "read_dead_letters"]

_encoder = msgspec.json.Encoder(decimal_format="string")


def dead_letter_for(
    *, venue: str, source: str, reason: str, payload: str | bytes | Event, attempts: int = 1
) -> DeadLetter:
    """Build a :class:`DeadLetter` for a raw frame (``str``/``bytes``) or an event (stored
    as its JSON encoding, decodable with ``msgspec.json.decode(payload, type=Event)``)."""
    now = _dt.datetime.now(_dt.UTC)
    if isinstance(payload, bytes):
        text = payload.decode("utf-8", errors="backslashreplace")
    elif isinstance(payload, str):
        text = payload
    else:
        text = _encoder.encode(payload).decode()
    return DeadLetter(
        venue=venue,
        source=source,
        reason=reason,
        payload=text,
        first_failure=now,
        last_failure=now,
        attempts=attempts,
    )


class DeadLetterFile:
    """Appends dead letters to ``path`` (created with its folder on first write)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.written = 0

    def write(self, letters: Iterable[DeadLetter]) -> int:
        """Append ``letters``; returns how many were written.

        Raises:
            OSError: the file cannot be written (the caller logs it loudly).
        """
        data = b"".join(_encoder.encode(letter) + b"\n" for letter in letters)
        if not data:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as fh:
            fh.write(data)
        n = data.count(b"\n")
        self.written += n
        return n


def read_dead_letters(path: str | Path) -> list[DeadLetter]:
    """Read a dead-letter file back (empty list when it does not exist)."""
    p = Path(path)
    if not p.exists():
        return []
    decoder = msgspec.json.Decoder(DeadLetter)
    return [decoder.decode(line) for line in p.read_bytes().splitlines() if line.strip()]
