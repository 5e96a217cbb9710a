"""The core conformance suite (``marketfeed.testing.conformance``) for ``naver_etf``.

``naver_etf`` is a scheduled-only venue (jobs, no streaming channels), so it runs the
suite for scheduled venues, :class:`JobConformance`.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from marketfeed import Event, Supervisor, parse_config, run_job
from marketfeed.testing import MemorySink, ReplayServer
from marketfeed.testing.conformance import JobConformance
from naver_etf_helpers import FakeNaver, data_json

_STATE = tempfile.mkdtemp(prefix="naver-etf-conformance-")


class TestNaverEtfConformance(JobConformance):
    """The core's suite for scheduled venues: discovery, strict config, job declarations,
    and one ``etf_holdings`` run through the Supervisor against the fake Naver hosts."""

    venue = "naver_etf"
    job = "etf_holdings"
    options = {"etfs": ["069500", "148070"], "rate": 100.0, "state_dir": _STATE}

    def serve(self, server: ReplayServer) -> dict[str, str]:
        return FakeNaver({"list": server, "mobile": server, "wisereport": server}).endpoints

    def test_declares_no_streaming_channels(self) -> None:
        info = self._info()
        assert info.channels == {}
        assert set(info.endpoints) == {"list", "mobile", "wisereport"}
        assert {job.name for job in info.jobs} == {"etf_list", "etf_holdings"}


_DECODER = msgspec.json.Decoder(Event)
_ENCODER = msgspec.json.Encoder(decimal_format="string")


def _check(event: Any) -> None:
    for field in msgspec.structs.fields(event):
        value = getattr(event, field.name)
        assert not isinstance(value, float), f"{type(event).__name__}.{field.name} is a float"
        if isinstance(value, dt.datetime):
            assert value.utcoffset() == dt.timedelta(0), field.name
    assert _DECODER.decode(_ENCODER.encode(event)) == event


@pytest.mark.anyio
async def test_jobs_run_through_the_supervisor_into_a_sink(
    fake_naver: FakeNaver, tmp_path: Path
) -> None:
    store = "naver-etf-conformance"
    MemorySink.clear(store)
    config = parse_config(
        {
            "supervisor": {"status_path": None, "dead_letter_path": None, "batch_interval": 0.05},
            "venues": {
                "naver_etf": {
                    "endpoints": fake_naver.endpoints,
                    "etfs": ["069500"],
                    "rate": 100.0,
                    "state_dir": str(tmp_path / "state"),
                }
            },
            "schedules": [{"venue": "naver_etf", "job": "etf_holdings"}],
            "sinks": [{"type": "memory", "url": f"memory://{store}"}],
        }
    )
    async with Supervisor(config, plugins=[MemorySink()]) as sup:
        info = sup.plugins.venue("naver_etf")
        jobs = {job.name: job for job in info.jobs}
        with anyio.fail_after(15):
            n_list = await run_job(sup, sup.context("naver_etf"), jobs["etf_list"], {})
            n_holdings = await run_job(sup, sup.context("naver_etf"), jobs["etf_holdings"], {})
    events = MemorySink.events(store)  # the supervisor flushed its sinks on exit
    assert len(events) == n_list + n_holdings
    kinds = sorted({type(e).__name__ for e in events})
    assert kinds == ["EtfHolding", "Instrument"]
    listed = data_json("etfItemList.response.json")["result"]["etfItemList"]
    basket = data_json("wisereport.CU_data.069500.first9rows.recorded.json")["grid_data"]
    assert (n_list, n_holdings) == (len(listed), len(basket))
    for event in events:
        _check(event)
    weights = [e.weight_pct for e in events if type(e).__name__ == "EtfHolding"]
    assert all(isinstance(w, Decimal) for w in weights)
