"""Plugin discovery and the registry of venues and sinks."""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pluggy

from ._contract import Connection, ConnectionPlan, SinkInfo, Subscription, VenueContext, VenueInfo
from ._errors import PluginError
from ._hookspecs import PROJECT, MarketfeedSpec, Registry, hookimpl

__all__ = ["ENTRY_POINT_GROUP", "PluginManager"]

log = logging.getLogger("marketfeed.plugins")

ENTRY_POINT_GROUP = "marketfeed"
"""The entry-point group plugins register under (``[project.entry-points.marketfeed]``)."""


class _CoreDefaults:
    """Core's fallback hook implementations (``trylast``): one connection per venue at its
    first endpoint, opened with the configured transport."""

    @hookimpl(trylast=True)
    def plan(
        self, venue: str, subscriptions: Sequence[Subscription], context: VenueContext
    ) -> list[ConnectionPlan] | None:
        if not context.endpoints:
            return None
        url = context.endpoints.get("ws") or next(iter(context.endpoints.values()))
        return [ConnectionPlan(name=f"{venue}/0", url=url, subscriptions=tuple(subscriptions))]

    @hookimpl(trylast=True)
    def connect(self, venue: str, plan: ConnectionPlan, context: VenueContext) -> Any:
        @asynccontextmanager
        async def _open() -> AsyncIterator[Connection]:
            async with context.transport.connect(plan.url, headers=plan.headers) as conn:
                yield conn

        return _open()


class PluginManager:
    """Loads plugins and answers what they provide.

    Args:
        plugins: In-process plugin objects or modules to register (tests, host apps).
        entry_points: Load the ``marketfeed`` entry-point group (installed plugins).

    An installed plugin that fails to import is skipped (logged, and kept in
    :attr:`broken` with the reason) so the others keep working; asking for one of its
    venues then raises a :class:`PluginError` that includes the import failure.

    Raises:
        PluginError: two plugins claim one venue or sink name.
    """

    def __init__(self, plugins: Iterable[object] = (), *, entry_points: bool = True) -> None:
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(MarketfeedSpec)
        self._pm.register(_CoreDefaults(), name="marketfeed.core")
        self._dists: dict[str, str] = {}
        self.broken: dict[str, str] = {}
        """Entry-point name -> why it failed to import (it is skipped, others work)."""
        if entry_points:
            self._load_entry_points()
        for plugin in plugins:
            self.register(plugin)
        self._registry: Registry | None = None

    def _load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if self._pm.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                dist = ep.dist.name if ep.dist else "?"
                message = (
                    f"plugin {ep.name!r} (distribution {dist}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                )
                log.error("%s", message)
                self.broken[ep.name] = message
                continue
            self._pm.register(plugin, name=ep.name)
            if ep.dist is not None:
                self._dists[ep.name] = f"{ep.dist.name} {ep.dist.version}"

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register an in-process plugin; returns its name.

        Raises:
            PluginError: it declares a venue or sink name that is already taken.
        """
        registered = self._pm.register(plugin, name=name)
        if registered is None:
            raise PluginError(f"plugin {name or plugin!r} is already registered")
        self._registry = None
        self.registry  # noqa: B018 - validate now so a conflict is reported at once
        return registered

    @property
    def hook(self) -> Any:
        """The pluggy hook relay (``pm.hook.normalise(...)``)."""
        return self._pm.hook

    @property
    def registry(self) -> Registry:
        """Venues and sinks declared by every registered plugin."""
        if self._registry is None:
            registry = Registry()
            for impl in reversed(self._pm.hook.register.get_hookimpls()):
                registry._current_plugin = impl.plugin_name
                impl.function(registry=registry)
            self._registry = registry
        return self._registry

    @property
    def venues(self) -> dict[str, VenueInfo]:
        """Venue name -> :class:`VenueInfo`."""
        return {name: info for name, (info, _) in self.registry.venues.items()}

    @property
    def sinks(self) -> dict[str, SinkInfo]:
        """Sink name -> :class:`SinkInfo`."""
        return {name: info for name, (info, _) in self.registry.sinks.items()}

    def venue(self, name: str) -> VenueInfo:
        """The venue ``name``.

        Raises:
            PluginError: no installed plugin provides it (the message lists what is).
        """
        try:
            return self.registry.venues[name][0]
        except KeyError:
            hint = self.broken.get(name, f"pip install marketfeed-{name.replace('_', '-')}?")
            raise PluginError(
                f"no plugin provides venue {name!r}; installed venues: "
                f"{', '.join(sorted(self.registry.venues)) or 'none'} ({hint})"
            ) from None

    def sink(self, name: str) -> SinkInfo:
        """The sink type ``name``.

        Raises:
            PluginError: no installed plugin provides it (the message lists what is).
        """
        try:
            return self.registry.sinks[name][0]
        except KeyError:
            raise PluginError(
                f"no plugin provides sink {name!r}; installed sinks: "
                f"{', '.join(sorted(self.registry.sinks)) or 'none'}"
            ) from None

    def listing(self) -> list[dict[str, Any]]:
        """One row per plugin: ``{"plugin", "distribution", "venues", "sinks"}``."""
        rows: dict[str, dict[str, Any]] = {}
        for name, (venue_info, plugin) in self.registry.venues.items():
            rows.setdefault(plugin, {"venues": [], "sinks": []})["venues"].append(venue_info)
            del name
        for _name, (sink_info, plugin) in self.registry.sinks.items():
            rows.setdefault(plugin, {"venues": [], "sinks": []})["sinks"].append(sink_info)
        return [
            {"plugin": plugin, "distribution": self._dists.get(plugin, "(in-process)"), **row}
            for plugin, row in sorted(rows.items())
        ]
