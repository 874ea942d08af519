"""A real daphne with real websocket clients: a fake collector speaking the
protocol and a browser-like subscriber that logged in over HTTP."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request

import pytest
import websockets
from e2eproc import start_serve
from websockets.asyncio.client import ClientConnection, connect

from webprof.consumers import CLOSE_TOO_BIG
from webprof.core import protocol
from webprof.core.flame import FlameTree
from webprof.core.protocol import CollectorHello, ProfileDelta, encode

pytestmark = pytest.mark.e2e

RECV_TIMEOUT_S = 5


def hello(host: str) -> str:
    msg = CollectorHello(
        host=host, kernel="6.18", collectors=["cpu"], frequency_hz=49, interval_ms=1000,
        agent_version="fake",
    )
    return encode(msg)


def delta(host: str, seq: int, leaf: str = "fake_leaf") -> str:
    msg = ProfileDelta(
        host=host, kind="cpu", seq=seq, start_ms=int(time.time() * 1000), interval_ms=1000,
        frequency_hz=49, strings=["fakeproc", "main", leaf], stacks=[[1234, 0, 5, 1, 2]],
        health={"samples": 5},
    )
    return encode(msg)


async def fake_collector(server, host: str | None, token: str | None = None) -> ClientConnection:
    token = server.token if token is None else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ws = await connect(f"{server.ws_url}/ws/collector/", additional_headers=headers)
    if host is not None:
        await ws.send(hello(host))
    return ws


async def subscriber(server, cookie: str | None, host: str | None) -> ClientConnection:
    """Connect like live.js does: session cookie, then live.subscribe (see
    :func:`subscribe_known`).  Its snapshot is ``ws.snapshot``."""
    headers = {"Cookie": cookie} if cookie else {}
    ws = await connect(f"{server.ws_url}/ws/live/", additional_headers=headers, max_size=None)
    if host is not None:
        ws.snapshot = await subscribe_known(ws, host)  # type: ignore[attr-defined]
    return ws


async def subscribe_known(ws: ClientConnection, host: str) -> dict:
    """Subscribe until the server knows ``host``; return the snapshot.

    Only a host with a row or a live collector can be watched: a hello sent on
    another socket just before may not be handled yet (``unknown_host``).
    """
    deadline = time.monotonic() + RECV_TIMEOUT_S
    while True:
        await ws.send(json.dumps({"v": 1, "type": "live.subscribe", "host": host}))
        msg = json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S))
        if msg["type"] != "error" or msg["code"] != "unknown_host":
            assert msg["type"] == "live.snapshot", msg
            return msg
        assert time.monotonic() < deadline, f"{host} still unknown after {RECV_TIMEOUT_S} s"
        await asyncio.sleep(0.05)


async def next_of(ws: ClientConnection, kind: str) -> dict:
    """The next message of type ``kind`` (host.status and others are skipped)."""
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S))
        if msg["type"] == kind:
            return msg


async def close_code(ws: ClientConnection) -> int:
    """Read until the server closes; return the close code it sent."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S)
    except websockets.ConnectionClosed as exc:
        assert exc.rcvd is not None, "closed without a close frame"
        return exc.rcvd.code
    finally:
        await ws.close()


async def test_fake_collector_reaches_logged_in_subscriber(webprof_server, login_cookie):
    col = await fake_collector(webprof_server, "fake-1")
    live = await subscriber(webprof_server, login_cookie, "fake-1")
    assert live.snapshot["host"] == "fake-1"
    for seq in range(3):
        await col.send(delta("fake-1", seq))
        msg = await next_of(live, "live.interval")
        assert msg["seq"] == seq
        assert "fakeproc;main;fake_leaf 5" in FlameTree.from_wire(msg["tree"]).to_folded()
    await col.close()
    status = await next_of(live, "host.status")
    assert status["connected"] is False
    await live.close()


async def test_refused_peers_get_documented_codes_others_served(webprof_server, login_cookie):
    good = await fake_collector(webprof_server, "fake-2")
    live = await subscriber(webprof_server, login_cookie, "fake-2")
    seq = 0

    async def still_served() -> None:
        nonlocal seq
        await good.send(delta("fake-2", seq))
        assert (await next_of(live, "live.interval"))["seq"] == seq
        seq += 1

    wrong = await fake_collector(webprof_server, None, token="wrong")
    assert await close_code(wrong) == protocol.CLOSE_BAD_TOKEN
    missing = await fake_collector(webprof_server, None, token="")
    assert await close_code(missing) == protocol.CLOSE_BAD_TOKEN
    await still_served()

    await good.send("{broken")
    err = json.loads(await asyncio.wait_for(good.recv(), RECV_TIMEOUT_S))
    assert err["type"] == "error" and err["code"] == "bad_message" and err["dropped"] == 1
    await still_served()  # the same connection is still usable

    big = await fake_collector(webprof_server, "fake-big")
    await big.send("x" * (protocol.MAX_MESSAGE_BYTES + 1))
    err = json.loads(await asyncio.wait_for(big.recv(), RECV_TIMEOUT_S))
    assert err["code"] == "too_big"
    assert await close_code(big) == CLOSE_TOO_BIG
    await still_served()

    anonymous = await subscriber(webprof_server, None, None)
    assert await close_code(anonymous) == protocol.CLOSE_NOT_LOGGED_IN
    await still_served()
    await good.close()
    await live.close()


def test_pages_over_http(webprof_server, login_cookie):
    def get(path: str, cookie: str | None = None) -> tuple[int, str, str]:
        req = urllib.request.Request(webprof_server.url + path)
        if cookie:
            req.add_header("Cookie", cookie)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.url, resp.read().decode(errors="replace")

    status, url, _ = get("/")
    assert url.endswith("/login/?next=/")  # redirected: not logged in
    status, url, body = get("/", login_cookie)
    assert status == 200 and url.endswith("/") and "Hosts" in body
    status, _, body = get("/static/vendor/plotly.min.js")
    assert status == 200 and len(body) > 1_000_000
    status, _, body = get("/hosts/fake-1/", login_cookie)
    assert status == 200 and "fake-1" in body


def test_webprof_serve_prints_token_and_stops_on_sigterm(tmp_path):
    proc, _port, log = start_serve(tmp_path)
    try:
        token = (tmp_path / "data" / "collector-token").read_text().strip()
        assert f"collector token: {token}" in log.read_text()
        assert oct((tmp_path / "data" / "collector-token").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
