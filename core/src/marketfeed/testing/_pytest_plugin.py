"""pytest plugin of marketfeed's testing kit (loaded through the ``pytest11`` entry point).

Fixtures for plugin authors (async fixtures run by anyio's pytest plugin: mark tests
``@pytest.mark.anyio``):

* ``replay_server``: an entered :class:`marketfeed.testing.ReplayServer` on a free
  loopback port, closed after the test;
* ``memory_sink``: a :class:`marketfeed.testing.MemorySink` plugin object, with every
  store emptied before and after the test.

The plugin module imports nothing heavy at pytest start-up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._memory import MemorySink
    from ._replay import ReplayServer


@pytest.fixture
async def replay_server(anyio_backend: object) -> AsyncIterator[ReplayServer]:
    """A running :class:`~marketfeed.testing.ReplayServer` (port chosen by the OS)."""
    from ._replay import ReplayServer

    async with ReplayServer() as server:
        yield server


@pytest.fixture
def memory_sink() -> Iterator[MemorySink]:
    """A :class:`~marketfeed.testing.MemorySink` with empty stores (emptied again after)."""
    from ._memory import MemorySink

    MemorySink.clear()
    yield MemorySink()
    MemorySink.clear()
