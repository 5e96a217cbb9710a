"""The supervisor's status: one source of truth for connections, subscriptions and sinks.

:class:`Status` is a plain msgspec Struct snapshot (JSON-encodable: the CLI's ``status``
command reads the file the supervisor writes; Prometheus metrics read the same numbers).
"""

from __future__ import annotations

import datetime as _dt
import time

import msgspec

__all__ = ["ConnectionStatus", "SinkStatus", "Status", "SubscriptionState"]


class _Rate:
    """Events per second over a sliding window of whole seconds (cheap to update)."""

    __slots__ = ("_buckets", "_window")

    def __init__(self, window: int = 10) -> None:
        self._window = window
        self._buckets: dict[int, int] = {}

    def add(self, n: int = 1, now: float | None = None) -> None:
        second = int(now if now is not None else time.monotonic())
        self._buckets[second] = self._buckets.get(second, 0) + n
        if len(self._buckets) > self._window + 2:
            cutoff = second - self._window
            for key in [k for k in self._buckets if k < cutoff]:
                del self._buckets[key]

    def per_second(self, now: float | None = None) -> float:
        second = int(now if now is not None else time.monotonic())
        total = sum(v for k, v in self._buckets.items() if second - self._window <= k < second)
        return total / self._window


class SubscriptionState(msgspec.Struct, kw_only=True):
    """Live state of one subscription.

    Attributes:
        venue, channel, symbol: The subscription (symbol is the venue's native symbol).
        connection: Name of the connection carrying it.
        state: ``pending`` (sent, not acknowledged), ``active``, ``failed``, ``resyncing``.
        events: Events received since start.
        rate: Events per second over the last 10 s.
        last_event: Receive time of the last event, UTC.
        code, message: The venue's error code and message when failed.
        resyncs: How often the book was resynchronised.
    """

    venue: str
    channel: str
    symbol: str
    connection: str
    state: str = "pending"
    events: int = 0
    rate: float = 0.0
    last_event: _dt.datetime | None = None
    code: str | None = None
    message: str | None = None
    resyncs: int = 0


class ConnectionStatus(msgspec.Struct, kw_only=True):
    """Live state of one venue connection.

    Attributes:
        name, venue, url: Identity (URL without credentials).
        state: As :class:`marketfeed.ConnectionState`.
        frames: Frames received; ``bytes``: their total size.
        rate: Frames per second over the last 10 s.
        last_frame: Receive time of the last frame, UTC.
        malformed: Frames the normaliser rejected (dead-lettered).
        reconnects: Reconnections since start; ``gaps``: Gap events emitted.
        last_error: Why the connection last ended.
    """

    name: str
    venue: str
    url: str
    state: str = "connecting"
    frames: int = 0
    bytes: int = 0
    rate: float = 0.0
    last_frame: _dt.datetime | None = None
    malformed: int = 0
    reconnects: int = 0
    gaps: int = 0
    last_error: str | None = None


class SinkStatus(msgspec.Struct, kw_only=True):
    """Live state of one sink.

    Attributes:
        name, url: Identity (URL without password).
        queue_depth, queue_size: Events waiting in the bounded queue / its capacity.
        spilled: Events overflowed to the spill file, waiting (``overflow = "spill"``);
            ``spilled_total``: all that overflowed since start.
        batches, rows: Batches flushed and rows the sink reported stored.
        retries: Batch retries after failures; ``dead_letters``: events dead-lettered.
        last_flush: When the last batch landed, UTC; ``last_error``: the last failure.
    """

    name: str
    url: str
    queue_depth: int = 0
    queue_size: int = 0
    spilled: int = 0
    spilled_total: int = 0
    batches: int = 0
    rows: int = 0
    retries: int = 0
    dead_letters: int = 0
    last_flush: _dt.datetime | None = None
    last_error: str | None = None


class Status(msgspec.Struct, kw_only=True):
    """A snapshot of the whole supervisor (``Supervisor.status()``)."""

    started: _dt.datetime
    time: _dt.datetime
    running: bool
    connections: list[ConnectionStatus]
    subscriptions: list[SubscriptionState]
    sinks: list[SinkStatus]
    dead_letters: int = 0
    errors: list[str] = []

    def to_json(self) -> bytes:
        """JSON bytes of this snapshot."""
        return msgspec.json.encode(self)
