"""OAuth2 client-credentials token lifecycle (au10001 issue, au10002 revoke).

Source: spec section 2. ``POST /oauth2/token`` with ``grant_type=client_credentials``,
``appkey``, ``secretkey`` answers ``token`` and ``expires_dt`` (``YYYYMMDDHHMMSS`` in KST).
The token is reused until ``refresh_margin`` seconds before ``expires_dt`` ([SDK] uses
600 s), renewed on demand (8005/8031/8103 or HTTP 401, decided by the client) and revoked
with ``POST /oauth2/revoke`` (``appkey``, ``secretkey``, ``token``).

No secret (app key, secret key, token) is ever put in a log record, an exception message
or a ``repr``.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from ._errors import KiwoomAuthError, KiwoomError

__all__ = ["KST", "TokenManager", "parse_expires_dt"]

KST = _dt.timezone(_dt.timedelta(hours=9), "KST")
"""Korea Standard Time (no daylight saving time)."""

TOKEN_PATH = "/oauth2/token"
REVOKE_PATH = "/oauth2/revoke"

Call = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""``call(api_id, path, body) -> response body``: an unauthenticated Kiwoom call that
raises a :class:`KiwoomError` subclass on failure."""

_log = logging.getLogger("marketfeed.venue.kiwoom.auth")


def parse_expires_dt(value: Any) -> _dt.datetime | None:
    """``expires_dt`` (``"20241107083713"``, KST) as a UTC datetime; ``None`` if absent or
    not in that form."""
    if not isinstance(value, str | int):
        return None
    try:
        local = _dt.datetime.strptime(str(value).strip(), "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return local.replace(tzinfo=KST).astimezone(_dt.UTC)


class TokenManager:
    """Issues, caches, renews and revokes the access token of one app key.

    Args:
        app_key, secret_key: Credentials (kept private, never shown).
        call: Unauthenticated call through the client (so token requests share the rate
            limiter and circuit breaker).
        refresh_margin: Renew this many seconds before ``expires_dt``.
        fallback_lifetime: Lifetime assumed (seconds) when a response has no usable
            ``expires_dt``, or one already within ``refresh_margin`` of now.
        clock: Current UTC time (tests pass a fake clock).

    ``issued`` and ``revoked`` count the au10001 / au10002 calls made.
    """

    def __init__(
        self,
        *,
        app_key: str,
        secret_key: str,
        call: Call,
        refresh_margin: float = 600.0,
        fallback_lifetime: float = 3600.0,
        clock: Callable[[], _dt.datetime] | None = None,
    ) -> None:
        self.__app_key = app_key
        self.__secret_key = secret_key
        self._call = call
        self.refresh_margin = refresh_margin
        self.fallback_lifetime = fallback_lifetime
        self.clock = clock or (lambda: _dt.datetime.now(_dt.UTC))
        self.__token: str | None = None
        self.expires_at: _dt.datetime | None = None
        self._lock = anyio.Lock()
        self.issued = 0
        self.revoked = 0

    def __repr__(self) -> str:
        state = "none" if self.__token is None else f"expires {self.expires_at:%Y-%m-%dT%H:%M:%SZ}"
        return f"TokenManager(token={state}, issued={self.issued})"

    @property
    def has_token(self) -> bool:
        """Whether a token is cached (valid or not)."""
        return self.__token is not None

    def _fresh(self) -> bool:
        if self.__token is None or self.expires_at is None:
            return False
        remaining = (self.expires_at - self.clock()).total_seconds()
        return remaining > self.refresh_margin

    async def token(self) -> str:
        """The cached token, issued first when missing or within ``refresh_margin`` of
        ``expires_dt``.

        Raises:
            KiwoomAuthError: the venue refused the credentials (8001/8002/8030, ...).
            KiwoomError: the token call failed otherwise (rate limit, server down).
        """
        async with self._lock:
            if not self._fresh():
                await self._issue("expired" if self.__token else "none cached")
            assert self.__token is not None
            return self.__token

    async def renew(self, stale: str) -> str:
        """Issue a new token because ``stale`` was refused; when another caller already
        replaced ``stale``, return the newer token without another au10001 call."""
        async with self._lock:
            if self.__token is not None and self.__token != stale and self._fresh():
                return self.__token
            await self._issue("refused by the venue")
            assert self.__token is not None
            return self.__token

    async def _issue(self, why: str) -> None:
        body = {
            "grant_type": "client_credentials",
            "appkey": self.__app_key,
            "secretkey": self.__secret_key,
        }
        answer = await self._call("au10001", TOKEN_PATH, body)
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise KiwoomAuthError("token response carries no token", api_id="au10001")
        expires = parse_expires_dt(answer.get("expires_dt"))
        now = self.clock()
        if expires is None or (expires - now).total_seconds() <= self.refresh_margin:
            # absent, or already inside the refresh margin (clock skew?): without this every
            # call would issue a new token; a refused token is renewed on 8005 anyway
            _log.warning(
                "kiwoom token expires_dt %s is unusable or too close; assuming %.0f s",
                "missing" if expires is None else f"{expires:%Y-%m-%d %H:%M:%S} UTC",
                self.fallback_lifetime,
            )
            expires = now + _dt.timedelta(seconds=self.fallback_lifetime)
        self.__token = token
        self.expires_at = expires
        self.issued += 1
        _log.info("kiwoom token issued (%s); expires %s UTC", why, f"{expires:%Y-%m-%d %H:%M:%S}")

    async def revoke(self) -> None:
        """Revoke the cached token (au10002) and forget it. Failures are logged, not
        raised (revocation is best effort at shutdown)."""
        async with self._lock:
            token, self.__token, self.expires_at = self.__token, None, None
            if token is None:
                return
            body = {"appkey": self.__app_key, "secretkey": self.__secret_key, "token": token}
            try:
                await self._call("au10002", REVOKE_PATH, body)
            except KiwoomError as exc:
                _log.warning("kiwoom token revocation failed: %s", exc)
                return
            self.revoked += 1
            _log.info("kiwoom token revoked")
