"""Text helpers shared by the parsers: charset decoding, Naver number formats, names."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

__all__ = [
    "charset_of",
    "decode_body",
    "normalise_name",
    "parse_count",
    "parse_korean_amount",
    "parse_percent",
]

_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._-]+)", re.IGNORECASE)
_KOREAN_FAMILY = {
    "euc-kr",
    "euc_kr",
    "euckr",
    "cp949",
    "ms949",
    "uhc",
    "ks_c_5601-1987",
    "x-windows-949",
}


def charset_of(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header, lower-cased, or ``None``."""
    if not content_type:
        return None
    m = _CHARSET.search(content_type)
    return m.group(1).lower() if m else None


def decode_body(body: bytes, content_type: str | None, default: str = "utf-8") -> str:
    """Decode an HTTP body as served: the declared charset, with a tolerant fallback.

    Rules (naver-etf.md section 1, "encoding": finance.naver.com serves JSON as
    ``text/plain;charset=EUC-KR``; one source saw UTF-8 bytes under that header):

    * EUC-KR is read with ``cp949`` (its superset, what Naver actually emits).
    * When the header declares the Korean family but the bytes are valid UTF-8 and not
      plain ASCII, they are UTF-8: real EUC-KR Korean text is practically never valid
      UTF-8, while UTF-8 Korean text often decodes *without error* as cp949 into
      mojibake (``"미국"`` becomes ``"誘멸뎅"``), so trying the declared charset first
      cannot detect that case.
    * Otherwise the declared charset (or ``default`` when none is declared) is tried
      strictly, then UTF-8, then cp949.

    Raises:
        UnicodeDecodeError: no candidate decodes the bytes strictly.
    """
    declared = charset_of(content_type) or default
    if declared in _KOREAN_FAMILY:
        declared = "cp949"
        if not body.isascii():
            try:
                return body.decode("utf-8")
            except UnicodeDecodeError:
                pass
    candidates = [declared] + [c for c in ("utf-8", "cp949") if c != declared]
    error: UnicodeDecodeError | None = None
    for encoding in candidates:
        try:
            return body.decode(encoding)
        except LookupError:
            continue
        except UnicodeDecodeError as exc:
            error = error or exc
    assert error is not None
    raise error


def _number(text: str, what: str) -> Decimal | None:
    cleaned = text.strip().replace(",", "")
    if cleaned in ("", "-"):
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise ValueError(f"not a {what}: {text!r}")
    return value


def parse_count(text: str) -> Decimal | None:
    """``"6,924"`` -> ``Decimal("6924")``; ``"-"`` or ``""`` -> ``None`` (no data).

    Raises:
        ValueError: anything else that is not a number.
    """
    return _number(text, "count")


def parse_percent(text: str) -> Decimal | None:
    """``"33.66%"`` -> ``Decimal("33.66")`` (percent); ``"-"`` or ``""`` -> ``None``.

    Raises:
        ValueError: anything else that is not a percentage.
    """
    return _number(text.strip().removesuffix("%"), "percentage")


_UNIT_VALUE = {"조": Decimal(10) ** 12, "억": Decimal(10) ** 8, "만": Decimal(10) ** 4}
_AMOUNT_PART = re.compile(r"([0-9][0-9,]*(?:\.[0-9]+)?)\s*(조|억|만)?")


def parse_korean_amount(text: str) -> Decimal | None:
    """A Korean unit string in KRW: ``"25조 533억"`` -> ``25053300000000``.

    1조 = 10^12 KRW, 1억 = 10^8 KRW, 1만 = 10^4 KRW; a leading ``-`` negates the whole
    amount (``"-72.9억"`` -> ``-7290000000``); ``"-"`` or ``""`` -> ``None``. Source:
    naver-etf.md section 2A (``marketValue``, ``totalNav``, ``cumulativeNetInflow*``).

    Raises:
        ValueError: the text is not such an amount.
    """
    cleaned = text.strip()
    if cleaned in ("", "-"):
        return None
    sign = 1
    if cleaned.startswith("-"):
        sign, cleaned = -1, cleaned[1:].strip()
    elif cleaned.startswith("+"):
        cleaned = cleaned[1:].strip()
    total = Decimal(0)
    pos = 0
    matched = False
    while pos < len(cleaned):
        m = _AMOUNT_PART.match(cleaned, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"not a Korean amount: {text!r}")
        number = Decimal(m.group(1).replace(",", ""))
        total += number * _UNIT_VALUE.get(m.group(2) or "", Decimal(1))
        matched = True
        pos = m.end()
        while pos < len(cleaned) and cleaned[pos].isspace():
            pos += 1
    if not matched:
        raise ValueError(f"not a Korean amount: {text!r}")
    return sign * total


_NAME_DROP = re.compile(r"[\s()\[\]{}<>·ㆍ・•.,'\"]+")


def normalise_name(name: str) -> str:
    """A matching key for constituent names across sources.

    NFKC-normalises, keeps the preferred-share marker ``(우)`` as ``우`` (distinct from
    the common share), strips spaces, brackets, middle dots, periods and commas, and
    upper-cases (naver-etf.md section 2B, "Joining names to codes").
    ``"삼성전자(우)"`` -> ``"삼성전자우"``, ``"NVIDIA Corp."`` -> ``"NVIDIACORP"``.
    """
    text = unicodedata.normalize("NFKC", name)
    return _NAME_DROP.sub("", text).upper()
