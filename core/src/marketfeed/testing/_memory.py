"""An in-process sink plugin that keeps events in memory, for tests and host apps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import anyio

from .._contract import PersistResult, SinkInfo
from .._errors import ConfigError, TransientSinkError
from .._hookspecs import Registry, hookimpl
from .._models import Event, event_kind

__all__ = ["MemorySink"]

_SCHEME = "memory://"


class _MemoryHandle:
    """The handle ``open_sink`` yields: one named store plus the test options."""

    def __init__(self, name: str, *, delay: float, fail_times: int, reject: frozenset[str]) -> None:
        self.name = name
        self.delay = delay
        self.fail_times = fail_times
        self.reject = reject
        self.failures = 0

    async def persist(self, batch: Sequence[Event]) -> PersistResult:
        gate = MemorySink.holds.get(self.name)
        if gate is not None:
            await gate.wait()
        if self.delay > 0:
            await anyio.sleep(self.delay)
        if self.failures < self.fail_times:
            self.failures += 1
            raise TransientSinkError(
                f"memory sink {self.name!r}: injected failure {self.failures} of "
                f"{self.fail_times} (option fail_times)"
            )
        stored: list[Event] = []
        rejected: list[tuple[Event, str]] = []
        for event in batch:
            kind = event_kind(type(event))
            if kind in self.reject:
                rejected.append((event, f"memory sink rejects {kind!r} events (option reject)"))
            else:
                stored.append(event)
        MemorySink.stores.setdefault(self.name, []).extend(stored)
        MemorySink.batches.setdefault(self.name, []).append(len(batch))
        return PersistResult(stored=len(stored), rejected=rejected)


class MemorySink:
    """Sink plugin ``memory``: events kept in :attr:`stores`, per store name.

    Register it in-process: ``PluginManager([MemorySink()])`` or
    ``Supervisor(config, plugins=[MemorySink()])``; configure it with
    ``[[sinks]] type = "memory"``, ``url = "memory://NAME"``. Every persisted batch is
    appended to ``MemorySink.stores[NAME]`` (a class-level dict shared by all instances;
    :meth:`clear` empties it).

    Options (``[[sinks]]`` keys besides ``type`` and ``url``), to test the supervisor:

    * ``delay``: seconds slept per batch (a slow sink);
    * ``fail_times``: raise :class:`marketfeed.TransientSinkError` for this many batches
      first (per opened sink);
    * ``reject``: event kinds (``["ticker"]``, or ``"ticker,trade"``) returned in
      :attr:`PersistResult.rejected` with a reason instead of being stored.
    """

    stores: ClassVar[dict[str, list[Event]]] = {}
    """Store name -> events persisted, in order."""
    batches: ClassVar[dict[str, list[int]]] = {}
    """Store name -> size of every batch received (rejected events included)."""
    holds: ClassVar[dict[str, anyio.Event]] = {}
    """Store name -> the event its batches wait for (see :meth:`hold`)."""

    @classmethod
    def hold(cls, name: str) -> anyio.Event:
        """Make store ``name`` wait, before persisting each batch, until the returned event
        is set: a sink that takes nothing for as long as a test needs (to fill a queue
        without depending on timing). Call it inside the running event loop.

        Returns:
            The ``anyio.Event`` to set; :meth:`clear` forgets it.
        """
        gate = anyio.Event()
        cls.holds[name] = gate
        return gate

    @classmethod
    def clear(cls, name: str | None = None) -> None:
        """Forget the events of store ``name`` (all stores when ``None``)."""
        if name is None:
            cls.stores.clear()
            cls.batches.clear()
            cls.holds.clear()
        else:
            cls.stores.pop(name, None)
            cls.batches.pop(name, None)
            cls.holds.pop(name, None)

    @classmethod
    def events(cls, name: str) -> list[Event]:
        """Events of store ``name`` (empty when nothing was stored yet)."""
        return cls.stores.get(name, [])

    @hookimpl
    def register(self, registry: Registry) -> None:
        """Declare the ``memory`` sink."""
        registry.sink(
            SinkInfo(
                name="memory",
                description="In-process test sink: events kept in MemorySink.stores[NAME]",
                url_schemes=("memory",),
            )
        )

    @hookimpl
    def open_sink(self, sink: str, url: str, options: dict[str, Any]) -> Any:
        """Open ``memory://NAME``; ``None`` for other sinks.

        Raises:
            ConfigError: the URL is not ``memory://NAME`` or an option is invalid.
        """
        if sink != "memory":
            return None
        handle = _make_handle(url, options)

        @asynccontextmanager
        async def _open() -> AsyncIterator[_MemoryHandle]:
            MemorySink.stores.setdefault(handle.name, [])
            yield handle

        return _open()

    @hookimpl
    def persist(self, sink: str, handle: Any, batch: Sequence[Event]) -> Any:
        """Append ``batch`` to the handle's store (an awaitable of
        :class:`PersistResult`); ``None`` for other sinks.

        Raises:
            TransientSinkError: while ``fail_times`` injected failures remain.
        """
        if sink != "memory" or not isinstance(handle, _MemoryHandle):
            return None
        return handle.persist(batch)


def _make_handle(url: str, options: Mapping[str, Any]) -> _MemoryHandle:
    if not url.startswith(_SCHEME) or not url[len(_SCHEME) :]:
        raise ConfigError("sinks.url", f"memory sink URL must be memory://NAME, got {url!r}")
    name = url[len(_SCHEME) :]
    try:
        delay = float(options.get("delay", 0.0))
        fail_times = int(options.get("fail_times", 0))
    except (TypeError, ValueError) as exc:
        raise ConfigError("sinks.options", f"memory sink: bad delay/fail_times: {exc}") from None
    raw = options.get("reject", ())
    kinds: Iterable[Any] = raw.split(",") if isinstance(raw, str) else raw
    reject = frozenset(str(k).strip() for k in kinds if str(k).strip())
    return _MemoryHandle(name, delay=delay, fail_times=fail_times, reject=reject)
