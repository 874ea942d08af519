"""Wire messages of targeted traces and of questions to a collector.

Server -> collector: ``trace.start`` (a validated TraceSpec as a dict),
``trace.cancel``, ``collector.query`` (running processes, a binary's
symbols or USDT probes, the host's tracepoints, block devices and syscalls,
or a host-side check of a trace request).  Collector -> server:
``trace.state`` (queued, compiling, running with elapsed and remaining time,
finished, cancelled, failed with a reason) and ``collector.answer``.  A
trace's results travel as ordinary ``profile.delta`` / ``latency.delta``
messages whose ``trace_id`` names the trace.

Decoded by :func:`webprof.core.protocol.decode`, which lists them.  Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .message import (
    MAX_SAFE_INT,
    Message,
    ProtocolError,
    check_non_negative,
    check_range,
    shown,
)

TRACE_STATES = ("queued", "compiling", "running", "finished", "cancelled", "failed")
FINAL_STATES = ("finished", "cancelled", "failed")
QUERY_KINDS = ("processes", "symbols", "usdt_probes", "tracepoints", "devices", "syscalls",
               "check")
MAX_REASON = 500
MAX_ERRORS = 64  # per-field reasons in one trace.state


@dataclass(frozen=True)
class TraceStart(Message):
    """Server -> collector: run one trace.  ``spec`` is TraceSpec.to_dict()."""

    type: ClassVar[str] = "trace.start"
    trace_id: int
    spec: dict[str, Any]

    def validate(self) -> None:
        if self.trace_id <= 0:
            raise ProtocolError("trace.start: trace_id must be positive")
        check_range(self.type, "trace_id", self.trace_id, 1, MAX_SAFE_INT)


@dataclass(frozen=True)
class TraceCancel(Message):
    """Server -> collector: stop a trace now; its programs are detached."""

    type: ClassVar[str] = "trace.cancel"
    trace_id: int

    def validate(self) -> None:
        check_range(self.type, "trace_id", self.trace_id, 0, MAX_SAFE_INT)


@dataclass(frozen=True)
class TraceState(Message):
    """Collector -> server: a trace moved on.  ``errors`` holds per-field
    reasons when the collector refused the request (no such pid, symbol...)."""

    type: ClassVar[str] = "trace.state"
    trace_id: int
    state: str
    elapsed_ms: int = 0
    remaining_ms: int = 0
    reason: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        if self.state not in TRACE_STATES:
            raise ProtocolError(f"trace.state: unknown state {shown(self.state)}")
        check_non_negative("trace.state", elapsed_ms=self.elapsed_ms,
                            remaining_ms=self.remaining_ms)
        check_range(self.type, "trace_id", self.trace_id, 0, MAX_SAFE_INT)
        check_range(self.type, "elapsed_ms", self.elapsed_ms, 0, MAX_SAFE_INT)
        check_range(self.type, "remaining_ms", self.remaining_ms, 0, MAX_SAFE_INT)
        if len(self.reason) > MAX_REASON:
            raise ProtocolError(f"trace.state: reason longer than {MAX_REASON} characters")
        if len(self.errors) > MAX_ERRORS or any(
                len(k) > MAX_REASON or len(v) > MAX_REASON for k, v in self.errors.items()):
            raise ProtocolError(f"trace.state: at most {MAX_ERRORS} errors of at most "
                                f"{MAX_REASON} characters")


@dataclass(frozen=True)
class CollectorQuery(Message):
    """Server -> collector: a question about the host, answered once."""

    type: ClassVar[str] = "collector.query"
    query_id: int
    what: str
    args: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        check_range(self.type, "query_id", self.query_id, 0, MAX_SAFE_INT)
        if self.what not in QUERY_KINDS:
            raise ProtocolError(f"collector.query: unknown question {shown(self.what)}")


@dataclass(frozen=True)
class CollectorAnswer(Message):
    """Collector -> server: the answer to one query, or why there is none."""

    type: ClassVar[str] = "collector.answer"
    query_id: int
    result: Any = None
    error: str = ""

    def validate(self) -> None:
        check_range(self.type, "query_id", self.query_id, 0, MAX_SAFE_INT)
        if len(self.error) > MAX_REASON:
            raise ProtocolError(f"collector.answer: error longer than {MAX_REASON} characters")


# Known to protocol.decode() through protocol.MESSAGE_TYPES.
TRACE_MESSAGES: tuple[type[Message], ...] = (TraceStart, TraceCancel, TraceState,
                                             CollectorQuery, CollectorAnswer)
