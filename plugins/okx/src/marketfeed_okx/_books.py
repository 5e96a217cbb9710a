"""OKX order books through the core book engine (:mod:`marketfeed.book`).

Channels (source: OKX API v5, "WebSocket > Public channels > Order book channel"):

* ``books`` (400 levels), ``books-l2-tbt`` (400 levels, tick by tick) and
  ``books50-l2-tbt`` (50 levels): a ``snapshot`` then ``update`` pushes. Each carries a
  ``checksum`` (CRC32 of the top 25 levels, see :mod:`._checksum`) and, on current
  servers, ``seqId``/``prevSeqId`` (``prevSeqId`` is ``-1`` on the snapshot; each update's
  ``prevSeqId`` equals the previous push's ``seqId``). The 2021-22 recordings have no
  sequence ids: the engine's ``"linked"`` rule only applies once a book has seen one, so
  both work. Since 2026-06-23 OKX sends ``checksum`` 0 on these channels (deprecated in
  favour of the sequence ids): a ``0`` next to a ``seqId`` is treated as "no checksum".
* ``books5`` (5 levels) and ``bbo-tbt`` (best bid and offer): every push is a full
  snapshot without a checksum.

Emission per subscription options: ``book_emit`` (``delta``, ``top`` or ``both``),
``book_top_depth`` (levels per side of top snapshots) and ``book_top_interval`` (seconds
between top snapshots of one book).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, cast
from zlib import crc32

from marketfeed import Event, Subscription
from marketfeed.book import (
    SPEEDUPS,
    BookEngine,
    ChecksumFunction,
    Crc32Checksum,
    EmitPolicy,
    L2Book,
)

from ._checksum import CHECKSUM_DEPTH
from ._decode import BookPush, LooseBookPush, ms_to_datetime
from ._symbols import normalise_symbol

__all__ = [
    "BOOK_CHANNELS",
    "INCREMENTAL_BOOK_CHANNELS",
    "OkxBooks",
    "book_checksum",
    "book_checksum_columns",
    "book_checksum_crc",
    "book_options",
]

INCREMENTAL_BOOK_CHANNELS = frozenset({"books", "books-l2-tbt", "books50-l2-tbt"})
"""Channels that send a snapshot then updates, with a checksum."""

BOOK_CHANNELS = ("books", "books-l2-tbt", "books50-l2-tbt", "books5", "bbo-tbt")
"""Every OKX order book channel."""

_join = ":".join


def book_checksum(book: L2Book) -> int:
    """OKX's checksum of an engine book (signed CRC32 of its top 25 levels).

    Same rule as :func:`marketfeed_okx.okx_checksum`, over the book's original strings.
    The engine keeps the ``"px:sz"`` strings of the top levels up to date
    (:meth:`L2Book.raw_pairs`), so the text is those pairs interleaved bid/ask (slice
    assignments) and joined with ``:``; where one side is shorter, the other side's
    pairs continue alone.
    """
    bp, ap = book.raw_pairs(CHECKSUM_DEPTH, ":")
    nb = len(bp)
    na = len(ap)
    if nb == na:
        parts = bp + ap
        parts[0::2] = bp
        parts[1::2] = ap
    elif nb > na:
        parts = bp[:na] + ap
        parts[0::2] = bp[:na]
        parts[1::2] = ap
        parts += bp[na:]
    else:
        parts = bp + ap[:nb]
        parts[0::2] = bp
        parts[1::2] = ap[:nb]
        parts += ap[nb:]
    value = crc32(_join(parts).encode())
    return value - 0x100000000 if value & 0x80000000 else value


book_checksum_crc: Final = Crc32Checksum(CHECKSUM_DEPTH, ":", signed=True)
""":func:`book_checksum` through the core's :class:`marketfeed.book.Crc32Checksum` (the
CRC32 of the top 25 levels interleaved bid/ask and joined with ``:``, made signed), a
callable ``book_checksum_crc(book) -> int``.

