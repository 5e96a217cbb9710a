"""Token lifecycle, rate-limit back-off, renewals, breaker, paging, priority queue: against
the fake Kiwoom server on the replay kit."""

from __future__ import annotations

import datetime as _dt
import logging

import anyio
import pytest
from kiwoom_fake import APP_KEY, SECRET_KEY, FakeKiwoom, load, make_context, page
from marketfeed import VenueError
from marketfeed.testing import HttpRequest, HttpResponse, ReplayServer
from marketfeed_kiwoom import (
    CircuitBreaker,
    CircuitOpenError,
    KiwoomAuthError,
    KiwoomError,
    KiwoomRateLimitError,
    KiwoomSymbolError,
    KiwoomUnavailableError,
    Priority,
    PriorityGate,
    client_for,
    parse_expires_dt,
)

pytestmark = pytest.mark.anyio

DAILY = load("ka10081.response.json")


def ok_daily() -> HttpResponse:
    return page(DAILY)


def test_expires_dt_is_kst() -> None:
    # documented au10001 expires_dt, KST -> UTC (9 hours earlier)
    expires = parse_expires_dt(load("au10001.response.json")["expires_dt"])
    assert expires == _dt.datetime(2024, 11, 6, 23, 37, 13, tzinfo=_dt.UTC)
    assert parse_expires_dt("garbage") is None


async def test_token_issued_once_reused_then_renewed_near_expiry() -> None:
    fake = FakeKiwoom(lifetime=_dt.timedelta(hours=24))
    fake.default("ka10081", ok_daily())
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        client = client_for(ctx)
        for _ in range(3):
            await client.call("ka10081", "/api/dostk/chart", {"stk_cd": "005930"})
        assert len(fake.issued) == 1  # reused
        body = fake.token_requests[0].json()
        assert body == {**load("au10001.request.json"), "appkey": APP_KEY, "secretkey": SECRET_KEY}
        assert "api-id" not in fake.token_requests[0].headers
        auth = [r.headers["authorization"] for r in fake.data_requests]
        assert auth == [f"Bearer {fake.issued[0]}"] * 3
        # 30 s before expiry is inside the 600 s refresh margin: renewed before use
        expires = client.auth.expires_at
        assert expires is not None
        client.auth.clock = lambda: expires - _dt.timedelta(seconds=30)
        await client.call("ka10081", "/api/dostk/chart", {"stk_cd": "005930"})
        assert len(fake.issued) == 2
        assert fake.data_requests[-1].headers["authorization"] == f"Bearer {fake.issued[1]}"
        await ctx.aclose()


async def test_8005_triggers_exactly_one_renewal() -> None:
    fake = FakeKiwoom()
    fake.default("ka10081", ok_daily())
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        client = client_for(ctx)
        await client.call("ka10081", "/api/dostk/chart", {})
        fake.invalidate()  # the venue now answers the recorded [8005:...] body
        result = await client.call("ka10081", "/api/dostk/chart", {})
        assert result.body["stk_dt_pole_chart_qry"] == DAILY["stk_dt_pole_chart_qry"]
        assert len(fake.issued) == 2
        assert len(fake.data_requests) == 3  # ok, refused, retried with the new token

        # a venue that keeps refusing: one renewal, then the typed error
        fake.valid.clear()
        fake._token = _refusing_issuer(fake)  # type: ignore[method-assign]
        server.add_http_handler("POST", "/oauth2/token", fake._token)
        with pytest.raises(KiwoomAuthError) as exc:
            await client.call("ka10081", "/api/dostk/chart", {})
        assert exc.value.code == "8005" and isinstance(exc.value, VenueError)
        assert len(fake.data_requests) == 5  # refused, renewed once, refused again
        assert len(fake.issued) == 3
        await ctx.aclose()


def _refusing_issuer(fake: FakeKiwoom):  # type: ignore[no-untyped-def]
    original = FakeKiwoom._token

    def issue(request: HttpRequest) -> HttpResponse:
        response = original(fake, request)
        fake.valid.clear()  # issued but never accepted
        return response

    return issue


