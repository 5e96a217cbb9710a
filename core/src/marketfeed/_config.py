"""TOML configuration decoded into msgspec Structs.

Example (every key is optional except what a section needs)::

    [supervisor]
    queue_size = 10000          # events per sink queue (bounded)
    batch_size = 1000           # flush a sink batch at this many events ...
    batch_interval = 1.0        # ... or after this many seconds

    [venues.okx.endpoints]      # override live URLs (tests and the demo use loopback)
    public = "ws://127.0.0.1:8765/ws/v5/public"

    [venues.kiwoom]             # any other key is the venue plugin's own option
    app_key = "${KIWOOM_APP_KEY}"

    [[subscriptions]]
    venue = "okx"
    channels = ["trades", "books"]
    symbols = ["BTC-USDT"]

    [[sinks]]
    type = "sql"
    url = "sqlite:///marketfeed.db"

``${NAME}`` (or ``${NAME:-default}``) in any string is replaced by the environment variable
``NAME``; a missing variable without default is a :class:`ConfigError` naming the key.
Every error names the dotted key path at fault.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from ._errors import ConfigError

__all__ = [
    "Config",
    "ReconnectConfig",
    "ScheduleConfig",
    "SinkConfig",
    "SubscriptionGroup",
    "SupervisorConfig",
    "VenueConfig",
    "convert_config",
    "load_config",
    "parse_config",
]

T = TypeVar("T")


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ReconnectConfig(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Reconnect backoff: ``initial`` seconds doubling (``multiplier``) up to ``maximum``,
    each delay scaled by a random factor in ``[1 - jitter, 1]``; ``max_attempts`` ``None``
    retries forever."""

    initial: float = 1.0
    maximum: float = 300.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None


