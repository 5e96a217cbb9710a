"""Plugin discovery: entry points, in-process plugins, conflicts, missing names."""

from __future__ import annotations

import marketfeed
import pytest
from marketfeed import PluginError, PluginManager, SinkInfo, VenueInfo


class _Venue:
    def __init__(self, name: str) -> None:
        self.name = name

    @marketfeed.hookimpl
    def register(self, registry: marketfeed.Registry) -> None:
        registry.venue(VenueInfo(name=self.name, channels={"trades": "trade"}))


class _Sink:
    @marketfeed.hookimpl
    def register(self, registry: marketfeed.Registry) -> None:
        registry.sink(SinkInfo(name="null"))


def test_in_process_plugins_are_listed() -> None:
    pm = PluginManager([_Venue("alpha"), _Sink()], entry_points=False)
    assert set(pm.venues) == {"alpha"}
    assert set(pm.sinks) == {"null"}
    assert pm.venue("alpha").capabilities == ("stream",)
    rows = {r["plugin"]: r for r in pm.listing()}
    assert len(rows) == 2


def test_two_plugins_claiming_one_venue_are_refused() -> None:
    pm = PluginManager([_Venue("alpha")], entry_points=False)
    with pytest.raises(PluginError, match="claimed by two plugins"):
        pm.register(_Venue("alpha"), name="second")


def test_unknown_venue_lists_what_is_installed() -> None:
    pm = PluginManager([_Venue("alpha"), _Venue("beta")], entry_points=False)
    with pytest.raises(PluginError) as info:
        pm.venue("gamma")
    assert "gamma" in str(info.value)
    assert "alpha, beta" in str(info.value)
    with pytest.raises(PluginError, match="installed sinks: none"):
        pm.sink("sql")


def test_entry_point_plugins_load() -> None:
    """The third-party test plugin (tests/thirdparty) is installed through its entry point."""
    pm = PluginManager()
    assert "binance_mini" in pm.venues
    row = next(r for r in pm.listing() if r["plugin"] == "binance_mini")
    assert row["distribution"].startswith("marketfeed-binance-mini")
    assert not pm.broken, pm.broken
