"""A collector that stays connected but stops reporting a running trace: the
broker's watchdog fails the trace with a reason instead of leaving it
"running" for ever."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.db import database_sync_to_async
from test_traces_api import FakeCollector, client_for, start, trace_row, until

from webprof.traces import broker as broker_module
from webprof.traces.broker import STALE_REASON, get_broker, reset_broker
from webprof.traces.models import Trace

pytestmark = [pytest.mark.web, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def quick_watchdog(monkeypatch):
    # The hello says interval_ms=1000: stale after 3 x 1 s + 1 s.
    monkeypatch.setattr(broker_module, "STALE_GRACE_S", 1.0)
    monkeypatch.setattr(broker_module, "WATCH_EVERY_S", 0.2)
    reset_broker()


async def test_a_silent_running_trace_is_failed_with_a_reason():
    fake = await FakeCollector().connect()
    tracer = await client_for("tracer", perm=True)
    quiet = await start(tracer, fake)
    talking = await start(tracer, fake)
    assert get_broker().stale_after_s("box1") == pytest.approx(4.0)
    for trace in (quiet, talking):
        await fake.state(trace["id"], "running", elapsed_ms=0, remaining_ms=5000)
    await until(lambda: trace_row(quiet["id"]).state == "running", "running stored")

    # Both report for longer than the stale limit: neither is failed.
    began = time.monotonic()
    while time.monotonic() - began < 6:
        for trace in (quiet, talking):
            await fake.state(trace["id"], "running", elapsed_ms=1000, remaining_ms=4000)
        await asyncio.sleep(0.5)
    assert get_broker().progress(quiet["id"]) is not None

    # Then the collector goes silent for one trace and keeps reporting the other.
    silent_from = time.monotonic()
    while time.monotonic() - silent_from < 12 and get_broker().progress(quiet["id"]):
        await fake.state(talking["id"], "running", elapsed_ms=1000, remaining_ms=4000)
        await asyncio.sleep(0.5)
    await until(lambda: trace_row(quiet["id"]).state == "failed", "silent trace failed")
    row = await _row(quiet["id"])
    assert row.reason == STALE_REASON
    assert row.session.state == "interrupted" and STALE_REASON in row.session.notes
    assert time.monotonic() - silent_from >= 3.5  # not before the limit
    cancel = await fake.wait_for("trace.cancel")
    assert cancel["trace_id"] == quiet["id"]
    # The reporting trace runs on, and the connection stayed up.
    assert get_broker().progress(talking["id"]).state == "running"
    assert (await _row(talking["id"])).state == "running"
    await fake.close()


async def _row(trace_id: int) -> Trace:
    return await database_sync_to_async(trace_row)(trace_id)