With the core's C speedups (``marketfeed.book.SPEEDUPS``) no string is built and the book
engine computes it without calling into Python: about 0.2 µs per book instead of 2-3 µs, so
the plugin uses it whenever they are loaded; the pure-Python
:meth:`L2Book.crc32_pairs` is slower than :func:`book_checksum` or
:func:`book_checksum_columns`, which serve the pure-Python engine."""


def book_checksum_columns(book: L2Book) -> int:
    """:func:`book_checksum` computed from the book's four top columns
    (:meth:`L2Book.raw_columns`) instead of its kept ``"px:sz"`` pairs.

    The engine keeps the pairs only for books whose checksum asks for them, updating them
    on every change to the top levels. That pays on tick-by-tick channels (about 1.7 top
    levels changed per push in the 2021 ``books-l2-tbt`` capture: 4.6 instead of 5.3 µs
    per book message) and costs on the 100 ms ``books`` channel (about 15 per push in
    the 2022 capture: 22.1 instead of 21.2 µs), which therefore uses this function. The
    value is the same; the columns are interleaved with slice assignments.
    """
    bp, bs, ap, az = book.raw_columns(CHECKSUM_DEPTH)
    nb = len(bp)
    na = len(ap)
    tail: list[str] = []
    if nb > na:
        tail = _interleave(bp[na:], bs[na:])
        bp, bs = bp[:na], bs[:na]
    elif na > nb:
        tail = _interleave(ap[nb:], az[nb:])
        ap, az = ap[:nb], az[:nb]
    parts = bp * 4
    parts[0::4] = bp
    parts[1::4] = bs
    parts[2::4] = ap
    parts[3::4] = az
    parts += tail
    value = crc32(_join(parts).encode())
    return value - 0x100000000 if value & 0x80000000 else value


def _interleave(prices: list[str], sizes: list[str]) -> list[str]:
    parts = prices * 2
    parts[0::2] = prices
    parts[1::2] = sizes
    return parts


def book_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The engine policy arguments from a subscription's options.

    Returns:
        ``{"emit", "top_depth", "top_interval"}`` for the keys present (``book_emit``,
        ``book_top_depth``, ``book_top_interval``).

    Raises:
        ValueError: an option has the wrong type or value.
    """
    out: dict[str, Any] = {}
    if "book_emit" in options:
        emit = options["book_emit"]
        if emit not in ("delta", "top", "both"):
            raise ValueError(f"book_emit must be delta, top or both, not {emit!r}")
        out["emit"] = emit
    if "book_top_depth" in options:
        depth = options["book_top_depth"]
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise ValueError(f"book_top_depth must be a positive integer, not {depth!r}")
        out["top_depth"] = depth
    if "book_top_interval" in options:
        interval = options["book_top_interval"]
        if not isinstance(interval, int | float) or isinstance(interval, bool) or interval < 0:
            raise ValueError(f"book_top_interval must be seconds >= 0, not {interval!r}")
        out["top_interval"] = float(interval)
    return out


