"""Websocket consumers: collectors push intervals, browsers watch them.

Thin by design: authenticate, decode, hand to the hub, ``group_send``.  The
hub (webprof.hub) holds the live state and the encoded-message cache; the
database is touched on hello, on disconnect and at most every
``LAST_SEEN_EVERY_S`` seconds, never once per frame.

Collectors join the group ``collector.<host>``: a user who changes the
host's selection on the host page makes the view send ``collector.config``
there, and every collector of that host forwards it down its socket.

Targeted traces (webprof.traces.broker) talk to one collector connection:
the broker sends ``trace.start``, ``trace.cancel`` and ``collector.query``
to that consumer's own channel (``collector.send``), and the consumer hands
``trace.state`` and ``collector.answer`` back to the broker.  Deltas with a
``trace_id`` belong to a trace's session only: they never touch the live
hub and are never broadcast to browsers.

A browser socket holds at most one profile subscription (``live.subscribe``:
host, kind, process filter) and one latency subscription
(``latency.subscribe``: host, kind) at a time; a new subscribe of a type
replaces that type's previous one and answers with a fresh snapshot.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from .core import protocol
from .core.live import ProcessFilter
from .core.protocol import (
    CollectorConfig,
    CollectorHello,
    Error,
    LatencyDelta,
    LatencySubscribe,
    LiveSubscribe,
    ProfileDelta,
    ProtocolError,
    decode,
    encode,
)
from .core.trace_messages import CollectorAnswer, TraceState
from .hub import MAX_HOST_NAME, call, get_hub, group_name
from .models import Host
from .sessions.recording import RECORDER
from .traces.broker import get_broker

log = logging.getLogger("webprof.consumers")

LAST_SEEN_EVERY_S = 10.0


def _sendable_close_code(code: int) -> bool:
    return code == 1000 or 3000 <= code <= 4999


# RFC 6455's 1009 "message too big" cannot be sent by an application under
# daphne: autobahn's sendClose accepts only 1000 and 3000-4999, and daphne then
# closes with 1011 and logs a traceback.  4009 is the application-range twin.
CLOSE_TOO_BIG = (
    protocol.CLOSE_TOO_BIG if _sendable_close_code(protocol.CLOSE_TOO_BIG) else 4009
)
# Consecutive malformed messages after which a peer is assumed broken.
MAX_CONSECUTIVE_BAD = 50


def peer(scope: dict[str, Any]) -> str:
    client = scope.get("client") or ("?", 0)
    return f"{client[0]}:{client[1]}"


def request_token(scope: dict[str, Any]) -> str | None:
    """The collector token: ``Authorization: Bearer T``, else ``?token=T``."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("token")
    return tokens[0] if tokens else None


def too_big(text: str) -> bool:
    # A str of n characters encodes to n..4n UTF-8 bytes: encode only when unsure.
    if len(text) > protocol.MAX_MESSAGE_BYTES:
        return True
    if len(text) * 4 <= protocol.MAX_MESSAGE_BYTES:
        return False
    return len(text.encode("utf-8")) > protocol.MAX_MESSAGE_BYTES


class RefusingConsumer(AsyncWebsocketConsumer):
    """Shared error reporting: count refused messages, close when hopeless."""

    dropped = 0
    consecutive_bad = 0

    async def refuse(self, code: str, message: str) -> None:
        self.dropped += 1
        self.consecutive_bad += 1
        await self.send(encode(Error(code=code, message=message, dropped=self.dropped)))
        if self.consecutive_bad >= MAX_CONSECUTIVE_BAD:
            log.warning("%s closed after %d malformed messages", peer(self.scope), self.dropped)
            await self.close(code=protocol.CLOSE_PROTOCOL_ERROR)

    async def decode_text(self, text_data: str | None, bytes_data: bytes | None) -> Any:
        """Decode one frame, or report it and return None."""
        data = text_data if text_data is not None else bytes_data
        if data is None:
            return None
        big = too_big(data) if isinstance(data, str) else len(data) > protocol.MAX_MESSAGE_BYTES
        if big:
            await self.send(
                encode(
                    Error(
                        code="too_big",
                        message=f"message larger than {protocol.MAX_MESSAGE_BYTES} bytes",
                        dropped=self.dropped + 1,
                    )
                )
            )
            log.warning("%s sent a message over %d bytes", peer(self.scope), len(data))
            await self.close(code=CLOSE_TOO_BIG)
            return None
        try:
            message = decode(data)
        except ProtocolError as exc:
            await self.refuse("bad_message", str(exc))
            return None
        self.consecutive_bad = 0
        return message


