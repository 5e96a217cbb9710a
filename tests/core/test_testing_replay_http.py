"""The replay server's HTTP side: recorded responses matched by method, path and query,
handlers, the request log, keep-alive and the 404 listing."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import anyio.lowlevel
import httpx
import pytest
from marketfeed.testing import (
    HttpRecord,
    HttpRequest,
    HttpResponse,
    ReplayServer,
    read_http_capture,
)

DATA = Path(__file__).parent / "data"
OKX_BOOKS = DATA / "okx.books.cryptomsgparser.http.jsonl"
UPBIT_DOCS = DATA / "upbit.docs-20250730.http.jsonl"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


@pytest.mark.anyio
async def test_recorded_okx_books_served_by_query() -> None:
    rows = _rows(OKX_BOOKS)
    async with ReplayServer() as server:
        server.add_http(read_http_capture(OKX_BOOKS))
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
            for row in rows:
                split = urlsplit(str(row["url"]))  # the recorded host is ignored
                response = await client.get(f"{split.path}?{split.query}")
                assert response.status_code == row["status"] == 200
                assert response.text == row["body"]
                assert response.headers["content-type"] == "application/json"
    assert [r.query for r in server.requests] == [
        {"instId": [urlsplit(str(row["url"])).query.split("=")[1]]} for row in rows
    ]


@pytest.mark.anyio
async def test_query_compared_as_decoded_multiset() -> None:
    rows = _rows(UPBIT_DOCS)
    candles = next(r for r in rows if "candles" in str(r["url"]))
    async with ReplayServer() as server:
        server.add_http(read_http_capture(UPBIT_DOCS))
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
            # other order, other percent-encoding (httpx encodes ':' and '+' its own way)
            response = await client.get(
                "/v1/candles/days",
                params={"count": "2", "to": "2025-07-30T00:00:00+09:00", "market": "KRW-BTC"},
            )
            assert response.status_code == 200
            assert response.text == candles["body"]
            ticker = await client.get("/v1/ticker", params={"markets": "KRW-BTC,KRW-ETH"})
            assert ticker.status_code == 200
            assert [t["market"] for t in ticker.json()] == ["KRW-BTC", "KRW-ETH"]
            # a different query is not the recorded request
            missing = await client.get("/v1/ticker", params={"markets": "KRW-BTC"})
            assert missing.status_code == 404
    assert server.requests[0].query == {
        "count": ["2"],
        "to": ["2025-07-30T00:00:00+09:00"],
        "market": ["KRW-BTC"],
    }


@pytest.mark.anyio
async def test_records_sharing_a_key_are_served_in_order_last_repeating() -> None:
    books = read_http_capture(OKX_BOOKS)
    url = "https://www.okx.com/api/v5/market/books?instId=BTC-USDT"
    records = [
        HttpRecord(t=b.t, method="GET", url=url, status=None, body=b.body) for b in books[:3]
    ]
    async with ReplayServer() as server:
        server.add_http(records)
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
            bodies = [
                (await client.get("/api/v5/market/books?instId=BTC-USDT")).text for _ in range(5)
            ]
    expected = [b.body for b in books[:3]]
    assert bodies == [*expected, expected[-1], expected[-1]]
    assert len(set(expected)) == 3  # the real bodies differ, so the order is observable


@pytest.mark.anyio
async def test_record_status_and_headers() -> None:
    body = _rows(OKX_BOOKS)[0]["body"]
    records = [
        HttpRecord(t=1.0, method="GET", url="http://x/err", status=429, body='{"code":"50011"}'),
        HttpRecord(
            t=2.0,
            method="GET",
            url="http://x/html",
            status=None,
            body="<html>\u00e9</html>",
            headers={"Content-Type": "text/html; charset=utf-8", "Content-Length": "1"},
        ),
        HttpRecord(t=3.0, method="GET", url="http://x/ok", status=None, body=str(body)),
    ]
    async with ReplayServer() as server:
        server.add_http(records)
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
            err = await client.get("/err")
            html = await client.get("/html")
            ok = await client.get("/ok")
    assert (err.status_code, err.json()) == (429, {"code": "50011"})
    assert html.status_code == 200
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert html.text == "<html>\u00e9</html>"  # content-length recomputed, UTF-8 body
    assert ok.status_code == 200 and ok.text == body


@pytest.mark.anyio
async def test_post_json_handler_and_request_log() -> None:
    seen: list[HttpRequest] = []

    async def token(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        await anyio.lowlevel.checkpoint()
        return HttpResponse.json({"token": "t-123", "return_code": 0})

    def chart(request: HttpRequest) -> HttpResponse:
        payload = request.json()
        return HttpResponse(201, json.dumps({"echo": payload["stk_cd"]}), {"cont-yn": "N"})

    async with ReplayServer() as server:
        server.add_http_handler("post", "/oauth2/token", token)
        server.add_http_handler("POST", "/api/dostk/chart", chart)
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
            r1 = await client.post(
                "/oauth2/token", json={"grant_type": "client_credentials", "appkey": "k"}
            )
            r2 = await client.post(
                "/api/dostk/chart?x=1",
                json={"stk_cd": "005930"},
                headers={"API-ID": "ka10081"},
            )
    assert r1.json() == {"token": "t-123", "return_code": 0}
    assert (r2.status_code, r2.json(), r2.headers["cont-yn"]) == (201, {"echo": "005930"}, "N")
    assert [r.path for r in server.requests] == ["/oauth2/token", "/api/dostk/chart"]
    second = server.requests[1]
    assert second.method == "POST"
    assert second.headers["api-id"] == "ka10081"  # lower-case names
    assert second.query == {"x": ["1"]}
    assert json.loads(second.body) == {"stk_cd": "005930"}
    assert seen[0].json()["grant_type"] == "client_credentials"
    assert server.requests[0].time <= server.requests[1].time


@pytest.mark.anyio
async def test_handler_overrides_records_and_errors_give_500() -> None:
    def broken(request: HttpRequest) -> HttpResponse:
        raise KeyError("boom")

    async with ReplayServer() as server:
        server.add_http(read_http_capture(UPBIT_DOCS))
        server.add_http_handler("GET", "/v1/ticker", lambda req: HttpResponse(503, "busy"))
        server.add_http_handler("GET", "/broken", broken)
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
            ticker = await client.get("/v1/ticker?markets=KRW-BTC,KRW-ETH")
            failed = await client.get("/broken")
    assert (ticker.status_code, ticker.text) == (503, "busy")
    assert failed.status_code == 500
    assert "KeyError" in failed.json()["error"]
    assert isinstance(server.errors[0], KeyError)


@pytest.mark.anyio
async def test_request_body_selects_the_record() -> None:
    bodies = [str(r["body"]) for r in _rows(OKX_BOOKS)[:2]]
    url = "https://api.kiwoom.com/api/dostk/chart"
    records = [
        HttpRecord(t=1.0, method="POST", url=url, status=200, body=bodies[0],
                   request_body='{"stk_cd": "005930", "base_dt": "20250730"}'),
        HttpRecord(t=2.0, method="POST", url=url, status=200, body=bodies[1],
                   request_body='{"stk_cd":"000660","base_dt":"20250730"}'),
    ]  # fmt: skip
    async with ReplayServer() as server:
        server.add_http(records)
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
            hynix = await client.post(
                "/api/dostk/chart", json={"base_dt": "20250730", "stk_cd": "000660"}
            )
            samsung = await client.post(
                "/api/dostk/chart", content=b'{"stk_cd":"005930","base_dt":"20250730"}'
            )
    assert hynix.text == bodies[1]
    assert samsung.text == bodies[0]


@pytest.mark.anyio
async def test_unknown_path_lists_what_is_served() -> None:
    async with ReplayServer() as server:
        server.add_http(read_http_capture(OKX_BOOKS))
        server.add_ws("/ws/v5/public", ["x"])
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
            response = await client.get("/api/v5/public/instruments?instType=SPOT")
    assert response.status_code == 404
    info = response.json()
    assert info["path"] == "/api/v5/public/instruments"
    assert info["query"] == {"instType": ["SPOT"]}
    assert "GET /api/v5/market/books?instId=BTC-USDT" in info["served"]["http"]
    assert info["served"]["ws"] == ["/ws/v5/public"]


@pytest.mark.anyio
async def test_keep_alive_reuses_one_connection() -> None:
    async with ReplayServer() as server:
        server.add_http(read_http_capture(OKX_BOOKS))
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
            statuses = [
                (
                    await client.get("/api/v5/market/books", params={"instId": "BTC-USDT"})
                ).status_code
                for _ in range(6)
            ]
            await client.post("/nothing", content=b"x" * 100_000)  # a body read to the end
            again = await client.get("/api/v5/market/books", params={"instId": "BTC-USD-SWAP"})
    assert statuses == [200] * 6
    assert again.status_code == 200
    assert server.connections == 1
    assert len(server.requests) == 8
    assert len(server.requests[6].body) == 100_000


@pytest.mark.anyio
async def test_connection_close_requests_are_answered_in_full() -> None:
    big = "x" * 300_000
    async with ReplayServer() as server:
        server.add_http_handler("GET", "/big", lambda req: HttpResponse(200, big))
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
            for _ in range(3):
                response = await client.get("/big", headers={"Connection": "close"})
                assert response.text == big
    assert server.connections == 3


@pytest.mark.anyio
async def test_fixtures_from_the_pytest_plugin(replay_server: ReplayServer) -> None:
    replay_server.add_http(read_http_capture(OKX_BOOKS))
    async with httpx.AsyncClient(base_url=replay_server.http_url, timeout=5) as client:
        response = await client.get("/api/v5/market/books?instId=BTC-USD-220624")
    assert response.status_code == 200
    assert replay_server.port > 0


@pytest.mark.anyio
async def test_garbage_gets_400_and_the_server_keeps_serving() -> None:
    async with ReplayServer() as server:
        server.add_http(read_http_capture(OKX_BOOKS))
        with anyio.fail_after(5):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as raw:
                await raw.send(b"\x16\x03\x01 not http at all\r\n\r\n")
                reply = await raw.receive()
            async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
                ok = await client.get("/api/v5/market/books?instId=BTC-USDT")
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"bad request" in reply
    assert ok.status_code == 200


@pytest.mark.anyio
async def test_serve_forever_until_cancelled() -> None:
    server = ReplayServer()
    server.add_http(read_http_capture(OKX_BOOKS))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            port = await tg.start(server.serve_forever)
            assert port == server.port
            async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
                response = await client.get("/api/v5/market/books?instId=BTC-USD-SWAP")
            tg.cancel_scope.cancel()
    assert response.status_code == 200
    with pytest.raises(OSError):  # the port is released
        await anyio.connect_tcp("127.0.0.1", server.port)
