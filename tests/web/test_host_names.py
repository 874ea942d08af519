"""Host names are checked once, at the ingest, and the number of hosts is bounded."""

import pytest
from channels.db import database_sync_to_async
from wshelpers import applied, applied_hello, collector, delta, hello, receive

from webprof.models import Host

pytestmark = [pytest.mark.web, pytest.mark.django_db(transaction=True)]


def host_exists(name: str) -> bool:
    return Host.objects.filter(name=name).exists()


@pytest.mark.parametrize("name", ["a/b", "a b", "../x", "wéb", "a.", "x" * 64])
async def test_bad_host_name_is_refused_and_pages_still_work(name, logged_in):
    col = await collector()
    await col.send_to(text_data=hello(name))
    err = await receive(col)
    assert err["type"] == "error" and err["code"] == "bad_host"
    assert "host name" in err["message"]
    assert not await database_sync_to_async(host_exists)(name)
    await col.disconnect()
    # A name like a/b, once stored, made these answer 500.
    assert (await database_sync_to_async(logged_in.get)("/")).status_code == 200
    resp = await database_sync_to_async(logged_in.get)("/hosts.json")
    assert resp.status_code == 200 and resp.json()["hosts"] == []


async def test_new_hosts_beyond_the_limit_are_refused(settings):
    settings.WEBPROF_MAX_HOSTS = 2
    first = []
    for name in ("h1", "h2"):
        col = await collector()
        await col.send_to(text_data=hello(name))
        await applied_hello(name)
        first.append(col)
    extra = await collector()
    await extra.send_to(text_data=hello("h3"))
    err = await receive(extra)
    assert err["code"] == "too_many_hosts" and "WEBPROF_MAX_HOSTS" in err["message"]
    assert not await database_sync_to_async(host_exists)("h3")
    await extra.disconnect()
    # A host already known is still admitted, on a second connection too.
    again = await collector()
    await again.send_to(text_data=hello("h1"))
    await again.send_to(text_data=delta(0, host="h1"))
    await applied("h1", 1)
    for col in (again, *first):
        await col.disconnect()
