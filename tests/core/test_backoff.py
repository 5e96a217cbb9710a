from __future__ import annotations

import random

import pytest
from marketfeed import Backoff


def test_exponential_growth_with_jitter_and_cap() -> None:
    b = Backoff(1.0, 300.0, 2.0, 0.5, rng=random.Random(7))
    delays = [b.next() for _ in range(12)]
    for n, d in enumerate(delays):
        base = min(300.0, 2.0**n)
        assert base * 0.5 <= d <= base
    assert max(delays) <= 300.0
    assert len(set(delays)) == len(delays)  # jitter spreads clients apart
    b.reset()
    assert 0.5 <= b.next() <= 1.0


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)
