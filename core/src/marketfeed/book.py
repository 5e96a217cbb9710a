"""``marketfeed.book``: the L2 order book engine used by venue plugins that stream books.

See :class:`L2Book` (one instrument's book with sequence, checksum and crossed-book checks)
and :class:`BookEngine` (the books of one connection, turning snapshots and deltas into
events, with per-instrument resync). Everything here is also importable from the private
module ``marketfeed._book``; import it from here.

:data:`SPEEDUPS` tells whether the optional C speedups (``marketfeed._cbook``, built by
``pip install`` when a C compiler is present) are in use; the environment variable
``MARKETFEED_PURE_PYTHON=1`` (read at import) forces the pure-Python engine. Both behave
identically.
"""

from __future__ import annotations

from ._book import (
    SPEEDUPS,
    TOP_EXPORT_MAGIC,
    TOP_EXPORT_VERSION,
    BookEngine,
    BookIntegrityError,
    BookStats,
    ChecksumFunction,
    Crc32Checksum,
    EmitPolicy,
    IntegrityKind,
    L2Book,
    RawLevel,
    SequenceRule,
    TopExport,
    decode_top_export,
)

__all__ = [
    "TOP_EXPORT_MAGIC",
    "TOP_EXPORT_VERSION",
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
    "TopExport",
    "decode_top_export",
]
