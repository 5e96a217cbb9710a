"""The one owner of Kiwoom's rate limit: every REST call of the process goes through here.

Per call: the circuit breaker is checked, a turn is taken in the :class:`PriorityGate`
(real-time-serving calls before bulk history) which then spends one permit of the shared
:class:`aiolimiter.AsyncLimiter` (``context.limiters``, key ``kiwoom:<host>``), the token is
attached, the response is classified:

* HTTP 429, ``return_code`` 1700/1701/1702 (top-level or ``[1700:...]`` embedded in
  ``return_msg``), or top-level 5 without another embedded code: back off (exponential with
  jitter, :mod:`stamina`) and retry; 1687 likewise.
* HTTP 401 or 8005/8031/8103 (top-level or embedded): renew the token and retry, once per
  request.
* HTTP 5xx, 1999, network errors, bodies that are not JSON objects: retry with backoff and
  count a failure for the breaker.
* Any other ``return_code != 0``: raise the typed error (:func:`error_for`) with the code.

Paging (spec section 3): resend the same body with request headers ``cont-yn: Y`` and
``next-key`` while the response header ``cont-yn`` is ``Y``; stop on an empty page, when
the caller has what it needs, or after ``max_pages``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from enum import IntEnum
from typing import Any, Literal

import anyio
import httpx
import msgspec
import stamina
from aiolimiter import AsyncLimiter
from marketfeed import VenueContext

from ._auth import TokenManager
from ._config import KiwoomConfig
from ._errors import (
    AUTH_RENEW_CODES,
    CircuitOpenError,
    KiwoomAuthError,
    KiwoomError,
    KiwoomRateLimitError,
    KiwoomRequestError,
    KiwoomUnavailableError,
    classify,
    error_for,
)

__all__ = [
    "CircuitBreaker",
    "KiwoomClient",
    "Page",
    "Priority",
    "PriorityGate",
    "client_for",
]

_log = logging.getLogger("marketfeed.venue.kiwoom.client")

_JSON_HEADERS = {"Content-Type": "application/json;charset=UTF-8"}
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class Priority(IntEnum):
    """Queue order of calls waiting for the rate limit (lower goes first)."""

    AUTH = 0
    """Token issue / revoke: everything else waits on it."""
    REALTIME = 1
    """Calls that serve a live consumer (login for the WebSocket, gap backfill)."""
    NORMAL = 2
    """Daily jobs over a handful of symbols."""
    BULK = 3
    """Long history downloads and full stock lists."""


class PriorityGate:
    """Orders waiters of one :class:`AsyncLimiter` by priority, FIFO within a priority.

    One waiter at a time (the turn holder) waits inside the limiter; the others wait in a
    heap. When the holder gets its permit the best waiter becomes the holder. A call that
    arrives while a lower-priority holder already waits inside the limiter goes next, not
    before it (the holder's permit is already committed).
    """

    def __init__(self, limiter: AsyncLimiter) -> None:
        self.limiter = limiter
        self._heap: list[list[Any]] = []
        self._seq = itertools.count()
        self._busy = False

    def __repr__(self) -> str:
        return f"PriorityGate(waiting={len(self._heap)}, busy={self._busy})"

    @property
    def waiting(self) -> int:
        """Calls queued behind the turn holder."""
        return len(self._heap)

    async def acquire(self, priority: int = Priority.NORMAL) -> None:
        """Wait for this caller's turn, then for one permit of the limiter."""
        if self._busy or self._heap:
            entry: list[Any] = [int(priority), next(self._seq), anyio.Event(), False]
            heapq.heappush(self._heap, entry)
            try:
                await entry[2].wait()
            except BaseException:
                if entry[3]:  # the turn was handed to us: pass it on
                    self._release()
                else:
                    self._heap.remove(entry)
                    heapq.heapify(self._heap)
                raise
        else:
            self._busy = True
        try:
            await self.limiter.acquire()
        finally:
            self._release()

    def _release(self) -> None:
        if self._heap:
            entry = heapq.heappop(self._heap)
            entry[3] = True
            entry[2].set()
        else:
            self._busy = False


class CircuitBreaker:
    """Opens after ``failures`` consecutive failures; after ``cooldown`` seconds lets one
    probe through (half-open); a success closes it, a failure opens it again.

    Args:
        failures: Consecutive failures that open the breaker.
        cooldown: Seconds open before the half-open probe.
        clock: Monotonic seconds (tests pass a fake clock).
    """

    def __init__(
        self, failures: int = 5, cooldown: float = 30.0, clock: Callable[[], float] | None = None
    ) -> None:
        self.threshold = failures
        self.cooldown = cooldown
        self._clock = clock or time.monotonic
        self.consecutive = 0
        self._opened_at: float | None = None
        self._probing = False
        self.opened = 0

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state!r}, consecutive={self.consecutive})"

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        """``closed`` (normal), ``open`` (failing fast) or ``half_open`` (probe allowed)."""
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def before(self) -> None:
        """Check before a request.

        Raises:
            CircuitOpenError: open, or half-open with the probe already in flight.
        """
        if self._opened_at is None:
            return
        waited = self._clock() - self._opened_at
        if waited >= self.cooldown and not self._probing:
            self._probing = True
            _log.info("kiwoom circuit breaker half-open: sending one probe")
            return
        remaining = max(0.0, self.cooldown - waited)
        raise CircuitOpenError(
            f"circuit breaker open after {self.consecutive} consecutive failures"
            + (f"; probe in {remaining:.1f} s" if not self._probing else "; probe in flight")
        )

    def success(self) -> None:
        """Record a success: closes the breaker."""
        if self._opened_at is not None:
            _log.info("kiwoom circuit breaker closed")
        self.consecutive = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> None:
        """Record a failure: opens the breaker at the threshold (or on a failed probe)."""
        self.consecutive += 1
        if self._probing or (self._opened_at is None and self.consecutive >= self.threshold):
            self._opened_at = self._clock()
            self._probing = False
            self.opened += 1
            _log.warning(
                "kiwoom circuit breaker open after %d consecutive failures; cool-down %.1f s",
                self.consecutive,
                self.cooldown,
            )


