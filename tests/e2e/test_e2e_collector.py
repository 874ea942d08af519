"""The whole chain: a real collector process (eBPF) -> real daphne -> a
logged-in websocket subscriber, with a compiled workload of known functions."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time

import pytest
from e2eproc import Daphne, login, start_collector, stop_process
from websockets.asyncio.client import connect

from tests.conftest import require_bpf
from webprof.core.flame import FlameTree

pytestmark = pytest.mark.e2e

FUNCTIONS = ("webprof_spin_outer", "webprof_spin_inner")


async def watch(
    server: Daphne, cookie: str, host: str, until: float, ready: asyncio.Event | None = None
) -> list[str]:
    """Subscribe like the page does; return the folded lines seen until ``until``
    (monotonic) or until both workload functions appeared.  ``ready`` is set
    when the server reports the host's collector connected."""
    seen: list[str] = []
    url = f"{server.ws_url}/ws/live/"
    async with connect(url, additional_headers={"Cookie": cookie}, max_size=None) as ws:
        await ws.send(json.dumps({"v": 1, "type": "live.subscribe", "host": host}))
        while time.monotonic() < until:
            try:
                raw = await asyncio.wait_for(ws.recv(), until - time.monotonic())
            except TimeoutError:
                break
            msg = json.loads(raw)
            if msg["type"] == "error" and msg["code"] == "unknown_host":
                # Only a host that said hello can be watched: it compiles first.
                await asyncio.sleep(0.2)
                await ws.send(json.dumps({"v": 1, "type": "live.subscribe", "host": host}))
                continue
            if msg["type"] == "host.status" and msg["connected"] and ready is not None:
                ready.set()
            trees = []
            if msg["type"] == "live.interval":
                trees = [msg["tree"]]
            elif msg["type"] == "live.snapshot":
                trees = [msg["since_start"]] + [r["tree"] for r in msg["recent"]]
            for tree in trees:
                seen += FlameTree.from_wire(tree).to_folded().splitlines()
            if any(all(f in line for f in FUNCTIONS) for line in seen):
                break
    return seen


def spin_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("webprof_spin;")]


async def test_workload_functions_reach_subscriber_within_3s(
    webprof_server, login_cookie, collector_process, spin_binary
):
    ready = asyncio.Event()
    until = time.monotonic() + 30
    watcher = asyncio.create_task(
        watch(webprof_server, login_cookie, collector_process.name, until, ready)
    )
    # The collector compiles its BPF program first (1-3 s of CPU), then says hello.
    await asyncio.wait_for(ready.wait(), 25)
    started = time.monotonic()
    workload = subprocess.Popen([str(spin_binary), "6"])
    try:
        lines = await asyncio.wait_for(watcher, 35)
    finally:
        workload.kill()
        workload.wait()
    elapsed = time.monotonic() - started
    spins = spin_lines(lines)
    assert spins, f"no webprof_spin stacks; collector said:\n{collector_process.output()[-2000:]}"
    assert any("webprof_spin_outer;webprof_spin_inner" in line for line in spins), spins[:5]
    assert elapsed < 3.0, f"workload functions took {elapsed:.1f} s to arrive"


async def test_collector_reconnects_after_daphne_restart(own_server, tmp_path, spin_binary):
    require_bpf()
    own_server.manage("shell", "-c", _create_user("restart", "restart-pass-123"))
    collector = start_collector(own_server, "e2e-restart", tmp_path / "collector.log", 0.5)
    workload = subprocess.Popen([str(spin_binary), "60"])
    try:
        cookie = login(own_server.url, "restart", "restart-pass-123")
        first = await watch(own_server, cookie, "e2e-restart", time.monotonic() + 30)
        assert spin_lines(first), collector.output()[-2000:]

        own_server.stop(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while "reconnecting" not in collector.output() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert "reconnecting" in collector.output(), collector.output()[-2000:]
        assert collector.proc.poll() is None, "the collector exited instead of reconnecting"

        own_server.start()  # same port, same data directory: the session stays valid
        again = await watch(own_server, cookie, "e2e-restart", time.monotonic() + 20)
        assert spin_lines(again), collector.output()[-2000:]
    finally:
        workload.kill()
        workload.wait()
        stop_process(collector.proc)


def _create_user(username: str, password: str) -> str:
    return (
        "from django.contrib.auth import get_user_model;"
        f"get_user_model().objects.create_user({username!r}, password={password!r})"
    )
