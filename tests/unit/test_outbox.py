"""The collector's outbox: bounded, oldest dropped first, shared with the uplink."""

from __future__ import annotations

import pytest

from collectors.client import Outbox, Uplink
from webprof.core.protocol import CollectorHello

pytestmark = pytest.mark.unit


def test_full_outbox_drops_the_oldest_and_counts() -> None:
    outbox = Outbox(buffer_intervals=2)
    assert not outbox.ready.is_set()
    for text in ("a", "b", "c"):
        outbox.push(text)
    assert list(outbox.buffer) == ["b", "c"] and outbox.dropped == 1
    assert outbox.ready.is_set()


def test_uplink_sends_from_the_outbox_it_is_given() -> None:
    outbox = Outbox()
    outbox.push("before")  # e.g. the trace desk, built before the uplink
    hello = CollectorHello(host="h", kernel="k", collectors=[], frequency_hz=49,
                           interval_ms=1000, agent_version="t")
    uplink = Uplink("ws://127.0.0.1:9/ws/collector/", "token", hello, outbox=outbox)
    uplink.push("after")
    assert list(uplink.buffer) == ["before", "after"] and uplink.outbox is outbox
    assert uplink.dropped == 0