class CollectorConsumer(RefusingConsumer):
    """``/ws/collector/``: one collector streaming one host's intervals."""

    host: str | None = None
    last_db_write = 0.0

    async def connect(self) -> None:
        await self.accept()
        token = request_token(self.scope)
        expected = settings.COLLECTOR_TOKEN
        if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
            reason = "missing token" if token is None else "wrong token"
            log.warning("collector from %s refused: %s", peer(self.scope), reason)
            await self.close(code=protocol.CLOSE_BAD_TOKEN)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        message = await self.decode_text(text_data, bytes_data)
        if message is None:
            return
        if self.host is None:
            if isinstance(message, CollectorHello):
                await self.hello(message)
            else:
                await self.refuse("hello_first", "the first message must be collector.hello")
        elif isinstance(message, (ProfileDelta, LatencyDelta)):
            if message.trace_id:
                await self.trace_delta(message)
            else:
                await self.delta(message)
        elif isinstance(message, TraceState):
            await get_broker().on_state(self.channel_name, message)
        elif isinstance(message, CollectorAnswer):
            get_broker().on_answer(self.channel_name, message)
        elif isinstance(message, CollectorHello):
            await self.hello_again(message)
        elif isinstance(message, Error):
            # The collector reports what it could not do (a collector that
            # failed to compile, a config it refused): shown on the host page.
            log.warning("collector %s reported %s: %s", self.host, message.code, message.message)
            await call(get_hub().collector_error, self.host, f"{message.code}: {message.message}")
        else:
            await self.refuse("unexpected_type", f"{message.type} is not for this endpoint")

    async def hello(self, hello: CollectorHello) -> None:
        if not hello.host or len(hello.host) > MAX_HOST_NAME:
            await self.refuse("bad_host", f"host name must be 1..{MAX_HOST_NAME} characters")
            return
        self.host = hello.host
        # Traces stored as running that no connection of this process runs are
        # failed before the host shows as connected, so nobody sees them running.
        await get_broker().fail_stale(hello.host)
        # The database row and group first, the hub last: a browser that sees
        # the host in the hub must not then receive this connect's broadcast
        # late (the broadcast follows at once, with no database wait between).
        host = await database_sync_to_async(Host.record_hello)(hello)
        self.last_db_write = time.monotonic()
        await self.channel_layer.group_add(group_name(hello.host, "collector"), self.channel_name)
        await call(get_hub().collector_connected, hello)
        get_broker().collector_connected(hello.host, self.channel_name)
        log.info("collector %s connected from %s", hello.host, peer(self.scope))
        await self.broadcast_status()
        # The stored selection and options, only when the collector may run
        # something else (see Host.config_differs): a matching one is left alone.
        if host.config_differs(hello):
            await self.send(encode(host.collector_config()))

    async def hello_again(self, hello: CollectorHello) -> None:
        """A collector applied a collector.config and says what runs now."""
        if hello.host != self.host:
            await self.refuse("hello_again", f"this connection said hello as {self.host!r}")
            return
        await call(get_hub().collector_hello_again, hello)
        await database_sync_to_async(Host.record_hello)(hello)
        log.info("collector %s now runs %s", hello.host, ", ".join(hello.collectors) or "nothing")

    async def delta(self, delta: ProfileDelta | LatencyDelta) -> None:
        if delta.host != self.host:
            await self.refuse("host_mismatch", f"this connection said hello as {self.host!r}")
            return
        hub = get_hub()
        if isinstance(delta, ProfileDelta):
            serial = await call(hub.apply, delta)
            event = "live.interval"
        else:
            serial = await call(hub.apply_latency, delta)
            event = "latency.interval"
        RECORDER.feed(delta)
        await self.channel_layer.group_send(
            group_name(delta.host),
            {"type": event, "host": delta.host, "kind": delta.kind, "serial": serial,
             "seq": delta.seq},
        )
        if time.monotonic() - self.last_db_write >= LAST_SEEN_EVERY_S:
            self.last_db_write = time.monotonic()
            await database_sync_to_async(Host.record_seen)(delta.host, True)

    async def trace_delta(self, delta: ProfileDelta | LatencyDelta) -> None:
        """A trace's interval: to its session only (late or foreign ones are
        dropped and counted by the broker)."""
        if delta.host != self.host:
            await self.refuse("host_mismatch", f"this connection said hello as {self.host!r}")
            return
        if get_broker().accepts_delta(delta.trace_id, self.channel_name):
            RECORDER.feed(delta)

    async def collector_config(self, event: dict[str, Any]) -> None:
        """Group event from the host page: forward the new selection."""
        await self.send(event["text"])

    async def collector_send(self, event: dict[str, Any]) -> None:
        """From the trace broker, for this connection only: trace.start,
        trace.cancel or collector.query."""
        await self.send(event["text"])

    async def disconnect(self, code: int) -> None:
        if self.host is None:
            return
        await self.channel_layer.group_discard(group_name(self.host, "collector"),
                                               self.channel_name)
        await get_broker().collector_disconnected(self.host, self.channel_name)
        hub = get_hub()
        entry = await call(hub.collector_disconnected, self.host)
        await database_sync_to_async(Host.record_seen)(self.host, entry.collectors > 0)
        log.info("collector %s disconnected (code %s)", self.host, code)
        await self.broadcast_status()

    async def broadcast_status(self) -> None:
        assert self.host is not None
        await self.channel_layer.group_send(
            group_name(self.host), {"type": "host.status", "host": self.host}
        )


