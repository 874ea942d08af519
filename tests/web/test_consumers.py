"""The websocket endpoints in-process, through the real ASGI application."""

import json

import pytest
from channels.db import database_sync_to_async
from wshelpers import (
    applied,
    applied_hello,
    browser,
    closed_with,
    collector,
    delta,
    hello,
    names,
    receive,
    subscribe_text,
)

from webprof.consumers import CLOSE_TOO_BIG
from webprof.core import protocol
from webprof.core.flame import FlameTree
from webprof.models import Host

pytestmark = [pytest.mark.web, pytest.mark.django_db(transaction=True)]


async def subscribe(cookie, host="box1", **flt):
    live = await browser(cookie)
    await live.send_to(text_data=subscribe_text(host, **flt))
    return live


async def test_delta_reaches_subscribed_browser(session_cookie):
    # A host seen before (its row) whose collector is away: watchable.
    await database_sync_to_async(Host.objects.create)(name="box1")
    live = await subscribe(session_cookie)
    snap = await receive(live)
    assert snap["type"] == "live.snapshot" and snap["recent"] == []
    assert (await receive(live))["type"] == "host.status"

    col = await collector()
    await col.send_to(text_data=hello())
    await applied_hello("box1")
    status = await receive(live)
    assert status == {**status, "type": "host.status", "host": "box1", "connected": True}
    await col.send_to(text_data=delta(0))
    msg = await receive(live)
    assert msg["type"] == "live.interval" and msg["seq"] == 0 and msg["samples"] == 10
    tree = FlameTree.from_wire(msg["tree"])
    assert "app;main;spin_inner 7" in tree.to_folded().splitlines()
    assert msg["health"] == {"samples": 10, "stacks": 2}

    await col.disconnect()
    status = await receive(live)
    assert status["type"] == "host.status" and status["connected"] is False
    await live.disconnect()


async def test_snapshot_holds_earlier_intervals_once(session_cookie):
    col = await collector()
    await col.send_to(text_data=hello())
    await applied_hello("box1")
    for seq in range(3):
        await col.send_to(text_data=delta(seq))
    await applied("box1", 3)
    live = await subscribe(session_cookie)
    snap = await receive(live)
    assert [r["seq"] for r in snap["recent"]] == [0, 1, 2]
    assert snap["frequency_hz"] == 49
    await receive(live)  # host.status
    await col.send_to(text_data=delta(3))
    msg = await receive(live)
    assert msg["seq"] == 3  # 0..2 are not sent again
    assert await live.receive_nothing(timeout=0.2)
    await col.disconnect()
    await live.disconnect()


async def test_filters_are_per_subscriber(session_cookie):
    col = await collector()
    await col.send_to(text_data=hello())
    await applied_hello("box1")
    await applied_hello("box1")
    everything = await subscribe(session_cookie)
    db_only = await subscribe(session_cookie, comm="DB")
    by_pid = await subscribe(session_cookie, pid=42)
    for live in (everything, db_only, by_pid):
        await receive(live)
        await receive(live)
    await col.send_to(text_data=delta(0))
    assert names((await receive(everything))["tree"]) >= {"app", "db"}
    assert names((await receive(db_only))["tree"]) == {"", "db", "poll_[k]"}
    by_pid_msg = await receive(by_pid)
    assert "db" not in names(by_pid_msg["tree"]) and by_pid_msg["samples"] == 7
    for comm in (col, everything, db_only, by_pid):
        await comm.disconnect()


async def test_host_row_written_on_hello_and_disconnect():
    col = await collector()
    await col.send_to(text_data=hello("db-9"))
    await applied_hello("db-9")
    await col.send_to(text_data=delta(0, host="db-9"))
    await applied("db-9", 1)
    host = await database_sync_to_async(Host.objects.get)(name="db-9")
    assert host.connected and host.kernel == "6.18.0" and host.collectors == ["cpu"]
    await col.disconnect()
    host = await database_sync_to_async(Host.objects.get)(name="db-9")
    assert not host.connected


@pytest.mark.parametrize("token", ["", "wrong-token"])
async def test_bad_or_missing_token_closes_4001(token, caplog):
    col = await collector(token=token)
    assert await closed_with(col) == protocol.CLOSE_BAD_TOKEN
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and refused[0].exc_info is None


async def test_token_in_query_string():
    from django.conf import settings

    col = await collector(token="", query=f"?token={settings.COLLECTOR_TOKEN}")
    await col.send_to(text_data=hello())
    await applied_hello("box1")
    assert await col.receive_nothing(timeout=0.2)
    await col.disconnect()


