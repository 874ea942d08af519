"""What the server does with a collector's messages: the one ingest path.

A collector connection (webprof/consumers.py) authenticates, decodes and
hands every message to its :class:`CollectorIngest`, whose methods are named
after the message types by Channels' convention (``profile.delta`` ->
``profile_delta``).  The ingest coordinates everything a message touches:

- the registry of connections (webprof/hosts.py) and the live hub
  (webprof/hub.py), then a group event so subscribed browsers fetch the
  interval;
- the trace broker (webprof/traces/broker.py) for ``trace.state``,
  ``collector.answer`` and deltas that carry a ``trace_id`` (those belong to
  a trace's session only: they never reach the hub or a browser);
- the recorder (webprof/sessions/recording.py) for every delta a recording
  or a trace session wants;
- the ``Host`` row, written on hello, on disconnect and at most every
  ``LAST_SEEN_EVERY_S`` seconds, never once per frame.

A message that cannot be taken raises :class:`Refused`, which the consumer
answers with an ``error`` message.
"""

from __future__ import annotations

import logging
import time

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from .core.hostname import host_name_problem
from .core.protocol import (
    CollectorConfig,
    CollectorHello,
    Error,
    LatencyDelta,
    ProfileDelta,
)
from .core.trace_messages import CollectorAnswer, TraceState
from .hub import call, get_hub, group_name, interval_event
from .models import Host
from .sessions.recording import RECORDER
from .traces.broker import get_broker

log = logging.getLogger("webprof.consumers")

LAST_SEEN_EVERY_S = 10.0


class Refused(Exception):
    """A collector message refused with ``code``; ``str()`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def admit_host(name: str) -> None:
    """Refuse a host not seen before once ``WEBPROF_MAX_HOSTS`` are stored.

    Two new hosts saying hello at the same instant may both pass the count:
    the bound is exceeded by at most the hellos in flight, which is enough to
    keep a flood of made-up names from filling the database and the hub.
    """
    if Host.objects.filter(name=name).exists():
        return
    limit = settings.WEBPROF_MAX_HOSTS
    if Host.objects.count() >= limit:
        raise Refused("too_many_hosts",
                      f"this server already knows {limit} hosts (WEBPROF_MAX_HOSTS); "
                      f"{name!r} is not admitted")


class CollectorIngest:
    """One collector connection's messages, from hello to disconnect."""

    def __init__(self, channel: str, peer: str, bound_host: str | None = None) -> None:
        self.channel = channel  # this connection's Channels channel name
        self.peer = peer
        self.bound_host = bound_host  # set by a per-host token: the only name it may use
        self.host: str | None = None  # set by the first hello
        self.last_db_write = 0.0

    # -- hello --------------------------------------------------------------------
    async def collector_hello(self, hello: CollectorHello) -> CollectorConfig | None:
        """The first hello binds the connection to a host; a later one says what
        runs now.  Returns a config to send back, or None."""
        if self.host is not None:
            await self._hello_again(hello)
            return None
        problem = host_name_problem(hello.host)
        if problem:
            raise Refused("bad_host", problem)
        if self.bound_host is not None and hello.host != self.bound_host:
            raise Refused("host_not_allowed",
                          f"this connection's token is enrolled for {self.bound_host!r}, "
                          f"not {hello.host!r}")
        await database_sync_to_async(admit_host)(hello.host)
        self.host = hello.host
        # Traces stored as running that no connection of this process runs are
        # failed before the host shows as connected, so nobody sees them running.
        await get_broker().fail_stale(hello.host)
        # The database row and group first, the registry last: a browser that
        # sees the host connected must not then receive this connect's
        # broadcast late (it follows at once, with no database wait between).
        row = await database_sync_to_async(Host.record_hello)(hello)
        self.last_db_write = time.monotonic()
        await get_channel_layer().group_add(group_name(hello.host, "collector"), self.channel)
        get_hub().hosts.connected(hello, self.channel)
        log.info("collector %s connected from %s", hello.host, self.peer)
        await self.broadcast_status()
        # The stored selection and options, only when the collector may run
        # something else (see Host.config_differs): a matching one is left alone.
        return row.collector_config() if row.config_differs(hello) else None

    async def _hello_again(self, hello: CollectorHello) -> None:
        """A collector applied a collector.config and says what runs now."""
        if hello.host != self.host:
            raise Refused("hello_again", f"this connection said hello as {self.host!r}")
        get_hub().hosts.hello_again(hello)
        await database_sync_to_async(Host.record_hello)(hello)
        log.info("collector %s now runs %s", hello.host, ", ".join(hello.collectors) or "nothing")

    # -- intervals ----------------------------------------------------------------
    async def profile_delta(self, delta: ProfileDelta | LatencyDelta) -> None:
        """One interval of any kind: to the hub and browsers, or to its trace."""
        if delta.host != self.host:
            raise Refused("host_mismatch", f"this connection said hello as {self.host!r}")
        if delta.trace_id:
            # Late or foreign trace deltas are dropped and counted by the broker.
            if get_broker().accepts_delta(delta.trace_id, self.channel):
                RECORDER.feed(delta)
            return
        serial = await call(get_hub().apply, delta)
        RECORDER.feed(delta)
        await get_channel_layer().group_send(
            group_name(delta.host),
            {"type": interval_event(delta.kind), "host": delta.host, "kind": delta.kind,
             "serial": serial, "seq": delta.seq},
        )
        if time.monotonic() - self.last_db_write >= LAST_SEEN_EVERY_S:
            self.last_db_write = time.monotonic()
            await database_sync_to_async(Host.record_seen)(delta.host, True)

    latency_delta = profile_delta

    # -- traces and questions ---------------------------------------------------------
    async def trace_state(self, message: TraceState) -> None:
        await get_broker().on_state(self.channel, message)

    async def collector_answer(self, message: CollectorAnswer) -> None:
        get_broker().on_answer(self.channel, message)

    async def error(self, message: Error) -> None:
        """The collector reports what it could not do (a collector that failed
        to compile, a config it refused): shown on the host page."""
        log.warning("collector %s reported %s: %s", self.host, message.code, message.message)
        assert self.host is not None
        get_hub().hosts.error(self.host, f"{message.code}: {message.message}")

    # -- the end ------------------------------------------------------------------------
    async def disconnect(self, code: int) -> None:
        if self.host is None:
            return
        await get_channel_layer().group_discard(group_name(self.host, "collector"),
                                                self.channel)
        still = get_hub().hosts.disconnected(self.host, self.channel)
        await get_broker().collector_disconnected(self.host, self.channel)
        await database_sync_to_async(Host.record_seen)(self.host, still)
        log.info("collector %s disconnected (code %s)", self.host, code)
        await self.broadcast_status()

    async def broadcast_status(self) -> None:
        assert self.host is not None
        await get_channel_layer().group_send(
            group_name(self.host), {"type": "host.status", "host": self.host}
        )
