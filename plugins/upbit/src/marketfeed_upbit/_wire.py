"""msgspec types of Upbit's WebSocket frames, in both response formats.

Upbit sends every quotation frame either in the ``DEFAULT`` format (long keys: ``type``,
``code``, ``trade_price``, ...) or, when the request asks for ``"format":"SIMPLE"``, with
abbreviated keys (``ty``, ``cd``, ``tp``, ...). Both formats carry the same fields, so each
frame type is described once (:data:`_SPECS`: attribute, type, SIMPLE key, DEFAULT key) and
two Struct classes are generated from it: one tagged on ``ty`` and one tagged on ``type``.
Both expose the same attribute names, so one normaliser handles either format.

Numbers are decoded straight into :class:`decimal.Decimal` by msgspec, which keeps the
exact text (``2.2E-7``, ``0E-8``, ``1505.00000000``). The order book unit list is kept as
one :class:`msgspec.Raw` slice (still validated as JSON) so the normaliser can reuse units
whose text repeats from frame to frame instead of building their decimals again. On the
orderbook fast path the list is cut out before decoding (:data:`BOOK_UNITS_KEYS`) and the
rest decoded with :data:`BOOK_DECODERS`; the list then reads as ``[]``.

Sources: Upbit Open API reference, WebSocket "현재가 (Ticker)", "체결 (Trade)",
"호가 (Orderbook)", "캔들 (Candle)": field tables with the 축약형 (SIMPLE) column.
"""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal
from typing import Any, Union

import msgspec

__all__ = [
    "BOOK_DECODERS",
    "BOOK_HEADS",
    "BOOK_UNITS_KEYS",
    "CANDLE_TYPES",
    "DEFAULT_DECODER",
    "SIMPLE_DECODER",
    "UNIT_TYPES",
    "UNIT_LIST_DECODERS",
    "DEFAULT_KINDS",
    "KINDS",
    "OTHER_DECODER",
    "SIMPLE_KINDS",
    "TRADE_DECODERS",
    "TRADE_HEADS",
    "ErrorBody",
    "Other",
]

CANDLE_TYPES: tuple[str, ...] = (
    "candle.1s",
    "candle.1m",
    "candle.3m",
    "candle.5m",
    "candle.10m",
    "candle.15m",
    "candle.30m",
    "candle.60m",
    "candle.240m",
)
"""WebSocket candle types listed in Upbit's "캔들 (Candle)" reference (v1.2.0, 2025-05-12)."""

_REQ = msgspec.NODEFAULT

# (attribute, type, SIMPLE key, DEFAULT key, default)
_Spec = tuple[str, Any, str, str, Any]

_COMMON: list[_Spec] = [
    ("code", str, "cd", "code", _REQ),
    ("timestamp", int, "tms", "timestamp", _REQ),
    ("stream_type", str | None, "st", "stream_type", None),
]

_SPECS: dict[str, list[_Spec]] = {
    "trade": [
        *_COMMON,
        ("trade_timestamp", int, "ttms", "trade_timestamp", _REQ),
        ("trade_price", Decimal, "tp", "trade_price", _REQ),
        ("trade_volume", Decimal, "tv", "trade_volume", _REQ),
        ("ask_bid", str, "ab", "ask_bid", _REQ),
        ("sequential_id", int, "sid", "sequential_id", _REQ),
    ],
    "ticker": [
        *_COMMON,
        ("trade_price", Decimal, "tp", "trade_price", _REQ),
        ("trade_volume", Decimal | None, "tv", "trade_volume", None),
        ("acc_trade_volume_24h", Decimal | None, "atv24h", "acc_trade_volume_24h", None),
        ("acc_trade_price_24h", Decimal | None, "atp24h", "acc_trade_price_24h", None),
    ],
    "orderbook": [
        *_COMMON,
        ("total_ask_size", Decimal, "tas", "total_ask_size", _REQ),
        ("total_bid_size", Decimal, "tbs", "total_bid_size", _REQ),
        ("units", msgspec.Raw, "obu", "orderbook_units", _REQ),
    ],
    "candle": [
        *_COMMON,
        ("open_time", _dt.datetime, "cdttmu", "candle_date_time_utc", _REQ),
        ("open", Decimal, "op", "opening_price", _REQ),
        ("high", Decimal, "hp", "high_price", _REQ),
        ("low", Decimal, "lp", "low_price", _REQ),
        ("close", Decimal, "tp", "trade_price", _REQ),
        ("volume", Decimal, "catv", "candle_acc_trade_volume", _REQ),
        ("quote_volume", Decimal | None, "catp", "candle_acc_trade_price", None),
    ],
}

_UNIT: list[_Spec] = [
    ("ask_price", Decimal, "ap", "ask_price", _REQ),
    ("bid_price", Decimal, "bp", "bid_price", _REQ),
    ("ask_size", Decimal, "as", "ask_size", _REQ),
    ("bid_size", Decimal, "bs", "bid_size", _REQ),
]


def _fields(spec: list[_Spec], simple: bool) -> list[tuple[str, Any, Any]]:
    return [
        (attr, typ, msgspec.field(name=skey if simple else dkey, default=default))
        for attr, typ, skey, dkey, default in spec
    ]


