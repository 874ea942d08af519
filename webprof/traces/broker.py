"""The in-process link between API views and collector sockets.

The embedded server is one daphne process: API views and collector
consumers run on the same event loop, so a question to a collector is an
``asyncio`` future here, resolved by the consumer when ``collector.answer``
arrives (or failed after :data:`ANSWER_TIMEOUT_S`).  A host's connections
are found in the registry (webprof/hosts.py); the broker knows which
collector connection runs which trace, so that a disconnect fails
exactly that connection's traces, and it keeps the progress figures of
running traces in memory: the collector reports them every interval, and
the database is written only when a trace changes state.

Messages to a collector go to its own channel (``channel_layer.send``), not
to the host's ``collector.<host>`` group: with two collectors of one host
connected, a trace must run once, and its answers and states must come
from the connection that got it.  Sync database work runs in worker
threads (``database_sync_to_async``); everything else here runs on the
event loop and needs no locks.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import DatabaseError

from ..accounts import AuditEntry
from ..core.clock import now_ms
from ..core.protocol import Message, encode
from ..core.trace_messages import (
    FINAL_STATES,
    CollectorAnswer,
    CollectorQuery,
    TraceCancel,
    TraceStart,
    TraceState,
)
from ..hub import get_hub
from ..sessions.models import Session
from ..sessions.recording import RECORDER
from .models import ACTIVE_STATES, Trace

log = logging.getLogger("webprof.traces")
ANSWER_TIMEOUT_S = 5.0
# A running trace's collector reports its state every interval.  One whose
# last report is older than STALE_INTERVALS intervals plus STALE_GRACE_S
# (a slow drain, a busy event loop) is failed: the collector lost it (a
# worker thread died, a bug) while its connection stayed up, and nothing
# else would ever end it.  Checked every WATCH_EVERY_S while traces run.
STALE_INTERVALS = 3
STALE_GRACE_S = 10.0
WATCH_EVERY_S = 1.0
STALE_REASON = "the collector stopped reporting this trace"
# The consumer method that forwards a broker message down a collector's socket.
SEND_EVENT = "collector.send"


class CollectorUnavailable(Exception):
    """The host has no collector connected here (HTTP 503)."""


class CollectorTimeout(Exception):
    """The collector did not answer in time (HTTP 504)."""


class CollectorRefused(Exception):
    """The collector answered with an error sentence (HTTP 400)."""


@dataclass
class ActiveTrace:
    trace_id: int
    host: str
    channel: str
    session_id: int | None
    state: str = "queued"
    elapsed_ms: int = 0
    remaining_ms: int = 0
    # time.monotonic() of the last trace.state from its connection (or the start)
    reported: float = field(default_factory=time.monotonic)


@dataclass
class PendingQuery:
    channel: str
    future: asyncio.Future[CollectorAnswer]


class Broker:
    def __init__(self) -> None:
        self.traces: dict[int, ActiveTrace] = {}
        self.queries: dict[int, PendingQuery] = {}
        self.query_ids = itertools.count(1)
        self.host_locks: dict[str, asyncio.Lock] = {}
        # Messages about traces this process does not run (late, or another
        # connection's): dropped and counted.
        self.dropped_deltas = 0
        self.dropped_states = 0
        self.watch_timer: asyncio.TimerHandle | None = None
        self.watch_tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------ lookups

    def channel_for(self, host: str) -> str | None:
        """The connection that gets new traces: the host's newest."""
        return get_hub().hosts.channel_for(host)

    def is_connected(self, host: str) -> bool:
        return self.channel_for(host) is not None

    def progress(self, trace_id: int) -> ActiveTrace | None:
        return self.traces.get(trace_id)

    def accepts_delta(self, trace_id: int, channel: str) -> bool:
        active = self.traces.get(trace_id)
        if active is None or active.channel != channel:
            self.dropped_deltas += 1
            return False
        return True

    def host_lock(self, host: str) -> asyncio.Lock:
        """Serialises count-then-create per host, so two requests cannot both
        take the last free slot."""
        return self.host_locks.setdefault(host, asyncio.Lock())

    # ------------------------------------------------------ server -> collector

    async def send(self, channel: str, message: Message) -> None:
        await get_channel_layer().send(channel, {"type": SEND_EVENT, "text": encode(message)})

    async def ask(self, host: str, what: str, args: dict[str, Any],
                  timeout_s: float | None = None) -> Any:
        """Ask the host's collector one question; return its result."""
        timeout_s = ANSWER_TIMEOUT_S if timeout_s is None else timeout_s
        channel = self.channel_for(host)
        if channel is None:
            raise CollectorUnavailable(f"no collector of {host} is connected")
        query_id = next(self.query_ids)
        future: asyncio.Future[CollectorAnswer] = asyncio.get_running_loop().create_future()
        self.queries[query_id] = PendingQuery(channel, future)
        try:
            await self.send(channel, CollectorQuery(query_id=query_id, what=what, args=args))
            answer = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise CollectorTimeout(
                f"the collector of {host} did not answer within {timeout_s:g} s") from None
        finally:
            self.queries.pop(query_id, None)
        if answer.error:
            raise CollectorRefused(answer.error)
        return answer.result

    async def start(self, trace: Trace) -> None:
        """Hand an accepted trace (rows created, recording bound) to the collector."""
        channel = self.channel_for(trace.host)
        if channel is None:
            await finish_trace(trace.pk, "failed", "the collector disconnected before the start")
            return
        self.traces[trace.pk] = ActiveTrace(trace.pk, trace.host, channel, trace.session_id)
        self.watch()
        await self.send(channel, TraceStart(trace_id=trace.pk, spec=trace.spec))

    async def cancel(self, trace: Trace) -> bool:
        """Ask the collector to stop; False when no collector here runs it
        (a trace left over from a previous server process)."""
        active = self.traces.get(trace.pk)
        if active is None:
            return False
        await self.send(active.channel, TraceCancel(trace_id=trace.pk))
        return True

    # ------------------------------------------------------ collector -> server

    async def collector_disconnected(self, host: str, channel: str) -> None:
        """One connection is gone (the registry already forgot it): its pending
        questions fail and its traces are failed."""
        for query in [q for q in self.queries.values() if q.channel == channel]:
            if not query.future.done():
                query.future.set_exception(
                    CollectorUnavailable(f"the collector of {host} disconnected"))
        for active in [t for t in self.traces.values() if t.channel == channel]:
            del self.traces[active.trace_id]
            await finish_trace(active.trace_id, "failed", "collector disconnected",
                               elapsed_ms=active.elapsed_ms)

    def on_answer(self, channel: str, answer: CollectorAnswer) -> None:
        query = self.queries.get(answer.query_id)
        if query is None or query.channel != channel or query.future.done():
            return  # late (timed out) or not asked of this connection
        query.future.set_result(answer)

    async def on_state(self, channel: str, msg: TraceState) -> None:
        active = self.traces.get(msg.trace_id)
        if active is None or active.channel != channel:
            self.dropped_states += 1
            return
        changed = msg.state != active.state
        active.reported = time.monotonic()
        try:
            if msg.state in FINAL_STATES:
                # The in-memory progress keeps the last running state until the
                # final one is stored: the API shows a final state only with its
                # reason.  Forgotten only once stored: if the write fails, the
                # disconnect of this collector still ends the trace.
                await finish_trace(msg.trace_id, msg.state, msg.reason, msg.errors,
                                   elapsed_ms=msg.elapsed_ms)
                self.traces.pop(msg.trace_id, None)
                return
            active.state, active.elapsed_ms = msg.state, msg.elapsed_ms
            active.remaining_ms = msg.remaining_ms
            if changed:
                await database_sync_to_async(Trace.objects.filter(pk=msg.trace_id).update)(
                    state=msg.state, elapsed_ms=msg.elapsed_ms, remaining_ms=msg.remaining_ms)
        except DatabaseError:
            # The collector's connection must outlive a database hiccup; the
            # next state report (or the disconnect) stores the trace again.
            log.exception("trace %s: state %s not stored", msg.trace_id, msg.state)

    # ------------------------------------------------------------ the watchdog

    def watch(self) -> None:
        """Arm the check while traces run.  A timer, not a task: a test's event
        loop may close with traces left, and a pending timer dies quietly."""
        if self.watch_timer is None and self.traces:
            loop = asyncio.get_running_loop()
            self.watch_timer = loop.call_later(WATCH_EVERY_S, self._watch_tick, loop)

    def _watch_tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.watch_timer = None
        if self.silent_traces():
            # Kept until done: the loop holds only a weak reference to a task.
            task = loop.create_task(self.fail_silent())
            self.watch_tasks.add(task)
            task.add_done_callback(self.watch_tasks.discard)
        self.watch()

    def stale_after_s(self, host: str) -> float:
        interval_ms = get_hub().hosts.interval_ms(host) or 1000
        return STALE_INTERVALS * interval_ms / 1000 + STALE_GRACE_S

    def silent_traces(self) -> list[ActiveTrace]:
        """Running traces whose collector stopped reporting them."""
        now = time.monotonic()
        return [t for t in self.traces.values()
                if t.state == "running" and now - t.reported > self.stale_after_s(t.host)]

    async def fail_silent(self) -> None:
        for active in self.silent_traces():
            if self.traces.pop(active.trace_id, None) is None:
                continue  # ended meanwhile
            log.warning("trace %s: no state from the collector of %s for %.0f s",
                        active.trace_id, active.host, time.monotonic() - active.reported)
            # Asked to stop, in case the collector still runs it: a late state
            # or delta for it is dropped and counted.
            await self.send(active.channel, TraceCancel(trace_id=active.trace_id))
            await finish_trace(active.trace_id, "failed", STALE_REASON,
                               elapsed_ms=active.elapsed_ms)

    async def fail_stale(self, host: str) -> int:
        """Traces of ``host`` stored as running that no connection here runs:
        the server restarted under them.  Called when a collector says hello."""
        running = set(self.traces)
        ids = await database_sync_to_async(
            lambda: list(Trace.objects.filter(host=host, state__in=ACTIVE_STATES)
                         .exclude(pk__in=running).values_list("pk", flat=True)))()
        for trace_id in ids:
            await finish_trace(trace_id, "failed", "the server restarted while it ran")
        return len(ids)


