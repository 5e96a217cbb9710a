"""Disk spill for a sink queue (``supervisor.overflow = "spill"``).

When a sink's bounded queue is full, events are appended to a JSON Lines file instead of
making the receive loop wait; the sink worker reads them back, in order, once the queue
has drained. While anything is spilled, new events are spilled too, so the sink sees
events in arrival order. The file survives a restart: events left on disk at shutdown are
replayed first the next time the sink opens. The read position is not persisted, so a
restart replays the whole file: delivery is at least once, which the sinks' natural-key
upserts make exactly-once in storage. Memory stays bounded either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import IO

import msgspec

from ._models import Event

__all__: list[str] = []

_encoder = msgspec.json.Encoder(decimal_format="string")
_decoder = msgspec.json.Decoder(Event)


class SpillFile:
    """An append-only JSON Lines queue of events on disk.

    Args:
        path: The file (its folder is created on first write).

    Attributes:
        pending: Events written and not yet read back.
        written: Events written since this object was created.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.pending = 0
        self.written = 0
        self._reader: IO[bytes] | None = None
        self._writer: IO[bytes] | None = None
        if self.path.exists():
            with self.path.open("rb") as fh:
                self.pending = sum(1 for line in fh if line.strip())
            if not self.pending:
                self.path.unlink()

    def append(self, events: Iterable[Event]) -> int:
        """Append events; returns how many.

        Raises:
            OSError: the file cannot be written.
        """
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = self.path.open("ab")
        n = 0
        for ev in events:
            self._writer.write(_encoder.encode(ev) + b"\n")
            n += 1
        self._writer.flush()
        self.pending += n
        self.written += n
        return n

    def read(self, limit: int) -> list[Event]:
        """Read back up to ``limit`` events in order; the file is removed once empty.

        Raises:
            msgspec.DecodeError: the file was corrupted.
        """
        if not self.pending:
            return []
        if self._reader is None:
            self._reader = self.path.open("rb")
        out: list[Event] = []
        while len(out) < limit:
            line = self._reader.readline()
            if not line:
                break
            if line.strip():
                out.append(_decoder.decode(line))
        self.pending -= len(out)
        if self.pending <= 0:
            self.pending = 0
            self.close()
            self.path.unlink(missing_ok=True)
        return out

    def close(self) -> None:
        """Close the file handles (the file and its unread events stay on disk)."""
        for fh in (self._reader, self._writer):
            if fh is not None:
                fh.close()
        self._reader = self._writer = None