async def test_malformed_message_keeps_connection(session_cookie):
    col = await collector()
    await col.send_to(text_data=hello())
    await applied_hello("box1")
    live = await subscribe(session_cookie)
    await receive(live)
    await receive(live)
    await col.send_to(text_data="{not json")
    err = await receive(col)
    assert err["type"] == "error" and err["code"] == "bad_message" and err["dropped"] == 1
    assert err["message"].startswith("not JSON")
    bad = json.loads(delta(1))
    bad["stacks"] = [[1, 99, 1]]  # names a string not in the table
    await col.send_to(text_data=json.dumps(bad))
    err = await receive(col)
    assert err["dropped"] == 2 and "not in the table" in err["message"]
    await col.send_to(text_data=delta(2))
    assert (await receive(live))["seq"] == 2
    await col.disconnect()
    await live.disconnect()


async def test_hello_must_come_first():
    col = await collector()
    await col.send_to(text_data=delta(0))
    err = await receive(col)
    assert err["code"] == "hello_first"
    await col.send_to(text_data=hello())
    await applied_hello("box1")
    await col.send_to(text_data=delta(1, host="other"))
    assert (await receive(col))["code"] == "host_mismatch"
    await col.disconnect()


async def test_too_many_malformed_messages_close_4002():
    col = await collector()
    for _ in range(50):
        await col.send_to(text_data="[]")
    assert await closed_with(col) == protocol.CLOSE_PROTOCOL_ERROR


async def test_oversized_message_closes_1009_others_unaffected(session_cookie, monkeypatch):
    monkeypatch.setattr(protocol, "MAX_MESSAGE_BYTES", 4096)
    good = await collector()
    await good.send_to(text_data=hello("good"))
    await applied_hello("good")
    live = await subscribe(session_cookie, host="good")
    await receive(live)
    await receive(live)
    big = await collector()
    await big.send_to(text_data=hello("big"))
    await big.send_to(text_data="x" * 5000)
    err = await receive(big)
    assert err["code"] == "too_big"
    assert await closed_with(big) == CLOSE_TOO_BIG
    await good.send_to(text_data=delta(0, host="good"))
    assert (await receive(live))["seq"] == 0
    await good.disconnect()
    await live.disconnect()


async def test_live_without_login_closes_4003():
    live = await browser(None)
    assert await closed_with(live) == protocol.CLOSE_NOT_LOGGED_IN


async def test_live_rejects_bad_subscribe(session_cookie):
    live = await browser(session_cookie)
    await live.send_to(text_data=subscribe_text("h", pid=-3))
    err = await receive(live)
    assert err["code"] == "bad_message" and "pid" in err["message"]
    await live.disconnect()


async def test_other_refusals_keep_connection():
    col = await collector()
    await col.send_to(text_data=hello("x" * 300))
    assert (await receive(col))["code"] == "bad_host"
    await col.send_to(text_data=hello())
    await col.send_to(text_data=hello("another-host"))
    assert (await receive(col))["code"] == "hello_again"
    await col.send_to(text_data=subscribe_text())
    err = await receive(col)
    assert err["code"] == "unexpected_type" and err["dropped"] == 3
    await col.send_to(text_data=delta(0))
    await applied("box1", 1)
    await col.disconnect()


def test_group_names_are_valid_and_distinct():
    from channels.layers import BaseChannelLayer

    from webprof.hub import group_name

    layer = BaseChannelLayer()
    hosts = ["web-1.example.com", "wéb 1", "wéb_1", "x" * 255, "x" * 254 + "y"]
    groups = [group_name(h) for h in hosts]
    assert groups[0] == "live.web-1.example.com"
    assert len(set(groups)) == len(groups)
    for g in groups:
        assert layer.require_valid_group_name(g)


async def test_same_filter_is_built_once_for_many_browsers(session_cookie, monkeypatch):
    from webprof.core.live import LiveState

    calls = []
    original = LiveState.interval_message

    def counting(self, record, flt):
        calls.append(flt)
        return original(self, record, flt)

    monkeypatch.setattr(LiveState, "interval_message", counting)
    col = await collector()
    await col.send_to(text_data=hello())
    await applied_hello("box1")
    await applied_hello("box1")
    browsers = [await subscribe(session_cookie) for _ in range(5)]
    for live in browsers:
        await receive(live)
        await receive(live)
    await col.send_to(text_data=delta(0))
    texts = {json.dumps(await receive(live)) for live in browsers}
    assert len(texts) == 1 and len(calls) == 1
    for comm in (col, *browsers):
        await comm.disconnect()
