"""Optional C fast path of the Upbit normaliser (``_cupbit.c``); used by ``_normalise``.

It does exactly what the Python path does for the orderbook and trade frames it accepts,
and returns ``None`` for every other frame (the normaliser then decodes it the Python way).
"""

import datetime as _dt
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

FAST_DECIMAL: bool
"""Whether new plain number texts are built by the core's C ``Decimal`` constructor
(``marketfeed._cbook._C_API``); ``False``: every text goes through ``Decimal(text)``."""

class Book:
    """``Book(...)(frame, receive_time)`` (frame: str or bytes, one orderbook frame in the
    DEFAULT format if ``default`` else SIMPLE): ``[BookSnapshot]``, or ``None`` for a frame
    it does not take. ``units``: the session's ``UnitCache``, whose ``_capacity`` bounds
    ``index``, the session's :class:`UnitIndex` of this format; ``markets``: code ->
    ``(symbol, native code)``; ``market(code, receive_time)`` resolves a new code."""

    cached: int
    """Units in its index."""
    emptied: int
    """How often its index was emptied at capacity."""

    def __init__(
        self,
        default: bool,
        venue: str,
        book_type: type[Any],
        units: dict[bytes, Any],
        index: UnitIndex,
        markets: dict[str, tuple[str, str]],
        market: Callable[[str, _dt.datetime], tuple[str, str]],
        decimal: type[Decimal],
        /,
    ) -> None: ...
    def __call__(self, frame: str | bytes, receive_time: _dt.datetime, /) -> list[Any] | None: ...

class UnitIndex:
    """The orderbook readers' unit index (unit text -> levels) and number table, kept in
    the session so a reconnect's readers start warm."""

    cached: int
    """Units held."""
    emptied: int
    """How often it was emptied at capacity."""

    def __init__(self) -> None: ...

class Trade:
    """``Trade(...)(frame, receive_time)`` (frame: str or bytes, one trade frame in the
    DEFAULT format if ``default`` else SIMPLE): ``[Trade]``, ``()`` for a trade already seen
    (``ids[code]``: the market's ``(set, deque)`` of at most ``window`` sequential ids), or
    ``None`` for a frame it does not take (a market's first trade included)."""

    def __init__(
        self,
        default: bool,
        venue: str,
        trade_type: type[Any],
        markets: dict[str, tuple[str, str]],
        ids: dict[str, tuple[set[int], deque[int]]],
        window: int,
        decimal: type[Decimal],
        /,
    ) -> None: ...
    def __call__(
        self, frame: str | bytes, receive_time: _dt.datetime, /
    ) -> list[Any] | tuple[()] | None: ...

class Dispatch:
    """``Dispatch(fast, decode, flush, pending)(frame, receive_time)``:
    ``UpbitNormaliser.__call__`` in C. ``fast`` maps a frame's first 12 bytes (bytes keys
    for binary frames, str keys for text frames; at most 16 of each) to its reader; a
    reader's events are returned (through ``flush(events)`` while ``pending`` is not empty),
    and a frame no reader takes goes to ``decode(frame, receive_time)``.

    Raises:
        ValueError: a key that is not 12 bytes or 12 ASCII characters, or too many keys.
    """

    def __init__(
        self,
        fast: dict[Any, Callable[[Any, _dt.datetime], Any]],
        decode: Callable[[Any, _dt.datetime], Any],
        flush: Callable[[Any], list[Any]],
        pending: list[Any],
        /,
    ) -> None: ...
    def __call__(self, frame: Any, receive_time: _dt.datetime, /) -> Any: ...
