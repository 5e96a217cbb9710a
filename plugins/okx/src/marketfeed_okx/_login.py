"""Optional private login on an OKX WebSocket connection.

Source: OKX API v5, "WebSocket > Login": the client sends
``{"op":"login","args":[{"apiKey","passphrase","timestamp","sign"}]}`` where ``timestamp``
is Unix epoch seconds and ``sign`` is
``base64(HMAC-SHA256(secret, timestamp + "GET" + "/users/self/verify"))``; the server
answers ``{"event":"login","code":"0","msg":""}`` or ``{"event":"error","code","msg"}``.

Secrets never appear in exceptions, logs or reprs: errors name the OKX code and message
only, and the login frame is never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import anyio
import msgspec
from marketfeed import Connection, TransportError, VenueError

from ._config import OkxCredentials

__all__ = ["login", "login_frame", "sign"]

_VERIFY_PATH = "/users/self/verify"


class _LoginReply(msgspec.Struct):
    event: str = ""
    code: str = ""
    msg: str = ""


_reply_decoder = msgspec.json.Decoder(_LoginReply)


def sign(timestamp: str, secret_key: str) -> str:
    """``base64(HMAC-SHA256(secret_key, timestamp + "GET" + "/users/self/verify"))``.

    Args:
        timestamp: Unix epoch seconds as text, exactly as sent in the login frame.
        secret_key: The API secret.
    """
    message = f"{timestamp}GET{_VERIFY_PATH}".encode()
    digest = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def login_frame(credentials: OkxCredentials, timestamp: str | None = None) -> str:
    """The login request text (it carries the key and signature: never log it).

    Args:
        credentials: Key, secret and passphrase.
        timestamp: Epoch seconds as text; defaults to now.
    """
    ts = timestamp if timestamp is not None else str(int(time.time()))
    arg = {
        "apiKey": credentials.api_key,
        "passphrase": credentials.passphrase,
        "timestamp": ts,
        "sign": sign(ts, credentials.secret_key),
    }
    return msgspec.json.encode({"op": "login", "args": [arg]}).decode()


async def login(
    connection: Connection,
    credentials: OkxCredentials,
    *,
    venue: str = "okx",
    timeout: float = 10.0,
) -> None:
    """Log in on an open connection and wait for OKX's answer.

    Frames other than the login answer (for example a ``pong``) are skipped.

    Raises:
        VenueError: OKX refused the login (its code and message, no secrets).
        TransportError: no answer within ``timeout`` seconds.
        ConnectionClosed: the connection closed meanwhile.
    """
    await connection.send(login_frame(credentials))
    with anyio.move_on_after(timeout):
        while True:
            frame = await connection.receive()
            if frame in ("pong", b"pong"):
                continue
            try:
                reply = _reply_decoder.decode(frame)
            except msgspec.DecodeError:
                continue
            if reply.event == "login":
                if reply.code in ("", "0"):
                    return
                raise VenueError(venue, f"login refused: {reply.msg}", reply.code)
            if reply.event == "error":
                raise VenueError(venue, f"login refused: {reply.msg}", reply.code or None)
    raise TransportError(f"{venue}: no answer to the login request within {timeout} s")
