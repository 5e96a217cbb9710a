"""L2 order book engine: snapshot + delta, sequence and checksum integrity, resync, emission.

Two layers:

* :class:`L2Book` keeps one instrument's book. Levels go in as the venue's **original
  strings** ``(price, size)`` (kept verbatim so a venue checksum can be computed over them)
  and come out of the public views as exact :class:`~decimal.Decimal`. Every update is
  checked: sequence rule, crossed book, venue checksum. A failed check marks the book invalid
  and raises :class:`BookIntegrityError`; only a new snapshot makes it valid again.
* :class:`BookEngine` keeps the books of one connection (one venue channel) keyed by native
  symbol, and turns each snapshot/delta into the events a normaliser returns: book events
  for valid books only, and on an integrity failure one ``SubscriptionStatus(state=
  "resyncing")`` plus one ``ResyncRequest`` for that instrument alone.

Data layout (chosen for speed, measured in ``bench/book``): per side a sorted list of sort
keys (best first: bids store the negated price) with parallel lists of the original price and
size strings, plus a dict ``price string -> sort key``, maintained with :mod:`bisect`. Sort
keys are ``float(price)`` (an ordering device only; a side switches to exact ``Decimal`` keys
if two different prices ever round to the same double, see ``_Side``). Replacing a size is a
dict lookup, a bisect and a list store; the top ``n`` raw levels are four list slices. The
book tracks whether an update touched its top levels, so the venue checksum (a function of
the top levels only) is recomputed only when they changed.

Optional C speedups (``marketfeed._cbook``, ``_cbook.c``): when compiled (and unless the
environment variable ``MARKETFEED_PURE_PYTHON=1`` is set at import) the common case of
:meth:`L2Book.apply_delta` (on the book's own slots), delta upkeep, snapshot load, the
str -> Decimal conversions of emitted levels (plain texts built in C) and
:meth:`L2Book.crc32_pairs` run in C on these same lists and dict; the C code hands every case
it does not take back to the Python code below (``L2Book._finish_delta`` where it stopped
mid-update), so behaviour is identical (``tests/core/test_cbook.py``). ``SPEEDUPS`` says
which implementation is active.
"""

from __future__ import annotations

import datetime as _dt
import os
import struct
import zlib
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Context, Decimal, InvalidOperation
from operator import lt as _lt
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, cast

import msgspec

from ._errors import MarketfeedError
from ._models import BookDelta, BookLevel, BookSnapshot, ResyncRequest, SubscriptionStatus

if TYPE_CHECKING:
    from types import ModuleType

    from ._models import Event

_c: ModuleType | None
"""The C speedups (``marketfeed._cbook``) or ``None``: the pure-Python engine. Read at each
call, so tests can switch implementations by setting it."""
_cbook: ModuleType | None = None
if os.environ.get("MARKETFEED_PURE_PYTHON", "") in ("", "0"):  # else not even imported
    try:
        from . import _cbook
    except ImportError:  # built without a C compiler: the pure-Python engine
        _cbook = None
_c = _cbook

SPEEDUPS: Final = _c is not None
"""Whether the C speedups were loaded at import (``False`` without a compiled
``marketfeed._cbook`` or with the environment variable ``MARKETFEED_PURE_PYTHON=1``).
Public as ``marketfeed.book.SPEEDUPS`` (and ``marketfeed.SPEEDUPS``)."""

__all__ = [
    "BookEngine",
    "BookIntegrityError",
    "BookStats",
    "ChecksumFunction",
    "Crc32Checksum",
    "EmitPolicy",
    "IntegrityKind",
    "L2Book",
    "RawLevel",
    "SPEEDUPS",
    "SequenceRule",
    "TOP_EXPORT_MAGIC",
    "TOP_EXPORT_VERSION",
    "TopExport",
    "decode_top_export",
]

RawLevel = Sequence[str]
"""A level as the venue sent it: a sequence whose items 0 and 1 are the price and size
strings, e.g. ``("30238.8", "2")`` or OKX's ``["30238.8", "2", "0", "1"]`` (further items,
such as OKX's order counts, are ignored)."""

ChecksumFunction = Callable[["L2Book"], int]
"""A venue checksum: ``checksum(book) -> int``, computed from ``book.raw_top(n)``,
``book.raw_columns(n)`` or ``book.raw_pairs(n, sep)`` (the cheapest) only. It must be a
pure function of those top levels: the book memoises the result while its top levels are
unchanged."""


class Crc32Checksum:
    """A :data:`ChecksumFunction`: the CRC32 of a book's top ``depth`` levels interleaved
    bid/ask, as OKX (top 25, ``":"``, signed) and Bitget checksum their books.

    ``Crc32Checksum(depth, sep)(book)`` equals ``book.crc32_pairs(depth, sep)``, made a
    signed 32-bit integer when ``signed`` (OKX's ``checksum`` field). Prefer it to an
    equivalent function: with the C speedups :meth:`L2Book.apply_delta` computes it
    without calling into Python (no text built, about 0.2 µs for OKX's top 25).

    Args:
        depth: Levels per side, ``>= 1``.
        sep: The separator between every price and size string.
        signed: Return ``value - 2**32`` for values ``>= 2**31`` (a signed int32).

    Raises:
        ValueError: ``depth`` is not an int >= 1 or ``sep`` is not a str.
    """

    __slots__ = ("depth", "sep", "signed")

    def __init__(self, depth: int, sep: str = ":", *, signed: bool = True) -> None:
        if depth.__class__ is not int or depth < 1:
            raise ValueError(f"depth must be an int >= 1, not {depth!r}")
        if sep.__class__ is not str:
            raise ValueError(f"sep must be a str, not {sep!r}")
        self.depth = depth
        self.sep = sep
        self.signed = bool(signed)

    def __call__(self, book: L2Book) -> int:
        value = book.crc32_pairs(self.depth, self.sep)
        return value - 0x100000000 if self.signed and value & 0x80000000 else value

    def __repr__(self) -> str:
        return f"Crc32Checksum({self.depth}, {self.sep!r}, signed={self.signed})"


SequenceRule = Literal["none", "contiguous", "linked"]
"""How update sequence numbers must follow each other (see :class:`L2Book`)."""

EmitPolicy = Literal["delta", "top", "both"]
"""What :class:`BookEngine` emits for a valid book (see :class:`BookEngine`)."""

IntegrityKind = Literal["checksum", "sequence", "crossed", "no_snapshot", "invalid", "malformed"]
"""Category of an integrity failure, used as the key of ``BookStats.resync_reasons``."""

TOP_EXPORT_MAGIC: Final = b"MFBK"
"""First four bytes of every :meth:`L2Book.export_top` buffer."""

TOP_EXPORT_VERSION: Final = 1
"""Layout version written by :meth:`L2Book.export_top`."""

_HEADER = struct.Struct("<4sHHIIbbHiqq")
_HEADER_SIZE: Final = _HEADER.size  # 40
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_EXACT = Context(prec=400, Emax=999_999, Emin=-999_999)
_ZERO: Final = Decimal("0")
_NO_TIME: Final = _dt.datetime.min.replace(tzinfo=_dt.UTC)


class _DecimalCache(dict[str, Decimal]):
    """Price/size string -> exact :class:`~decimal.Decimal`, shared by every book.

    Prices and sizes repeat heavily (a book's levels are converted again for every top-N
    snapshot, and delta sizes recur), and a dict hit is several times cheaper than
    parsing. ``cache[text]`` is ``Decimal(text)``: decimals are immutable, and the same
    text always gives the same value and the same string form (``"1.50"`` stays
    ``1.50``). A text that is not a finite decimal raises ``InvalidOperation`` and is not
    kept. Bounded: cleared when it holds ``capacity`` entries.
    """

    __slots__ = ("capacity",)

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def __missing__(self, text: str) -> Decimal:
        value = Decimal(text)
        if not value.is_finite():
            raise InvalidOperation(f"not a finite decimal: {text!r}")
        if len(self) >= self.capacity:
            self.clear()
        self[text] = value
        return value


_DECIMALS: Final = _DecimalCache(65_536)
_decimal: Final = _DECIMALS.__getitem__
"""``_decimal(text)``: cached exact Decimal of a price/size string (see ``_DecimalCache``)."""


