"""Scheduled jobs: ``etf_list`` and ``etf_holdings``, daily after the KRX close (KST).

``Job.run(context, options)`` is an async generator of event batches. ``options`` come
from the ``[[schedules]]`` table (``etfs``: codes or ``"all"``, overriding the venue
config; ``limit``: only the first N ETFs).
"""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

import anyio
import holidays
import msgspec
from marketfeed import (
    ConfigError,
    DeadLetter,
    Event,
    Instrument,
    Job,
    VenueContext,
    convert_config,
)

from ._client import NaverClient
from ._config import ETF_CODE, NaverEtfConfig
from ._errors import LayoutChanged
from ._etf_list import LIST_PARAMS, LIST_PATH, parse_etf_list
from ._history import StateStore, diff_snapshots, snapshot_of
from ._merge import merge_holdings
from ._mobile import MobileAnalysis, mobile_path, parse_etf_analysis
from ._text import decode_body
from ._wisereport import WISEREPORT_PATH, WiseReport, parse_wisereport, wisereport_params

__all__ = [
    "ETF_HOLDINGS_JOB",
    "ETF_LIST_JOB",
    "JOBS",
    "is_krx_trading_day",
    "run_etf_holdings",
    "run_etf_list",
]

VENUE = "naver_etf"
KST = ZoneInfo("Asia/Seoul")
WISEREPORT_REFERER = "https://finance.naver.com/"


@functools.lru_cache(maxsize=16)
def _krx_holidays(year: int) -> holidays.HolidayBase:
    return holidays.financial_holidays("XKRX", years=year)


def is_krx_trading_day(day: _dt.date) -> bool:
    """``True`` on KRX trading days: Monday to Friday and not a KRX holiday (the
    ``holidays`` package's ``XKRX`` calendar, which includes the year-end closing day)."""
    return day.weekday() < 5 and day not in _krx_holidays(day.year)


class _RunOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    etfs: list[str] | Literal["all"] | None = None
    limit: int | None = None


def _config_of(context: VenueContext) -> NaverEtfConfig:
    config = context.config
    if config is None:
        return NaverEtfConfig()
    if isinstance(config, NaverEtfConfig):
        return config
    return convert_config(config, NaverEtfConfig, path=f"venues.{context.venue}")


def _url(context: VenueContext, endpoint: str, path: str) -> str:
    return context.endpoint(endpoint).rstrip("/") + path


async def _fetch_list(client: NaverClient, context: VenueContext) -> list[Instrument]:
    fetched = await client.get(_url(context, "list", LIST_PATH), LIST_PARAMS)
    return parse_etf_list(fetched.body, fetched.content_type, _dt.datetime.now(_dt.UTC))


async def run_etf_list(
    context: VenueContext, options: Mapping[str, Any]
) -> AsyncIterator[Sequence[Event]]:
    """Fetch the ETF list once and yield one batch of :class:`marketfeed.Instrument`.

    Raises:
        NaverHttpError: the list request failed (after retries).
        LayoutChanged: the list is not the documented JSON.
        marketfeed.VenueError: the list answered a non-success ``resultCode``.
    """
    cfg = _config_of(context)
    client = NaverClient(context, cfg)
    progress = context.progress("naver_etf: ETF list", 1)
    try:
        instruments = await _fetch_list(client, context)
        progress.advance()
    finally:
        progress.close()
    context.log.info("naver_etf: %d ETFs in the list", len(instruments))
    yield instruments


async def run_etf_holdings(
    context: VenueContext, options: Mapping[str, Any]
) -> AsyncIterator[Sequence[Event]]:
    """Collect the constituents of every configured ETF, one batch per ETF.

    Each batch holds the merged :class:`marketfeed.EtfHolding` rows and the
    :class:`marketfeed.EtfHoldingChange` events against the previous snapshot (see
    ``_history``). An ETF that fails (HTTP error after retries, layout change, no rows)
    yields a batch with one :class:`marketfeed.DeadLetter` instead, and the run goes on.
    The state of an ETF is saved after its batch was taken by the consumer.

    Raises:
        ConfigError: ``options`` has unknown keys or wrong types.
        NaverHttpError, LayoutChanged: the ETF list (needed for ``etfs = "all"``) failed.
    """
    cfg = _config_of(context)
    opts = convert_config(dict(options), _RunOptions, path="schedules.options")
    client = NaverClient(context, cfg)
    wanted = opts.etfs if opts.etfs is not None else cfg.etfs
    if wanted == "all":
        codes = [instrument.native_symbol for instrument in await _fetch_list(client, context)]
    else:
        bad = [code for code in wanted if not ETF_CODE.fullmatch(code)]
        if bad:
            raise ConfigError("schedules.options.etfs", f"not 6-character KRX codes: {bad}")
        codes = list(wanted)
    if opts.limit is not None:
        codes = codes[: opts.limit]
    store = StateStore(cfg.state_dir)
    threshold = Decimal(str(cfg.weight_threshold))
    progress = context.progress("naver_etf: ETF constituents", len(codes))
    try:
        for code in codes:
            batch, save = await _one_etf(context, client, cfg, store, threshold, code)
            yield batch
            if save is not None:
                await anyio.to_thread.run_sync(store.save, code, save)
            progress.advance()
    finally:
        progress.close()


