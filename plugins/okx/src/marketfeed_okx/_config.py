"""The OKX venue's own options (``[venues.okx]`` in the marketfeed config)."""

from __future__ import annotations

import os

import msgspec

__all__ = ["OkxConfig", "OkxCredentials"]

_ENV_KEY = "OKX_API_KEY"
_ENV_SECRET = "OKX_API_SECRET"
_ENV_PASSPHRASE = "OKX_API_PASSPHRASE"


class OkxCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """API key, secret and passphrase for the optional private login. ``repr`` hides them.

    Source: OKX API v5, "WebSocket > Login".
    """

    api_key: str
    secret_key: str
    passphrase: str

    def __repr__(self) -> str:
        return "OkxCredentials(api_key='***', secret_key='***', passphrase='***')"

    __str__ = __repr__


class OkxConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of the ``okx`` venue. Every key is optional.

    Example::

        [venues.okx]
        max_subscriptions_per_connection = 100
        checksum = true
        login = false
        api_key = "${OKX_API_KEY}"

    Attributes:
        max_subscriptions_per_connection: ``plan`` opens another connection per endpoint
            when one would carry more channel-instrument pairs than this.
        heartbeat_interval: Seconds without any frame before sending the text ``ping``.
            OKX closes a connection after 30 s without data, so keep it below 30.
        heartbeat_timeout: Seconds to wait for ``pong`` (or any frame) after a ping
            before the connection is recycled.
        checksum: Verify OKX's CRC32 book checksum on every snapshot and update.
        login: Log in on connect (private channels need it; public data does not).
        api_key, secret_key, passphrase: Credentials for ``login``. When absent they are
            read from the environment (``OKX_API_KEY``, ``OKX_API_SECRET``,
            ``OKX_API_PASSPHRASE``). Never logged; ``repr`` hides them.
        connect_rate: WebSocket connection attempts per second (OKX: 3 per IP).
        candles_rate, history_candles_rate, instruments_rate, books_rate,
            history_trades_rate: REST requests per ``rest_rate_period`` seconds (OKX: 40,
            20, 20, 40 and 20 per 2 s).
        rest_rate_period: Window of the REST rates, seconds.
        rest_timeout: Seconds per REST request before it is retried.
        rest_attempts: Attempts per REST request on 5xx, 429 and timeouts (stamina).
        candle_page_limit: Rows per ``/market/candles`` page (OKX maximum 300).
        history_candle_page_limit: Rows per ``/market/history-candles`` page (max 100).
        trade_page_limit: Rows per ``/market/history-trades`` page (max 100), used by the
            trade gap backfill.
    """

    max_subscriptions_per_connection: int = 100
    heartbeat_interval: float = 25.0
    heartbeat_timeout: float = 10.0
    checksum: bool = True
    login: bool = False
    api_key: str | None = None
    secret_key: str | None = None
    passphrase: str | None = None
    connect_rate: float = 3.0
    candles_rate: float = 40.0
    history_candles_rate: float = 20.0
    instruments_rate: float = 20.0
    books_rate: float = 40.0
    history_trades_rate: float = 20.0
    rest_rate_period: float = 2.0
    rest_timeout: float = 10.0
    rest_attempts: int = 5
    candle_page_limit: int = 300
    history_candle_page_limit: int = 100
    trade_page_limit: int = 100

    def __post_init__(self) -> None:
        if self.max_subscriptions_per_connection < 1:
            raise ValueError("max_subscriptions_per_connection must be at least 1")
        if not 0 < self.heartbeat_interval < 30:
            raise ValueError("heartbeat_interval must be between 0 and 30 s (OKX closes at 30 s)")
        for name in (
            "candle_page_limit",
            "history_candle_page_limit",
            "trade_page_limit",
            "rest_attempts",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def __repr__(self) -> str:
        fields = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in ("api_key", "secret_key", "passphrase") and value is not None:
                value = "***"
            fields.append(f"{name}={value!r}")
        return f"OkxConfig({', '.join(fields)})"

    __str__ = __repr__

    def credentials(self) -> OkxCredentials | None:
        """The login credentials from config, else from the environment, else ``None``.

        A partial set (for example a key without passphrase) counts as none.
        """
        key = self.api_key or os.environ.get(_ENV_KEY)
        secret = self.secret_key or os.environ.get(_ENV_SECRET)
        passphrase = self.passphrase or os.environ.get(_ENV_PASSPHRASE)
        if not (key and secret and passphrase):
            return None
        return OkxCredentials(api_key=key, secret_key=secret, passphrase=passphrase)
