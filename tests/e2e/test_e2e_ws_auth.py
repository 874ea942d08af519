"""A peer without a valid credential gets nothing processed, however fast it talks.

Raw TCP to a real daphne (tests/e2e/rawws.py): frames are sent in the same
write as the upgrade request, or right after the 101 without reading the
close frame.  Nothing may be stored (no host in /api/hosts or /hosts.json)
and nothing applied or broadcast (a logged-in viewer gets no interval).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import time
import urllib.error
import urllib.request

import pytest
from e2eproc import start_serve
from rawws import RawSocket, frame, upgrade_request
from test_e2e_server import delta, hello, subscriber

from webprof.core import protocol

pytestmark = pytest.mark.e2e

QUIET_S = 1.5  # how long a viewer must see nothing


def get_json(server, path: str, cookie: str) -> dict:
    req = urllib.request.Request(server.url + path, headers={"Cookie": cookie})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def host_names(server, cookie: str) -> set[str]:
    api = {h["name"] for h in get_json(server, "/api/hosts", cookie)["hosts"]}
    page = {h["name"] for h in get_json(server, "/hosts.json", cookie)["hosts"]}
    return api | page


async def viewer_messages(ws, seconds: float) -> list[dict]:
    """Everything ``ws`` receives within ``seconds``."""
    out: list[dict] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
        except TimeoutError:
            break
    return out


async def watching(server, cookie: str, host: str):
    live = await subscriber(server, cookie, host)
    seen = await viewer_messages(live, 0.5)
    assert [m["type"] for m in seen] == ["host.status"]
    return live


async def refused_as_unknown(server, cookie: str, host: str) -> bool:
    """True when a subscribe to ``host`` is refused: nothing made it known."""
    live = await subscriber(server, cookie, None)
    try:
        await live.send(json.dumps({"v": 1, "type": "live.subscribe", "host": host}))
        reply = (await viewer_messages(live, 0.5))[0]
        return reply["type"] == "error" and reply["code"] == "unknown_host"
    finally:
        await live.close()


def auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def collector_frames_in_upgrade(server, host: str, token: str) -> tuple[list[str], int]:
    """Upgrade request, hello and two deltas in one write."""
    raw = await RawSocket.open(server.port)
    try:
        await raw.write(upgrade_request(server.port, "/ws/collector/", auth_headers(token))
                        + frame(hello(host)) + frame(delta(host, 0)) + frame(delta(host, 1)))
        status = await raw.status()
        texts, code = await raw.frames()
        return texts, (status, code)
    finally:
        await raw.close()


async def collector_frames_after_101(server, host: str, token: str) -> tuple[list[str], int]:
    """Upgrade request, then as soon as the 101 is read, hello and deltas."""
    raw = await RawSocket.open(server.port)
    try:
        await raw.write(upgrade_request(server.port, "/ws/collector/", auth_headers(token)))
        status = await raw.status()
        await raw.write(frame(hello(host)) + frame(delta(host, 0)) + frame(delta(host, 1)))
        texts, code = await raw.frames()
        return texts, (status, code)
    finally:
        await raw.close()


@pytest.mark.parametrize("send", [collector_frames_in_upgrade, collector_frames_after_101])
@pytest.mark.parametrize("token", ["", "wrong-token"])
async def test_collector_without_valid_token_gets_nothing_processed(
        webprof_server, login_cookie, send, token):
    host = f"intruder-{secrets.token_hex(3)}"
    texts, (status, code) = await send(webprof_server, host, token)
    # Refused: either at the handshake, or accepted and closed with 4001.
    assert status == 403 or (status == 101 and code == protocol.CLOSE_BAD_TOKEN), (status, code)
    assert texts == []  # no reply of any kind, not even an error
    await asyncio.sleep(QUIET_S)
    # Neither a row nor a connection: browsers cannot even watch the name.
    assert await refused_as_unknown(webprof_server, login_cookie, host)
    assert host not in host_names(webprof_server, login_cookie)


async def test_raw_client_with_the_token_is_served(webprof_server, login_cookie):
    """The control: the same bytes right after the 101, with the right token,
    are processed.  (Bytes sent with the upgrade request itself are dropped by
    daphne even then, so that case has no control.)"""
    host = f"raw-ok-{secrets.token_hex(3)}"
    raw = await RawSocket.open(webprof_server.port)
    headers = auth_headers(webprof_server.token)
    live = None
    try:
        await raw.write(upgrade_request(webprof_server.port, "/ws/collector/", headers))
        assert await raw.status() == 101
        await raw.write(frame(hello(host)))
        live = await watching(webprof_server, login_cookie, host)
        await raw.write(frame(delta(host, 0)))
        seen = await viewer_messages(live, QUIET_S)
        assert "live.interval" in [m["type"] for m in seen], seen
        assert host in host_names(webprof_server, login_cookie)
    finally:
        await raw.close()
        if live is not None:
            await live.close()


async def test_live_without_login_gets_no_snapshot(webprof_server, login_cookie):
    """A subscribe sent with the upgrade of an anonymous /ws/live/ is not answered."""
    host = f"peek-{secrets.token_hex(3)}"
    col = await RawSocket.open(webprof_server.port)
    await col.write(upgrade_request(webprof_server.port, "/ws/collector/",
                                    auth_headers(webprof_server.token)))
    assert await col.status() == 101
    await col.write(frame(hello(host)))
    raw = await RawSocket.open(webprof_server.port)
    subscribe = json.dumps({"v": 1, "type": "live.subscribe", "host": host})
    try:
        await raw.write(upgrade_request(webprof_server.port, "/ws/live/", {}))
        status = await raw.status()
        await raw.write(frame(subscribe))
        texts, code = await raw.frames()
        assert status == 403 or (status == 101 and code == protocol.CLOSE_NOT_LOGGED_IN)
        assert texts == []
    finally:
        await raw.close()
        await col.close()


async def live_handshake(server, cookie: str, origin: str | None) -> int:
    raw = await RawSocket.open(server.port)
    headers = {"Cookie": cookie, **({"Origin": origin} if origin else {})}
    try:
        await raw.write(upgrade_request(server.port, "/ws/live/", headers))
        return await raw.status()
    finally:
        await raw.close()


async def test_live_refuses_a_cross_site_origin(webprof_server, login_cookie):
    """A page on another site cannot open /ws/live/ with the user's cookie."""
    for evil in ("http://evil.example", f"http://evil.example:{webprof_server.port}", "null"):
        assert await live_handshake(webprof_server, login_cookie, evil) == 403, evil
    own = f"http://127.0.0.1:{webprof_server.port}"
    assert await live_handshake(webprof_server, login_cookie, own) == 101
    assert await live_handshake(webprof_server, login_cookie, None) == 101  # not a browser


def http_status(port: int, host_header: str) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/login/", headers={"Host": host_header})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serve_allows_the_names_it_listens_on(tmp_path):
    proc, port, log = start_serve(tmp_path, "--host", "127.0.0.1")
    try:
        assert "allowed host names: localhost, 127.0.0.1, [::1]" in log.read_text()
        for name in ("127.0.0.1", "localhost"):
            assert http_status(port, f"{name}:{port}") == 200, name
        assert http_status(port, "evil.example") == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
