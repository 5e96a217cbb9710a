"""Optional C fast path of the OKX normaliser (``_cokx.c``); used by ``_normalise``.

It does exactly what the Python path does for the frames it accepts, and returns ``None``
for every other frame (the Python path then handles it).
"""

import datetime as _dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

class Fast:
    """``Fast(...)(frame, receive_time)``: a list of ``Ticker``/``Trade`` events for a
    ``tickers``/``trades`` push; ``(channel, arg_inst_id, action, items)`` for a book push,
    items ``(event_time, bids, asks, checksum, seq_id, prev_seq_id, inst_id)`` with levels
    ``(price, size)`` strings; or ``None``: left to the Python path."""

    def __init__(
        self,
        venue: str,
        ticker_type: type[Any],
        trade_type: type[Any],
        decimal_cache: dict[str, Decimal],
        capacity: int,
        symbols: dict[str, str],
        symbol_fn: Callable[[str], str],
        decimal: type[Decimal],
        book_channels: frozenset[str],
        /,
    ) -> None: ...
    def __call__(self, frame: str, receive_time: _dt.datetime, /) -> Any: ...