async def test_http_401_renews_once() -> None:
    fake = FakeKiwoom()
    fake.script("ka10081", HttpResponse(status=401, body=b""), ok_daily())
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        await client_for(ctx).call("ka10081", "/api/dostk/chart", {})
        assert len(fake.issued) == 2 and len(fake.data_requests) == 2
        await ctx.aclose()


@pytest.mark.parametrize("kind", ["http429", "code5", "code1700"])
async def test_rate_limit_backs_off_then_succeeds(kind: str) -> None:
    message = load("error.rate-limit.recorded.json")["return_msg"]
    limited = {
        "http429": HttpResponse(status=429, body=f'{{"return_msg":"{message}"}}'),
        "code5": HttpResponse.json({"return_code": 5, "return_msg": message}),
        "code1700": HttpResponse.json({"return_code": "1700", "return_msg": "초과"}),
    }[kind]
    fake = FakeKiwoom()
    fake.script("ka10081", limited, limited, ok_daily())
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server, retry_initial=0.05, retry_max=0.2)
        client = client_for(ctx)
        result = await client.call("ka10081", "/api/dostk/chart", {})
        assert result.body["return_code"] == 0
        times = [r.time for r in fake.data_requests]
        assert len(times) == 3
        assert times[1] - times[0] >= 0.04 and times[2] - times[1] >= 0.08  # exponential
        assert len(fake.issued) == 1  # no token refresh for rate limits
        assert client.breaker.consecutive == 0
        await ctx.aclose()


async def test_rate_limit_exhausted_raises_typed_error() -> None:
    fake = FakeKiwoom()
    fake.default(
        "ka10001", HttpResponse.json({"return_code": 5, **load("error.rate-limit.recorded.json")})
    )
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server, retry_attempts=3)
        with pytest.raises(KiwoomRateLimitError) as exc:
            await client_for(ctx).call("ka10001", "/api/dostk/stkinfo", {})
        assert exc.value.code == "1700" and exc.value.return_code == 5
        assert len(fake.data_requests) == 3
        await ctx.aclose()


async def test_other_business_errors_are_typed_and_not_retried() -> None:
    fake = FakeKiwoom()
    fake.script(
        "ka10095",
        HttpResponse.json({"return_code": 5, "return_msg": "100종목 초과[1634:too many]"}),
    )
    fake.script(
        "ka10001", HttpResponse.json({"return_code": 1902, "return_msg": "종목 정보가 없습니다"})
    )
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        client = client_for(ctx)
        with pytest.raises(KiwoomError) as exc:
            await client.call("ka10095", "/api/dostk/stkinfo", {})
        assert exc.value.code == "1634" and type(exc.value) is KiwoomError
        with pytest.raises(KiwoomSymbolError):
            await client.call("ka10001", "/api/dostk/stkinfo", {})
        assert len(fake.data_requests) == 2
        await ctx.aclose()


async def test_paging_three_pages_with_cont_yn_and_next_key() -> None:
    rows = DAILY["stk_dt_pole_chart_qry"]
    fake = FakeKiwoom()
    recorded = load("ka10081.response-headers.recorded.json")  # a real page's headers
    keys = [recorded["next-key"], recorded["next-key"][:-5] + "20000"]  # opaque keys
    fake.script(
        "ka10081",
        page({**DAILY, "stk_dt_pole_chart_qry": rows[:1]}, cont=True, next_key=keys[0]),
        page({**DAILY, "stk_dt_pole_chart_qry": rows[1:]}, cont=True, next_key=keys[1]),
        page({**DAILY, "stk_dt_pole_chart_qry": rows[:1]}, cont=False),
    )
    body = load("ka10081.request.json")
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        seen = []
        async for _page, items in client_for(ctx).pages(
            "ka10081", "/api/dostk/chart", body, "stk_dt_pole_chart_qry"
        ):
            seen.append(len(items))
        assert seen == [1, len(rows) - 1, 1]
        sent = fake.data_requests
        assert [r.headers.get("cont-yn") for r in sent] == [None, "Y", "Y"]
        assert [r.headers.get("next-key") for r in sent] == [None, *keys]
        assert all(r.json() == body for r in sent)  # the same body every page
        await ctx.aclose()


