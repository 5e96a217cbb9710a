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
    it does not take. ``units``, ``bids``, ``empty_keys``: a ``UnitCache``, its ``bids``
    dict and its ``empty_keys`` set; ``markets``: code -> ``(symbol, native code)``;
    ``market(code, receive_time)`` resolves a new code."""

    def __init__(
        self,
        default: bool,
        venue: str,
        book_type: type[Any],
        units: dict[bytes, Any],
        bids: dict[bytes, Any],
        empty_keys: set[bytes],
        markets: dict[str, tuple[str, str]],
        market: Callable[[str, _dt.datetime], tuple[str, str]],
        decimal: type[Decimal],
        /,
    ) -> None: ...
    def __call__(self, frame: str | bytes, receive_time: _dt.datetime, /) -> list[Any] | None: ...

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
