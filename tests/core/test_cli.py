"""The ``marketfeed`` command: plugins listing, config errors, status file, metrics."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from marketfeed import ConnectionStatus, SinkStatus, Status, StatusCollector, SubscriptionState
from marketfeed.cli import app
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    import marketfeed.cli._app as cli
    from rich.console import Console

    monkeypatch.setattr(cli, "console", Console(width=220, force_terminal=False))
    monkeypatch.setattr(cli, "err", Console(width=220, stderr=True, force_terminal=False))


def test_plugins_lists_installed_venues_and_sinks() -> None:
    result = runner.invoke(app, ["plugins"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "binance_mini" in result.output
    assert "marketfeed-binance-mini" in result.output
    assert "aggTrade" in result.output


def test_run_with_a_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[[subscriptions]]\nvenue = "binance_mini"\nchannels = ["nope"]\n')
    result = runner.invoke(app, ["run", str(cfg), "--duration", "0.1"], terminal_width=200)
    assert result.exit_code == 2
    assert "subscriptions[0].channels[0]" in result.output
    assert "aggTrade" in result.output


def _status() -> Status:
    now = dt.datetime.now(dt.UTC)
    return Status(
        started=now,
        time=now,
        running=True,
        connections=[
            ConnectionStatus(
                name="okx/public/0",
                venue="okx",
                url="ws://x",
                state="connected",
                frames=12,
                last_frame=now,
            )
        ],
        subscriptions=[
            SubscriptionState(
                venue="okx",
                channel="books",
                symbol="BTC-USDT",
                connection="okx/public/0",
                state="active",
                events=9,
            )
        ],
        sinks=[SinkStatus(name="sql", url="sqlite:///x.db", queue_depth=3, queue_size=10)],
    )


def test_status_reads_the_status_file(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_bytes(_status().to_json())
    result = runner.invoke(app, ["status", "--file", str(path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "okx/public/0" in result.output and "running" in result.output
    assert "BTC-USDT" in result.output and "3/10" in result.output
    missing = runner.invoke(app, ["status", "--file", str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and "no status file" in missing.output


def test_metrics_collector_exports_status() -> None:
    class _Sup:
        def status(self) -> Status:
            return _status()

    families = {f.name: f for f in StatusCollector(_Sup()).collect()}  # type: ignore[arg-type]
    assert families["marketfeed_frames"].samples[0].value == 12
    assert families["marketfeed_connection_up"].samples[0].value == 1.0
    assert families["marketfeed_sink_queue_depth"].samples[0].value == 3