class BookIntegrityError(MarketfeedError):
    """An order book failed an integrity check; the book is now invalid until a snapshot.

    Attributes:
        reason: Human-readable reason, e.g. ``"checksum: venue sent -914047754, book gives
            1054815633"``.
        kind: Category (:data:`IntegrityKind`): ``checksum``, ``sequence``, ``crossed``,
            ``no_snapshot`` (delta before any snapshot), ``invalid`` (delta on a book
            already invalid), ``malformed`` (a price or size that is not a finite,
            non-negative decimal string).
    """

    def __init__(self, reason: str, kind: str = "invalid") -> None:
        self.reason = reason
        self.kind = kind
        super().__init__(reason)


class BookStats(msgspec.Struct, frozen=True, kw_only=True):
    """Statistics of one book (a copy taken when read).

    Attributes:
        updates: Deltas applied (passed every check).
        snapshots: Snapshots applied.
        resyncs: Integrity failures (each makes the engine request one resync).
        resync_reasons: Failures by :data:`IntegrityKind`.
        dropped: Deltas dropped by :class:`BookEngine` while the book waited for a snapshot.
        last_update: Receive time of the last applied snapshot or delta, UTC (``None``
            before the first).
        valid: Whether the book is valid now.
        bid_levels, ask_levels: Current number of levels per side.
    """

    updates: int
    snapshots: int
    resyncs: int
    resync_reasons: Counter[str]
    dropped: int
    last_update: _dt.datetime | None
    valid: bool
    bid_levels: int
    ask_levels: int


class TopExport(NamedTuple):
    """A decoded :meth:`L2Book.export_top` buffer (see :func:`decode_top_export`).

    Attributes:
        bids, asks: Levels ``(price, size)`` best first, exact decimals.
        sequence: The book's last sequence, ``None`` when unknown.
        event_time_ns: Venue event time of the last applied update, ns since the Unix epoch
            (``0`` when unknown).
        valid, verified: The book's flags when exported.
    """

    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    sequence: int | None
    event_time_ns: int
    valid: bool
    verified: bool


_Key = float | Decimal
"""A sort key: ``float(price)`` normally, ``Decimal(price)`` in exact mode (see ``_Side``)."""


class _Side:
    """One side of a book. Keys sort ascending best-first (bids store negated prices).

    Keys are ``float(price)`` (fast to parse and compare). Rounding to the nearest double is
    monotonic, so float order equals decimal order unless two *different* decimal prices
    round to the same double (more than ~15 significant digits). Every insert that finds an
    equal key compares the two prices as decimals; on such a collision the side switches to
    exact mode (``Decimal`` keys, same algorithm) until the next snapshot. Results are exact
    either way; the float keys are only an ordering device.

    This is the pure-Python side and the reference behaviour: with the C speedups an
    ``L2Book`` holds ``marketfeed._cbook.Side`` objects instead (a C array of levels with the
    same methods: ``load``, ``apply``, ``columns``, ``head``, ``pairs``, ``forget_pairs``,
    ``clear``, ``len()``, ``exact``), which run their rare cases through this class.
    """

    __slots__ = ("exact", "index", "keys", "neg", "pxs", "sep", "szs", "tops")

    def __init__(self, neg: bool) -> None:
        self.neg = neg
        self.exact = False  # Decimal keys instead of float keys
        self.index: dict[str, _Key] = {}  # price string -> sort key
        self.keys: list[_Key] = []  # sort keys, ascending (best first)
        self.pxs: list[str] = []  # price strings, parallel to keys
        self.szs: list[str] = []  # size strings, parallel to keys
        # ``price + sep + size`` of the top ``watch`` levels (see L2Book.raw_pairs), kept in
        # step by _apply_side_py; None until a raw_pairs call builds it (and after a snapshot).
        self.tops: list[str] | None = None
        self.sep = ":"

    def clear(self) -> None:
        self.exact = False
        self.index = {}
        self.keys = []
        self.pxs = []
        self.szs = []
        self.tops = None

    def build_tops(self, depth: int, sep: str) -> list[str]:
        """(Re)build ``tops`` for the top ``depth`` levels joined with ``sep``."""
        self.sep = sep
        self.tops = [
            f"{px}{sep}{sz}" for px, sz in zip(self.pxs[:depth], self.szs[:depth], strict=True)
        ]
        return self.tops

    def key(self, px: str) -> _Key:
        """Sort key of a price string; BookIntegrityError for a non-finite/garbage price."""
        if px.__class__ is not str:
            raise _malformed("price", px)
        try:
            if self.exact:
                d = Decimal(px)
                if not d.is_finite():
                    raise _malformed("price", px)
                return d.copy_negate() if self.neg else d
            f = float(px)
        except (InvalidOperation, ValueError):
            raise _malformed("price", px) from None
        if f - f != 0.0:  # nan or inf
            raise _malformed("price", px)
        return -f if self.neg else f

    def __len__(self) -> int:
        return len(self.keys)

    def apply(self, levels: Sequence[RawLevel], watch: int) -> bool:
        """Apply delta levels; whether the top ``watch`` levels changed (_apply_side_py)."""
        return _apply_side_py(self, levels, watch)

    def columns(self, n: int | None = None) -> tuple[list[str], list[str]]:
        """``(prices, sizes)`` of the top ``n`` levels (all when ``None``): new lists."""
        if n is None:
            return self.pxs[:], self.szs[:]
        return self.pxs[:n], self.szs[:n]

    def head(self) -> tuple[_Key, str, str] | None:
        """``(key, price, size)`` of the best level, or ``None`` when empty."""
        return (self.keys[0], self.pxs[0], self.szs[0]) if self.keys else None

    def pairs(self, n: int, sep: str) -> list[str]:
        """``price + sep + size`` of the top ``n`` levels (kept in step from then on by
        _apply_side_py with ``watch == n``, until :meth:`forget_pairs` or a snapshot)."""
        tops = self.tops
        if tops is None or self.sep != sep:
            tops = self.build_tops(n, sep)
        return tops

    def forget_pairs(self) -> None:
        """Drop the kept pair strings (the watched depth grew)."""
        self.tops = None

    def decimals(
        self, n: int | None, cache: _DecimalCache, decimal: type[Decimal], capacity: int
    ) -> tuple[BookLevel, ...]:
        """The top ``n`` levels (all when ``None``) as exact ``(price, size)`` decimals,
        best first, through ``cache`` (C ``decimal_columns`` with the speedups).

        Raises:
            decimal.InvalidOperation: a stored size is not a number (see ``L2Book``).
        """
        pxs, szs = self.columns(n)
        c = _c
        if c is not None:
            return cast(
                "tuple[BookLevel, ...]",
                c.decimal_columns(pxs, szs, None, cache, decimal, capacity),
            )
        get = cache.__getitem__
        return tuple(zip(map(get, pxs), map(get, szs), strict=True))

    def make_exact(self) -> None:
        """Switch to Decimal keys (after a float collision)."""
        self.exact = True
        self.keys = [self.key(px) for px in self.pxs]
        self.index = dict(zip(self.pxs, self.keys, strict=True))

    def load(self, levels: Sequence[RawLevel]) -> None:
        """Replace the side with snapshot levels (any order; zero sizes and repeats as in
        a delta applied to an empty side).

        Raises:
            BookIntegrityError: ``malformed`` level, price or size.
        """
        self.clear()
        try:
            if not isinstance(levels, list | tuple):
                levels = list(levels)  # read twice below: an iterator would be empty then
            pxs = [lv[0] for lv in levels]
            szs = [lv[1] for lv in levels]
            "".join(pxs)  # TypeError unless all are str
            "".join(szs)
        except (TypeError, IndexError, KeyError) as exc:
            raise _malformed("level", exc) from None
        key = self.key
        keys: list[_Key]
        try:
            # Fast path: every price and size parses as a double, the prices' sum is finite
            # (no nan/inf) and so are the sizes', and every size is > 0 (none zero,
            # negative or nan). Anything else takes the exact per-level checks below.
            fk = list(map(float, pxs))
            fs = list(map(float, szs))
            total = sum(fk) + sum(fs)
            fast = total - total == 0.0 and (not fs or min(fs) > 0.0)
        except ValueError:
            fast = False
        if fast:
            keys = [-k for k in fk] if self.neg else cast("list[_Key]", fk)
            has_zero = False
        else:
            keys = [key(px) for px in pxs]  # raises for a price that is not finite
            has_zero = any(map(_is_zero, szs))  # raises for a negative or lettered size
        if has_zero or not all(map(_lt, keys, keys[1:])):
            # Unsorted, repeated prices or zero sizes: merge in input order (a repeated
            # price keeps its last size; a zero size removes the price), then sort.
            merged: dict[Decimal, tuple[str, str]] = {}
            for px, sz in zip(pxs, szs, strict=True):
                if _is_zero(sz):
                    merged.pop(Decimal(px), None)
                else:
                    merged[Decimal(px)] = (px, sz)
            pairs = [merged[d] for d in sorted(merged, reverse=self.neg)]
            pxs = [p for p, _ in pairs]
            szs = [z for _, z in pairs]
            keys = [key(px) for px in pxs]
            if not all(map(_lt, keys, keys[1:])):  # distinct decimals, equal floats
                self.exact = True
                keys = [key(px) for px in pxs]
        self.keys = keys
        self.pxs = pxs
        self.szs = szs
        self.index = dict(zip(pxs, keys, strict=True))


