"""The example configs name only channels, options and keys the installed plugins accept
(checked offline: nothing connects to a venue)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from e2e_support import LIVE_CONFIG, REPLAY_CONFIG
from marketfeed import (
    ConfigError,
    PluginManager,
    RateLimiters,
    Subscription,
    Supervisor,
    VenueContext,
    convert_config,
    get_transport,
    load_config,
)
from marketfeed_sinks import open_sql_sink

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("path", [LIVE_CONFIG, REPLAY_CONFIG], ids=lambda p: p.name)
async def test_example_config_is_accepted_by_the_plugins(path: Path, tmp_path: Path) -> None:
    cfg = load_config(path, env={})
    pm = PluginManager()
    subs: dict[str, list[Subscription]] = {}
    for i, group in enumerate(cfg.subscriptions):
        info = pm.venue(group.venue)
        unknown = [c for c in group.channels if c not in info.channels]
        assert not unknown, f"subscriptions[{i}]: {group.venue} has no channel {unknown}"
        subs.setdefault(group.venue, []).extend(
            Subscription(venue=group.venue, channel=c, symbol=s, options=group.options)
            for c in group.channels
            for s in group.symbols
        )
    assert set(subs) == {"okx", "upbit"}
    for venue, venue_subs in subs.items():
        info = pm.venue(venue)
        vcfg = cfg.venues.get(venue)
        options = dict(vcfg.options) if vcfg else {}
        endpoints = {**info.endpoints, **(vcfg.endpoints if vcfg else {})}
        assert set(endpoints) == set(info.endpoints), f"{venue}: unknown endpoint names"
        assert info.config_schema is not None
        context = VenueContext(
            venue=venue,
            config=convert_config(options, info.config_schema, path=f"venues.{venue}"),
            endpoints=endpoints,
            transport=get_transport("httpx-ws"),
            limiters=RateLimiters(),
            http=httpx.AsyncClient,
        )
        plans = pm.hook.plan(venue=venue, subscriptions=venue_subs, context=context)
        planned = {s.key for plan in plans for s in plan.subscriptions}
        assert planned == {s.key for s in venue_subs}
    (sink,) = cfg.sinks
    assert sink.type in pm.sinks
    assert set(sink.events) <= set(pm.sinks[sink.type].accepts)
    async with open_sql_sink(f"sqlite:///{tmp_path / 'check.db'}", sink.options):
        pass  # the sink accepts the example's options


async def test_a_misspelt_channel_in_the_example_is_reported_with_its_key_path(
    tmp_path: Path,
) -> None:
    """As the example's header promises: the error names the key path (raised while
    validating, before anything connects)."""
    bad = tmp_path / "bad.toml"
    bad.write_text(LIVE_CONFIG.read_text().replace('"candle1Dutc"', '"candle1Day"'))
    with pytest.raises(ConfigError) as caught:
        async with Supervisor(load_config(bad)):
            raise AssertionError("the supervisor must not start")
    assert caught.value.path == "subscriptions[2].channels[4]"
    assert "candle1Day" in str(caught.value)
