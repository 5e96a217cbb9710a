"""Optional C speedups of the L2 book engine (``_cbook.c``); used by ``marketfeed._book``.

Each function does exactly what the pure-Python code it replaces does (see ``_book.py``).
"""

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

class Side:
    """One side of an L2 book in a C array, best first (bids: ``neg=True``): the same
    methods and results as ``marketfeed._book._Side``; rare cases (exact mode, unusual
    spellings, malformed levels) run in that pure-Python class."""

    def __init__(self, neg: bool) -> None: ...
    def __len__(self) -> int: ...
    @property
    def neg(self) -> bool: ...
    @property
    def exact(self) -> bool:
        """Whether the side runs with Decimal keys (then its levels live in Python)."""
    @property
    def keys(self) -> list[float | Decimal]:
        """The sort keys, best first (a new list)."""
    @property
    def python(self) -> Any:
        """The ``_Side`` holding the levels instead of the array (exact mode), or None."""
    def clear(self) -> None: ...
    def load(self, levels: Sequence[Sequence[str]], /) -> None:
        """Replace the side with snapshot levels (``_Side.load``)."""
    def apply(self, levels: Sequence[Sequence[str]], watch: int, /) -> bool:
        """Apply delta levels; whether the top ``watch`` levels changed (``_apply_side_py``)."""
    def columns(self, n: int | None = None, /) -> tuple[list[str], list[str]]:
        """``(prices, sizes)`` of the top ``n`` levels (all when ``None``): new lists."""
    def head(self) -> tuple[float | Decimal, str, str] | None:
        """``(key, price, size)`` of the best level, or None."""
    def pairs(self, n: int, sep: str, /) -> list[str]:
        """``price + sep + size`` of the top ``n`` levels."""
    def decimals(
        self, n: int | None, cache: dict[str, Decimal], decimal: Any, capacity: int, /
    ) -> tuple[tuple[Decimal, Decimal], ...]:
        """The top ``n`` levels as exact Decimals (``_Side.decimals``: ``decimal_columns``
        of ``columns(n)``, here without the str lists)."""
    def forget_pairs(self) -> None: ...

def register(book_type: type[Any], side_type: type[Any], apply_side: Any, /) -> bool:
    """Enable :func:`apply_delta` for exactly ``L2Book`` (whether its slots were found) and
    give :class:`Side` the ``_Side`` class and ``_apply_side_py`` for its rare cases."""

def apply_delta(
    book: Any,
    bids: Sequence[Sequence[str]],
    asks: Sequence[Sequence[str]],
    sequence: int | None,
    prev_sequence: int | None,
    checksum: int | None,
    time: Any,
    event_time: Any,
    /,
) -> bool | tuple[int, int, bool, bool] | None:
    """``L2Book.apply_delta`` for the common case: its result; ``None`` when nothing was
    changed and Python does it all; ``(stage, n, dirty, seq_checked)`` when Python
    finishes it (``L2Book._finish_delta``)."""

def register_engine(
    engine_type: type[Any],
    slot_type: type[Any],
    checksum_type: type[Any],
    delta_type: type[Any],
    cache: dict[str, Decimal],
    decimal: type[Decimal],
    capacity: int,
    bad_data: tuple[type[BaseException], ...],
    book_globals: dict[str, Any],
    /,
) -> bool:
    """Enable :func:`engine_delta` for exactly ``BookEngine``/``_Slot`` and the
    ``Crc32Checksum`` fast path of :func:`apply_delta`; whether every slot was found."""

def engine_delta(
    engine: Any,
    native_symbol: str,
    symbol: str,
    bids: Sequence[Sequence[str]],
    asks: Sequence[Sequence[str]],
    event_time: Any,
    receive_time: Any,
    sequence: int | None,
    prev_sequence: int | None,
    checksum: int | None,
    /,
) -> list[Any] | None:
    """``BookEngine.delta`` for a known instrument with a valid book when no top snapshot is
    due: the same events (or resync pair); ``None`` when nothing was changed and Python does it
    all (also while ``marketfeed._book._c`` is ``None``)."""

class RawLevels:
    """Book levels as raw text in a frame (from a venue plugin's C parser, through the
    capsule): a read-only sequence of ``(price, size)`` str tuples made on access, which
    keeps the frame alive; :meth:`Side.load` reads it straight from the text."""

    def __len__(self) -> int: ...
    def __getitem__(self, key: int | slice, /) -> Any: ...

def raw_levels_bytes(frame: object, levels: list[tuple[bytes, bytes]], /) -> RawLevels:
    """The capsule's ``raw_levels`` over a list of ``(price, size)`` bytes (for tests)."""

def engine_delta_bytes(
    engine: Any,
    native_symbol: str,
    symbol: str,
    bids: list[tuple[bytes, bytes]],
    asks: list[tuple[bytes, bytes]],
    event_time: Any,
    receive_time: Any,
    sequence: int | None,
    prev_sequence: int | None,
    checksum: int | None,
    /,
) -> list[Any] | None:
    """The capsule's ``engine_delta_raw`` (levels as raw text) for levels given as bytes:
    ``engine_delta``'s events, or ``None`` when nothing changed and the caller must decode
    the levels and go on (for tests)."""

def crc32_sides(bids: Any, asks: Any, n: int, sep: str, /) -> int | None:
    """:func:`crc32_pairs` over two :class:`Side` objects with their levels in the C
    array; ``None`` for any other sides."""

def crc32_pairs(
    bid_pxs: list[str],
    bid_szs: list[str],
    ask_pxs: list[str],
    ask_szs: list[str],
    n: int,
    sep: str,
    /,
) -> int:
    """Unsigned CRC32 of the top ``n`` levels interleaved bid/ask, every string joined with
    ``sep`` (UTF-8); where one side is shorter the other continues alone."""

def crc32(data: bytes | bytearray | memoryview, /) -> int:
    """Unsigned CRC32, equal to ``zlib.crc32(data)``."""

def decimal_levels(
    levels: Sequence[Sequence[str]],
    cache: dict[str, Decimal],
    decimal: type[Decimal],
    capacity: int,
    /,
) -> tuple[tuple[Decimal, Decimal], ...]:
    """``(decimal(lv[0]), decimal(lv[1]))`` per level through ``cache`` (misses stored),
    then ``cache.clear()`` when it holds more than ``capacity`` entries."""

FAST_DECIMAL: bool
"""Whether plain texts (digits, at most one ``.``, at most 19 digits) are turned into
``decimal.Decimal`` objects here, without calling the type (``_decimal``'s layout checked at
import); otherwise every conversion calls the type."""

def decimal_columns(
    pxs: list[str],
    szs: list[str],
    n: int | None,
    cache: dict[str, Decimal],
    decimal: type[Decimal] | None = None,
    capacity: int = 0,
    /,
) -> tuple[tuple[Decimal, Decimal], ...]:
    """``(cache[px], cache[sz])`` for the first ``n`` (``None``: all) levels; with ``decimal``
    a plain text's miss is done in C as ``_DecimalCache.__missing__`` does it (cleared at
    ``capacity``, then stored)."""
