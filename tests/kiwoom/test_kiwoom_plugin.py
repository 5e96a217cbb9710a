"""Registration, endpoints, config schema and credentials."""

from __future__ import annotations

import pytest
from marketfeed import ConfigError, PluginManager, RateLimiters, convert_config
from marketfeed_kiwoom import ENV_APP_KEY, ENV_SECRET_KEY, KiwoomConfig, client_for
from marketfeed_kiwoom.plugin import ENDPOINTS


def test_registered_through_the_entry_point() -> None:
    info = PluginManager().venue("kiwoom")
    assert info.channels == {"0B": "trade", "0D": "book_snapshot"}
    assert info.endpoints == {
        "rest": "https://api.kiwoom.com",
        "mock_rest": "https://mockapi.kiwoom.com",
        "ws": "wss://api.kiwoom.com:10000/api/dostk/websocket",
        "mock_ws": "wss://mockapi.kiwoom.com:10000/api/dostk/websocket",
    }
    assert info.config_schema is KiwoomConfig
    assert {j.name for j in info.jobs} == {
        "daily_bars",
        "investor_flows",
        "minute_bars",
        "instruments",
    }
    assert info.capabilities == ("stream", "scheduled")


def test_rate_defaults_live_and_mock() -> None:
    assert KiwoomConfig().effective_rate == 5.0
    assert KiwoomConfig(mock=True).effective_rate == 1.0
    assert KiwoomConfig(mock=True, rate=2.5).effective_rate == 2.5


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"rate": 0}, "venues.kiwoom"),
        ({"minute_scope": 7}, "venues.kiwoom"),
        ({"flow_sources": ["ka99999"]}, "venues.kiwoom"),
        ({"mock": "yes"}, "venues.kiwoom.mock"),
        ({"secret": "x"}, "venues.kiwoom.secret"),
    ],
)
def test_bad_options_name_the_key(options: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as exc:
        convert_config(options, KiwoomConfig, path="venues.kiwoom")
    assert exc.value.path == path


def test_credentials_from_config_then_environment() -> None:
    env = {ENV_APP_KEY: "env-app", ENV_SECRET_KEY: "env-secret"}
    assert KiwoomConfig().credentials(env) == ("env-app", "env-secret")
    assert KiwoomConfig(app_key="cfg").credentials(env) == ("cfg", "env-secret")
    with pytest.raises(ConfigError) as exc:
        KiwoomConfig(app_key="cfg").credentials({})
    assert exc.value.path == "venues.kiwoom.secret_key" and ENV_SECRET_KEY in str(exc.value)
    assert "cfg" not in str(exc.value)


def test_secret_keys_hidden_from_repr() -> None:
    config = KiwoomConfig(app_key="APP-123", secret_key="SECRET-456", symbols=["005930"])
    for text in (repr(config), str(config), f"{config}", repr([config])):
        assert "APP-123" not in text and "SECRET-456" not in text
        assert "secret_key=<set>" in text and "'005930'" in text


def test_client_uses_the_mock_host_and_its_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx
    from marketfeed import VenueContext, get_transport

    monkeypatch.setenv(ENV_APP_KEY, "a")
    monkeypatch.setenv(ENV_SECRET_KEY, "s")
    limiters = RateLimiters()
    ctx = VenueContext(
        venue="kiwoom",
        config=KiwoomConfig(mock=True),
        endpoints=ENDPOINTS,
        transport=get_transport("httpx-ws"),
        limiters=limiters,
        http=httpx.AsyncClient,
    )
    client = client_for(ctx)
    assert client.rest_url == "https://mockapi.kiwoom.com"
    assert "kiwoom:mockapi.kiwoom.com" in limiters
    assert client.gate.limiter.max_rate == 1.0