class SupervisorConfig(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Supervisor tuning.

    Attributes:
        queue_size: Bounded queue length per sink (events).
        overflow: ``"block"`` (backpressure to the receive loop) or ``"spill"`` (write
            the overflow to ``spill_dir`` as JSON Lines and replay it when the sink catches
            up). Neither grows memory with the backlog.
        batch_size, batch_interval: Flush a sink batch at this many events or seconds.
        sink_retry_attempts: Non-transient sink failures are retried this often, then the
            batch is dead-lettered with the reason. Transient ones retry until they land.
        transport: WebSocket client: ``"httpx-ws"`` (default, pure Python), ``"websockets"``
            or ``"picows"`` (fastest; extras ``marketfeed[websockets]`` / ``[picows]``). See
            the README's performance section for measured rates.
        max_message_size: Largest WebSocket message accepted, bytes.
        receive_timeout: Seconds without any frame before the connection is recycled
            (``None``: rely on watchdogs and heartbeats).
        shutdown_timeout: Seconds allowed to drain and flush on shutdown.
        dead_letter_path: JSON Lines file that keeps dead letters no sink could store.
        status_path: JSON file rewritten every ``status_interval`` s for
            ``marketfeed status`` (``None`` disables).
        metrics_port: Serve Prometheus metrics on this port (``None`` disables).
    """

    queue_size: int = 10_000
    overflow: Literal["block", "spill"] = "block"
    spill_dir: str = ".marketfeed-spill"
    batch_size: int = 1000
    batch_interval: float = 1.0
    sink_retry_attempts: int = 5
    transport: str = "httpx-ws"
    max_message_size: int = 16 * 1024 * 1024
    receive_timeout: float | None = None
    shutdown_timeout: float = 10.0
    dead_letter_path: str | None = "marketfeed-dead-letters.jsonl"
    status_path: str | None = "marketfeed-status.json"
    status_interval: float = 1.0
    metrics_port: int | None = None
    backfill_on_gap: bool = True


class VenueConfig(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-venue settings: endpoint URL overrides and the plugin's own options."""

    endpoints: dict[str, str] = {}
    options: dict[str, Any] = {}


class SubscriptionGroup(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``channels`` x ``symbols`` of one venue, with shared options."""

    venue: str
    channels: list[str]
    symbols: list[str] = []
    options: dict[str, Any] = {}
    silence_timeout: float | None = None


class SinkConfig(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One storage target.

    Attributes:
        type: Sink plugin name (``"sql"``).
        url: Where (``"sqlite:///marketfeed.db"``, ``"postgresql://..."``).
        name: Label in status (defaults to ``type``).
        events: Event kinds routed here (``["trade", "candle"]``); empty: all it accepts.
    """

    type: str = "sql"
    url: str = "sqlite:///marketfeed.db"
    name: str | None = None
    events: list[str] = []
    options: dict[str, Any] = {}
    batch_size: int | None = None
    batch_interval: float | None = None

    @property
    def label(self) -> str:
        """Name shown in status and logs."""
        return self.name or self.type


class ScheduleConfig(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A scheduled job of a venue, e.g. ``venue="naver_etf", job="etf_holdings"``."""

    venue: str
    job: str
    cron: str | None = None
    timezone: str | None = None
    options: dict[str, Any] = {}


class Config(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole configuration (see the module docstring for the TOML layout)."""

    supervisor: SupervisorConfig = SupervisorConfig()
    reconnect: ReconnectConfig = ReconnectConfig()
    venues: dict[str, VenueConfig] = {}
    subscriptions: list[SubscriptionGroup] = []
    sinks: list[SinkConfig] = []
    schedules: list[ScheduleConfig] = []
    log_level: str = "INFO"


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]*)`")
_PATH = re.compile(r" - at `\$(.*)`$")


def _substitute(value: Any, path: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(path, f"environment variable {name} is not set")

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, f"{path}.{k}" if path else k, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    return value


def convert_config(data: Any, type: type[T], path: str = "") -> T:
    """Decode plain data into ``type`` (a msgspec Struct), naming the key path on error.

    Args:
        data: Plain Python data (from TOML).
        type: Target msgspec type.
        path: Dotted prefix of ``data`` in the whole config, for messages.

    Raises:
        ConfigError: a value has the wrong type, a required key is missing or an unknown
            key is present; ``ConfigError.path`` is the full dotted key path.
    """
    try:
        return msgspec.convert(data, type=type, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        m = _PATH.search(message)
        sub = ""
        if m:
            message = message[: m.start()]
            sub = m.group(1)
        full = (
            (path + sub)
            if sub.startswith("[")
            else ".".join(p for p in (path, sub.lstrip(".")) if p)
        )
        unknown = _UNKNOWN.match(message)
        if unknown:
            key = unknown.group(1)
            full = f"{full}.{key}" if full else key
            message = "unknown key (check the spelling against the documented keys)"
        raise ConfigError(full, message) from None


def _hoist_venue_options(raw: dict[str, Any]) -> None:
    venues = raw.get("venues")
    if not isinstance(venues, dict):
        return
    for name, table in venues.items():
        if not isinstance(table, dict):
            raise ConfigError(f"venues.{name}", "expected a table")
        options = dict(table.get("options", {}))
        for key in list(table):
            if key not in ("endpoints", "options"):
                options[key] = table.pop(key)
        table["options"] = options


def parse_config(data: str | Mapping[str, Any], *, env: Mapping[str, str] | None = None) -> Config:
    """Parse TOML text (or an already-parsed mapping) into a :class:`Config`.

    Keys of ``[venues.NAME]`` other than ``endpoints`` are collected into that venue's
    ``options`` (validated later against the plugin's schema).

    Raises:
        ConfigError: invalid TOML, a wrong type, unknown key or missing variable; the
            message names the key path.
    """
    if isinstance(data, str):
        try:
            raw: dict[str, Any] = tomllib.loads(data)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("", f"invalid TOML: {exc}") from None
    else:
        raw = dict(data)
    raw = _substitute(raw, "", os.environ if env is None else env)
    _hoist_venue_options(raw)
    return convert_config(raw, Config)


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and parse a TOML config file.

    Raises:
        ConfigError: the file is missing or invalid (message names file and key path).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read config {p}: {exc.strerror}") from None
    try:
        return parse_config(text, env=env)
    except ConfigError as exc:
        raise ConfigError(exc.path, f"{exc.message} (in {p})") from None
