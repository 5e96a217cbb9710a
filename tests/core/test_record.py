"""Recording: what the recording transport writes replays to the same events, and never
holds a secret."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from marketfeed import Supervisor, Trade, get_transport, parse_config
from marketfeed.testing import (
    MemorySink,
    RecordingTransport,
    ReplayServer,
    read_capture,
    redact_frame,
)

CAPTURE = (
    Path(__file__).parent
    / "data"
    / "binance_futures"
    / ("binance_futures.20210417.ws.5.head1500.jsonl")
)


def _config(server: ReplayServer, store: str) -> object:
    return parse_config(
        {
            "supervisor": {"status_path": None, "dead_letter_path": None, "batch_interval": 0.05},
            "venues": {"binance_mini": {"endpoints": {"ws": server.ws_url}}},
            "subscriptions": [
                {"venue": "binance_mini", "channels": ["aggTrade"], "symbols": ["YFIUSDT"]}
            ],
            "sinks": [{"type": "memory", "url": f"memory://{store}"}],
        }
    )


async def _collect(frames: list, store: str, transport: object | None = None) -> list[Trade]:
    MemorySink.clear(store)
    async with ReplayServer() as server:
        server.add_ws("/stream", frames, wait_for_client=False)
        kwargs = {"transport": transport} if transport is not None else {}
        async with Supervisor(_config(server, store), plugins=[MemorySink()], **kwargs) as sup:
            with anyio.fail_after(10):
                while sup.status().connections[0].frames < len(frames):
                    await anyio.sleep(0.02)
    return [e for e in MemorySink.events(store) if isinstance(e, Trade)]


@pytest.mark.anyio
async def test_a_recording_replays_to_the_same_events(tmp_path: Path) -> None:
    frames = read_capture(CAPTURE)
    recorder = RecordingTransport(get_transport("httpx-ws"), tmp_path)
    original = await _collect(frames, "rec-1", recorder)
    [path] = recorder.files
    assert path.name == "127.0.0.1_stream.1.jsonl"
    recorded = read_capture(path)
    assert [f.frame for f in recorded if f.dir == "in"] == [f.frame for f in frames]
    again = await _collect(recorded, "rec-2")
    assert [(t.trade_id, t.price, t.size) for t in again] == [
        (t.trade_id, t.price, t.size) for t in original
    ]
    # the replay sends every recorded stream, whatever the URL asked for
    assert len(original) == sum('"e":"aggTrade"' in f.frame for f in frames)


def test_sent_frames_are_redacted() -> None:
    login = json.dumps({"trnm": "LOGIN", "token": "WQJCwyqInph"})
    okx = json.dumps({"op": "login", "args": [{"apiKey": "k-1", "passphrase": "p", "sign": "s"}]})
    assert "WQJCwyqInph" not in redact_frame(login)
    red = json.loads(redact_frame(okx))["args"][0]
    assert red == {"apiKey": "***", "passphrase": "***", "sign": "***"}
    assert redact_frame("hello my-secret-1 world", ["my-secret-1"]) == "hello *** world"
    assert redact_frame('{"op":"subscribe","args":[{"channel":"trades"}]}') == (
        '{"op":"subscribe","args":[{"channel":"trades"}]}'
    )
