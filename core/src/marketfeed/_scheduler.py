"""Scheduled (polled) jobs: APScheduler inside the supervisor.

Each ``[[schedules]]`` entry runs a venue's :class:`Job` on a crontab in the job's time
zone (KST for KRX jobs). Days where the job's ``trading_days`` predicate is false
(weekends, exchange holidays) are skipped. A run's event batches are routed to sinks and
``Supervisor.events`` exactly like streamed events.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from ._config import ScheduleConfig
from ._contract import Job, VenueContext
from ._errors import ConfigError

if TYPE_CHECKING:
    from ._supervisor import Supervisor

__all__ = ["fire_times", "run_job"]

log = logging.getLogger("marketfeed.scheduler")


def _trigger(job: Job, schedule: ScheduleConfig | None, path: str = "schedules") -> CronTrigger:
    cron = (schedule.cron if schedule else None) or job.cron
    tz = (schedule.timezone if schedule else None) or job.timezone
    try:
        return CronTrigger.from_crontab(cron, timezone=ZoneInfo(tz))
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"{path}.cron", f"invalid crontab {cron!r} in {tz}: {exc}") from None


def fire_times(
    job: Job, schedule: ScheduleConfig | None, start: _dt.datetime, count: int
) -> list[_dt.datetime]:
    """The next ``count`` times the job would run after ``start`` (aware datetime),
    skipping days its ``trading_days`` predicate rejects. Pure: no clock, no waiting.

    Raises:
        ConfigError: the crontab or time zone is invalid.
    """
    trigger = _trigger(job, schedule)
    out: list[_dt.datetime] = []
    previous: _dt.datetime | None = None
    now = start
    for _ in range(count * 50):
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        previous = fire
        now = fire + _dt.timedelta(microseconds=1)
        if job.trading_days is not None and not job.trading_days(fire.date()):
            continue
        out.append(fire)
        if len(out) == count:
            break
    return out


async def run_job(
    supervisor: Supervisor, context: VenueContext, job: Job, options: Mapping[str, Any]
) -> int:
    """Run ``job`` once now, routing every batch through ``supervisor``; returns the
    number of events routed. Exceptions from the job propagate."""
    n = 0
    async for batch in job.run(context, options):
        await supervisor.route(batch)
        n += len(batch)
    return n


class Scheduler:
    """Runs the configured schedules of a supervisor on its event loop."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._sup = supervisor
        self._scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
        for i, sched in enumerate(supervisor.config.schedules):
            info = supervisor.plugins.venue(sched.venue)
            job = next(j for j in info.jobs if j.name == sched.job)
            trigger = _trigger(job, sched, f"schedules[{i}]")
            self._scheduler.add_job(
                self._run,
                trigger,
                args=(sched, job),
                id=f"{sched.venue}:{sched.job}:{i}",
                name=f"{sched.venue}:{sched.job}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=3600,
            )

    def start(self) -> None:
        """Start firing jobs."""
        self._scheduler.start()

    def shutdown(self) -> None:
        """Stop firing jobs (a running job finishes on its own)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    async def _run(self, sched: ScheduleConfig, job: Job) -> None:
        tz = ZoneInfo(sched.timezone or job.timezone)
        today = _dt.datetime.now(tz).date()
        if job.trading_days is not None and not job.trading_days(today):
            log.info("%s:%s skipped: %s is not a trading day", sched.venue, job.name, today)
            return
        ctx = self._sup.context(sched.venue)
        try:
            n = await run_job(self._sup, ctx, job, sched.options)
            log.info("%s:%s done: %d events", sched.venue, job.name, n)
        except Exception as exc:
            log.exception("%s:%s failed", sched.venue, job.name)
            self._sup._errors.append(f"job {sched.venue}:{job.name} failed: {exc}")