def _struct(name: str, spec: list[_Spec], simple: bool, tag: str | None) -> type[msgspec.Struct]:
    fmt = "Simple" if simple else "Default"
    kwargs: dict[str, Any] = {"kw_only": True, "gc": False}  # fields are atoms: no cycles
    if tag is not None:
        kwargs.update(tag_field="ty" if simple else "type", tag=tag)
    return msgspec.defstruct(f"{name}{fmt}", _fields(spec, simple), **kwargs)


def _kind_classes(simple: bool) -> dict[type[msgspec.Struct], str]:
    """Struct class -> kind (``trade``/``ticker``/``orderbook``/``candle.<unit>``)."""
    out: dict[type[msgspec.Struct], str] = {}
    for kind in ("trade", "ticker", "orderbook"):
        out[_struct(kind.capitalize(), _SPECS[kind], simple, kind)] = kind
    for ctype in CANDLE_TYPES:
        name = "Candle" + ctype.split(".")[1]
        out[_struct(name, _SPECS["candle"], simple, ctype)] = ctype
    return out


SIMPLE_KINDS = _kind_classes(simple=True)
DEFAULT_KINDS = _kind_classes(simple=False)
KINDS: dict[type[msgspec.Struct], str] = {**SIMPLE_KINDS, **DEFAULT_KINDS}
"""Every generated frame class -> its Upbit type (``"trade"``, ``"candle.1m"``, ...)."""

SIMPLE_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Union[tuple(SIMPLE_KINDS)])
"""Decodes a SIMPLE-format frame (tag ``ty``) into its generated Struct."""

DEFAULT_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Union[tuple(DEFAULT_KINDS)])
"""Decodes a DEFAULT-format frame (tag ``type``) into its generated Struct."""


def _class_of(kinds: dict[type[msgspec.Struct], str], kind: str) -> type[msgspec.Struct]:
    return next(cls for cls, k in kinds.items() if k == kind)


BOOK_HEADS: tuple[bytes, bytes] = (b'{"ty":"order', b'{"type":"ord')
"""First 12 bytes of an orderbook frame whose tag is its first key: ``(SIMPLE, DEFAULT)``."""

BOOK_UNITS_KEYS: tuple[bytes, bytes] = (b'"obu":[{', b'"orderbook_units":[{')
"""The unit list's key and opening, ``(SIMPLE, DEFAULT)``: where the fast path cuts a frame."""

BOOK_DECODERS: tuple[msgspec.json.Decoder[Any], msgspec.json.Decoder[Any]] = (
    msgspec.json.Decoder(_class_of(SIMPLE_KINDS, "orderbook")),
    msgspec.json.Decoder(_class_of(DEFAULT_KINDS, "orderbook")),
)
"""Decoders of one orderbook frame (its tag checked), ``(SIMPLE, DEFAULT)``."""

TRADE_HEADS: tuple[bytes, bytes] = (b'{"ty":"trade', b'{"type":"tra')
"""First 12 bytes of a trade frame whose tag is its first key: ``(SIMPLE, DEFAULT)``."""

TRADE_DECODERS: tuple[msgspec.json.Decoder[Any], msgspec.json.Decoder[Any]] = (
    msgspec.json.Decoder(_class_of(SIMPLE_KINDS, "trade")),
    msgspec.json.Decoder(_class_of(DEFAULT_KINDS, "trade")),
)
"""Decoders of one trade frame (its tag checked), ``(SIMPLE, DEFAULT)``."""

_UNIT_SIMPLE = _struct("Unit", _UNIT, True, None)
_UNIT_DEFAULT = _struct("Unit", _UNIT, False, None)

_UNIT_ANY: list[_Spec] = [(attr, Any, skey, dkey, d) for attr, _, skey, dkey, d in _UNIT]
UNIT_TYPES: tuple[type[msgspec.Struct], type[msgspec.Struct]] = (
    _struct("UnitAny", _UNIT_ANY, True, None),
    _struct("UnitAny", _UNIT_ANY, False, None),
)
"""One order book unit with untyped numbers, ``(SIMPLE, DEFAULT)``: decode them with a
``float_hook`` that returns (cached) decimals; integers arrive as ``int``."""

UNIT_LIST_DECODERS: tuple[msgspec.json.Decoder[Any], msgspec.json.Decoder[Any]] = (
    msgspec.json.Decoder(list[_UNIT_SIMPLE]),  # type: ignore[valid-type]
    msgspec.json.Decoder(list[_UNIT_DEFAULT]),  # type: ignore[valid-type]
)
"""Decoders of a whole unit list (the slow, always-correct path): ``(SIMPLE, DEFAULT)``."""


class ErrorBody(msgspec.Struct, kw_only=True):
    """``{"name": ..., "message": ...}`` of an Upbit error frame."""

    name: str | None = None
    message: str | None = None


class Other(msgspec.Struct, kw_only=True):
    """Any frame that is not tagged first: ``{"status":"UP"}``, ``{"error":{...}}``, or a
    data frame whose ``ty``/``type`` key is not the first key."""

    status: str | None = None
    error: ErrorBody | None = None
    ty: str | None = None
    type: str | None = None


OTHER_DECODER: msgspec.json.Decoder[Other] = msgspec.json.Decoder(Other)
