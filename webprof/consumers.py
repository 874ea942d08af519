"""Websocket consumers: collectors push intervals, browsers watch them.

Thin by design: authenticate, decode, dispatch by message type, hand over.
A collector socket hands every message to its ingest (webprof/ingest.py),
whose method for a type is the type's Channels handler name
(``profile.delta`` -> ``profile_delta``); the ingest coordinates the hub,
the trace broker, the recorder and the database.  A browser socket asks the
hub (webprof/hub.py) for snapshots and intervals.

Collectors join the group ``collector.<host>``: a user who changes the
host's selection on the host page makes the view send ``collector.config``
there, and every collector of that host forwards it down its socket.
Targeted traces (webprof.traces.broker) talk to one collector connection:
the broker sends ``trace.start``, ``trace.cancel`` and ``collector.query``
to that consumer's own channel (``collector.send``).

A browser socket holds at most one profile subscription (``live.subscribe``:
host, kind, process filter) and one latency subscription
(``latency.subscribe``: host, kind) at a time; a new subscribe of a type
replaces that type's previous one and answers with a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from .core import kinds, protocol
from .core.hostname import host_name_problem
from .core.live import NO_FILTER, ProcessFilter
from .core.protocol import (
    CollectorConfig,
    CollectorHello,
    Error,
    LatencySubscribe,
    LiveSubscribe,
    ProtocolError,
    decode,
    encode,
    handler_name,
)
from .hostkeys import host_for_token
from .hub import call, get_hub, group_name
from .ingest import CollectorIngest, Refused
from .models import Host

log = logging.getLogger("webprof.consumers")


def _sendable_close_code(code: int) -> bool:
    return code == 1000 or 3000 <= code <= 4999


# RFC 6455's 1009 "message too big" cannot be sent by an application under
# daphne: autobahn's sendClose accepts only 1000 and 3000-4999, and daphne then
# closes with 1011 and logs a traceback.  4009 is the application-range twin.
CLOSE_TOO_BIG = (
    protocol.CLOSE_TOO_BIG if _sendable_close_code(protocol.CLOSE_TOO_BIG) else 4009
)
# What daphne sends when the application raised.
CLOSE_INTERNAL_ERROR = 1011
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
    """Shared error reporting: count refused messages, close when hopeless.

    No frame is handled before ``connect()`` authenticated the peer and set
    ``authenticated``: a refused peer that talks before it reads the close
    frame (right after the 101) is closed with nothing processed.
    """

    dropped = 0
    consecutive_bad = 0
    authenticated = False
    # Set once the server closes the socket: frames the peer sent meanwhile
    # are not handled, and nothing more is sent (the transport may already be
    # gone, and sending on it raises inside daphne).
    closing = False

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        # Every receive path goes through here; the close is already on its way.
        if not self.authenticated or self.closing:
            return
        await super().websocket_receive(message)

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None,
                   close: bool = False) -> None:
        if self.closing:
            return
        await super().send(text_data, bytes_data, close)

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closing = True
        await super().close(code=code, reason=reason)

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


async def credential_host(token: str | None) -> str | None:
    """Whom a collector token speaks for: "" (any host) for the shared token,
    the enrolled host for a per-host token (webprof/hostkeys.py), None when
    it is neither.  One database read per connection, none per frame."""
    if token is None:
        return None
    if hmac.compare_digest(token.encode(), settings.COLLECTOR_TOKEN.encode()):
        return ""
    return await database_sync_to_async(host_for_token)(token)


class CollectorConsumer(RefusingConsumer):
    """``/ws/collector/``: one collector streaming one host's intervals."""

    ingest: CollectorIngest
    ended = False

    async def connect(self) -> None:
        token = request_token(self.scope)
        bound = await credential_host(token)
        self.authenticated = bound is not None
        # A per-host token binds the connection to its host; the shared one does not.
        self.ingest = CollectorIngest(self.channel_name, peer(self.scope), bound_host=bound or None)
        # Accepted, then closed with 4001: the collector (collectors/client.py)
        # and the tests rely on that code to stop retrying a wrong token.
        await self.accept()
        if not self.authenticated:
            reason = "missing token" if token is None else "wrong token"
            log.warning("collector from %s refused: %s", peer(self.scope), reason)
            await self.close(code=protocol.CLOSE_BAD_TOKEN)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        message = await self.decode_text(text_data, bytes_data)
        if message is None:
            return
        if self.ingest.host is None and message.type != CollectorHello.type:
            await self.refuse("hello_first", "the first message must be collector.hello")
            return
        handler = getattr(self.ingest, handler_name(message.type), None)
        if handler is None:
            await self.refuse("unexpected_type", f"{message.type} is not for this endpoint")
            return
        try:
            reply = await handler(message)
        except Refused as exc:
            await self.refuse(exc.code, str(exc))
            return
        if reply is not None:
            await self.send(encode(reply))

    async def collector_config(self, event: dict[str, Any]) -> None:
        """Group event from the host page: forward the new selection."""
        await self.send(event["text"])

    async def collector_send(self, event: dict[str, Any]) -> None:
        """From the trace broker, for this connection only: trace.start,
        trace.cancel or collector.query."""
        await self.send(event["text"])

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Channels calls disconnect() only for a websocket.disconnect message.
        # An exception in a handler (daphne then closes with 1011) or a
        # cancelled application (transport lost, application_close_timeout)
        # ends here without one: the host would stay "connected" on a channel
        # nobody reads, and questions to it would time out instead of failing.
        try:
            await super().__call__(scope, receive, send)
        finally:
            await asyncio.shield(self.disconnect(CLOSE_INTERNAL_ERROR))

    async def disconnect(self, code: int) -> None:
        """Runs once per connection, whichever way it ended."""
        if self.ended or not hasattr(self, "ingest"):
            return
        self.ended = True
        await self.ingest.disconnect(code)


