"""The JSON API of targeted traces (documented in docs/API.md).

Every endpoint needs a logged-in caller (session cookie, or ``Authorization:
Bearer TOKEN``; anonymous: 401 JSON, never a login redirect).  Starting and
cancelling, and every question to a host's collector, also need
``webprof.start_traces`` (403); questions are audited like trace requests.
The views are async: starting a trace and the host questions wait on the
collector's answer (:mod:`webprof.traces.broker`, at most 5 s), and that
answer arrives on the same event loop.  Database work goes through ``sync_to_async``.

``POST /api/traces`` checks in this order, and stops at the first refusal,
which is logged in the audit log: permission (403), the body and
``parse_spec`` with the server's limits (400; nothing reaches the collector),
the host (404 unknown, 503 not connected), the per-host limit (409), the
collector's ``check`` of host facts (400 with its per-field errors; 504 when
it does not answer).  Then the trace and its result session are created and
``trace.start`` is sent: 201.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ..auth import Caller, caller, csrf_failure, may_start
from ..core.tracespec import SpecErrors, parse_spec
from . import records
from .broker import (
    CollectorRefused,
    CollectorTimeout,
    CollectorUnavailable,
    finish_trace,
    get_broker,
)
from .limits import (
    QUERIES,
    BadRequest,
    field_errors,
    max_per_host,
    query_args,
    read_body,
    server_limits,
    take_host_and_name,
)

View = Callable[..., Awaitable[JsonResponse]]
db = sync_to_async


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def errors(errs: dict[str, str], status: int = 400) -> JsonResponse:
    return JsonResponse({"errors": errs}, status=status)


def api(methods: tuple[str, ...], *, start: bool = False) -> Callable[[View], View]:
    """Method check, authentication, CSRF for cookie writes, and (``start``)
    the trace permission for POSTs; the view gets the :class:`Caller`."""

    def wrap(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        async def run(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            if request.method not in methods:
                return error(405, f"use {' or '.join(methods)}")
            who = await caller(request)
            if who is None:
                return error(401, "authentication required: log in, or send "
                             "'Authorization: Bearer <token>' (webprof token create)")
            if request.method == "POST":
                reason = csrf_failure(request, who)
                if reason is not None:
                    return error(403, f"CSRF check failed: {reason}")
                if start and not await may_start(who):
                    await db(records.audit)("trace_refused", who, request,
                                            detail="no permission to start or cancel traces")
                    return error(403, "you do not have the permission to start or cancel "
                                 "traces (webprof.start_traces)")
            return await view(request, who, *args, **kwargs)

        return run

    return wrap


async def refuse(request: HttpRequest, who: Caller, response: JsonResponse, host: str,
                 detail: str, trace: Any = None) -> JsonResponse:
    """Log a refusal in the audit log, then answer with ``response``."""
    await db(records.audit)("trace_refused", who, request, host=host, detail=detail,
                            trace=trace)
    return response


def reasons(errs: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in errs.items())


@api(("GET", "POST"), start=True)
async def traces(request: HttpRequest, who: Caller) -> JsonResponse:
    if request.method == "GET":
        rows = await db(records.list_traces)(request.GET.get("host", ""),
                                             request.GET.get("state", ""))
        return JsonResponse({"traces": rows})
    return await start_trace(request, who)


async def start_trace(request: HttpRequest, who: Caller) -> JsonResponse:
    errs: dict[str, str] = {}
    host, name, spec = "", "", None
    try:
        data = read_body(request)
        host, name = take_host_and_name(data, errs)
        spec = parse_spec(data, server_limits())
    except BadRequest as exc:
        errs.update(exc.errors)
    except SpecErrors as exc:
        errs.update(exc.errors)
    if errs or spec is None:
        return await refuse(request, who, errors(errs), host, reasons(errs))
    refused = await check_host(request, who, host, spec.to_dict())
    if refused is not None:
        return refused
    broker = get_broker()
    async with broker.host_lock(host):
        full = await over_limit(host)
        if full is not None:
            return await refuse(request, who, error(409, full), host, full)
        row = await db(records.host_row)(host)
        trace = await db(records.create_trace)(who, request, row, name, spec)
        await broker.start(trace)
    return JsonResponse(await db(records.get_trace_json)(trace.pk), status=201)


async def over_limit(host: str) -> str | None:
    """Why the host cannot take one more trace now (HTTP 409), or None."""
    limit = max_per_host()
    running = await db(records.active_count)(host)
    if running >= limit:
        return f"{host} already runs {running} traces (limit {limit})"
    return None


async def check_host(request: HttpRequest, who: Caller, host: str,
                     spec: dict[str, Any]) -> JsonResponse | None:
    """The host's refusals, in order: unknown, offline, full, the collector's check."""
    if await db(records.host_row)(host) is None:
        msg = f"no collector has ever connected as {host!r}"
        return await refuse(request, who, error(404, msg, errors={"host": msg}), host, msg)
    if not get_broker().is_connected(host):
        msg = f"{host} has no collector connected"
        return await refuse(request, who, error(503, msg, errors={"host": msg}), host, msg)
    full = await over_limit(host)
    if full is not None:
        return await refuse(request, who, error(409, full), host, full)
    try:
        answer = await get_broker().ask(host, "check", {"spec": spec})
    except CollectorUnavailable as exc:
        return await refuse(request, who, error(503, str(exc)), host, str(exc))
    except CollectorTimeout as exc:
        return await refuse(request, who, error(504, str(exc)), host, str(exc))
    except CollectorRefused as exc:
        errs = field_errors(str(exc), tuple(spec))
        return await refuse(request, who, errors(errs), host, reasons(errs))
    found = answer.get("errors") if isinstance(answer, dict) else None
    if found:
        errs = {str(k): str(v) for k, v in found.items()}
        return await refuse(request, who, errors(errs), host, reasons(errs))
    return None


@api(("GET",))
async def trace_detail(request: HttpRequest, who: Caller, trace_id: int) -> JsonResponse:
    row = await db(records.get_trace_json)(trace_id)
    if row is None:
        return error(404, f"no trace {trace_id}")
    return JsonResponse(row)


@api(("POST",), start=True)
async def cancel(request: HttpRequest, who: Caller, trace_id: int) -> JsonResponse:
    row = await db(records.get_trace_json)(trace_id)
    if row is None:
        return error(404, f"no trace {trace_id}")
    if row["state"] in ("finished", "cancelled", "failed"):
        msg = f"trace {trace_id} already {row['state']}"
        return await refuse(request, who, error(409, msg), row["host"], msg)
    trace = await db(records.note_cancel)(who, request, trace_id)
    if not await get_broker().cancel(trace):
        # No collector here runs it (a server restart left it behind): end it now.
        await finish_trace(trace_id, "cancelled", "no collector was running it")
    return JsonResponse(await db(records.get_trace_json)(trace_id))


@api(("GET",))
async def hosts(request: HttpRequest, who: Caller) -> JsonResponse:
    return JsonResponse({"hosts": await db(records.hosts_json)()})


@api(("GET",))
async def host_query(request: HttpRequest, who: Caller, host: str, what: str) -> JsonResponse:
    """A question about a host, answered by its collector as root: it lists every
    process's command line and reads any file, so it needs the trace permission,
    and every question is audited, asked or refused."""
    asked = query_detail(what, request.GET)
    if not await may_start(who):
        await db(records.audit)("query_refused", who, request, host=host,
                                detail=f"{asked}: no permission to ask hosts")
        return error(403, "you do not have the permission to ask hosts questions: it is "
                     "the permission to start traces (webprof.start_traces)")
    if what not in QUERIES:
        return error(404, f"unknown question {what!r}; ask one of: {', '.join(QUERIES)}")
    try:
        args = query_args(what, request.GET)
    except BadRequest as exc:
        return errors(exc.errors)
    if await db(records.host_row)(host) is None:
        return error(404, f"no collector has ever connected as {host!r}")
    await db(records.audit)("host_query", who, request, host=host, detail=asked)
    try:
        result = await get_broker().ask(host, QUERIES[what][0], args)
    except CollectorUnavailable as exc:
        return error(503, str(exc))
    except CollectorTimeout as exc:
        return error(504, str(exc))
    except CollectorRefused as exc:
        return errors(field_errors(str(exc), QUERIES[what][1]))
    if what == "processes" and isinstance(result, list):
        result = {"processes": result}
    return JsonResponse(result if isinstance(result, dict) else {"result": result})


def query_detail(what: str, params: Any) -> str:
    """A host question as the audit log shows it: ``symbols binary=/usr/bin/app``."""
    shown = " ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{what} {shown}".strip()[:1000]


@api(("GET",))
async def audit_log(request: HttpRequest, who: Caller) -> JsonResponse:
    if not (who.user.is_staff or who.user.is_superuser):
        return error(403, "the audit log is for staff users")
    limit = request.GET.get("limit", "200")
    if not (limit.isdigit() and 1 <= int(limit) <= 1000):
        return errors({"limit": "must be between 1 and 1000"})
    rows = await db(records.audit_json)(request.GET.get("action", ""),
                                        request.GET.get("host", ""),
                                        request.GET.get("user", ""), int(limit))
    return JsonResponse({"entries": rows})
