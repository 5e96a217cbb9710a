"""Config decoding: key paths in every error, env substitution, venue options."""

from __future__ import annotations

from pathlib import Path

import marketfeed
import pytest
from marketfeed import ConfigError, load_config, parse_config


def test_defaults_and_full_example() -> None:
    cfg = parse_config(
        """
        [supervisor]
        queue_size = 50
        batch_interval = 0.5

        [venues.okx.endpoints]
        public = "ws://127.0.0.1:9/ws/v5/public"

        [venues.kiwoom]
        app_key = "${APP_KEY}"
        rate = 2

        [[subscriptions]]
        venue = "okx"
        channels = ["trades", "books"]
        symbols = ["BTC-USDT"]

        [[sinks]]
        type = "sql"
        url = "sqlite:///x.db"
        """,
        env={"APP_KEY": "k-123"},
    )
    assert cfg.supervisor.queue_size == 50
    assert cfg.supervisor.batch_size == 1000  # default kept
    assert cfg.venues["okx"].endpoints == {"public": "ws://127.0.0.1:9/ws/v5/public"}
    assert cfg.venues["kiwoom"].options == {"app_key": "k-123", "rate": 2}
    assert cfg.subscriptions[0].channels == ["trades", "books"]
    assert cfg.sinks[0].label == "sql"


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        ("[supervisor]\nqueue_size = 'many'", "supervisor.queue_size", "Expected `int`"),
        ("[supervisr]\nqueue_size = 1", "supervisr", "unknown key"),
        ("[supervisor]\nqueu_size = 1", "supervisor.queu_size", "unknown key"),
        ("[[subscriptions]]\nvenue = 'okx'\nchannels = [1]", "subscriptions[0].channels[0]", "str"),
        ("[[subscriptions]]\nchannels = ['x']", "subscriptions[0]", "venue"),
        ("[[sinks]]\nurl = 3", "sinks[0].url", "Expected `str`"),
        ("[venues.k]\nkey = '${MISSING_VAR}'", "venues.k.key", "MISSING_VAR is not set"),
        ("[supervisor\n", "", "invalid TOML"),
    ],
)
def test_errors_name_the_key_path(text: str, path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    assert info.value.path == path
    assert fragment in str(info.value)
    if path:
        assert str(info.value).startswith(path)


def test_env_default_and_load_from_file(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[[sinks]]\nurl = "${DB_URL:-sqlite:///d.db}"\n')
    assert load_config(p, env={}).sinks[0].url == "sqlite:///d.db"
    assert load_config(p, env={"DB_URL": "postgresql://x"}).sinks[0].url == "postgresql://x"
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.toml")


def test_convert_config_prefixes_plugin_paths() -> None:
    import msgspec

    class Options(msgspec.Struct, forbid_unknown_fields=True):
        rate: float = 5.0

    assert marketfeed.convert_config({"rate": 2}, Options, path="venues.k").rate == 2.0
    with pytest.raises(ConfigError) as info:
        marketfeed.convert_config({"rate": "fast"}, Options, path="venues.k")
    assert info.value.path == "venues.k.rate"
    with pytest.raises(ConfigError) as info:
        marketfeed.convert_config({"rat": 1}, Options, path="venues.k")
    assert info.value.path == "venues.k.rat"
