"""A per-host token made by `webprof host enroll` against a real daphne."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys

import pytest
from e2eproc import ROOT
from test_e2e_server import (
    RECV_TIMEOUT_S,
    close_code,
    delta,
    fake_collector,
    hello,
    next_of,
    subscriber,
)

from webprof.core import protocol

pytestmark = pytest.mark.e2e


def host_cli(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "webprof.cli", "host", *args], cwd=ROOT,
                          env=server.env, capture_output=True, text=True, timeout=60)


async def test_enrolled_token_is_bound_to_its_host_and_revocable(webprof_server, login_cookie):
    name = f"enrolled-{secrets.token_hex(3)}"
    made = host_cli(webprof_server, "enroll", name)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()

    col = await fake_collector(webprof_server, None, token=token)
    await col.send(hello(f"other-{name}"))
    err = json.loads(await asyncio.wait_for(col.recv(), RECV_TIMEOUT_S))
    assert err["code"] == "host_not_allowed"
    await col.send(hello(name))
    live = await subscriber(webprof_server, login_cookie, name)
    await col.send(delta(name, 0))
    assert (await next_of(live, "live.interval"))["seq"] == 0
    await col.close()
    await live.close()

    assert host_cli(webprof_server, "revoke", name).returncode == 0
    again = await fake_collector(webprof_server, None, token=token)
    assert await close_code(again) == protocol.CLOSE_BAD_TOKEN
