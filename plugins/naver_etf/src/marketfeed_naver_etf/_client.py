"""Polite HTTP access to the Naver hosts: per-host rate limit, User-Agent, retries.

* **Rate**: every request, retries included, first acquires the process-wide limiter
  ``naver:<host[:port]>`` (``context.limiters``) allowing one request per ``1/rate``
  seconds, so the default ``rate = 1`` means at most one request a second to each host,
  without bursts. The three hosts (finance, m.stock, navercomp.wisereport) have separate
  budgets.
* **User-Agent**: ``marketfeed-naver-etf/<version> (+<contact_url>)`` unless configured.
* **Retries** (stamina): 5xx and 429 answers, timeouts and network errors are retried with
  exponential backoff and jitter (``retry_attempts``, ``retry_wait_initial``,
  ``retry_wait_max``); other 4xx answers fail at once. Failures raise
  :class:`NaverHttpError` naming the URL, status and attempts.

Sources: naver-etf.md section 3 (no documented limits; one request per ETF per day).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlsplit

import httpx
import msgspec
import stamina
from marketfeed import VenueContext

from ._config import NaverEtfConfig
from ._errors import NaverHttpError

__all__ = ["Fetched", "NaverClient", "default_user_agent"]


def default_user_agent(contact_url: str) -> str:
    """``marketfeed-naver-etf/<version> (+<contact_url>)``."""
    try:
        ver = version("marketfeed-naver-etf")
    except PackageNotFoundError:  # running from a source tree
        ver = "0"
    return f"marketfeed-naver-etf/{ver} (+{contact_url})"


class Fetched(msgspec.Struct, frozen=True, kw_only=True):
    """A successful (2xx) response.

    Attributes:
        url: Final URL (query included).
        body: Raw bytes (decode with the charset in ``content_type``).
        content_type: The Content-Type header, ``None`` if absent.
    """

    url: str
    body: bytes
    content_type: str | None


class _Retryable(Exception):
    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"HTTP {status}")


_TRANSIENT = (_Retryable, httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class NaverClient:
    """GET requests to the Naver hosts through ``context.http`` with the politeness rules
    of the module docstring."""

    def __init__(self, context: VenueContext, config: NaverEtfConfig) -> None:
        self._context = context
        self._config = config
        self.user_agent = config.user_agent or default_user_agent(config.contact_url)

    def limiter_key(self, url: str) -> str:
        """The rate-limiter name of ``url``'s host: ``"naver:<host[:port]>"``."""
        return f"naver:{urlsplit(url).netloc.lower()}"

    async def get(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Fetched:
        """GET ``url`` politely and return the 2xx response.

        Raises:
            NaverHttpError: a 4xx answer (other than 429), or a 5xx/429 answer, timeout or
                network error on every one of ``retry_attempts`` attempts.
        """
        cfg = self._config
        limiter = self._context.limiters.get(self.limiter_key(url), 1, 1.0 / cfg.rate)
        request_headers = {"User-Agent": self.user_agent, "Accept": "*/*"}
        request_headers.update(headers or {})
        attempts = 0
        try:
            async for attempt in stamina.retry_context(
                on=_TRANSIENT,
                attempts=cfg.retry_attempts,
                timeout=None,
                wait_initial=cfg.retry_wait_initial,
                wait_max=cfg.retry_wait_max,
                wait_jitter=cfg.retry_wait_initial,
            ):
                with attempt:
                    attempts += 1
                    async with limiter:
                        response = await self._context.http.get(
                            url,
                            params=dict(params or {}),
                            headers=request_headers,
                            timeout=cfg.timeout,
                            follow_redirects=True,
                        )
                    status = response.status_code
                    if status >= 500 or status == 429:
                        raise _Retryable(status)
        except _Retryable as exc:
            raise NaverHttpError(url, exc.status, attempts, f"HTTP {exc.status}") from None
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise NaverHttpError(url, None, attempts, reason) from None
        if not 200 <= status < 300:
            raise NaverHttpError(str(response.url), status, attempts, f"HTTP {status}")
        return Fetched(
            url=str(response.url),
            body=response.content,
            content_type=response.headers.get("content-type"),
        )