def config_event(config: CollectorConfig) -> dict[str, Any]:
    """The group event that makes every collector of a host forward ``config``."""
    return {"type": "collector.config", "text": encode(config)}


class LiveConsumer(RefusingConsumer):
    """``/ws/live/``: one browser watching one host's profile and/or latency.

    ``live`` is (host, kind, filter) and ``latency`` is (host, kind); each
    has its own last serial: group events up to it are already in the
    snapshot the socket was sent.
    """

    live: tuple[str, str, ProcessFilter] | None = None
    latency: tuple[str, str] | None = None
    last_serial = 0
    last_latency_serial = 0

    async def connect(self) -> None:
        self.groups_joined: set[str] = set()
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=protocol.CLOSE_NOT_LOGGED_IN)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        message = await self.decode_text(text_data, bytes_data)
        if message is None:
            return
        if not isinstance(message, (LiveSubscribe, LatencySubscribe)):
            await self.refuse("unexpected_type", f"{message.type} is not for this endpoint")
            return
        if not message.host or len(message.host) > MAX_HOST_NAME:
            await self.refuse("bad_host", f"host name must be 1..{MAX_HOST_NAME} characters")
            return
        hub = get_hub()
        if isinstance(message, LiveSubscribe):
            flt = ProcessFilter(pid=message.pid, comm=message.comm or None)
            self.live = (message.host, message.kind, flt)
            await self.join_groups()
            # Computed after group_add: events up to last_serial are in the
            # snapshot, later ones arrive as live.interval.
            text, self.last_serial = await call(
                hub.snapshot_text, message.host, flt, message.kind)
        else:
            self.latency = (message.host, message.kind)
            await self.join_groups()
            text, self.last_latency_serial = await call(
                hub.latency_snapshot_text, message.host, message.kind)
        await self.send(text)
        await self.send(await call(hub.status_text, message.host))

    async def join_groups(self) -> None:
        hosts = {sub[0] for sub in (self.live, self.latency) if sub is not None}
        wanted = {group_name(h) for h in hosts}
        for group in self.groups_joined - wanted:
            await self.channel_layer.group_discard(group, self.channel_name)
        for group in wanted - self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = wanted

    async def live_interval(self, event: dict[str, Any]) -> None:
        serial = event["serial"]
        if self.live is None or serial <= self.last_serial:
            return
        host, kind, flt = self.live
        if (event["host"], event["kind"]) != (host, kind):
            return
        text = await call(get_hub().interval_text, host, serial, flt, kind)
        if text is not None:
            await self.send(text)

    async def latency_interval(self, event: dict[str, Any]) -> None:
        serial = event["serial"]
        if self.latency is None or serial <= self.last_latency_serial:
            return
        host, kind = self.latency
        if (event["host"], event["kind"]) != (host, kind):
            return
        text = await call(get_hub().latency_interval_text, host, kind, serial)
        if text is not None:
            await self.send(text)

    async def host_status(self, event: dict[str, Any]) -> None:
        hosts = {sub[0] for sub in (self.live, self.latency) if sub is not None}
        if event["host"] in hosts:
            await self.send(await call(get_hub().status_text, event["host"]))

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", set()):
            await self.channel_layer.group_discard(group, self.channel_name)