_DIGITS_OR_DOT: Final = frozenset("0123456789.")


def _malformed(what: str, value: object) -> BookIntegrityError:
    return BookIntegrityError(f"malformed: {what} {value!r}", "malformed")


def _is_zero(sz: str) -> bool:
    """Whether a size string is zero (``"0"``, ``"0.000"``, ``"0E-8"``).

    A size must start with a digit or ``.`` (or ``+`` then one of those): negatives and
    texts such as ``"NaN"``, ``"inf"``, ``"+inf"``, ``" 1"`` or ``"abc"`` raise
    :class:`BookIntegrityError` (``malformed``)."""
    if sz.__class__ is not str or not sz:
        raise _malformed("size", sz)
    c = sz[0]
    if c == "0" or c == ".":
        z = sz.strip("0.")
        return not z or z[0] in "eE"
    if "1" <= c <= "9":
        return False
    if c == "+" and sz[1:2] in _DIGITS_OR_DOT:
        return _is_zero(sz[1:])
    raise _malformed("size", sz)


def _apply_side_py(side: _Side, levels: Sequence[RawLevel], watch: int) -> bool:
    """Apply delta levels to one side; return whether the top ``watch`` levels changed.

    The pure-Python engine, and the reference behaviour of ``_cbook.Side.apply`` (which
    runs its rare cases through this function on a ``_Side``).

    Hot path: the zero test of ``_is_zero`` and the float key of ``_Side.key`` are inlined.
    An operation that lands in the top ``watch`` levels is mirrored on ``side.tops`` (when
    built), so those pair strings stay equal to ``price + sep + size`` of the top levels.

    Raises:
        BookIntegrityError: ``malformed`` price or size (levels before it are applied).
        TypeError, IndexError, AttributeError: a level that is not a sequence of two
            strings (:meth:`L2Book.apply_delta` reports it as ``malformed``).
    """
    index = side.index
    keys = side.keys
    pxs = side.pxs
    szs = side.szs
    neg = side.neg
    exact = side.exact
    tops = side.tops
    sep = side.sep
    # The top `watch` levels change iff an operation lands at a sorted index < watch.
    dirty = False
    for n, lv in enumerate(levels):
        px = lv[0]
        sz = lv[1]
        if sz == "0":
            zero = True
        else:
            c = sz[0]
            if c == "0" or c == ".":
                z = sz.strip("0.")
                zero = not z or z[0] in "eE"
            elif "1" <= c <= "9" and sz.__class__ is str:
                zero = False
            else:
                zero = _is_zero(sz)  # raises unless a "+"-signed size
        key = index.get(px)
        if key is not None:  # known price string
            i = bisect_left(keys, key)
            if zero:
                del index[px]
                del keys[i]
                del pxs[i]
                del szs[i]
                if i < watch:
                    dirty = True
                    if tops is not None:  # (inlined _mirror of a removal)
                        del tops[i]
                        if len(pxs) >= watch:
                            tops.append(f"{pxs[watch - 1]}{sep}{szs[watch - 1]}")
            else:
                szs[i] = sz
                if i < watch:
                    dirty = True
                    if tops is not None:
                        tops[i] = f"{px}{sep}{sz}"
            continue
        if exact or px.__class__ is not str:
            key = side.key(px)
        else:
            try:
                key = float(px)
            except ValueError:
                raise _malformed("price", px) from None
            if key - key != 0.0:
                raise _malformed("price", px)
            if neg:
                key = -key
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            if not exact and Decimal(pxs[i]) != Decimal(px):
                # Two prices, one double: continue this update with Decimal keys.
                side.make_exact()
                return _apply_side_py(side, levels[n:], watch) or dirty
            # Same price spelled differently ("1.0" vs "1.00"): the new spelling wins.
            del index[pxs[i]]
            inserted = False
            if zero:
                del keys[i]
                del pxs[i]
                del szs[i]
            else:
                pxs[i] = px
                szs[i] = sz
                index[px] = key
        elif zero:
            continue  # deleting a level that is not there: nothing changes
        else:
            keys.insert(i, key)
            pxs.insert(i, px)
            szs.insert(i, sz)
            index[px] = key
            inserted = True
        if i < watch:
            dirty = True
            if tops is not None:
                if inserted:  # (inlined _mirror of an insert)
                    tops.insert(i, f"{px}{sep}{sz}")
                    if len(tops) > watch:
                        del tops[watch]
                else:
                    _mirror(tops, i, zero, False, px, sz, sep, pxs, szs, watch)
    return dirty


def _mirror(
    tops: list[str],
    i: int,
    removed: bool,
    inserted: bool,
    px: str,
    sz: str,
    sep: str,
    pxs: list[str],
    szs: list[str],
    watch: int,
) -> None:
    """Repeat on ``tops`` (the pair strings of the top ``watch`` levels) an operation that
    _apply_side_py just made at index ``i < watch`` of ``pxs``/``szs``."""
    if removed:
        del tops[i]
        if len(pxs) >= watch:  # the level that moved up into the top `watch`
            tops.append(f"{pxs[watch - 1]}{sep}{szs[watch - 1]}")
    elif inserted:
        tops.insert(i, f"{px}{sep}{sz}")
        if len(tops) > watch:
            del tops[watch]
    else:
        tops[i] = f"{px}{sep}{sz}"


