"""VenueContext: endpoints, shared limiters, close callbacks."""

from __future__ import annotations

import pytest
from marketfeed import RateLimiters, VenueContext, get_transport


def make_context() -> VenueContext:
    import httpx

    return VenueContext(
        venue="v",
        config=None,
        endpoints={"ws": "ws://127.0.0.1:1/ws"},
        transport=get_transport("httpx-ws"),
        limiters=RateLimiters(),
        http=httpx.AsyncClient,
    )


def test_endpoint_lookup_names_the_known_ones() -> None:
    ctx = make_context()
    assert ctx.endpoint("ws") == "ws://127.0.0.1:1/ws"
    with pytest.raises(KeyError, match="known: \\['ws'\\]"):
        ctx.endpoint("rest")


def test_limiters_are_shared_by_key() -> None:
    limiters = RateLimiters()
    a = limiters.get("okx:rest", 20, 2.0)
    assert limiters.get("okx:rest", 1, 1.0) is a
    assert a.max_rate == 20 and a.time_period == 2.0
    assert "okx:rest" in limiters and "other" not in limiters


@pytest.mark.anyio
async def test_close_callbacks_run_in_reverse_order_even_after_a_failure() -> None:
    ctx = make_context()
    calls: list[str] = []

    async def first() -> None:
        calls.append("first")

    async def broken() -> None:
        calls.append("broken")
        raise RuntimeError("revoke failed")

    ctx.on_close(first)
    ctx.on_close(broken)
    client = ctx.http
    await ctx.aclose()
    assert calls == ["broken", "first"]
    assert client.is_closed
    await ctx.aclose()  # idempotent
    assert calls == ["broken", "first"]
