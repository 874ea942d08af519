"""Database work of the trace API, in plain sync functions.

The API views are async (they wait on collector answers on daphne's event
loop) and call these through ``sync_to_async``; the trace pages of the UI
can call them directly.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from ..accounts import AuditEntry
from ..auth import Caller
from ..core.clock import now_ms
from ..core.trace_messages import FINAL_STATES
from ..core.tracespec import TraceSpec
from ..models import Host
from ..sessions.models import Session
from ..sessions.recording import RECORDER
from .broker import get_broker
from .models import ACTIVE_STATES, Trace

MAX_LIST = 100


def remote_addr(request: Any) -> str | None:
    addr = request.META.get("REMOTE_ADDR") or ""
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return None


def audit(action: str, who: Caller | None, request: Any, *, trace: Trace | None = None,
          host: str = "", detail: str = "") -> None:
    AuditEntry.record(action, user=who.user if who else None, token=who.token if who else None,
                      trace=trace, host=host, detail=detail, remote_addr=remote_addr(request))


def trace_url(trace_id: int) -> str:
    return f"/traces/{trace_id}/"


def session_url(session_id: int | None) -> str | None:
    return None if session_id is None else reverse("session", args=[session_id])


def trace_json(trace: Trace) -> dict[str, Any]:
    """The API's view of a trace; a running one's progress comes from the broker
    (fresher than the row, which is written on state changes only)."""
    live = get_broker().progress(trace.pk) if trace.state not in FINAL_STATES else None
    return {
        "id": trace.pk, "url": trace_url(trace.pk), "host": trace.host, "name": trace.name,
        "kind": trace.kind, "spec": trace.spec, "description": trace.description,
        "state": live.state if live else trace.state,
        "elapsed_ms": live.elapsed_ms if live else trace.elapsed_ms,
        "remaining_ms": live.remaining_ms if live else trace.remaining_ms,
        "duration_s": trace.duration_s, "reason": trace.reason, "errors": trace.errors,
        "created_by": trace.created_by.get_username() if trace.created_by else None,
        "cancelled_by": trace.cancelled_by.get_username() if trace.cancelled_by else None,
        "created": trace.created.isoformat(), "started_ms": trace.started_ms,
        "ended_ms": trace.ended_ms, "session_id": trace.session_id,
        "session_url": session_url(trace.session_id),
    }


def _traces() -> Any:
    return Trace.objects.select_related("created_by", "cancelled_by")


def get_trace_json(trace_id: int) -> dict[str, Any] | None:
    trace = _traces().filter(pk=trace_id).first()
    return trace_json(trace) if trace else None


def list_traces(host: str = "", state: str = "") -> list[dict[str, Any]]:
    rows = _traces()
    if host:
        rows = rows.filter(host=host)
    if state == "active":
        rows = rows.filter(state__in=ACTIVE_STATES)
    elif state:
        rows = rows.filter(state=state)
    return [trace_json(t) for t in rows[:MAX_LIST]]


def active_count(host: str) -> int:
    return Trace.objects.filter(host=host, state__in=ACTIVE_STATES).count()


def host_row(name: str) -> Host | None:
    return Host.objects.filter(name=name).first()


def create_trace(who: Caller, request: Any, host: Host, name: str, spec: TraceSpec) -> Trace:
    """The trace row, its result session, a recording bound to the trace, and
    the audit entry, together; the caller then sends ``trace.start``."""
    started = now_ms()
    name = name or f"{spec.kind} on {host.name} {timezone.now():%Y-%m-%d %H:%M:%S}"
    with transaction.atomic():
        session = Session.objects.create(
            name=name, host=host.name, kernel=host.kernel,
            frequency_hz=spec.frequency_hz or 0, interval_ms=host.interval_ms,
            kinds=[spec.kind], collectors={"trace": spec.to_dict()}, source="trace",
            state="recording", owner=who.user, started_ms=started,
            stop_at_ms=started + 1000 * spec.duration_s)
        trace = Trace.objects.create(
            host=host.name, name=name, kind=spec.kind, spec=spec.to_dict(),
            description=spec.describe(), duration_s=spec.duration_s,
            remaining_ms=1000 * spec.duration_s, created_by=who.user, started_ms=started,
            session=session)
        audit("trace_start", who, request, trace=trace, detail=trace.description)
    RECORDER.start(session, trace_id=trace.pk)
    return trace


def note_cancel(who: Caller, request: Any, trace_id: int) -> Trace:
    trace = Trace.objects.get(pk=trace_id)
    trace.cancelled_by = who.user
    trace.save(update_fields=["cancelled_by"])
    audit("trace_cancel", who, request, trace=trace, detail=trace.description)
    return trace


def hosts_json() -> list[dict[str, Any]]:
    broker = get_broker()
    counts: dict[str, int] = {}
    for host in Trace.objects.filter(state__in=ACTIVE_STATES).values_list("host", flat=True):
        counts[host] = counts.get(host, 0) + 1
    return [{"name": h.name, "connected": broker.is_connected(h.name), "kernel": h.kernel,
             "collectors": h.collectors, "running_traces": counts.get(h.name, 0)}
            for h in Host.objects.all()]


def audit_json(action: str = "", host: str = "", user: str = "",
               limit: int = 200) -> list[dict[str, Any]]:
    rows = AuditEntry.objects.all()
    if action:
        rows = rows.filter(action=action)
    if host:
        rows = rows.filter(host=host)
    if user:
        rows = rows.filter(username=user)
    return [{"id": e.pk, "time": e.time.isoformat(), "user": e.username or None,
             "token_prefix": e.token_prefix or None, "action": e.action,
             "trace_id": e.trace_id, "host": e.host, "detail": e.detail,
             "remote_addr": e.remote_addr} for e in rows[:limit]]
