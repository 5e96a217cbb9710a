"""pluggy hook specifications (project name ``marketfeed``).

A plugin is a module (or object) with functions decorated by :data:`hookimpl`, loaded from
the ``marketfeed`` entry-point group or registered in-process. Every hook except
``register`` takes the venue (or sink) name first; an implementation returns ``None`` for
names it does not own, so the first non-``None`` result wins (``firstresult``).

**The await rule.** pluggy calls hooks synchronously. A hook may return a plain value or
an awaitable; the supervisor awaits awaitables ("await me maybe"). ``connect`` returns an
async context manager, which the supervisor enters. ``normalise`` is resolved once per
connection and its returned callable is synchronous (the per-frame hot path).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import pluggy

from ._contract import (
    Connection,
    ConnectionPlan,
    Frame,
    Normaliser,
    PersistResult,
    SubscribeAction,
    Subscription,
    VenueContext,
)
from ._models import Event

PROJECT = "marketfeed"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Decorator for plugin hook implementations: ``@marketfeed.hookimpl``."""


class Registry:
    """Collects what plugins declare in the ``register`` hook."""

    def __init__(self) -> None:
        from ._contract import SinkInfo, VenueInfo

        self.venues: dict[str, tuple[VenueInfo, str]] = {}
        self.sinks: dict[str, tuple[SinkInfo, str]] = {}
        self._current_plugin = "<unknown>"

    def venue(self, info: Any) -> None:
        """Declare a venue (a :class:`VenueInfo`).

        Raises:
            PluginError: another plugin already declared a venue of that name.
        """
        from ._errors import PluginError

        if info.name in self.venues:
            other = self.venues[info.name][1]
            raise PluginError(
                f"venue {info.name!r} is claimed by two plugins: {other!r} and "
                f"{self._current_plugin!r}; uninstall one of them"
            )
        self.venues[info.name] = (info, self._current_plugin)

    def sink(self, info: Any) -> None:
        """Declare a sink type (a :class:`SinkInfo`).

        Raises:
            PluginError: another plugin already declared a sink of that name.
        """
        from ._errors import PluginError

        if info.name in self.sinks:
            other = self.sinks[info.name][1]
            raise PluginError(
                f"sink {info.name!r} is claimed by two plugins: {other!r} and "
                f"{self._current_plugin!r}; uninstall one of them"
            )
        self.sinks[info.name] = (info, self._current_plugin)


class MarketfeedSpec:
    """The hook specifications. Plugin authors implement any subset with ``@hookimpl``."""

    @hookspec
    def register(self, registry: Registry) -> None:
        """Declare venues and sinks: ``registry.venue(VenueInfo(...))``,
        ``registry.sink(SinkInfo(...))``. Called once when plugins load."""

    @hookspec(firstresult=True)
    def plan(
        self, venue: str, subscriptions: Sequence[Subscription], context: VenueContext
    ) -> list[ConnectionPlan] | None:
        """Group a venue's subscriptions into connections (URL per channel family, the
        venue's per-connection subscription limit). Return ``None`` for other venues."""

    @hookspec(firstresult=True)
    def connect(
        self, venue: str, plan: ConnectionPlan, context: VenueContext
    ) -> AbstractAsyncContextManager[Connection] | None:
        """Open one connection for ``plan``: an async context manager yielding a
        :class:`Connection`. Log in here when the venue needs it. Core provides a default
        (``trylast``) that opens ``plan.url`` with ``context.transport``."""

    @hookspec(firstresult=True)
    def subscribe(
        self,
        venue: str,
        subscriptions: Sequence[Subscription],
        action: SubscribeAction,
        context: VenueContext,
    ) -> Sequence[Frame] | None:
        """Frames that (un/re)subscribe ``subscriptions`` on an open connection.

        ``resubscribe`` is asked for one instrument after a failed book; return frames that
        make the venue send a fresh snapshot (e.g. unsubscribe then subscribe). May return
        an awaitable of the frames."""

    @hookspec(firstresult=True)
    def normalise(
        self, venue: str, plan: ConnectionPlan, context: VenueContext
    ) -> Normaliser | None:
        """Return the per-connection normaliser (see :data:`Normaliser`). Called once per
        (re)connection; the returned callable is invoked for every received frame."""

    @hookspec(firstresult=True)
    def open_sink(
        self, sink: str, url: str, options: dict[str, Any]
    ) -> AbstractAsyncContextManager[Any] | None:
        """Open sink ``sink`` at ``url``: an async context manager yielding a handle that
        ``persist`` receives. Return ``None`` for other sink names."""

    @hookspec(firstresult=True)
    def persist(self, sink: str, handle: Any, batch: Sequence[Event]) -> PersistResult | None:
        """Store a batch of events (may return an awaitable of :class:`PersistResult`).

        Must be idempotent (natural keys, upsert). Raise :class:`TransientSinkError` for a
        failure worth retrying (connection lost); return the rows that can never be
        stored in :attr:`PersistResult.rejected` and store the rest."""