async def test_paging_stops_on_empty_page_that_says_continue() -> None:
    fake = FakeKiwoom()
    fake.default("ka10086", page({"daly_stkpc": []}, cont=True, next_key="K"))
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        pages = [
            p
            async for p in client_for(ctx).pages("ka10086", "/api/dostk/mrkcond", {}, "daly_stkpc")
        ]
        assert len(pages) == 1 and len(fake.data_requests) == 1
        await ctx.aclose()


async def test_circuit_breaker_opens_and_recovers() -> None:
    now = [0.0]
    fake = FakeKiwoom()
    fake.script("ka10081", *[HttpResponse(status=503, body=b"busy")] * 4)
    fake.default("ka10081", ok_daily())
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server, retry_attempts=1)
        client = client_for(ctx)
        client.breaker = CircuitBreaker(failures=3, cooldown=30.0, clock=lambda: now[0])
        for _ in range(3):
            with pytest.raises(KiwoomUnavailableError):
                await client.call("ka10081", "/api/dostk/chart", {})
        assert client.breaker.state == "open"
        with pytest.raises(CircuitOpenError):
            await client.call("ka10081", "/api/dostk/chart", {})
        assert len(fake.data_requests) == 3  # failing fast: nothing sent
        now[0] = 31.0  # cool-down over: one probe; it fails (4th scripted 503) -> open again
        assert client.breaker.state == "half_open"
        with pytest.raises(KiwoomUnavailableError):
            await client.call("ka10081", "/api/dostk/chart", {})
        assert client.breaker.state == "open" and len(fake.data_requests) == 4
        now[0] = 62.0  # next probe succeeds and closes the breaker
        await client.call("ka10081", "/api/dostk/chart", {})
        assert client.breaker.state == "closed"
        await client.call("ka10081", "/api/dostk/chart", {})
        assert len(fake.data_requests) == 6
        await ctx.aclose()


class _StepLimiter:
    """A limiter whose permits the test releases one at a time."""

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[None](100)

    async def acquire(self) -> None:
        await self.receive.receive()


async def test_priority_queue_serves_realtime_before_bulk() -> None:
    limiter = _StepLimiter()
    gate = PriorityGate(limiter)  # type: ignore[arg-type]
    order: list[str] = []

    async def call(name: str, priority: int) -> None:
        await gate.acquire(priority)
        order.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "bulk-first", Priority.BULK)  # takes the turn, waits for a permit
        await anyio.wait_all_tasks_blocked()
        for name, priority in [
            ("bulk-2", Priority.BULK),
            ("normal", Priority.NORMAL),
            ("bulk-3", Priority.BULK),
            ("realtime", Priority.REALTIME),
            ("auth", Priority.AUTH),
        ]:
            tg.start_soon(call, name, priority)
            await anyio.wait_all_tasks_blocked()
        assert gate.waiting == 5
        for _ in range(6):
            await limiter.send.send(None)
            await anyio.wait_all_tasks_blocked()
    assert order == ["bulk-first", "auth", "realtime", "normal", "bulk-2", "bulk-3"]


async def test_priority_gate_survives_cancelled_waiters() -> None:
    limiter = _StepLimiter()
    gate = PriorityGate(limiter)  # type: ignore[arg-type]
    order: list[str] = []

    async def call(name: str) -> None:
        await gate.acquire(Priority.NORMAL)
        order.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "a")
        await anyio.wait_all_tasks_blocked()
        with anyio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(anyio.get_cancelled_exc_class()):
                await gate.acquire(Priority.AUTH)
        tg.start_soon(call, "b")
        await anyio.wait_all_tasks_blocked()
        await limiter.send.send(None)
        await limiter.send.send(None)
    assert order == ["a", "b"] and gate.waiting == 0


