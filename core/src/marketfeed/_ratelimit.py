"""Process-wide named rate limiters (aiolimiter), one owner per endpoint."""

from __future__ import annotations

from aiolimiter import AsyncLimiter

__all__ = ["RateLimiters"]


class RateLimiters:
    """Named :class:`aiolimiter.AsyncLimiter` instances shared by every caller.

    ``limiters.get("okx:rest:candles", 20, 2.0)`` returns the same limiter to every
    connection and job of the process, so one endpoint has exactly one budget.
    """

    def __init__(self) -> None:
        self._limiters: dict[str, AsyncLimiter] = {}

    def get(self, key: str, max_rate: float, period: float = 1.0) -> AsyncLimiter:
        """The limiter ``key``, created with ``max_rate`` acquisitions per ``period`` seconds
        on first use (later calls return the existing limiter unchanged)."""
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = AsyncLimiter(max_rate, period)
        return limiter

    def __contains__(self, key: str) -> bool:
        return key in self._limiters
