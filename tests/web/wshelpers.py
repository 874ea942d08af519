"""Websocket helpers for the in-process tests: messages and communicators."""

from __future__ import annotations

import json
from typing import Any

from channels.testing import WebsocketCommunicator
from django.conf import settings

from webprof.asgi import application
from webprof.core.protocol import CollectorHello, ProfileDelta, encode


def hello(host: str = "box1") -> str:
    return encode(
        CollectorHello(
            host=host,
            kernel="6.18.0",
            collectors=["cpu"],
            frequency_hz=49,
            interval_ms=1000,
            agent_version="test",
        )
    )


def delta(seq: int, host: str = "box1", leaf: str = "spin_inner") -> str:
    """One interval: 7 samples of app;main;<leaf> (pid 42) and 3 of db;poll_[k]."""
    strings = ["app", "main", leaf, "db", "poll_[k]"]
    return encode(
        ProfileDelta(
            host=host,
            kind="cpu",
            seq=seq,
            start_ms=1_700_000_000_000 + 1000 * seq,
            interval_ms=1000,
            frequency_hz=49,
            strings=strings,
            stacks=[[42, 0, 7, 1, 2], [7, 3, 3, 4]],
            health={"samples": 10, "stacks": 2},
        )
    )


def names(wire: dict[str, list]) -> set[str]:
    return set(wire["names"])


async def collector(token: str | None = None, query: str = "") -> WebsocketCommunicator:
    headers = []
    token = settings.COLLECTOR_TOKEN if token is None else token
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    comm = WebsocketCommunicator(application, "/ws/collector/" + query, headers=headers)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def browser(cookie: bytes | None) -> WebsocketCommunicator:
    headers = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
    if cookie:
        headers.append((b"cookie", cookie))
    comm = WebsocketCommunicator(application, "/ws/live/", headers=headers)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def receive(comm: WebsocketCommunicator, timeout: float = 2) -> dict[str, Any]:
    return json.loads(await comm.receive_from(timeout=timeout))


async def closed_with(comm: WebsocketCommunicator, timeout: float = 2) -> int:
    """Skip text frames until the close; return its code."""
    while True:
        out = await comm.receive_output(timeout=timeout)
        if out["type"] == "websocket.close":
            return out.get("code", 1000)


async def applied(host: str, serial: int, timeout: float = 2, kind: str = "cpu") -> None:
    """Wait until the hub has applied ``serial`` intervals for ``host``.

    ``send_to`` returns before the consumer has handled the frame; the
    protocol has no acknowledgement, so tests watch the hub instead.
    """
    import asyncio

    from webprof.hub import get_hub

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while get_hub().serial(host, kind) < serial:
        assert loop.time() < deadline, f"{host}: {serial} intervals not applied in {timeout} s"
        await asyncio.sleep(0.01)


def subscribe_text(host: str = "box1", **flt: Any) -> str:
    return json.dumps({"v": 1, "type": "live.subscribe", "host": host, **flt})


async def applied_hello(host: str, timeout: float = 2) -> None:
    """Wait until the hub has the host's hello, so that the connect broadcast
    (host.status) cannot race a browser that subscribes next."""
    import asyncio

    from webprof.hub import get_hub

    for _ in range(int(timeout / 0.01)):
        if get_hub().hosts.running(host) is not None:
            # The consumer broadcasts host.status right after: let it finish.
            await asyncio.sleep(0.05)
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"hello from {host!r} not applied within {timeout} s")
