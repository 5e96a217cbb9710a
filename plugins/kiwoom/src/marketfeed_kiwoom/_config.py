"""The venue's options: ``[venues.kiwoom]`` in the marketfeed TOML config.

Secrets (``app_key``, ``secret_key``) come from the config (usually as ``${KIWOOM_APP_KEY}``)
or, when absent there, from the environment variables ``KIWOOM_APP_KEY`` and
``KIWOOM_SECRET_KEY``. They never appear in ``repr`` or ``str`` of the config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec
from marketfeed import ConfigError

__all__ = ["ENV_APP_KEY", "ENV_SECRET_KEY", "KiwoomConfig"]

ENV_APP_KEY = "KIWOOM_APP_KEY"
ENV_SECRET_KEY = "KIWOOM_SECRET_KEY"

_HIDDEN = frozenset({"app_key", "secret_key"})


class KiwoomConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of the ``kiwoom`` venue (every key optional).

    Attributes:
        app_key: App key (앱키) of the REST API; falls back to ``$KIWOOM_APP_KEY``. Hidden
            from ``repr``.
        secret_key: Secret key (시크릿키); falls back to ``$KIWOOM_SECRET_KEY``. Hidden from
            ``repr``.
        mock: Use the mock-trading hosts (모의투자, KRX only, separate app keys).
        rate: REST requests per second for the whole process; ``None`` means 5 on
            production and 1 on mock (spec section 6: terms of use, "queries 5/s").
        symbols: Stock codes (``"005930"``, ``"005930_NX"``) the scheduled jobs collect.
        markets: ``mrkt_tp`` codes the ``instruments`` job lists with ka10099
            (``"0"`` KOSPI, ``"10"`` KOSDAQ, ``"8"`` ETF, ...).
        daily_lookback_days: Calendar days of daily bars / flows fetched per job run.
        flow_sources: TRs of the ``investor_flows`` job: ``"ka10059"`` (amounts and
            quantities by investor type) and optionally ``"ka10086"`` (fills values
            ka10059 lacks).
        minute_scope: Minutes per bar of the ``minute_bars`` job (1, 3, 5, 10, 15, 30,
            45 or 60).
        ws_group: ``grp_no`` of real-time registrations.
        ws_max_items: Stock codes per REG/REMOVE frame.
        token_refresh_margin: Seconds before ``expires_dt`` at which a token is renewed.
        retry_attempts: Attempts per request on rate limits (HTTP 429, 1700/1701/1702)
            and transient failures (5xx, 1999, network).
        retry_initial, retry_max, retry_jitter: Exponential backoff in seconds.
        breaker_failures: Consecutive failures that open the circuit breaker.
        breaker_cooldown: Seconds the breaker stays open before one probe (half-open).
        request_timeout: Seconds per HTTP request.
        login_timeout: Seconds to wait for the WebSocket LOGIN answer.
        max_pages: Upper bound of ``cont-yn`` continuation pages per query.
        revoke_on_idle: Also revoke the token (au10002) whenever the last user (connection
            or job run) of the client is done. The token is always revoked when the
            supervisor shuts the venue down (``VenueContext.on_close``); leave this off so a
            reconnect does not revoke and re-issue the token.
    """

    app_key: str | None = None
    secret_key: str | None = None
    mock: bool = False
    rate: float | None = None
    symbols: list[str] = []
    markets: list[str] = msgspec.field(default_factory=lambda: ["0", "10", "8"])
    daily_lookback_days: int = 10
    flow_sources: list[str] = msgspec.field(default_factory=lambda: ["ka10059"])
    minute_scope: int = 1
    ws_group: str = "1"
    ws_max_items: int = 100
    token_refresh_margin: float = 600.0
    retry_attempts: int = 5
    retry_initial: float = 0.5
    retry_max: float = 10.0
    retry_jitter: float = 0.5
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0
    request_timeout: float = 10.0
    login_timeout: float = 10.0
    max_pages: int = 50
    revoke_on_idle: bool = False

    def __post_init__(self) -> None:
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be > 0 requests per second")
        if self.minute_scope not in (1, 3, 5, 10, 15, 30, 45, 60):
            raise ValueError("minute_scope must be one of 1, 3, 5, 10, 15, 30, 45, 60")
        if self.retry_attempts < 1 or self.breaker_failures < 1 or self.max_pages < 1:
            raise ValueError("retry_attempts, breaker_failures and max_pages must be >= 1")
        if not set(self.flow_sources) <= {"ka10059", "ka10086"} or not self.flow_sources:
            raise ValueError('flow_sources must be a non-empty subset of ["ka10059", "ka10086"]')
        if self.ws_max_items < 1:
            raise ValueError("ws_max_items must be >= 1")

    def __repr__(self) -> str:
        fields = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in _HIDDEN:
                fields.append(f"{name}={'<set>' if value else None}")
            else:
                fields.append(f"{name}={value!r}")
        return f"KiwoomConfig({', '.join(fields)})"

    __str__ = __repr__

    @property
    def effective_rate(self) -> float:
        """Requests per second: ``rate`` or the default (5 live, 1 mock)."""
        if self.rate is not None:
            return self.rate
        return 1.0 if self.mock else 5.0

    def credentials(self, env: Mapping[str, str] | None = None) -> tuple[str, str]:
        """``(app_key, secret_key)`` from the config, else from the environment.

        Raises:
            ConfigError: a key is in neither place (the message names the key and the
                variable, never a value).
        """
        env = os.environ if env is None else env
        app_key = self.app_key or env.get(ENV_APP_KEY, "")
        secret_key = self.secret_key or env.get(ENV_SECRET_KEY, "")
        if not app_key:
            raise ConfigError("venues.kiwoom.app_key", f"not set (set app_key or ${ENV_APP_KEY})")
        if not secret_key:
            raise ConfigError(
                "venues.kiwoom.secret_key", f"not set (set secret_key or ${ENV_SECRET_KEY})"
            )
        return app_key, secret_key