class L2Book:
    """One instrument's L2 order book with integrity checks.

    Args:
        venue, symbol, native_symbol: As on market events (``symbol`` normalised).
        checksum: The venue's checksum function ``checksum(book) -> int``, or ``None``. It
            reads ``book.raw_top(n)``, ``raw_columns(n)`` or ``raw_pairs(n)`` (original
            strings, best first) and must be a pure function of them; the result is
            memoised while the top levels are unchanged (``checksum_memo=False`` turns that
            off). OKX: CRC32 of the top 25 levels interleaved ``bidPx:bidSz:askPx:askSz``,
            signed 32-bit (OKX API v5, "WebSocket order book channel", checksum).
        sequence: Sequence rule for deltas:
            ``"none"``: not checked;
            ``"contiguous"``: ``sequence == last sequence + 1``;
            ``"linked"``: ``prev_sequence == last sequence`` (OKX ``prevSeqId``/``seqId``:
            a keep-alive update with no change has ``prevSeqId == seqId`` == last, and after
            a venue maintenance reset ``seqId`` may be smaller than ``prevSeqId``; both pass,
            the linkage holds. OKX API v5, "Order book channel", sequence ID).
            The rule applies once the book knows a sequence (the snapshot or an earlier
            delta carried one); then a delta without one fails. Books from a venue that
            sends no sequence numbers (like the 2021-2022 OKX recordings) are not checked.
        check_crossed: Fail an update after which the best bid >= the best ask.
        checksum_memo: Memoise the checksum while the top levels are unchanged.

    Levels: each is a sequence whose items 0 and 1 are the price and size **strings** as
    the venue sent them. In a delta, a size equal to zero (``"0"``, ``"0.00"``) deletes the
    level; any other size replaces it. A snapshot replaces the whole book (zero sizes
    skipped; input order does not matter). Sizes are checked for sign on the way in and
    parsed to Decimal only by the views, so a non-numeric size raises ``InvalidOperation``
    from the view that meets it (and :class:`BookEngine` turns that into a resync).

    Raises (from :meth:`apply_snapshot` / :meth:`apply_delta`, after marking the book
    invalid): :class:`BookIntegrityError` with ``kind`` ``checksum``, ``sequence``,
    ``crossed``, ``no_snapshot`` (a delta before any snapshot), ``invalid`` (a delta
    while invalid) or ``malformed``.
    """

    __slots__ = (
        "_asks",
        "_bids",
        "_checksum",
        "_ck_value",
        "_ck_version",
        "_dropped",
        "_failures",
        "_has_snapshot",
        "_last_update",
        "_memo",
        "_reasons",
        "_seq_rule",
        "_snapshots",
        "_updates",
        "_valid",
        "_version",
        "_watch",
        "check_crossed",
        "last_checksum",
        "last_event_time",
        "native_symbol",
        "sequence",
        "symbol",
        "venue",
        "verified",
    )

    def __init__(
        self,
        venue: str,
        symbol: str,
        native_symbol: str,
        *,
        checksum: ChecksumFunction | None = None,
        sequence: SequenceRule = "none",
        check_crossed: bool = True,
        checksum_memo: bool = True,
    ) -> None:
        if sequence not in ("none", "contiguous", "linked"):
            raise ValueError(f"sequence rule must be none, contiguous or linked, not {sequence!r}")
        self.venue = venue
        self.symbol = symbol
        self.native_symbol = native_symbol
        self.check_crossed = check_crossed
        self._checksum = checksum
        self._seq_rule = sequence
        self._memo = checksum_memo
        c = _c
        side: Callable[[bool], _Side] = _Side if c is None else c.Side
        self._bids = side(True)
        self._asks = side(False)
        self._valid = False
        self._has_snapshot = False
        self._version = 0  # bumped whenever the top `_watch` levels may have changed
        self._watch = 1  # deepest level count a raw view was asked for (>= 1: best level)
        self._ck_version = -1
        self._ck_value = 0
        self.sequence: int | None = None
        """The venue's sequence of the last applied message (``None`` if never sent)."""
        self.last_checksum: int | None = None
        """The venue's checksum of the last applied message."""
        self.last_event_time: _dt.datetime | None = None
        """Venue event time of the last applied message (when given)."""
        self.verified = False
        """Whether the last applied message passed a checksum or sequence check."""
        self._updates = 0
        self._snapshots = 0
        self._failures = 0
        self._dropped = 0
        self._reasons: Counter[str] = Counter()
        self._last_update: _dt.datetime | None = None

    def __repr__(self) -> str:
        state = "valid" if self._valid else "invalid"
        return (
            f"L2Book({self.venue}:{self.native_symbol}, {state}, "
            f"{len(self._bids)} bids, {len(self._asks)} asks, seq={self.sequence})"
        )

    # ------------------------------------------------------------------ updates

    def apply_snapshot(
        self,
        bids: Sequence[RawLevel],
        asks: Sequence[RawLevel],
        *,
        sequence: int | None = None,
        checksum: int | None = None,
        time: _dt.datetime | None = None,
        event_time: _dt.datetime | None = None,
    ) -> bool:
        """Replace the whole book with a snapshot and check it.

        Args:
            bids, asks: All levels of each side, any order (read as a delta applied to an
                empty book: a repeated price keeps its last size, zero sizes are skipped).
            sequence: The venue's sequence id of the snapshot (OKX ``seqId``), if sent.
            checksum: The venue's checksum of the snapshot, checked when the book has a
                checksum function.
            time: Local receive time, recorded as ``stats.last_update``.
            event_time: Venue event time, kept for exports.

        Returns:
            ``True`` when a checksum was checked and passed (the book is then "verified").

        Raises:
            BookIntegrityError: checksum mismatch (or the checksum function raised), crossed
                book or malformed level; the book is invalid afterwards.
        """
        self._valid = False
        self._has_snapshot = True
        try:
            self._bids.load(bids)
            self._asks.load(asks)
        except BookIntegrityError as exc:
            self._bids.clear()
            self._asks.clear()
            raise self._fail(exc) from None
        self._version += 1
        self.sequence = sequence
        self._check_after(checksum)
        verified = checksum is not None and self._checksum is not None
        self._valid = True
        self._snapshots += 1
        self.last_checksum = checksum
        self.last_event_time = event_time
        self.verified = verified
        self._last_update = time
        return verified

    def apply_delta(
        self,
        bids: Sequence[RawLevel],
        asks: Sequence[RawLevel],
        *,
        sequence: int | None = None,
        prev_sequence: int | None = None,
        checksum: int | None = None,
        time: _dt.datetime | None = None,
        event_time: _dt.datetime | None = None,
    ) -> bool:
        """Apply an incremental update and check the result.

        Args:
            bids, asks: Changed levels; a zero size deletes the level (deleting an absent
                level is a no-op), any other size replaces or adds it.
            sequence: The venue's sequence id (OKX ``seqId``), if sent.
            prev_sequence: The venue's previous sequence id (OKX ``prevSeqId``), if sent.
            checksum: The venue's checksum of the book after this update.
            time: Local receive time, recorded as ``stats.last_update``.
            event_time: Venue event time, kept for exports.

        Returns:
            ``True`` when a checksum or sequence check ran and passed.

        Raises:
            BookIntegrityError: sequence rule broken (checked before anything changes),
                crossed book or checksum mismatch after applying, malformed level, a delta
                before any snapshot (``no_snapshot``) or while invalid (``invalid``). The
                book is invalid afterwards.
        """
        c = _c
        if c is not None:
            # The common case in C (``_cbook.apply_delta``): it returns the result, or None
            # when it changed nothing (Python does it all below), or where Python finishes.
            r = c.apply_delta(self, bids, asks, sequence, prev_sequence, checksum, time, event_time)
            if r.__class__ is bool:
                return r
            if r is not None:
                stage, n, dirty, seq_checked = r
                return self._finish_delta(
                    bids, asks, stage, n, dirty, seq_checked, checksum, time, event_time
                )
        if not self._valid:
            if not self._has_snapshot:
                raise self._fail(
                    BookIntegrityError("no_snapshot: delta before any snapshot", "no_snapshot")
                )
            raise BookIntegrityError("invalid: book is waiting for a snapshot", "invalid")
        seq_checked = False
        rule = self._seq_rule
        if rule != "none":
            last = self.sequence
            if last is not None:
                if rule == "linked":
                    if prev_sequence != last:
                        raise self._fail(
                            BookIntegrityError(
                                f"sequence: prev_sequence {prev_sequence} does not follow "
                                f"last sequence {last}",
                                "sequence",
                            )
                        )
                elif sequence is None or sequence != last + 1:
                    raise self._fail(
                        BookIntegrityError(
                            f"sequence: sequence {sequence} does not follow last sequence {last}",
                            "sequence",
                        )
                    )
                seq_checked = True
            if sequence is not None:
                self.sequence = sequence
        elif sequence is not None:
            self.sequence = sequence
        return self._finish_delta(bids, asks, -1, 0, False, seq_checked, checksum, time, event_time)

    def _finish_delta(
        self,
        bids: Sequence[RawLevel],
        asks: Sequence[RawLevel],
        stage: int,
        n: int,
        dirty: bool,
        seq_checked: bool,
        checksum: int | None,
        time: _dt.datetime | None,
        event_time: _dt.datetime | None,
    ) -> bool:
        """The rest of :meth:`apply_delta` once the sequence rule passed: apply the levels,
        check the book, count. ``stage`` says where to start: -1 every level; from
        ``_cbook.apply_delta`` (which already did the part before and reports the top
        levels' ``dirty`` so far): 0 the bid levels from ``n`` on, then the asks; 1 the ask
        levels from ``n`` on; 2 only the checks after the levels."""
        watch = self._watch
        try:
            if stage < 0:
                dirty = self._bids.apply(bids, watch) if bids else False
                if asks and self._asks.apply(asks, watch):
                    dirty = True
            elif stage == 0:  # where C left a rare level to the side's Python path
                dirty = self._bids.apply(bids[n:] if n else bids, watch) or dirty
                if asks and self._asks.apply(asks, watch):
                    dirty = True
            elif stage == 1 and self._asks.apply(asks[n:] if n else asks, watch):
                dirty = True
        except BookIntegrityError as exc:
            raise self._fail(exc) from None
        except (TypeError, IndexError, AttributeError) as exc:
            raise self._fail(_malformed("level", exc)) from None
        if dirty:  # the top levels (at least the best) changed
            self._version += 1
            if self.check_crossed:
                self._check_crossed()
        fn = self._checksum
        verified = seq_checked
        if checksum is not None and fn is not None:
            if self._ck_version == self._version and self._memo:
                computed = self._ck_value
            else:
                computed = self._compute_checksum(fn)
            if computed != checksum:
                raise self._checksum_failed(checksum, computed)
            verified = True
        self._updates += 1
        self.last_checksum = checksum
        self.last_event_time = event_time
        self._last_update = time
        self.verified = verified
        return verified

    def invalidate(self, reason: str, kind: str = "invalid") -> BookIntegrityError:
        """Mark the book invalid (e.g. the plugin saw a gap) and count the failure.

        Returns:
            The :class:`BookIntegrityError` describing it (not raised).
        """
        return self._fail(BookIntegrityError(reason, kind))

    def _fail(self, exc: BookIntegrityError) -> BookIntegrityError:
        self._failures += 1
        self._reasons[exc.kind] += 1
        self._valid = False
        return exc

    def _check_after(self, checksum: int | None) -> None:
        if self.check_crossed:
            self._check_crossed()
        fn = self._checksum
        if checksum is not None and fn is not None:
            computed = self._compute_checksum(fn)
            if computed != checksum:
                raise self._checksum_failed(checksum, computed)

    def _compute_checksum(self, fn: ChecksumFunction) -> int:
        try:
            computed = int(fn(self))
        except Exception as exc:  # a broken checksum function cannot verify the book
            raise self._fail(
                BookIntegrityError(f"checksum: checksum function raised {exc!r}", "checksum")
            ) from exc
        self._ck_value = computed
        self._ck_version = self._version
        return computed

    def _check_crossed(self) -> None:
        b = self._bids
        a = self._asks
        if b.__class__ is _Side and a.__class__ is _Side:  # pure Python: read the lists
            bk = b.keys
            ak = a.keys
            if (
                bk
                and ak
                and (b.exact or a.exact or -bk[0] >= ak[0])
                and Decimal(b.pxs[0]) >= Decimal(a.pxs[0])
            ):
                raise self._fail(
                    BookIntegrityError(
                        f"crossed: best bid {b.pxs[0]} >= best ask {a.pxs[0]}", "crossed"
                    )
                )
            return
        hb = b.head()
        ha = a.head()
        # Float keys may only tie where decimals differ: confirm a cross with decimals.
        if (
            hb is not None
            and ha is not None
            and (b.exact or a.exact or -hb[0] >= ha[0])
            and Decimal(hb[1]) >= Decimal(ha[1])
        ):
            raise self._fail(
                BookIntegrityError(f"crossed: best bid {hb[1]} >= best ask {ha[1]}", "crossed")
            )

    def _checksum_failed(self, checksum: int, computed: int) -> BookIntegrityError:
        return self._fail(
            BookIntegrityError(
                f"checksum: venue sent {checksum}, book gives {computed}", "checksum"
            )
        )

    # ------------------------------------------------------------------ raw views

    def raw_top(self, n: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Top ``n`` levels per side as the venue's original strings, for checksums.

        Returns:
            ``(bids, asks)``: lists of ``(price_str, size_str)``, best first (bids by price
            descending, asks ascending); shorter when a side has fewer levels.
        """
        bp, bs, ap, as_ = self.raw_columns(n)
        return list(zip(bp, bs, strict=True)), list(zip(ap, as_, strict=True))

    def raw_columns(self, n: int) -> tuple[list[str], list[str], list[str], list[str]]:
        """Top ``n`` levels as four columns of original strings (faster than :meth:`raw_top`).

        Returns:
            ``(bid_prices, bid_sizes, ask_prices, ask_sizes)``, best first.
        """
        if n > self._watch:
            self._watch = n
            self._bids.forget_pairs()  # pair strings were kept for fewer
            self._asks.forget_pairs()
        return (*self._bids.columns(n), *self._asks.columns(n))

    def raw_pairs(self, n: int, sep: str = ":") -> tuple[list[str], list[str]]:
        """Top ``n`` levels per side as ``price + sep + size`` strings (the venue's originals),
        best first: the cheapest input for a checksum over joined levels (OKX joins
        ``bidPx:bidSz:askPx:askSz:...``, i.e. these pairs interleaved, with ``:``).

        The first call builds the pair strings; from then on every update that touches the
        top levels updates them in place (only those), until the next snapshot or a call
        with a larger ``n`` or another ``sep`` (which rebuild them). Equal, element for
        element, to ``[p + sep + s for p, s in raw_top(n)[side]]``.

        Returns:
            ``(bid_pairs, ask_pairs)``, new lists, shorter when a side has fewer levels.
        """
        if n > self._watch:
            self._watch = n
            self._bids.forget_pairs()
            self._asks.forget_pairs()
        watch = self._watch
        return self._bids.pairs(watch, sep)[:n], self._asks.pairs(watch, sep)[:n]

    def crc32_pairs(self, n: int, sep: str = ":") -> int:
        """Unsigned CRC32 (zlib's) of the top ``n`` levels, interleaved bid/ask, joined.

        The text is ``bidPx sep bidSz sep askPx sep askSz sep bidPx ...`` over the levels
        best first (the venue's original strings, UTF-8); where one side has fewer levels,
        the other side's continue alone. OKX (top 25, ``:``; its value is this one as a
        signed 32-bit integer), Bitget and others checksum exactly this. Like
        :meth:`raw_columns`, raises the depth the book watches to ``n`` (memoisation).
        With the C speedups no Python string is built (OKX's top 25 of a 400-level book:
        ~0.65 µs, 2.5x less than joining and ``zlib.crc32`` in Python); equal to
        ``zlib.crc32(sep.join(parts).encode())`` over the same parts.

        Returns:
            The CRC32 as an unsigned int ``0 <= value < 2**32``.

        Raises:
            ValueError: ``n`` is negative.
            UnicodeEncodeError: a string that is not valid UTF-8 text (lone surrogates).
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, not {n}")
        if n > self._watch:
            self._watch = n
            self._bids.forget_pairs()  # pair strings were kept for fewer
            self._asks.forget_pairs()
        b = self._bids
        a = self._asks
        c = _c
        if c is not None:
            crc = c.crc32_sides(b, a, n, sep)  # None unless both are C arrays
            if crc is not None:
                return cast("int", crc)
        bp, bs = b.columns(n)
        ap, az = a.columns(n)
        if c is not None:
            return cast("int", c.crc32_pairs(bp, bs, ap, az, n, sep))
        m = min(len(bp), len(ap))
        if len(bp) > m:  # the longer side continues alone
            tp, ts, bp, bs = bp[m:], bs[m:], bp[:m], bs[:m]
        else:
            tp, ts, ap, az = ap[m:], az[m:], ap[:m], az[:m]
        parts = bp * 4  # interleaved by slice assignment (cheaper than a loop)
        parts[0::4] = bp
        parts[1::4] = bs
        parts[2::4] = ap
        parts[3::4] = az
        tail = tp * 2
        tail[0::2] = tp
        tail[1::2] = ts
        parts += tail
        return zlib.crc32(sep.join(parts).encode())

    # ------------------------------------------------------------------ public views

    @property
    def valid(self) -> bool:
        """``True`` after a snapshot passed and every later update passed its checks."""
        return self._valid

    @property
    def stats(self) -> BookStats:
        """A copy of this book's statistics (:class:`BookStats`)."""
        return BookStats(
            updates=self._updates,
            snapshots=self._snapshots,
            resyncs=self._failures,
            resync_reasons=Counter(self._reasons),
            dropped=self._dropped,
            last_update=self._last_update,
            valid=self._valid,
            bid_levels=len(self._bids),
            ask_levels=len(self._asks),
        )

    def __len__(self) -> int:
        """Number of levels on both sides."""
        return len(self._bids) + len(self._asks)

    def top(self, n: int | None = None) -> tuple[tuple[BookLevel, ...], tuple[BookLevel, ...]]:
        """Top ``n`` levels per side (all levels when ``n`` is ``None``).

        Returns:
            ``(bids, asks)``: tuples of ``(Decimal price, Decimal size)``, best first.

        Raises:
            decimal.InvalidOperation: a stored size is not a number (see the class notes).
        """
        return self._side_top(self._bids, n), self._side_top(self._asks, n)

    @staticmethod
    def _side_top(side: _Side, n: int | None) -> tuple[BookLevel, ...]:
        if _c is not None:  # either side class (the C one reads its texts in place)
            return side.decimals(n, _DECIMALS, Decimal, _DECIMALS.capacity)
        pxs, szs = side.columns(n)  # pure Python, whichever class the side is
        return tuple(zip(map(_decimal, pxs), map(_decimal, szs), strict=True))

    @property
    def best_bid(self) -> BookLevel | None:
        """Best (highest) bid ``(price, size)``, or ``None`` when there are no bids."""
        head = self._bids.head()
        return (_decimal(head[1]), _decimal(head[2])) if head is not None else None

    @property
    def best_ask(self) -> BookLevel | None:
        """Best (lowest) ask ``(price, size)``, or ``None`` when there are no asks."""
        head = self._asks.head()
        return (_decimal(head[1]), _decimal(head[2])) if head is not None else None

    @property
    def mid(self) -> Decimal | None:
        """``(best bid + best ask) / 2``, exact; ``None`` when a side is empty."""
        hb = self._bids.head()
        ha = self._asks.head()
        if hb is None or ha is None:
            return None
        total = _EXACT.add(Decimal(hb[1]), Decimal(ha[1]))
        return _EXACT.divide(total, 2)

    @property
    def spread(self) -> Decimal | None:
        """``best ask - best bid``, exact; ``None`` when a side is empty."""
        hb = self._bids.head()
        ha = self._asks.head()
        if hb is None or ha is None:
            return None
        return _EXACT.subtract(Decimal(ha[1]), Decimal(hb[1]))

    def depth_to(self, price: Decimal | str | int, side: Literal["bid", "ask"]) -> Decimal:
        """Cumulative size from the best level down to ``price`` (inclusive) on one side.

        Bids count levels with price >= ``price``; asks levels with price <= ``price``.
        Returns ``Decimal("0")`` when no level qualifies.

        Raises:
            ValueError: ``side`` is not ``"bid"`` or ``"ask"``.
        """
        limit = Decimal(price)
        if side == "bid":
            s, bid = self._bids, True
        elif side == "ask":
            s, bid = self._asks, False
        else:
            raise ValueError(f"side must be 'bid' or 'ask', not {side!r}")
        total = _ZERO
        pxs, szs = s.columns()
        for px, sz in zip(pxs, szs, strict=True):  # best first: stop past the limit
            p = Decimal(px)
            if (p < limit) if bid else (p > limit):
                break
            total = _EXACT.add(total, Decimal(sz))
        return total

    def to_snapshot(
        self,
        depth: int | None,
        event_time: _dt.datetime,
        receive_time: _dt.datetime,
    ) -> BookSnapshot:
        """The book as a :class:`~marketfeed.BookSnapshot` event.

        Args:
            depth: Top ``depth`` levels per side (sets ``BookSnapshot.depth``), or ``None``
                for the full book.
            event_time, receive_time: Times of the message that produced this state (UTC).

        Raises:
            BookIntegrityError: the book is invalid (an invalid book is never emitted).
        """
        if not self._valid:
            raise BookIntegrityError("invalid: book is waiting for a snapshot", "invalid")
        bids, asks = self.top(depth)
        return BookSnapshot(
            venue=self.venue,
            symbol=self.symbol,
            native_symbol=self.native_symbol,
            event_time=event_time,
            receive_time=receive_time,
            bids=bids,
            asks=asks,
            depth=depth,
            sequence=self.sequence,
            checksum=self.last_checksum,
            verified=self.verified,
        )

    # ------------------------------------------------------------------ native export

    def export_top(self, n: int) -> bytes:
        """Top ``n`` levels as a compact little-endian binary for C/C++/NumPy consumers.

        Layout (all little-endian, 40-byte header then 16-byte records, 8-byte aligned)::

            offset size type     field
            0      4    char[4]  magic b"MFBK"
            4      2    uint16   version (1)
            6      2    uint16   header size in bytes (40): records start here
            8      4    uint32   n_bids
            12     4    uint32   n_asks
            16     1    int8     price_exponent  (price = price_mantissa * 10**price_exponent)
            17     1    int8     size_exponent   (size  = size_mantissa  * 10**size_exponent)
            18     2    uint16   flags: bit 0 valid, bit 1 verified
            20     4    int32    reserved (0)
            24     8    int64    sequence (INT64_MIN when unknown)
            32     8    int64    last update's event time, ns since the Unix epoch (0 = unknown)
            40     16*n_bids     bid records, best (highest price) first
            ...    16*n_asks     ask records, best (lowest price) first
            record: int64 price_mantissa, int64 size_mantissa

        The exponents are shared by all levels of the buffer (the smallest exponent among
        the exported prices, resp. sizes), so every value is exact. NumPy:
        ``np.frombuffer(buf, dtype=[("price", "<i8"), ("size", "<i8")], offset=40)``;
        C: ``struct { int64_t price, size; }`` after the header. Python:
        :func:`decode_top_export`.

        Raises:
            OverflowError: a value needs more than 63 bits of mantissa or an exponent outside
                -128..127 at the common exponent.
            decimal.InvalidOperation: a stored size is not a number.
        """
        bids, asks = self.top(n)
        levels = bids + asks
        pexp = min((p.as_tuple().exponent for p, _ in levels), default=0)
        sexp = min((s.as_tuple().exponent for _, s in levels), default=0)
        assert isinstance(pexp, int) and isinstance(sexp, int)  # finite decimals only
        if not -128 <= pexp <= 127 or not -128 <= sexp <= 127:
            raise OverflowError(f"exponent out of int8 range: {pexp}, {sexp}")
        flat: list[int] = []
        for p, s in levels:
            flat.append(_mantissa(p, pexp))
            flat.append(_mantissa(s, sexp))
        seq = self.sequence if self.sequence is not None else _INT64_MIN
        if not _INT64_MIN <= seq <= _INT64_MAX:
            raise OverflowError(f"sequence {seq} does not fit int64")
        et = self.last_event_time
        et_ns = _to_ns(et) if et is not None else 0
        flags = (1 if self._valid else 0) | (2 if self.verified else 0)
        header = _HEADER.pack(
            TOP_EXPORT_MAGIC,
            TOP_EXPORT_VERSION,
            _HEADER_SIZE,
            len(bids),
            len(asks),
            pexp,
            sexp,
            flags,
            0,
            seq,
            et_ns,
        )
        return header + struct.pack(f"<{len(flat)}q", *flat)

    def export_top_numpy(self, n: int) -> tuple[Any, Any]:
        """Top ``n`` levels as NumPy ``float64`` arrays (requires ``numpy``).

        Returns:
            ``(bids, asks)``: arrays of shape ``(k, 2)``, columns price and size, best first.
            Each value is the double nearest to the exact decimal (as ``float(Decimal)``).

        Raises:
            ImportError: numpy is not installed.
            OverflowError: as :meth:`export_top`.
        """
        import numpy as np

        buf = self.export_top(n)
        _, _, _, nb, na, pexp, sexp, _, _, _, _ = _HEADER.unpack_from(buf)
        rec = np.frombuffer(buf, dtype=np.dtype([("price", "<i8"), ("size", "<i8")]), offset=40)

        def scale(col: Any, exp: int) -> Any:
            # m / 10**k is correctly rounded when m and 10**k are exact doubles.
            if exp < 0:
                if -exp <= 22 and (col.size == 0 or int(np.abs(col).max()) < 2**53):
                    return col.astype(np.float64) / (10.0 ** (-exp))
                return np.array([float(Decimal(int(v)).scaleb(exp)) for v in col])
            return col.astype(np.float64) * (10.0**exp)

        out = np.empty((nb + na, 2), dtype=np.float64)
        out[:, 0] = scale(rec["price"], pexp)
        out[:, 1] = scale(rec["size"], sexp)
        return out[:nb], out[nb:]


def _mantissa(value: Decimal, exp: int) -> int:
    sign, digits, e = value.as_tuple()
    assert isinstance(e, int)
    m = int("".join(map(str, digits)) or "0") * int(10 ** (e - exp))
    if sign:
        m = -m
    if not _INT64_MIN <= m <= _INT64_MAX:
        raise OverflowError(f"{value} does not fit int64 at exponent {exp}")
    return m


def _to_ns(t: _dt.datetime) -> int:
    delta = t - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def decode_top_export(buf: bytes | bytearray | memoryview) -> TopExport:
    """Decode a :meth:`L2Book.export_top` buffer back into exact decimals.

    Raises:
        ValueError: wrong magic, unknown version or truncated buffer.
    """
    if len(buf) < _HEADER_SIZE:
        raise ValueError("book export: buffer shorter than its header")
    magic, version, hsize, nb, na, pexp, sexp, flags, _, seq, et_ns = _HEADER.unpack_from(buf)
    if magic != TOP_EXPORT_MAGIC:
        raise ValueError(f"book export: bad magic {magic!r}")
    if version != TOP_EXPORT_VERSION:
        raise ValueError(f"book export: unsupported version {version}")
    count = 2 * (nb + na)
    if len(buf) < hsize + 8 * count:
        raise ValueError("book export: buffer truncated")
    flat = struct.unpack_from(f"<{count}q", buf, hsize)
    levels = [
        (Decimal(flat[i]).scaleb(pexp, _EXACT), Decimal(flat[i + 1]).scaleb(sexp, _EXACT))
        for i in range(0, count, 2)
    ]
    return TopExport(
        bids=tuple(levels[:nb]),
        asks=tuple(levels[nb:]),
        sequence=None if seq == _INT64_MIN else seq,
        event_time_ns=et_ns,
        valid=bool(flags & 1),
        verified=bool(flags & 2),
    )


if _cbook is not None:  # _cbook.apply_delta works on exactly these classes' slots
    _cbook.register(L2Book, _Side, _apply_side_py)


# --------------------------------------------------------------------------- engine


class _Slot:
    """Engine state of one instrument: its book, emission policy and resync state."""

    __slots__ = (
        "book",
        "emit_delta",
        "emit_top",
        "failed",
        "next_top",
        "top_depth",
        "top_interval",
    )

    def __init__(self, book: L2Book, emit: EmitPolicy, top_depth: int, top_interval: float) -> None:
        self.book = book
        self.failed = False  # integrity failed; resync requested; drop deltas until snapshot
        self.next_top = _NO_TIME
        self.top_depth = top_depth
        self.top_interval = _dt.timedelta(seconds=top_interval)
        self.emit_delta = emit in ("delta", "both")
        self.emit_top = emit in ("top", "both")


_BAD_DATA = (BookIntegrityError, InvalidOperation, TypeError, ValueError, IndexError)
"""What a book update may raise on bad venue data: each fails that book (resync)."""


def _levels(levels: Sequence[RawLevel], cache: _DecimalCache = _DECIMALS) -> tuple[BookLevel, ...]:
    """Raw delta levels as Decimal pairs, through the shared decimal cache.

    Only for levels the book just accepted (finite prices, sizes of digits): a miss is
    parsed and kept inline (about 20 % cheaper than the cache's ``__missing__``), and the
    bound is checked once per call (the cache may exceed its capacity by one update's
    levels before it is cleared). In C (``_cbook.decimal_levels``) with the speedups.

    Returns:
        ``((Decimal price, Decimal size), ...)`` in input order.

    Raises:
        decimal.InvalidOperation: a text that is not a decimal (e.g. size ``"1abc"``).
    """
    c = _c
    if c is not None:
        return cast(
            "tuple[BookLevel, ...]", c.decimal_levels(levels, cache, Decimal, cache.capacity)
        )
    get = cache.get
    out = []
    for lv in levels:
        px = lv[0]
        sz = lv[1]
        p = get(px)
        if p is None:
            p = cache[px] = Decimal(px)
        s = get(sz)
        if s is None:
            s = cache[sz] = Decimal(sz)
        out.append((p, s))
    if len(cache) > cache.capacity:
        cache.clear()
    return tuple(out)


class BookEngine:
    """The L2 books of one connection and venue channel, keyed by native symbol.

    A venue plugin's normaliser feeds every book message in and returns the events this
    returns. Integrity is per instrument: one book failing never affects the others.

    Args:
        venue: Venue name (events' ``venue``).
        channel: The venue channel (e.g. OKX ``"books"``), named in status and resync events.
        checksum, sequence, check_crossed: Integrity settings of every book (see
            :class:`L2Book`).
        emit: Emission policy for valid books:
            ``"delta"``: a full ``BookSnapshot`` for each snapshot and a ``BookDelta`` for
            each applied non-empty delta (an empty keep-alive delta emits nothing);
            ``"top"``: a top-``top_depth`` ``BookSnapshot(depth=top_depth)`` at most once per
            ``top_interval`` seconds of receive time per instrument: the first message after
            the interval elapsed emits one (for the ``book_top`` table);
            ``"both"``: both streams.
        top_depth: Levels per side of top snapshots.
        top_interval: Minimum receive-time seconds between two top snapshots of a book.

    Resync rule: on an integrity failure the engine marks that book invalid and returns
    ``[SubscriptionStatus(state="resyncing", code=kind, message=reason), ResyncRequest]``
    once. Every later delta for that instrument is **dropped** (counted in
    ``stats.dropped``), not buffered, until the next snapshot: buffering is useless without
    a snapshot of known sequence to replay it onto, and OKX's resubscribe answer is a fresh
    snapshot that supersedes everything buffered. A snapshot that passes restores the book
    and returns ``SubscriptionStatus(state="active")`` once, before its book events; a
    snapshot that fails starts a new failure (and a new ``ResyncRequest``). No book event is
    ever returned for an invalid book.
    """

    __slots__ = (
        "_check_crossed",
        "_checksum",
        "_emit",
        "_sequence",
        "_slots",
        "_top_depth",
        "_top_interval",
        "channel",
        "venue",
    )

    def __init__(
        self,
        venue: str,
        channel: str,
        *,
        checksum: ChecksumFunction | None = None,
        sequence: SequenceRule = "none",
        check_crossed: bool = True,
        emit: EmitPolicy = "delta",
        top_depth: int = 25,
        top_interval: float = 1.0,
    ) -> None:
        if sequence not in ("none", "contiguous", "linked"):
            raise ValueError(f"sequence rule must be none, contiguous or linked, not {sequence!r}")
        _check_policy(emit, top_depth, top_interval)
        self.venue = venue
        self.channel = channel
        self._checksum = checksum
        self._sequence: SequenceRule = sequence
        self._check_crossed = check_crossed
        self._emit: EmitPolicy = emit
        self._top_depth = top_depth
        self._top_interval = top_interval
        self._slots: dict[str, _Slot] = {}

    def __repr__(self) -> str:
        return f"BookEngine({self.venue}:{self.channel}, {len(self._slots)} books)"

    def _slot(self, native_symbol: str, symbol: str) -> _Slot:
        slot = self._slots.get(native_symbol)
        if slot is None:
            book = L2Book(
                self.venue,
                symbol,
                native_symbol,
                checksum=self._checksum,
                sequence=self._sequence,
                check_crossed=self._check_crossed,
            )
            slot = _Slot(book, self._emit, self._top_depth, self._top_interval)
            self._slots[native_symbol] = slot
        return slot

    def configure(
        self,
        native_symbol: str,
        symbol: str,
        *,
        emit: EmitPolicy | None = None,
        top_depth: int | None = None,
        top_interval: float | None = None,
    ) -> None:
        """Set one instrument's emission policy (e.g. from its subscription's options).

        Arguments left ``None`` keep the instrument's current setting (initially the
        engine's defaults).

        Raises:
            ValueError: unknown policy, ``top_depth`` < 1 or negative ``top_interval``.
        """
        slot = self._slot(native_symbol, symbol)
        current = (
            "both" if slot.emit_delta and slot.emit_top else "top" if slot.emit_top else "delta"
        )
        e = emit if emit is not None else current
        d = top_depth if top_depth is not None else slot.top_depth
        i = top_interval if top_interval is not None else slot.top_interval.total_seconds()
        _check_policy(e, d, i)
        slot.emit_delta = e in ("delta", "both")
        slot.emit_top = e in ("top", "both")
        slot.top_depth = d
        slot.top_interval = _dt.timedelta(seconds=i)

    def snapshot(
        self,
        native_symbol: str,
        symbol: str,
        bids: Sequence[RawLevel],
        asks: Sequence[RawLevel],
        *,
        event_time: _dt.datetime,
        receive_time: _dt.datetime,
        sequence: int | None = None,
        checksum: int | None = None,
    ) -> list[Event]:
        """Replace an instrument's book with a snapshot.

        Args:
            native_symbol, symbol: The instrument (venue id, normalised symbol).
            bids, asks: All levels as the venue's strings (see :class:`L2Book`).
            event_time, receive_time: Venue event time and local receive time, UTC.
            sequence, checksum: The venue's sequence id and checksum, when sent.

        Returns:
            The events to emit: ``SubscriptionStatus(state="active")`` if the book was
            resyncing, then per policy a full ``BookSnapshot`` and/or a top-N one; or the
            resync pair when the snapshot fails its checks. Never raises for bad data.
        """
        slot = self._slot(native_symbol, symbol)
        book = slot.book
        try:
            verified = book.apply_snapshot(
                bids,
                asks,
                sequence=sequence,
                checksum=checksum,
                time=receive_time,
                event_time=event_time,
            )
            out: list[Event] = []
            if slot.failed:
                slot.failed = False
                out.append(
                    SubscriptionStatus(
                        venue=self.venue,
                        channel=self.channel,
                        native_symbol=native_symbol,
                        state="active",
                        time=receive_time,
                    )
                )
            if slot.emit_delta:
                bid_levels, ask_levels = book.top()
                out.append(
                    BookSnapshot(
                        venue=self.venue,
                        symbol=book.symbol,
                        native_symbol=native_symbol,
                        event_time=event_time,
                        receive_time=receive_time,
                        bids=bid_levels,
                        asks=ask_levels,
                        sequence=sequence,
                        checksum=checksum,
                        verified=verified,
                    )
                )
            if slot.emit_top:
                slot.next_top = receive_time + slot.top_interval
                out.append(book.to_snapshot(slot.top_depth, event_time, receive_time))
        except _BAD_DATA as exc:
            return self._fail(slot, exc, receive_time)
        return out

    def delta(
        self,
        native_symbol: str,
        symbol: str,
        bids: Sequence[RawLevel],
        asks: Sequence[RawLevel],
        *,
        event_time: _dt.datetime,
        receive_time: _dt.datetime,
        sequence: int | None = None,
        prev_sequence: int | None = None,
        checksum: int | None = None,
    ) -> list[Event]:
        """Apply an incremental update to an instrument's book.

        Args:
            native_symbol, symbol: The instrument (venue id, normalised symbol).
            bids, asks: Changed levels as the venue's strings; zero size deletes.
            event_time, receive_time: Venue event time and local receive time, UTC.
            sequence, prev_sequence, checksum: The venue's ids and checksum, when sent.

        Returns:
            Per policy a ``BookDelta`` and/or a top-N ``BookSnapshot``; ``[]`` when the
            update is dropped (book awaiting a snapshot) or nothing is due; the resync pair
            ``[SubscriptionStatus(state="resyncing"), ResyncRequest]`` on the first failure
            (including a delta before any snapshot). Never raises for bad data.
        """
        c = _c
        if c is not None:  # the common case in C: the same events, or None (Python's)
            done = c.engine_delta(
                self,
                native_symbol,
                symbol,
                bids,
                asks,
                event_time,
                receive_time,
                sequence,
                prev_sequence,
                checksum,
            )
            if done is not None:
                return cast("list[Event]", done)
        slot = self._slots.get(native_symbol)
        if slot is None:
            slot = self._slot(native_symbol, symbol)
        book = slot.book
        if slot.failed:
            book._dropped += 1
            return []
        try:
            verified = book.apply_delta(
                bids,
                asks,
                sequence=sequence,
                prev_sequence=prev_sequence,
                checksum=checksum,
                time=receive_time,
                event_time=event_time,
            )
            out: list[Event] = []
            if slot.emit_delta and (bids or asks):
                out.append(
                    BookDelta(
                        venue=self.venue,
                        symbol=book.symbol,
                        native_symbol=native_symbol,
                        event_time=event_time,
                        receive_time=receive_time,
                        bids=_levels(bids) if bids else (),
                        asks=_levels(asks) if asks else (),
                        sequence=sequence,
                        prev_sequence=prev_sequence,
                        checksum=checksum,
                        verified=verified,
                    )
                )
            if slot.emit_top and receive_time >= slot.next_top:
                slot.next_top = receive_time + slot.top_interval
                out.append(book.to_snapshot(slot.top_depth, event_time, receive_time))
        except _BAD_DATA as exc:
            return self._fail(slot, exc, receive_time)
        return out

    def invalidate(
        self, native_symbol: str, reason: str, *, time: _dt.datetime, kind: str = "invalid"
    ) -> list[Event]:
        """Fail an instrument's book on the plugin's word (e.g. a gap it detected itself).

        Returns:
            The resync pair, or ``[]`` when the book is unknown or already resyncing.
        """
        slot = self._slots.get(native_symbol)
        if slot is None or slot.failed:
            return []
        return self._fail(slot, slot.book.invalidate(f"{kind}: {reason}", kind), time)

    def _fail(self, slot: _Slot, exc: Exception, time: _dt.datetime) -> list[Event]:
        """The resync pair for a failed book (bad level values count as ``malformed``)."""
        if slot.failed:  # already resyncing (defensive: deltas are dropped before this)
            return []
        slot.failed = True
        book = slot.book
        if not isinstance(exc, BookIntegrityError):  # a level value no view could convert
            exc = book.invalidate(f"malformed: {exc!r}", "malformed")
        return [
            SubscriptionStatus(
                venue=self.venue,
                channel=self.channel,
                native_symbol=book.native_symbol,
                state="resyncing",
                time=time,
                code=exc.kind,
                message=exc.reason,
            ),
            ResyncRequest(
                venue=self.venue,
                channel=self.channel,
                native_symbol=book.native_symbol,
                reason=exc.reason,
                time=time,
            ),
        ]

    def book(self, native_symbol: str) -> L2Book | None:
        """The instrument's book, or ``None`` if it never received a message."""
        slot = self._slots.get(native_symbol)
        return slot.book if slot is not None else None

    def resyncing(self, native_symbol: str) -> bool:
        """Whether the instrument is waiting for a snapshot after a failure."""
        slot = self._slots.get(native_symbol)
        return slot is not None and slot.failed

    def remove(self, native_symbol: str) -> None:
        """Forget an instrument's book (after an unsubscribe). Unknown symbols are ignored."""
        self._slots.pop(native_symbol, None)

    def stats(self) -> dict[str, BookStats]:
        """Statistics of every book, keyed by native symbol."""
        return {sym: slot.book.stats for sym, slot in self._slots.items()}

    def __len__(self) -> int:
        """Number of books."""
        return len(self._slots)

    def __contains__(self, native_symbol: object) -> bool:
        """Whether a book exists for the native symbol."""
        return native_symbol in self._slots


def _check_policy(emit: str, top_depth: int, top_interval: float) -> None:
    if emit not in ("delta", "top", "both"):
        raise ValueError(f"emit must be delta, top or both, not {emit!r}")
    if top_depth < 1:
        raise ValueError(f"top_depth must be >= 1, not {top_depth}")
    if top_interval < 0:
        raise ValueError(f"top_interval must be >= 0, not {top_interval}")


if _cbook is not None:  # _cbook.engine_delta works on exactly these classes' slots
    _cbook.register_engine(
        BookEngine,
        _Slot,
        Crc32Checksum,
        BookDelta,
        _DECIMALS,
        Decimal,
        _DECIMALS.capacity,
        _BAD_DATA,
        globals(),  # engine_delta hands every call back to Python while ``_c`` is None
    )
