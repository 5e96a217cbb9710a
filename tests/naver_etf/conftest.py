"""Fixtures for the Naver ETF plugin tests; helpers live in ``naver_etf_helpers``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from marketfeed.testing import ReplayServer
from naver_etf_helpers import FakeNaver


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def fake_naver(anyio_backend: object) -> AsyncIterator[FakeNaver]:
    """One replay server per Naver host, with the recorded documents installed."""
    async with ReplayServer() as a, ReplayServer() as b, ReplayServer() as c:
        yield FakeNaver({"list": a, "mobile": b, "wisereport": c})
