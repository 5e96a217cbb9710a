"""Errors of the Naver ETF plugin, all :class:`marketfeed.VenueError` subclasses."""

from __future__ import annotations

from marketfeed import VenueError

__all__ = ["LayoutChanged", "NaverHttpError", "layout_error"]

VENUE = "naver_etf"


class LayoutChanged(VenueError):
    """A page or JSON document no longer has the shape this plugin parses.

    Raised instead of returning empty data when, e.g., the WiseReport page has no
    ``var CU_data = {...};`` script, or a documented field is missing or renamed.

    Attributes:
        source: Which document (``"etf_list"``, ``"mobile"``, ``"wisereport"``).
        missing: What is missing or malformed, e.g. ``"var CU_data"`` or
            ``"$.grid_data[0].STK_NM_KOR"``.
        payload: The text that failed to parse (kept for the dead-letter store).
    """

    def __init__(self, source: str, missing: str, detail: str = "", payload: str = "") -> None:
        self.source = source
        self.missing = missing
        self.payload = payload
        message = f"layout changed in {source}: {missing}"
        if detail:
            message += f" ({detail})"
        super().__init__(VENUE, message, code="layout_changed")


class NaverHttpError(VenueError):
    """An HTTP request failed for good: a 4xx answer, or 5xx/timeouts after every retry.

    Attributes:
        url: The requested URL.
        status: HTTP status, or ``None`` for a timeout or network error.
        attempts: How many attempts were made.
    """

    def __init__(self, url: str, status: int | None, attempts: int, reason: str) -> None:
        self.url = url
        self.status = status
        self.attempts = attempts
        what = f"HTTP {status}" if status is not None else reason
        plural = "s" if attempts != 1 else ""
        super().__init__(
            VENUE,
            f"GET {url} failed: {what} after {attempts} attempt{plural}",
            code=str(status) if status is not None else None,
        )


def layout_error(source: str, exc: Exception, payload: str = "") -> LayoutChanged:
    """A :class:`LayoutChanged` from a msgspec decode/validation error, naming the path.

    ``Object missing required field `nav` - at `$.result.etfItemList[0]``` becomes
    ``missing="$.result.etfItemList[0].nav"``; a wrong type keeps its path
    (``"$.grid_data[0].AGMT_STK_CNT"``); invalid JSON becomes ``"a JSON document"``.
    """
    import msgspec

    message = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return LayoutChanged(source, "a JSON document", message, payload=payload)
    where = message.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in message else "$"
    if message.startswith("Object missing required field `"):
        where = f"{where}.{message.split('`')[1]}"
    return LayoutChanged(source, where, message, payload=payload)
