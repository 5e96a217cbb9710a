"""Receive throughput of the WebSocket transports on loopback, with real capture frames.

A server process sends the recorded "in" frames of a real capture (OKX text frames, Upbit
binary frames; copies in ``tests/core/data``) over and over, pre-encoded, as fast as the
client reads. Each client receives ``--frames`` whole messages and the rate is taken
from connect to the last message. Reported: frames/s and payload MB/s, the median of
``--runs`` runs (min and max beside it), every transport in one run.

Clients:

* ``httpx-ws``, ``websockets`` and ``picows``: marketfeed's transports
  (``get_transport(name)``), through the ``Connection.receive()`` seam the supervisor uses;
* ``picows (callback)``: picows' native callback API, payload materialised as ``str`` or
  ``bytes`` per message and nothing else (no queue, no reassembly): the ceiling of what a
  transport on picows can do.

Run: ``python bench/transport/bench_transport.py [--frames 20000] [--runs 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import multiprocessing as mp
import platform
import statistics
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "core" / "data"
CAPTURES = {
    "okx": DATA / "okx.20220513.ws.1.jsonl",  # text frames
    "upbit": DATA / "upbit.20210405.ws.1.head120.jsonl",  # binary frames
}
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def load_in_frames(path: Path) -> list[str | bytes]:
    """The capture's "in" payloads (text as ``str``, binary as ``bytes``)."""
    from marketfeed.testing import read_capture

    return [f.payload for f in read_capture(path) if f.dir == "in"]


def encode_server_frame(payload: str | bytes) -> bytes:
    """One unmasked, final WebSocket frame (server to client)."""
    if isinstance(payload, str):
        opcode, data = 0x1, payload.encode("utf-8")
    else:
        opcode, data = 0x2, payload
    n = len(data)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + data


def build_stream(frames: list[str | bytes], count: int) -> tuple[bytes, int]:
    """``count`` frames cycling through ``frames``, pre-encoded; and their payload bytes."""
    encoded = [encode_server_frame(f) for f in frames]
    sizes = [len(f.encode("utf-8")) if isinstance(f, str) else len(f) for f in frames]
    reps, rest = divmod(count, len(frames))
    blob = b"".join(encoded) * reps + b"".join(encoded[:rest])
    payload = sum(sizes) * reps + sum(sizes[:rest])
    return blob, payload


# ----------------------------------------------------------------------------- server


def serve(port_queue: Any, count: int) -> None:
    """Server process: per connection, handshake, then send ``count`` frames of the
    capture named by the request path, then a close frame."""
    streams = {name: build_stream(load_in_frames(p), count)[0] for name, p in CAPTURES.items()}
    close_frame = struct.pack("!BBH", 0x88, 2, 1000)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        lines = request.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1].strip("/")
        key = next(
            line.split(":", 1)[1].strip()
            for line in lines
            if line.lower().startswith("sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        writer.write(streams[path])
        writer.write(close_frame)
        try:
            # The client sends nothing but its close frame (keep-alive pings are off):
            # end the TCP connection as soon as anything arrives, or at EOF.
            await reader.read(65536)
        except ConnectionError:
            pass
        finally:
            writer.transport.abort()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_queue.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# ----------------------------------------------------------------------------- clients


async def run_marketfeed(name: str, url: str, count: int) -> float:
    from marketfeed import get_transport

    transport = get_transport(name, keepalive_interval=None)
    start = time.perf_counter()
    async with transport.connect(url) as conn:
        for _ in range(count):
            await conn.receive()
        elapsed = time.perf_counter() - start
    return elapsed


async def run_picows_callback(url: str, count: int) -> float:
    import picows

    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    start = time.perf_counter()

    class Listener(picows.WSListener):  # type: ignore[misc]
        n = 0

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == picows.WSMsgType.TEXT:
                frame.get_payload_as_utf8_text()
            elif frame.msg_type == picows.WSMsgType.BINARY:
                frame.get_payload_as_bytes()
            else:
                return
            self.n += 1
            if self.n == count and not done.done():
                done.set_result(time.perf_counter() - start)

    transport, _ = await picows.ws_connect(Listener, url)
    try:
        return await done
    finally:
        transport.disconnect()
        await transport.wait_disconnected()


def clients() -> dict[str, Callable[[str, int], Awaitable[float]]]:
    found: dict[str, Callable[[str, int], Awaitable[float]]] = {
        "httpx-ws": lambda url, n: run_marketfeed("httpx-ws", url, n),
        "websockets": lambda url, n: run_marketfeed("websockets", url, n),
    }
    try:
        import picows  # noqa: F401
    except ImportError:
        print(
            'picows is not installed (pip install "marketfeed[picows]"): its rows are skipped',
            file=sys.stderr,
        )
    else:
        found["picows"] = lambda url, n: run_marketfeed("picows", url, n)
        found["picows (callback)"] = run_picows_callback
    return found


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=20_000, help="frames per run")
    parser.add_argument("--runs", type=int, default=5, help="runs per transport and capture")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    port_queue = ctx.Queue()
    server = ctx.Process(target=serve, args=(port_queue, args.frames), daemon=True)
    server.start()
    try:
        port = port_queue.get(timeout=30)
        rows = []
        for capture, path in CAPTURES.items():
            frames = load_in_frames(path)
            _, payload = build_stream(frames, args.frames)
            kind = "text" if isinstance(frames[0], str) else "binary"
            avg = payload / args.frames
            for name, client in clients().items():
                url = f"ws://127.0.0.1:{port}/{capture}"
                asyncio.run(client(url, min(args.frames, 500)))  # warm-up
                times = [asyncio.run(client(url, args.frames)) for _ in range(args.runs)]
                rates = sorted(args.frames / t for t in times)
                median = statistics.median(rates)
                rows.append(
                    (
                        name,
                        f"{capture} ({kind}, {avg:.0f} B)",
                        f"{median:,.0f}",
                        f"{median * avg / 1e6:.1f}",
                        f"{rates[0]:,.0f} .. {rates[-1]:,.0f}",
                    )
                )
    finally:
        server.terminate()
        server.join(timeout=5)

    headers = ("transport", "capture (frame kind, mean payload)", "frames/s", "MB/s", "min .. max")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print(
        f"\nWebSocket receive throughput on loopback: {args.frames:,} real capture frames per "
        f"run, median of {args.runs} runs (Python {platform.python_version()}, "
        f"{platform.machine()})\n"
    )
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(
            " | ".join(
                c.rjust(w) if i >= 2 else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


if __name__ == "__main__":
    main()
