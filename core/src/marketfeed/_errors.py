"""Exception hierarchy. Every marketfeed error derives from :class:`MarketfeedError`."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConnectionClosed",
    "MarketfeedError",
    "PluginError",
    "TransientSinkError",
    "TransportError",
    "VenueError",
]


class MarketfeedError(Exception):
    """Base class of every error raised by marketfeed and its plugins."""


class ConfigError(MarketfeedError):
    """Invalid configuration. The message starts with the key path at fault.

    Attributes:
        path: Dotted key path, e.g. ``"supervisor.queue_size"`` (``""`` for the file).
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class PluginError(MarketfeedError):
    """A plugin is missing, conflicts with another, or broke its contract."""


class TransportError(MarketfeedError):
    """A WebSocket or HTTP transport could not connect or failed."""


class ConnectionClosed(TransportError):
    """The WebSocket connection is closed.

    Attributes:
        code: WebSocket close code (``1006`` when the connection broke without a close).
        reason: Close reason sent by the peer.
    """

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"connection closed (code {code}{': ' + reason if reason else ''})")


class VenueError(MarketfeedError):
    """A venue answered with an error (REST error body, error event).

    Attributes:
        venue: Venue name.
        code: The venue's error code as a string, when it sent one.
    """

    def __init__(self, venue: str, message: str, code: str | None = None) -> None:
        self.venue = venue
        self.code = code
        super().__init__(f"{venue}: {message}" + (f" (code {code})" if code else ""))


class TransientSinkError(MarketfeedError):
    """A sink failed for a reason worth retrying (connection lost, server restarting).

    The supervisor retries the batch with backoff until it lands; nothing is dropped.
    """
