"""Server state a logged-in browser cannot grow: hub streams for made-up hosts,
filtered "since start" trees.  Memory is measured, never time."""

import gc
import json
import tracemalloc

import pytest
from channels.db import database_sync_to_async
from wshelpers import applied, applied_hello, browser, collector, delta, hello, receive

from webprof.consumers import MAX_CONSECUTIVE_BAD
from webprof.hub import get_hub
from webprof.models import Host

pytestmark = [pytest.mark.web, pytest.mark.django_db(transaction=True)]

FLOOD = 10_000


def subscribe_text(host: str) -> str:
    return json.dumps({"v": 1, "type": "live.subscribe", "host": host})


def traced_now() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def test_subscribe_to_unknown_host_is_refused_and_keeps_nothing(session_cookie):
    live = await browser(session_cookie)
    await live.send_to(text_data=subscribe_text("nobody-here"))
    msg = await receive(live)
    assert msg["type"] == "error" and msg["code"] == "unknown_host"
    assert "nobody-here" in msg["message"]
    assert get_hub().streams == {}
    await live.disconnect()


async def test_known_host_without_data_gets_an_empty_snapshot_and_no_stream(session_cookie):
    await database_sync_to_async(Host.objects.create)(name="quiet")
    live = await browser(session_cookie)
    await live.send_to(text_data=subscribe_text("quiet"))
    snap = await receive(live)
    assert snap["type"] == "live.snapshot" and snap["recent"] == []
    assert get_hub().streams == {}
    # Its first delta creates the stream and reaches the browser.
    await receive(live)  # host.status
    col = await collector()
    await col.send_to(text_data=hello("quiet"))
    await applied_hello("quiet")
    await col.send_to(text_data=delta(0, host="quiet"))
    await applied("quiet", 1)
    assert list(get_hub().streams) == [("quiet", "cpu")]
    while (msg := await receive(live))["type"] != "live.interval":
        pass
    assert msg["samples"] == 10
    await col.disconnect()
    await live.disconnect()


async def test_flood_of_unknown_hosts_keeps_no_state(session_cookie):
    """10,000 subscribes to distinct made-up names: no stream, flat memory.

    A socket is closed after MAX_CONSECUTIVE_BAD refusals, so the flood
    opens a new one each time."""
    tracemalloc.start()
    try:
        sent = 0
        baseline = None
        while sent < FLOOD:
            live = await browser(session_cookie)
            for _ in range(MAX_CONSECUTIVE_BAD):
                await live.send_to(text_data=subscribe_text(f"made-up-{sent}"))
                assert (await receive(live))["code"] == "unknown_host"
                sent += 1
            await live.disconnect()
            if baseline is None and sent >= 1_000:
                baseline = traced_now()  # after warm-up: caches, first connections
        grown = traced_now() - baseline
    finally:
        tracemalloc.stop()
    assert len(get_hub().streams) == 0
    print(f"\n{FLOOD} unknown-host subscribes: traced memory grew {grown / 1e6:.2f} MB "
          f"after the first 1,000")
    assert grown < 1_000_000, f"memory grew by {grown} bytes"
