"""The ``kiwoom`` venue plugin (entry point ``kiwoom = "marketfeed_kiwoom.plugin"``).

Hooks: ``register`` (venue, channels, endpoints, config schema, jobs), ``plan``,
``connect`` (LOGIN with the REST token), ``subscribe`` (REG/REMOVE frames) and
``normalise`` (REAL frames to trades and book snapshots, PING echo, acks).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from marketfeed import (
    Connection,
    ConnectionPlan,
    Frame,
    Normaliser,
    Registry,
    SubscribeAction,
    Subscription,
    VenueContext,
    VenueInfo,
    hookimpl,
)

from ._client import config_of
from ._config import KiwoomConfig
from ._realtime import (
    CHANNELS,
    KiwoomNormaliser,
    open_connection,
    plan_connections,
    subscribe_frames,
)
from ._schedule import jobs_for

__all__ = ["ENDPOINTS", "INFO", "connect", "normalise", "plan", "register", "subscribe"]

VENUE = "kiwoom"

ENDPOINTS = {
    "rest": "https://api.kiwoom.com",
    "mock_rest": "https://mockapi.kiwoom.com",
    "ws": "wss://api.kiwoom.com:10000/api/dostk/websocket",
    "mock_ws": "wss://mockapi.kiwoom.com:10000/api/dostk/websocket",
}
"""Spec section 1 (hosts) and 7.1 (WebSocket path); override each under
``[venues.kiwoom.endpoints]``."""

INFO = VenueInfo(
    name=VENUE,
    description="Kiwoom Securities REST API (KRX stocks/ETFs): bars, investor flows, real-time",
    channels=CHANNELS,
    endpoints=ENDPOINTS,
    config_schema=KiwoomConfig,
    jobs=jobs_for(),
)


@hookimpl
def register(registry: Registry) -> None:
    """Declare the ``kiwoom`` venue."""
    registry.venue(INFO)


@hookimpl
def plan(
    venue: str, subscriptions: Sequence[Subscription], context: VenueContext
) -> list[ConnectionPlan] | None:
    """One logged-in WebSocket connection for every real-time subscription."""
    if venue != VENUE:
        return None
    return plan_connections(subscriptions, context)


@hookimpl
def connect(
    venue: str, plan: ConnectionPlan, context: VenueContext
) -> AbstractAsyncContextManager[Connection] | None:
    """Open the socket and LOGIN with the access token (see :func:`open_connection`)."""
    if venue != VENUE:
        return None
    return open_connection(plan, context)


@hookimpl
def subscribe(
    venue: str,
    subscriptions: Sequence[Subscription],
    action: SubscribeAction,
    context: VenueContext,
) -> Sequence[Frame] | None:
    """REG / REMOVE frames (see :func:`subscribe_frames`)."""
    if venue != VENUE:
        return None
    return subscribe_frames(subscriptions, action, config_of(context))


@hookimpl
def normalise(venue: str, plan: ConnectionPlan, context: VenueContext) -> Normaliser | None:
    """A :class:`KiwoomNormaliser` for the connection."""
    if venue != VENUE:
        return None
    return KiwoomNormaliser(plan, VENUE)
