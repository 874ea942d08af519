"""The browser websocket refuses a page from another site; collectors are unaffected."""

import json
import os
import socket
import subprocess
import sys

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from wshelpers import applied_hello, browser, closed_with, collector, hello, receive

from webprof.asgi import application
from webprof.core import protocol
from webprof.models import Host

pytestmark = [pytest.mark.web, pytest.mark.django_db(transaction=True)]


async def handshake(origin: bytes | None, cookie: bytes) -> tuple[bool, WebsocketCommunicator]:
    headers = [(b"host", b"testserver"), (b"cookie", cookie)]
    if origin is not None:
        headers.append((b"origin", origin))
    comm = WebsocketCommunicator(application, "/ws/live/", headers=headers)
    connected, _ = await comm.connect()
    return connected, comm


@pytest.mark.parametrize("origin", [b"http://evil.example", b"https://testserver.evil.example",
                                    b"null", b"http://127.0.0.2"])
async def test_cross_site_origin_is_refused_at_the_handshake(origin, session_cookie):
    connected, comm = await handshake(origin, session_cookie)
    assert not connected
    await comm.disconnect()


@pytest.mark.parametrize("origin", [b"http://testserver", b"http://testserver:8000", None])
async def test_own_origin_and_non_browser_clients_connect(origin, session_cookie):
    await database_sync_to_async(Host.objects.create)(name="b1")
    connected, live = await handshake(origin, session_cookie)
    assert connected
    await live.send_to(text_data=json.dumps({"v": 1, "type": "live.subscribe", "host": "b1"}))
    assert (await receive(live))["type"] == "live.snapshot"
    await live.disconnect()


async def test_collectors_connect_without_origin_and_own_origin_still_needs_login():
    col = await collector()  # no Origin header
    await col.send_to(text_data=hello())
    await applied_hello("box1")
    await col.disconnect()
    anonymous = await browser(None)  # own Origin, no session: accepted, then 4003
    assert await closed_with(anonymous) == protocol.CLOSE_NOT_LOGGED_IN


def allowed_hosts(tmp_path, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("WEBPROF_ALLOWED_HOSTS", "WEBPROF_LISTEN_HOST")}
    clean.update(env, WEBPROF_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="webprof.settings")
    code = "import json, django.conf as c; print(json.dumps(c.settings.ALLOWED_HOSTS))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_allowed_hosts_default_to_what_the_server_listens_on(tmp_path):
    loopback = ["localhost", "127.0.0.1", "[::1]"]
    assert allowed_hosts(tmp_path) == loopback
    assert allowed_hosts(tmp_path, WEBPROF_LISTEN_HOST="127.0.0.1") == loopback
    assert allowed_hosts(tmp_path, WEBPROF_LISTEN_HOST="10.1.2.3") == [*loopback, "10.1.2.3"]
    assert allowed_hosts(tmp_path, WEBPROF_LISTEN_HOST="fd00::7") == [*loopback, "[fd00::7]"]
    assert allowed_hosts(tmp_path, WEBPROF_LISTEN_HOST="0.0.0.0") == [
        *loopback, socket.gethostname()]
    assert allowed_hosts(tmp_path, WEBPROF_LISTEN_HOST="0.0.0.0",
                         WEBPROF_ALLOWED_HOSTS="prof.example.com, .lan") == [
        "prof.example.com", ".lan"]
