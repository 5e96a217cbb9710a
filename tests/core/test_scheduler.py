"""Scheduled jobs: crontab in the job's zone, trading-day skips, runs routed to sinks."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import marketfeed
import pytest
from marketfeed import ConfigError, Job, ScheduleConfig, fire_times
from marketfeed.testing import MemorySink

KST = ZoneInfo("Asia/Seoul")


def _weekdays(day: dt.date) -> bool:
    return day.weekday() < 5 and day != dt.date(2025, 10, 6)  # a holiday for the test


async def _run(
    ctx: marketfeed.VenueContext, options: Mapping[str, Any]
) -> AsyncIterator[Sequence[marketfeed.Event]]:
    now = dt.datetime(2025, 10, 2, 6, 30, tzinfo=dt.UTC)
    yield [
        marketfeed.DailyBar(
            venue="sched",
            symbol="005930-KRW",
            native_symbol="005930",
            date=dt.date(2025, 10, 2),
            open=Decimal("61300"),
            high=Decimal("62000"),
            low=Decimal("61000"),
            close=Decimal("61900"),
            volume=Decimal(options.get("volume", 1)),
            receive_time=now,
        )
    ]


JOB = Job(
    name="bars",
    description="daily bars",
    cron="30 15 * * *",
    timezone="Asia/Seoul",
    run=_run,
    trading_days=_weekdays,
)


class _Venue:
    @marketfeed.hookimpl
    def register(self, registry: marketfeed.Registry) -> None:
        registry.venue(marketfeed.VenueInfo(name="sched", description="test", jobs=(JOB,)))


def test_fire_times_skip_weekends_and_holidays_in_the_jobs_zone() -> None:
    start = dt.datetime(2025, 10, 2, 16, 0, tzinfo=KST)  # Thursday after the close
    times = fire_times(JOB, None, start, 3)
    assert [t.date() for t in times] == [
        dt.date(2025, 10, 3),
        dt.date(2025, 10, 7),
        dt.date(2025, 10, 8),
    ]
    assert all(
        (t.hour, t.minute) == (15, 30) and t.utcoffset() == dt.timedelta(hours=9) for t in times
    )
    override = ScheduleConfig(venue="sched", job="bars", cron="0 8 * * mon-fri")
    assert fire_times(JOB, override, start, 1)[0] == dt.datetime(2025, 10, 3, 8, 0, tzinfo=KST)
    with pytest.raises(ConfigError, match="invalid crontab"):
        fire_times(JOB, ScheduleConfig(venue="sched", job="bars", cron="61 * * *"), start, 1)


@pytest.mark.anyio
async def test_run_job_routes_events_to_sinks() -> None:
    MemorySink.clear()
    cfg = marketfeed.parse_config(
        {
            "supervisor": {"status_path": None, "batch_interval": 0.05},
            "schedules": [{"venue": "sched", "job": "bars", "options": {"volume": 7}}],
            "sinks": [{"type": "memory", "url": "memory://sched"}],
        }
    )
    async with marketfeed.Supervisor(cfg, plugins=[_Venue(), MemorySink()]) as sup:
        n = await marketfeed.run_job(sup, sup.context("sched"), JOB, {"volume": 7})
    assert n == 1
    [bar] = MemorySink.events("sched")
    assert isinstance(bar, marketfeed.DailyBar) and bar.volume == Decimal(7)


def test_unknown_job_is_a_config_error() -> None:
    import anyio

    cfg = marketfeed.parse_config({"schedules": [{"venue": "sched", "job": "nope"}]})

    async def main() -> None:
        async with marketfeed.Supervisor(cfg, plugins=[_Venue(), MemorySink()]):
            pass

    with pytest.raises(ConfigError) as info:
        anyio.run(main)
    assert info.value.path == "schedules[0].job"
    assert "bars" in str(info.value)
