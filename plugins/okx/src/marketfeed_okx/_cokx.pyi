"""Optional C fast path of the OKX normaliser (``_cokx.c``); used by ``_normalise``.

It does exactly what the Python path does for the frames it accepts, and returns ``None``
for every other frame (the Python path then handles it).
"""

import datetime as _dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

FAST_DECIMAL: bool
"""Whether plain decimal texts become ``Decimal`` objects through the core's C API
(``marketfeed._cbook._C_API``) rather than by calling the type (same values either way)."""

class Fast:
    """``Fast(...)(frame, receive_time)`` (frame: str or bytes): a list of ``Ticker``/
    ``Trade`` events for a ``tickers``/``trades`` push; for a book push
    ``on_book(channel, arg_inst_id, action, items, receive_time)``, items ``(event_time,
    bids, asks, checksum, seq_id, prev_seq_id, inst_id)`` with levels ``(price, size)``
    strings (without ``on_book``: that tuple); for any other frame
    ``fallback(frame, receive_time)`` (without ``fallback``: ``None``)."""

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
        fallback: Callable[[str | bytes, _dt.datetime], Any] | None = None,
        on_book: Callable[[str, str, str, list[tuple[Any, ...]], _dt.datetime], Any] | None = None,
        /,
    ) -> None: ...
    def __call__(self, frame: str | bytes, receive_time: _dt.datetime, /) -> Any: ...
    def set_books(
        self,
        engines: dict[str, Any],
        engine_fn: Callable[[str], Any],
        symbols: dict[str, str],
        symbol_fn: Callable[[str], str],
        incremental: frozenset[str],
        /,
    ) -> None:
        """Feed a one-object book push straight to its engine (as ``on_parsed``)."""