class OkxBooks:
    """The order books of one OKX connection, one :class:`BookEngine` per channel.

    Args:
        venue: Venue name on events.
        subscriptions: The connection's subscriptions (book options are read from them).
        checksum: Verify OKX checksums on the incremental channels.
    """

    def __init__(
        self, venue: str, subscriptions: Iterable[Subscription] = (), *, checksum: bool = True
    ) -> None:
        self.venue = venue
        self.checksum = checksum
        self._engines: dict[str, BookEngine] = {}
        self._symbols: dict[str, str] = {}
        self._options: dict[str, list[Subscription]] = {}
        for sub in subscriptions:
            if sub.channel in BOOK_CHANNELS and sub.options:
                self._options.setdefault(sub.channel, []).append(sub)

    def engine(self, channel: str) -> BookEngine:
        """The engine of ``channel`` (created on first use)."""
        engine = self._engines.get(channel)
        if engine is None:
            incremental = channel in INCREMENTAL_BOOK_CHANNELS
            checksum: ChecksumFunction | None = None
            if incremental and self.checksum:
                if SPEEDUPS:
                    checksum = book_checksum_crc
                elif channel == "books":
                    # 100 ms "books" pushes change many top levels at once: see
                    # book_checksum_columns for the measured choice.
                    checksum = book_checksum_columns
                else:
                    checksum = book_checksum
            engine = BookEngine(
                self.venue,
                channel,
                checksum=checksum,
                sequence="linked" if incremental else "none",
            )
            for sub in self._options.get(channel, ()):
                opts = book_options(sub.options)
                if opts:
                    engine.configure(
                        sub.symbol,
                        normalise_symbol(sub.symbol),
                        emit=cast("EmitPolicy | None", opts.get("emit")),
                        top_depth=opts.get("top_depth"),
                        top_interval=opts.get("top_interval"),
                    )
            self._engines[channel] = engine
        return engine

    def symbol(self, inst_id: str) -> str:
        """The normalised symbol of a book's ``instId`` (kept once computed).

        Raises:
            ValueError: not an OKX instId.
        """
        symbol = self._symbols.get(inst_id)
        if symbol is None:
            symbol = self._symbols[inst_id] = normalise_symbol(inst_id)
        return symbol

    def direct(self) -> tuple[dict[str, BookEngine], Any, dict[str, str], Any, frozenset[str]]:
        """What the C fast path needs to feed a book push straight to its engine, as
        :meth:`on_parsed` does (``marketfeed_okx._cokx.Fast.set_books``): the engines by
        channel, :meth:`engine`, the symbols by instId, :meth:`symbol`, the incremental
        channels."""
        return self._engines, self.engine, self._symbols, self.symbol, INCREMENTAL_BOOK_CHANNELS

    def resyncing(self, channel: str, inst_id: str) -> bool:
        """Whether that book waits for a fresh snapshot after an integrity failure."""
        engine = self._engines.get(channel)
        return engine is not None and engine.resyncing(inst_id)

    def forget(self, channel: str, inst_id: str) -> None:
        """After an unsubscribe ack: drop the book unless it is resyncing (then the
        subscribe that follows brings the snapshot the engine waits for)."""
        engine = self._engines.get(channel)
        if engine is not None and not engine.resyncing(inst_id):
            engine.remove(inst_id)

    def on_push(self, push: BookPush | LooseBookPush, receive_time: _dt.datetime) -> list[Event]:
        """Feed one decoded book push to its engine; return the engine's events.

        Raises:
            ValueError: an unknown ``action`` or a push without instrument id.
        """
        channel = push.arg.channel
        engine = self._engines.get(channel) or self.engine(channel)
        incremental = channel in INCREMENTAL_BOOK_CHANNELS
        action = push.action
        if incremental and action != "snapshot" and action != "update":
            raise ValueError(f"OKX book action {action!r} is neither snapshot nor update")
        out: list[Event] = []
        for d in push.data:
            out += self._apply(
                engine,
                incremental and action == "update",
                incremental,
                push.arg.instId or d.instId,
                ms_to_datetime(d.ts),
                d.bids,
                d.asks,
                d.checksum,
                d.seqId,
                d.prevSeqId,
                receive_time,
            )
        return out

    def on_parsed(
        self,
        channel: str,
        arg_inst_id: str,
        action: str,
        items: list[tuple[Any, ...]],
        receive_time: _dt.datetime,
    ) -> list[Event]:
        """:meth:`on_push` for a push read by the C fast path (``marketfeed_okx._cokx``):
        ``items`` are ``(event_time, bids, asks, checksum, seq_id, prev_seq_id, inst_id)``
        per data object, levels ``(price, size)`` strings.

        Raises:
            ValueError: as :meth:`on_push`.
        """
        engine = self._engines.get(channel) or self.engine(channel)
        incremental = channel in INCREMENTAL_BOOK_CHANNELS
        if incremental and action != "snapshot" and action != "update":
            raise ValueError(f"OKX book action {action!r} is neither snapshot nor update")
        update = incremental and action == "update"
        out: list[Event] = []
        for event_time, bids, asks, checksum, seq_id, prev_seq_id, inst_id in items:
            out += self._apply(
                engine,
                update,
                incremental,
                arg_inst_id or inst_id,
                event_time,
                bids,
                asks,
                checksum,
                seq_id,
                prev_seq_id,
                receive_time,
            )
        return out

    def _apply(
        self,
        engine: BookEngine,
        update: bool,
        incremental: bool,
        inst_id: str,
        event_time: _dt.datetime,
        bids: Sequence[Sequence[str]],
        asks: Sequence[Sequence[str]],
        checksum: int | None,
        seq_id: int | None,
        prev_seq_id: int | None,
        receive_time: _dt.datetime,
    ) -> list[Event]:
        if not inst_id:
            raise ValueError("OKX book push without instId")
        symbol = self._symbols.get(inst_id) or self.symbol(inst_id)
        if not incremental:
            checksum = None  # books5/bbo-tbt carry none
        elif checksum == 0 and seq_id is not None:
            checksum = None  # deprecated field, always 0 since 2026-06-23
        if update:
            return engine.delta(
                inst_id,
                symbol,
                bids,
                asks,
                event_time=event_time,
                receive_time=receive_time,
                sequence=seq_id,
                prev_sequence=prev_seq_id,
                checksum=checksum,
            )
        return engine.snapshot(
            inst_id,
            symbol,
            bids,
            asks,
            event_time=event_time,
            receive_time=receive_time,
            sequence=seq_id,
            checksum=checksum,
        )
