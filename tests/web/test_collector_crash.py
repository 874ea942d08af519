"""A collector connection ends the same way however it ends: a normal close,
a 1011 from an exception inside a handler, or the transport gone.  Each runs
the ingest's disconnect once and leaves the registry without the channel, so
the API answers 503 (no collector), never 504 (a dead channel that never
answers)."""

from __future__ import annotations

import pytest
from django.test import AsyncClient
from test_traces_api import HOST, client_for, get_json
from wshelpers import applied_hello, collector, delta, hello

from webprof import ingest as ingest_module
from webprof.hub import get_hub
from webprof.traces import broker as broker_module
from webprof.traces.broker import reset_broker

pytestmark = [pytest.mark.web, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fresh_broker():
    reset_broker()


@pytest.fixture
def counted_disconnects(monkeypatch):
    """The ingest's disconnect, counted per channel (it still runs)."""
    calls: list[str] = []
    original = ingest_module.CollectorIngest.disconnect

    async def counting(self, code: int) -> None:
        calls.append(self.channel)
        await original(self, code)

    monkeypatch.setattr(ingest_module.CollectorIngest, "disconnect", counting)
    return calls


async def connected_collector():
    comm = await collector()
    await comm.send_to(text_data=hello(HOST))
    await applied_hello(HOST)
    assert get_hub().hosts.is_connected(HOST)
    return comm


async def assert_gone(client: AsyncClient, calls: list[str]) -> None:
    assert len(calls) == 1, calls
    assert get_hub().hosts.channel_for(HOST) is None
    (row,) = (await get_json(client, "/api/hosts"))["hosts"]
    assert (row["name"], row["connected"]) == (HOST, False)
    resp = await client.get(f"/api/hosts/{HOST}/processes")
    assert resp.status_code == 503, resp.content
    assert "no collector" in resp.json()["error"]


async def test_exception_in_a_handler_is_a_disconnect(counted_disconnects, monkeypatch):
    client = await client_for("tracer", perm=True)
    monkeypatch.setattr(broker_module, "ANSWER_TIMEOUT_S", 0.5)
    comm = await connected_collector()

    async def broken(self, message):
        raise RuntimeError("a bug in an ingest handler")

    monkeypatch.setattr(ingest_module.CollectorIngest, "profile_delta", broken)
    await comm.send_to(text_data=delta(0, host=HOST))
    # The application dies with the handler's exception: daphne closes with 1011.
    with pytest.raises(RuntimeError, match="a bug in an ingest handler"):
        await comm.receive_output(timeout=5)
    await assert_gone(client, counted_disconnects)


async def test_normal_close_runs_disconnect_once(counted_disconnects):
    client = await client_for("tracer", perm=True)
    comm = await connected_collector()
    await comm.disconnect(code=1000)
    await assert_gone(client, counted_disconnects)


async def test_cancelled_application_is_a_disconnect(counted_disconnects):
    """Transport loss that never delivers websocket.disconnect: daphne
    cancels the application (application_close_timeout)."""
    client = await client_for("tracer", perm=True)
    comm = await connected_collector()
    comm.future.cancel()
    await comm.wait(timeout=5)
    await assert_gone(client, counted_disconnects)
