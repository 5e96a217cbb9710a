"""The plugin's fast paths give what its plain paths give, on the real captures.

* :func:`marketfeed_okx.book_checksum_crc` (the checksum through the core's
  ``L2Book.crc32_pairs``, used when the core's C speedups are loaded) agrees with every
  checksum OKX sent, with the core's C speedups and with its pure-Python engine.
"""

from __future__ import annotations

import json

import pytest
from marketfeed import _book
from marketfeed.book import L2Book
from marketfeed_okx import book_checksum_crc
from okx_testdata import WS_2021, WS_2022, PlainBook, in_frames


@pytest.mark.parametrize("engine", ["c", "python"])
def test_crc_checksum_gives_the_venues_checksum(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every checksum in both captures, on books of unequal sides too (constructed)."""
    if engine == "python":
        monkeypatch.setattr(_book, "_c", None)
    elif _book._c is None:
        pytest.skip("the core's C speedups are not built")
    checked = 0
    for path in (WS_2022, WS_2021):
        books: dict[str, L2Book] = {}
        for _, frame in in_frames(path):
            msg = json.loads(frame)
            if "data" not in msg or not msg["arg"]["channel"].startswith("books"):
                continue
            inst = msg["arg"]["instId"]
            d = msg["data"][0]
            book = books.setdefault(inst, L2Book("okx", inst, inst, checksum=book_checksum_crc))
            if msg["action"] == "snapshot":
                book.apply_snapshot(d["bids"], d["asks"], checksum=d["checksum"])
            else:  # raises on a mismatch
                book.apply_delta(d["bids"], d["asks"], checksum=d["checksum"])
            assert book_checksum_crc(book) == d["checksum"]
            checked += 1
    assert checked > 1700  # 290 + 1504 book pushes
    for bids, asks in (
        ([("10", "1"), ("9", "2"), ("8", "3")], [("11", "1")]),
        ([("10", "1")], [("11", "1"), ("12", "2"), ("13", "3")]),
        ([], [("11", "1"), ("12", "2")]),
        ([("10", "1")], []),
    ):
        ref = PlainBook()
        ref.snapshot([list(lv) for lv in bids], [list(lv) for lv in asks])
        book = L2Book("okx", "X", "X", checksum=book_checksum_crc)
        book.apply_snapshot(bids, asks)
        assert book_checksum_crc(book) == ref.checksum()