async def test_one_limiter_and_gate_per_host_in_the_process() -> None:
    async with ReplayServer() as server:
        a = make_context(server)
        b = make_context(server)
        b.limiters = a.limiters  # one RateLimiters per process (the supervisor's)
        assert client_for(a) is client_for(a)
        assert client_for(a).gate is client_for(b).gate


async def test_limiter_paces_requests() -> None:
    fake = FakeKiwoom()
    fake.default("ka10081", ok_daily())
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server, rate=20.0)
        client = client_for(ctx)
        await client.auth.token()  # spends one permit
        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(client.call, "ka10081", "/api/dostk/chart", {})
        elapsed = anyio.current_time() - start
        # 20/s with a bucket of 20: 41 permits need at least ~1 s
        assert elapsed >= 0.9, elapsed
        await ctx.aclose()


async def test_venue_shutdown_revokes_the_token_once() -> None:
    fake = FakeKiwoom()
    fake.default("ka10081", ok_daily())
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        client = client_for(ctx)
        async with client.lease():
            await client.call("ka10081", "/api/dostk/chart", {})
        assert fake.revoked == []  # a reconnect or the next job reuses the token
        await ctx.aclose()  # what the supervisor does at shutdown
        assert fake.revoked == fake.issued and len(fake.issued) == 1
        await ctx.aclose()
        assert len(fake.revoked) == 1


async def test_lease_revokes_the_token_when_the_last_user_leaves() -> None:
    fake = FakeKiwoom()
    fake.default("ka10081", ok_daily())
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server, revoke_on_idle=True)
        client = client_for(ctx)
        async with client.lease():
            async with client.lease():
                await client.call("ka10081", "/api/dostk/chart", {})
            assert fake.revoked == []  # one user left
        assert fake.revoked == fake.issued  # au10002 with the issued token
        await ctx.aclose()


async def test_secrets_never_in_logs_errors_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeKiwoom()
    fake.script("ka10081", HttpResponse.json(load("error.auth-token-invalid.recorded.json")))
    fake.default("ka10081", ok_daily())
    fake.default("ka10001", HttpResponse.json({"return_code": 8010, "return_msg": "IP"}))
    errors: list[str] = []
    async with ReplayServer() as server:
        fake.install(server)
        ctx = make_context(server)
        client = client_for(ctx)
        async with client.lease():
            await client.call("ka10081", "/api/dostk/chart", {})
            try:
                await client.call("ka10001", "/api/dostk/stkinfo", {})
            except KiwoomAuthError as exc:
                errors.append(f"{exc} {exc!r}")
            reprs = " ".join(map(repr, [ctx.config, client, client.auth, client.breaker]))
        await ctx.aclose()
    assert fake.issued and fake.revoked
    secrets = [APP_KEY, SECRET_KEY, *fake.issued, "WQJCwyqInphKnR3bSRtB9NE1lv"]
    haystack = caplog.text + " ".join(errors) + reprs + str(ctx.config)
    assert "kiwoom token issued" in caplog.text  # the logs were captured
    for secret in secrets:
        assert secret not in haystack


async def test_past_expires_dt_does_not_reissue_on_every_call() -> None:
    # the documented au10001 body: expires_dt 2024-11-07, long past
    fake = FakeKiwoom()
    fake.default("ka10081", ok_daily())
    documented = load("au10001.response.json")

    def issue(request: HttpRequest) -> HttpResponse:
        fake.issued.append(documented["token"])
        fake.valid.add(documented["token"])
        return HttpResponse.json(documented)

    async with ReplayServer() as server:
        fake.install(server)
        server.add_http_handler("POST", "/oauth2/token", issue)
        ctx = make_context(server)
        client = client_for(ctx)
        for _ in range(3):
            await client.call("ka10081", "/api/dostk/chart", {})
        assert fake.issued == [documented["token"]]
        expires = client.auth.expires_at
        assert expires is not None and expires > _dt.datetime.now(_dt.UTC)
        await ctx.aclose()
