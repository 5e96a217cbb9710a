"""Exponential backoff with jitter for reconnects and sink retries."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays ``initial * multiplier**n`` capped at ``maximum``, each scaled by a random
    factor in ``[1 - jitter, 1]`` ("equal jitter" style) so that many clients reconnecting at
    once spread out. ``reset()`` after a healthy connection starts over.

    Args:
        initial: First delay, seconds.
        maximum: Cap, seconds.
        multiplier: Growth per attempt.
        jitter: Fraction of the delay that is randomised, 0 to 1.
        rng: Random source (tests pass a seeded ``random.Random``).
    """

    def __init__(
        self,
        initial: float = 1.0,
        maximum: float = 300.0,
        multiplier: float = 2.0,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        if initial < 0 or maximum < initial or multiplier < 1 or not 0 <= jitter <= 1:
            raise ValueError(
                "backoff needs 0 <= initial <= maximum, multiplier >= 1, 0 <= jitter <= 1"
            )
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The delay before the next attempt, seconds (and count the attempt)."""
        base = min(self.maximum, self.initial * self.multiplier**self.attempt)
        self.attempt += 1
        return base * (1 - self.jitter * self._rng.random())

    def reset(self) -> None:
        """Start over at ``initial`` (call after a connection proved healthy)."""
        self.attempt = 0
