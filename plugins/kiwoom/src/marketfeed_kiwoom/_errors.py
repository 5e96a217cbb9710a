"""Typed Kiwoom errors and the classification of ``return_code`` / ``return_msg``.

Source: spec section 5 (errors) and 6 (rate limits): business errors arrive as HTTP 200 with
``return_code != 0``; the top-level code is often a category (3 = authentication, 5 = request
limit) and the specific code is embedded in ``return_msg`` as ``[NNNN:text]`` (REST) or
``CODE=NNNN`` (WebSocket). The embedded code wins when present.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marketfeed import VenueError

__all__ = [
    "AUTH_RENEW_CODES",
    "RATE_LIMIT_CODES",
    "CircuitOpenError",
    "KiwoomAuthError",
    "KiwoomError",
    "KiwoomRateLimitError",
    "KiwoomRequestError",
    "KiwoomSymbolError",
    "KiwoomUnavailableError",
    "KiwoomUnsupportedError",
    "classify",
    "error_for",
    "return_code",
]

RATE_LIMIT_CODES = frozenset({"1700", "1701", "1702", "1687"})
"""Back off and retry: per-API, total and group request limits; 1687 recursive calls."""

AUTH_RENEW_CODES = frozenset({"8005", "8031", "8103"})
"""Re-issue the token and retry once (spec section 5, [SDK] behaviour)."""

_EMBEDDED = re.compile(r"\[(\d{3,5}):|CODE=(\d{3,5})")


class KiwoomError(VenueError):
    """A Kiwoom call failed. Subclass of :class:`marketfeed.VenueError` (venue ``kiwoom``).

    Attributes:
        code: The specific Kiwoom code (embedded ``[NNNN:...]`` if present, else the
            top-level ``return_code``; ``"HTTP 404"`` style for transport statuses).
        api_id: The TR code of the call (``"ka10081"``), when known.
        return_code: The top-level ``return_code`` as an int, when the body had one.
        status: HTTP status, when there was a response.
    """

    def __init__(
        self,
        message: str,
        code: str | None = None,
        *,
        api_id: str | None = None,
        return_code: int | None = None,
        status: int | None = None,
    ) -> None:
        self.api_id = api_id
        self.return_code = return_code
        self.status = status
        prefix = f"{api_id}: " if api_id else ""
        super().__init__("kiwoom", prefix + message, code)


class KiwoomAuthError(KiwoomError):
    """Authentication failed (8001-8103): bad keys, invalid token, IP or mode mismatch."""


class KiwoomRateLimitError(KiwoomError):
    """Request limit exceeded (HTTP 429, 1700/1701/1702, 1687) after every retry."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class KiwoomRequestError(KiwoomError):
    """The request was malformed (15xx, HTTP 4xx): a bug, never retried."""


class KiwoomSymbolError(KiwoomError):
    """Unknown market or stock code (1901/1902/1903): skip the symbol."""


class KiwoomUnsupportedError(KiwoomError):
    """API not available in this mode or for this customer (8104, 8200)."""


class KiwoomUnavailableError(KiwoomError):
    """Transient server or network failure (HTTP 5xx, 1999, transport error, bad body);
    retried with backoff and counted by the circuit breaker."""


class CircuitOpenError(KiwoomUnavailableError):
    """The circuit breaker is open: recent calls kept failing, no request was sent."""


def return_code(value: Any) -> int | None:
    """``return_code`` as an int: it arrives as ``0``, ``"0"``, ``"0000"`` or ``"8005"``
    ([SDK] ``normalize_return_code``). ``None`` when absent or not numeric."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def classify(body: Mapping[str, Any]) -> tuple[int | None, str | None, str]:
    """``(top-level return_code, specific code, message)`` of a response body.

    The specific code is the one embedded in ``return_msg`` (``[1700:...]`` or
    ``CODE=8005``) when present, else the top-level code as a string (``None`` when the
    body has neither).
    """
    top = return_code(body.get("return_code"))
    message = str(body.get("return_msg") or body.get("message") or "")
    match = _EMBEDDED.search(message)
    if match:
        code: str | None = match.group(1) or match.group(2)
    elif top is not None:
        code = str(top)
    else:
        code = None
    return top, code, message


def error_for(code: str | None, top: int | None = None) -> type[KiwoomError]:
    """The error class for a Kiwoom code (spec section 5 table)."""
    if code in RATE_LIMIT_CODES or (top == 5 and code == "5"):
        return KiwoomRateLimitError
    if code is None:
        return KiwoomError
    if code in ("8104", "8200"):
        return KiwoomUnsupportedError
    if code.startswith("80") or code.startswith("81") or code == "3":
        return KiwoomAuthError
    if code in ("1901", "1902", "1903"):
        return KiwoomSymbolError
    if code.startswith("15"):
        return KiwoomRequestError
    if code == "1999":
        return KiwoomUnavailableError
    return KiwoomError