@database_sync_to_async
def finish_trace(trace_id: int, state: str, reason: str = "",
                 errors: dict[str, str] | None = None, *, elapsed_ms: int | None = None) -> None:
    """Store a trace's final state, end its session, and log a finish or failure.

    A failed trace keeps its session (whatever it measured before failing)
    in the state "interrupted", with the reason in the session's notes.

    One conditional UPDATE, no read-then-write transaction: on SQLite a
    deferred transaction that reads and then writes while the recorder
    thread writes fails at once with "database is locked" (the lock upgrade
    does not wait); a plain UPDATE waits its turn.  The condition makes the
    first final state win when two race (a cancel and a disconnect).
    """
    trace = Trace.objects.filter(pk=trace_id).first()
    if trace is None or trace.is_final:
        return
    ended = now_ms()
    elapsed = elapsed_ms if elapsed_ms is not None else ended - trace.started_ms
    updated = Trace.objects.filter(pk=trace_id, state__in=ACTIVE_STATES).update(
        state=state, reason=reason[:500], errors=errors or {}, remaining_ms=0, ended_ms=ended,
        elapsed_ms=elapsed)
    if not updated:
        return
    trace.state, trace.reason, trace.ended_ms = state, reason[:500], ended
    if state != "cancelled":
        AuditEntry.record(f"trace_{state}", trace=trace, detail=reason or trace.description)
    if trace.session_id is not None:
        if state == "failed":
            Session.objects.filter(pk=trace.session_id).update(
                notes=f"Trace {trace.pk} failed: {reason or 'no reason given'}")
        session_state = "interrupted" if state == "failed" else "complete"
        if not RECORDER.stop(trace.session_id, session_state):
            Session.objects.filter(pk=trace.session_id, state="recording").update(
                state=session_state, ended_ms=ended)
    log.info("trace %s %s%s", trace_id, state, f": {reason}" if reason else "")


_broker = Broker()


def get_broker() -> Broker:
    return _broker


def reset_broker() -> Broker:
    """A fresh broker (tests: futures and locks belong to one event loop)."""
    global _broker
    if _broker.watch_timer is not None:
        _broker.watch_timer.cancel()
    _broker = Broker()
    return _broker