def config_event(config: CollectorConfig) -> dict[str, Any]:
    """The group event that makes every collector of a host forward ``config``."""
    return {"type": "collector.config", "text": encode(config)}


@dataclass
class Subscription:
    """What one browser socket watches of one family: host, kind, filter, and
    the last serial already sent (group events up to it are in the snapshot)."""

    host: str
    kind: str
    flt: ProcessFilter = NO_FILTER
    last_serial: int = 0


# Browser -> server messages, each a subscription of one family.
SUBSCRIBE_TYPES = (LiveSubscribe.type, LatencySubscribe.type)


class LiveConsumer(RefusingConsumer):
    """``/ws/live/``: one browser watching one host's profile and/or latency.

    It holds at most one subscription per family (a flame graph and a
    heatmap); a new subscribe of a family replaces that family's previous one
    and answers with a fresh snapshot.
    """

    async def connect(self) -> None:
        self.subs: dict[str, Subscription] = {}  # family -> subscription
        self.groups_joined: set[str] = set()
        user = self.scope.get("user")
        self.authenticated = user is not None and user.is_authenticated
        # Accepted, then closed with 4003: live.js shows "not logged in" for it.
        await self.accept()
        if not self.authenticated:
            await self.close(code=protocol.CLOSE_NOT_LOGGED_IN)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        message = await self.decode_text(text_data, bytes_data)
        if message is None:
            return
        if message.type not in SUBSCRIBE_TYPES:
            await self.refuse("unexpected_type", f"{message.type} is not for this endpoint")
            return
        problem = host_name_problem(message.host)
        if problem:  # no collector could have connected as it
            await self.refuse("bad_host", problem)
            return
        # Only a host with a row or a live collector is watched: a made-up
        # name would otherwise join a group for nothing (the hub keeps no
        # stream for it either).  One read per subscribe, none per frame.
        if not (get_hub().hosts.is_connected(message.host) or await database_sync_to_async(
                Host.objects.filter(name=message.host).exists)()):
            await self.refuse("unknown_host", f"no collector has connected as {message.host!r} yet")
            return
        flt = (ProcessFilter(pid=message.pid, comm=message.comm or None)  # type: ignore[attr-defined]
               if message.type == LiveSubscribe.type else NO_FILTER)
        sub = Subscription(message.host, message.kind, flt)
        self.subs[kinds.BY_NAME[message.kind].family] = sub
        await self.join_groups()
        # Computed after group_add: events up to last_serial are in the
        # snapshot, later ones arrive as interval events.
        text, sub.last_serial = await call(get_hub().snapshot_text, sub.host, sub.kind, flt)
        await self.send(text)
        await self.send(encode(get_hub().hosts.status(sub.host)))

    async def join_groups(self) -> None:
        wanted = {group_name(sub.host) for sub in self.subs.values()}
        for group in self.groups_joined - wanted:
            await self.channel_layer.group_discard(group, self.channel_name)
        for group in wanted - self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = wanted

    async def live_interval(self, event: dict[str, Any]) -> None:
        await self.forward(self.subs.get("stack"), event)

    async def latency_interval(self, event: dict[str, Any]) -> None:
        await self.forward(self.subs.get("histogram"), event)

    async def forward(self, sub: Subscription | None, event: dict[str, Any]) -> None:
        """Send one announced interval under this socket's subscription."""
        serial = event["serial"]
        if sub is None or serial <= sub.last_serial:
            return
        if (event["host"], event["kind"]) != (sub.host, sub.kind):
            return
        text = await call(get_hub().interval_text, sub.host, sub.kind, serial, sub.flt)
        if text is not None:
            await self.send(text)

    async def host_status(self, event: dict[str, Any]) -> None:
        if event["host"] in {sub.host for sub in self.subs.values()}:
            await self.send(encode(get_hub().hosts.status(event["host"])))

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", set()):
            await self.channel_layer.group_discard(group, self.channel_name)
