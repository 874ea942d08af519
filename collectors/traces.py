"""Targeted traces on the collector: validate, queue, compile, run, report, detach.

:class:`TraceManager` is driven by the runner (collectors/runner.py)::

    manager.start(TraceStart(...))      # checks again; queued or failed
    every interval: manager.drain()     # deltas with trace_id + trace.state messages
    manager.cancel(trace_id)            # detaches now
    manager.close()                     # connection lost / shutting down

States: queued (over MAX_ACTIVE compiling or running traces: it waits) ->
compiling (in a worker thread, so the websocket keeps being served) ->
running (a trace.state each interval with elapsed and remaining time) ->
finished after duration_s (its last interval drained first) | cancelled |
failed (with a human reason; refused requests also carry per-field errors).
Every way out detaches the trace's programs (the loaders' close(), which is
BPF.cleanup()): finish, cancel, a compile or drain error, close().  Methods
may block (compiles, detaching uprobes): call them from worker threads.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from collectors import bcc_env, registry
from collectors.base import Collector
from collectors.console import log
from collectors.tracecheck import HostFacts, check
from webprof.core.protocol import Message
from webprof.core.trace_messages import MAX_REASON, TraceStart, TraceState
from webprof.core.tracespec import Limits, SpecErrors, TraceSpec

MAX_ACTIVE = 4  # traces compiling or running at once on one collector
CANCEL_WAIT_S = 60.0  # a compile being cancelled is waited for, then detached


@dataclass
class _Trace:
    trace_id: int
    spec: TraceSpec
    facts: HostFacts
    state: str = "queued"
    collector: Collector | None = None
    started: float = 0.0  # time.monotonic() when it started running
    lock: threading.Lock = field(default_factory=threading.Lock)  # collector use
    worker: threading.Thread | None = None
    silent: bool = False  # closed on disconnect: report nothing further


class TraceManager:
    def __init__(self, host: str, interval_ms: int = 1000, limits: Limits | None = None,
                 max_active: int = MAX_ACTIVE,
                 make: Callable[[TraceSpec, HostFacts, str, int], Collector] = registry.for_trace
                 ) -> None:
        self.host = host
        self.interval_ms = interval_ms
        self.limits = limits or Limits()  # this collector's own ceilings
        self.max_active = max_active
        self._make = make
        self._lock = threading.Lock()  # guards _traces and _out
        self._traces: dict[int, _Trace] = {}  # not yet in a final state
        self._out: list[Message] = []

    # -- commands ---------------------------------------------------------------
    def start(self, message: TraceStart) -> None:
        """Check the request again; it is then queued (and started when there is room)
        or failed with per-field errors."""
        with self._lock:
            if message.trace_id in self._traces:
                return  # a repeated start (e.g. after a reconnect): it already runs
        try:
            spec, facts = check(message.spec, self.limits)
        except SpecErrors as exc:
            self._emit(TraceState(trace_id=message.trace_id, state="failed",
                                  reason=_clip(f"refused by the collector: {exc}"),
                                  errors=exc.errors))
            return
        trace = _Trace(message.trace_id, spec, facts)
        with self._lock:
            self._traces[trace.trace_id] = trace
            self._out.append(self._state(trace))
        self._admit()

    def cancel(self, trace_id: int, reason: str = "cancelled") -> bool:
        """Stop a trace now, detaching its programs; False when it is not active."""
        with self._lock:
            trace = self._traces.pop(trace_id, None)
        if trace is None:
            return False
        self._stop(trace, "cancelled", reason)
        self._admit()
        return True

    def close(self, reason: str | None = None) -> None:
        """Stop every trace.  With a ``reason`` (shutting down) each is reported
        cancelled; without (the server connection dropped) nothing more is said."""
        with self._lock:
            traces = list(self._traces.values())
            self._traces.clear()
        for trace in traces:
            trace.silent = reason is None
            self._stop(trace, "cancelled", reason or "")
        if reason is None:
            ids = {t.trace_id for t in traces}
            with self._lock:
                self._out = [m for m in self._out if getattr(m, "trace_id", 0) not in ids]

    def messages(self) -> list[Message]:
        """State changes since the last call, without draining any trace."""
        with self._lock:
            out, self._out = self._out, []
        return out

    def active(self) -> list[int]:
        with self._lock:
            return sorted(self._traces)

    # -- every interval ------------------------------------------------------------
    def drain(self) -> list[Message]:
        """Each running trace's interval (deltas with trace_id) and its state, plus every
        state change since the last call; finishes traces whose time is up."""
        with self._lock:
            running = [t for t in self._traces.values() if t.state == "running"]
        for trace in running:
            self._drain_one(trace)
        self._admit()
        with self._lock:
            out, self._out = self._out, []
        return out

    def _drain_one(self, trace: _Trace) -> None:
        with trace.lock:
            if trace.collector is None:
                return  # cancelled meanwhile
            try:
                delta = trace.collector.drain()
            except Exception as exc:  # one broken trace must not stop the others
                self._forget(trace.trace_id)
                self._detach(trace)
                self._emit(self._state(trace, "failed", f"reading the results failed: {exc}"))
                return
            delta = dataclasses.replace(delta, trace_id=trace.trace_id)
            remaining = self._remaining_ms(trace)
            done = remaining < self.interval_ms // 2
            if done:
                self._forget(trace.trace_id)
                self._detach(trace)
            with self._lock:
                self._out.append(delta)
                self._out.append(self._state(trace, "finished" if done else "running"))

    # -- internals ---------------------------------------------------------------------
    def _admit(self) -> None:
        """Start queued traces while fewer than max_active compile or run."""
        with self._lock:
            busy = sum(t.state in ("compiling", "running") for t in self._traces.values())
            starting = []
            for trace in sorted(self._traces.values(), key=lambda t: t.trace_id):
                if busy >= self.max_active:
                    break
                if trace.state == "queued":
                    trace.state = "compiling"
                    self._out.append(self._state(trace))
                    starting.append(trace)
                    busy += 1
        for trace in starting:
            trace.worker = threading.Thread(target=self._compile, args=(trace,),
                                            name=f"trace-{trace.trace_id}", daemon=True)
            trace.worker.start()

    def _compile(self, trace: _Trace) -> None:
        """Worker thread: build, compile and attach; then running, unless cancelled."""
        try:
            collector = self._make(trace.spec, trace.facts, self.host, self.interval_ms)
            with bcc_env.COMPILE_LOCK:  # compile and attach as one step
                collector.__enter__()
        except Exception as exc:  # compile or attach error: reported, nothing left attached
            if self._forget(trace.trace_id):
                trace.state = "failed"
                self._emit(self._state(trace, "failed", f"could not start: {_one_line(exc)}"))
                self._admit()
            return
        with trace.lock:
            if trace.state != "compiling":  # cancelled or closed meanwhile
                _close(collector)
                return
            trace.collector = collector
            trace.started = time.monotonic()
            trace.state = "running"
            self._emit(self._state(trace))

    def _stop(self, trace: _Trace, state: str, reason: str) -> None:
        with trace.lock:
            was = trace.state
            trace.state = state
            self._detach(trace)
        if was == "compiling" and trace.worker is not None:
            trace.worker.join(CANCEL_WAIT_S)  # it detaches what it attached
        if not trace.silent:
            self._emit(self._state(trace, state, reason))

    def _detach(self, trace: _Trace) -> None:
        collector, trace.collector = trace.collector, None
        if collector is not None:
            _close(collector)

    def _forget(self, trace_id: int) -> bool:
        with self._lock:
            return self._traces.pop(trace_id, None) is not None

    def _remaining_ms(self, trace: _Trace) -> int:
        if not trace.started:
            return trace.spec.duration_s * 1000
        elapsed = int((time.monotonic() - trace.started) * 1000)
        return max(trace.spec.duration_s * 1000 - elapsed, 0)

    def _state(self, trace: _Trace, state: str | None = None, reason: str = "") -> TraceState:
        remaining = self._remaining_ms(trace)
        elapsed = trace.spec.duration_s * 1000 - remaining if trace.started else 0
        return TraceState(trace_id=trace.trace_id, state=state or trace.state,
                          elapsed_ms=elapsed, remaining_ms=remaining, reason=_clip(reason))

    def _emit(self, message: Message) -> None:
        with self._lock:
            self._out.append(message)


def _close(collector: Collector) -> None:
    """Detach a loader; a failure here is logged, never raised (the others go on)."""
    try:
        collector.close()
    except Exception as exc:
        log(f"trace: error while detaching: {exc}")


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _clip(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 1] + "…"