class Page(msgspec.Struct, frozen=True, kw_only=True):
    """One REST response.

    Attributes:
        api_id: TR code.
        body: Decoded JSON body.
        cont: Response header ``cont-yn == "Y"`` (more pages).
        next_key: Response header ``next-key`` (opaque continuation key).
    """

    api_id: str
    body: dict[str, Any]
    cont: bool = False
    next_key: str | None = None


class _Renewal:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False


def _retry_on(exc: Exception) -> bool | float:
    if isinstance(exc, CircuitOpenError):
        return False
    if isinstance(exc, KiwoomRateLimitError):
        return exc.retry_after if exc.retry_after else True
    return isinstance(exc, KiwoomUnavailableError)


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class KiwoomClient:
    """Authenticated, rate-limited, retrying Kiwoom REST client.

    Args:
        rest_url: Base URL (``https://api.kiwoom.com``, mock ``https://mockapi.kiwoom.com``).
        app_key, secret_key: Credentials (never shown).
        http: Returns the shared ``httpx.AsyncClient``.
        limiter: The process-wide limiter for this host.
        config: Retry, breaker and timeout settings.
        breaker: Circuit breaker (a new one from ``config`` by default).

    Use :meth:`call` for one request and :meth:`pages` for continuation queries; wrap a
    unit of work in :meth:`lease` so the token is revoked when the last user is done.
    """

    def __init__(
        self,
        *,
        rest_url: str,
        app_key: str,
        secret_key: str,
        http: Callable[[], httpx.AsyncClient],
        limiter: AsyncLimiter,
        config: KiwoomConfig | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.config = config or KiwoomConfig()
        self.rest_url = rest_url.rstrip("/")
        self._http = http
        self.gate = _gate_for(limiter)
        self.breaker = breaker or CircuitBreaker(
            self.config.breaker_failures, self.config.breaker_cooldown
        )
        self.auth = TokenManager(
            app_key=app_key,
            secret_key=secret_key,
            call=self._unauthenticated,
            refresh_margin=self.config.token_refresh_margin,
        )
        self._leases = 0
        self.requests = 0

    def __repr__(self) -> str:
        return f"KiwoomClient(rest_url={self.rest_url!r}, auth={self.auth!r}, {self.breaker!r})"

    async def _unauthenticated(
        self, api_id: str, path: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        page = await self.call(api_id, path, body, priority=Priority.AUTH, authenticated=False)
        return page.body

    async def call(
        self,
        api_id: str,
        path: str,
        body: Mapping[str, Any],
        *,
        priority: int = Priority.NORMAL,
        next_key: str | None = None,
        authenticated: bool = True,
    ) -> Page:
        """POST ``body`` to ``path`` as TR ``api_id`` and return the decoded page.

        Raises:
            KiwoomRateLimitError: still rate limited after ``retry_attempts``.
            KiwoomUnavailableError: server/network failing after the retries, or
                :class:`CircuitOpenError` (no request sent).
            KiwoomAuthError: authentication failed (after one token renewal).
            KiwoomSymbolError, KiwoomRequestError, KiwoomUnsupportedError, KiwoomError:
                the venue's business error, with its code.
        """
        cfg = self.config
        renewal = _Renewal()
        async for attempt in stamina.retry_context(
            on=_retry_on,
            attempts=cfg.retry_attempts,
            timeout=None,
            wait_initial=cfg.retry_initial,
            wait_max=cfg.retry_max,
            wait_jitter=cfg.retry_jitter,
        ):
            with attempt:
                return await self._attempt(
                    api_id, path, body, priority, next_key, authenticated, renewal
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        api_id: str,
        path: str,
        body: Mapping[str, Any],
        priority: int,
        next_key: str | None,
        authenticated: bool,
        renewal: _Renewal,
    ) -> Page:
        while True:
            headers = dict(_JSON_HEADERS)
            token = ""
            if authenticated:
                token = await self.auth.token()
                headers["api-id"] = api_id
                headers["authorization"] = f"Bearer {token}"
                if next_key:
                    headers["cont-yn"] = "Y"
                    headers["next-key"] = next_key
            try:
                return await self._send(api_id, path, body, headers, priority)
            except KiwoomAuthError as exc:
                if not authenticated or renewal.done or not _renewable(exc):
                    raise
                renewal.done = True
                _log.info("kiwoom %s refused the token (code %s); renewing once", api_id, exc.code)
                await self.auth.renew(token)

    async def _send(
        self,
        api_id: str,
        path: str,
        body: Mapping[str, Any],
        headers: dict[str, str],
        priority: int,
    ) -> Page:
        self.breaker.before()
        await self.gate.acquire(priority)
        self.requests += 1
        url = self.rest_url + path
        try:
            response = await self._http().post(
                url,
                content=msgspec.json.encode(body),
                headers=headers,
                timeout=self.config.request_timeout,
            )
        except httpx.HTTPError as exc:
            self.breaker.failure()
            raise KiwoomUnavailableError(
                f"{type(exc).__name__} calling {path}", api_id=api_id
            ) from None
        status = response.status_code
        if status == 429:
            raise KiwoomRateLimitError(
                "HTTP 429 too many requests",
                _code_in(response) or "HTTP 429",
                api_id=api_id,
                status=status,
                retry_after=_retry_after(response.headers),
            )
        if status >= 500:
            self.breaker.failure()
            raise KiwoomUnavailableError(
                f"HTTP {status}", f"HTTP {status}", api_id=api_id, status=status
            )
        try:
            decoded = _decode(response.content)
        except msgspec.DecodeError:
            if status == 401:
                raise KiwoomAuthError("HTTP 401", "HTTP 401", api_id=api_id, status=401) from None
            if status >= 400:
                raise KiwoomRequestError(
                    f"HTTP {status}", f"HTTP {status}", api_id=api_id, status=status
                ) from None
            self.breaker.failure()
            raise KiwoomUnavailableError(
                "response body is not a JSON object", api_id=api_id, status=status
            ) from None
        top, code, message = classify(decoded)
        if status == 401:
            raise KiwoomAuthError(
                message or "HTTP 401",
                code or "HTTP 401",
                api_id=api_id,
                status=401,
                return_code=top,
            )
        if status >= 400 and not top:
            raise KiwoomRequestError(
                message or f"HTTP {status}",
                code or f"HTTP {status}",
                api_id=api_id,
                status=status,
                return_code=top,
            )
        if top is None or top == 0:
            self.breaker.success()
            return Page(
                api_id=api_id,
                body=decoded,
                cont=response.headers.get("cont-yn", "N").strip().upper() == "Y",
                next_key=response.headers.get("next-key") or None,
            )
        cls = error_for(code, top)
        if cls is KiwoomUnavailableError:
            self.breaker.failure()
        elif cls is not KiwoomRateLimitError:
            self.breaker.success()  # the venue answered properly
        raise cls(
            message or f"return_code {top}", code, api_id=api_id, return_code=top, status=status
        )

    async def pages(
        self,
        api_id: str,
        path: str,
        body: Mapping[str, Any],
        rows: str,
        *,
        priority: int = Priority.BULK,
        max_pages: int | None = None,
    ) -> AsyncIterator[tuple[Page, list[Any]]]:
        """Every page of a continuation query, with its row list ``body[rows]``.

        Stops when ``cont-yn`` is not ``Y``, when a page has no rows (guard against an
        empty page that still says ``cont-yn: Y``), or after ``max_pages`` (default
        ``config.max_pages``; a warning is logged). The caller stops early by leaving the
        loop once the requested range is covered.

        Raises:
            KiwoomError: as :meth:`call`.
        """
        limit = max_pages or self.config.max_pages
        key: str | None = None
        for number in range(1, limit + 1):
            page = await self.call(api_id, path, body, priority=priority, next_key=key)
            found = page.body.get(rows)
            items = found if isinstance(found, list) else []
            yield page, items
            if not page.cont or not page.next_key or not items:
                return
            key = page.next_key
            if number == limit:
                _log.warning("kiwoom %s: stopped after %d pages (max_pages)", api_id, limit)

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[KiwoomClient]:
        """Mark a unit of work (a connection, a job run). When the last lease ends and
        ``revoke_on_idle`` is set, the token is revoked (au10002)."""
        self._leases += 1
        try:
            yield self
        finally:
            self._leases -= 1
            if self._leases == 0 and self.config.revoke_on_idle and self.auth.has_token:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await self.auth.revoke()

    async def aclose(self) -> None:
        """Revoke the token (best effort)."""
        await self.auth.revoke()


def _renewable(exc: KiwoomError) -> bool:
    return exc.status == 401 or exc.code in AUTH_RENEW_CODES or exc.code == "3"


def _code_in(response: httpx.Response) -> str | None:
    try:
        body = _decode(response.content)
    except msgspec.DecodeError:
        return None
    return classify(body)[1]


_GATES: weakref.WeakKeyDictionary[AsyncLimiter, PriorityGate] = weakref.WeakKeyDictionary()


def _gate_for(limiter: AsyncLimiter) -> PriorityGate:
    gate = _GATES.get(limiter)
    if gate is None:
        gate = _GATES[limiter] = PriorityGate(limiter)
    return gate


_CLIENTS: weakref.WeakKeyDictionary[VenueContext, KiwoomClient] = weakref.WeakKeyDictionary()


def config_of(context: VenueContext) -> KiwoomConfig:
    """The context's :class:`KiwoomConfig` (defaults when the venue has no options)."""
    config = context.config
    return config if isinstance(config, KiwoomConfig) else KiwoomConfig()


def client_for(context: VenueContext) -> KiwoomClient:
    """The process's client for this venue context (created on first use).

    The limiter is ``context.limiters.get("kiwoom:<host>", rate)``, shared by every
    connection and job of the process; its priority gate is shared with it.

    Raises:
        ConfigError: app key or secret key missing (config and environment).
    """
    client = _CLIENTS.get(context)
    if client is None:
        config = config_of(context)
        app_key, secret_key = config.credentials()
        rest_url = context.endpoint("mock_rest" if config.mock else "rest")
        host = httpx.URL(rest_url).host or rest_url
        limiter = context.limiters.get(f"kiwoom:{host}", config.effective_rate, 1.0)
        client = KiwoomClient(
            rest_url=rest_url,
            app_key=app_key,
            secret_key=secret_key,
            http=lambda: context.http,
            limiter=limiter,
            config=config,
        )
        _CLIENTS[context] = client
        context.on_close(client.aclose)  # revoke the token when the venue shuts down
    return client
