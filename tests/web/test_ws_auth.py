"""A websocket peer that failed authentication gets none of its frames handled."""

import pytest
from channels.db import database_sync_to_async
from wshelpers import browser, closed_with, collector, delta, hello, subscribe_text

from webprof.core import protocol
from webprof.hub import get_hub
from webprof.models import Host

pytestmark = [pytest.mark.web, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("token", ["", "wrong-token"])
async def test_collector_frames_after_a_refused_token_are_not_handled(token):
    col = await collector(token=token)
    await col.send_to(text_data=hello("intruder"))
    await col.send_to(text_data=delta(0, host="intruder"))
    assert await closed_with(col) == protocol.CLOSE_BAD_TOKEN
    assert await col.receive_nothing(timeout=0.3)  # not even an error frame
    assert get_hub().hosts.running("intruder") is None
    assert get_hub().serial("intruder", "cpu") == 0
    assert not await database_sync_to_async(Host.objects.filter(name="intruder").exists)()
    await col.disconnect()


async def test_live_frames_without_login_are_not_handled():
    live = await browser(None)
    await live.send_to(text_data=subscribe_text("box1"))
    assert await closed_with(live) == protocol.CLOSE_NOT_LOGGED_IN
    assert await live.receive_nothing(timeout=0.3)  # no snapshot, no status
    await live.disconnect()