async def _one_etf(
    context: VenueContext,
    client: NaverClient,
    cfg: NaverEtfConfig,
    store: StateStore,
    threshold: Decimal,
    code: str,
) -> tuple[list[Event], Any]:
    """Fetch, merge and diff one ETF: ``(batch, state to save or None)``."""
    started = _dt.datetime.now(_dt.UTC)
    if not ETF_CODE.fullmatch(code):
        return [_dead_letter(code, started, [f"unexpected ETF code {code!r}"], "")], None
    mobile: MobileAnalysis | None = None
    wise: WiseReport | None = None
    errors: list[str] = []
    bodies: list[str] = []

    async def get_mobile() -> None:
        nonlocal mobile
        try:
            fetched = await client.get(_url(context, "mobile", mobile_path(code)))
            mobile = parse_etf_analysis(fetched.body, expected_code=code)
        except Exception as exc:
            _note(exc, "mobile", errors, bodies)

    async def get_wisereport() -> None:
        nonlocal wise
        try:
            fetched = await client.get(
                _url(context, "wisereport", WISEREPORT_PATH),
                wisereport_params(code),
                headers={"Referer": WISEREPORT_REFERER},
            )
            html = decode_body(fetched.body, fetched.content_type, default="utf-8")
            wise = parse_wisereport(html, expected_code=code)
        except Exception as exc:
            _note(exc, "wisereport", errors, bodies)

    async with anyio.create_task_group() as tg:
        if "mobile" in cfg.sources:
            tg.start_soon(get_mobile)
        if "wisereport" in cfg.sources:
            tg.start_soon(get_wisereport)
    receive_time = _dt.datetime.now(_dt.UTC)
    if errors:
        context.log.warning("naver_etf: ETF %s failed: %s", code, "; ".join(errors))
        return [_dead_letter(code, receive_time, errors, "\n".join(bodies))], None
    merged = merge_holdings(
        code,
        venue=VENUE,
        mobile=mobile,
        wisereport=wise,
        receive_time=receive_time,
        fallback_date=receive_time.astimezone(KST).date(),
    )
    if not merged.holdings:
        reason = "no constituents from any source (empty basket); state left unchanged"
        return [_dead_letter(code, receive_time, [reason], "")], None
    if merged.unmatched:
        names = ", ".join(row.name for row in merged.unmatched)
        context.log.debug("naver_etf: %s: top-10 rows not in the basket: %s", code, names)
    snapshot = snapshot_of(code, merged.as_of, merged.holdings)
    try:
        state = await anyio.to_thread.run_sync(store.load, code)
    except ValueError as exc:
        context.log.warning("naver_etf: %s; starting a new baseline", exc)
        state = None
    baseline, new_state = store.advance(state, snapshot)
    batch: list[Event] = list(merged.holdings)
    if baseline is not None:
        batch += diff_snapshots(
            baseline, snapshot, threshold=threshold, venue=VENUE, receive_time=receive_time
        )
    return batch, new_state


def _note(exc: Exception, source: str, errors: list[str], bodies: list[str]) -> None:
    errors.append(f"{source}: {type(exc).__name__}: {exc}")
    if isinstance(exc, LayoutChanged) and exc.payload:
        bodies.append(exc.payload)


def _dead_letter(code: str, when: _dt.datetime, errors: list[str], body: str) -> DeadLetter:
    payload = msgspec.json.encode({"etf": code, "errors": errors, "body": body}).decode()
    return DeadLetter(
        venue=VENUE,
        source=f"job:{VENUE}/etf_holdings/{code}",
        reason="; ".join(errors),
        payload=payload,
        first_failure=when,
        last_failure=when,
    )


ETF_LIST_JOB = Job(
    name="etf_list",
    description="Naver ETF list (every Korean-listed ETF) as Instrument records",
    cron="0 16 * * mon-fri",
    timezone="Asia/Seoul",
    run=run_etf_list,
    trading_days=is_krx_trading_day,
)

ETF_HOLDINGS_JOB = Job(
    name="etf_holdings",
    description="ETF constituents (mobile top 10 + WiseReport basket) with change events",
    cron="30 16 * * mon-fri",
    timezone="Asia/Seoul",
    run=run_etf_holdings,
    trading_days=is_krx_trading_day,
)

JOBS = (ETF_LIST_JOB, ETF_HOLDINGS_JOB)
"""The jobs the venue declares."""
