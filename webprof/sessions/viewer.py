"""The session viewer: the session page, its JSON data, the diff and share links.

Two doors lead to one session page.  ``/sessions/<id>/`` needs a login and
takes the id from the path; ``/s/<token>/`` needs none and takes the session
from the share token alone (``access.shared``), so a token can reach nothing
but its own session and its data endpoints.  The data endpoints are the same
functions behind both doors; only how the session is found differs.

Times in query strings (``from``, ``to``, ``a_from`` ...) are milliseconds:
below ``UNIX_MS_FLOOR`` an offset from the session's start (what the page
puts in its URLs), at or above it a unix time.  Every parameter is checked
and a bad one answers 400 with ``{"error": ...}`` naming it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import render
from django.template import TemplateDoesNotExist, engines
from django.template.loader import get_template
from django.views.decorators.http import require_GET

from ..auth import bearer, resolve_token
from ..core.diff import diff_functions, diff_wire
from ..core.kinds import HISTOGRAM, STACK, unit
from ..core.live import NO_FILTER, ProcessFilter
from ..core.timeline import ChunkFormatError, paused_gc
from . import access
from .models import Session
from .store import SessionReader
from .views import export_response, manage_context

# 1973-03-03 in unix ms; a session offset this large would be three years long.
UNIX_MS_FLOOR = 100_000_000_000
MAX_TIME_MS = 2**53
MIN_NODES, MAX_NODES = 16, 200_000
MAX_PID = 2**22
MAX_COMM = 64
MAX_DIFF_ROWS = 2000
GONE = "This share link does not exist, was revoked or has expired."
MANAGE_TEMPLATE = "sessions/manage.html"
# Counters that count work done, not data lost: shown, but not as warnings.
INFO_COUNTERS = {"samples", "events", "intervals", "stacks"}
# The shared page has no navigation: no hosts, sessions or admin links.
SHARED_BASE = """{% load static %}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}webprof{% endblock %}</title>
<link rel="stylesheet" href="{% static 'base.css' %}">{% block head %}{% endblock %}</head>
<body><header class="nav"><span class="brand">webprof</span>
<nav><span class="shared-note">read-only shared session</span></nav></header>
<main>{% block content %}{% endblock %}</main>{% block scripts %}{% endblock %}</body></html>"""


class BadRequest(ValueError):
    """A query parameter that cannot be honoured; the message names it."""


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


# --------------------------------------------------------------------------- parameters


def int_param(q: QueryDict, name: str, lo: int, hi: int) -> int | None:
    raw = q.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}, not {value}")
    return value


def profile_kind(session: Session, raw: str | None) -> str:
    kinds = [k for k in session.kinds if k in STACK]
    if not raw:
        if not kinds:
            raise BadRequest("this session has no profile, only latency histograms")
        return kinds[0]
    if raw not in kinds:
        raise BadRequest(f"unknown kind {raw[:40]!r}; this session has: "
                         f"{', '.join(kinds) or 'no profile'}")
    return raw


def latency_kind(session: Session, raw: str | None) -> str:
    kinds = [k for k in session.kinds if k in HISTOGRAM]
    if not raw or raw not in kinds:
        raise BadRequest(f"unknown latency kind {(raw or '')[:40]!r}; this session has: "
                         f"{', '.join(kinds) or 'none'}")
    return raw


def time_range(session: Session, q: QueryDict, prefix: str = "") -> tuple[int, int]:
    """``[from, to)`` in unix ms; the session's bounds where not given."""
    names = (f"{prefix}from", f"{prefix}to")
    values = [int_param(q, n, 0, MAX_TIME_MS) for n in names]
    first, last = (v if v is None or v >= UNIX_MS_FLOOR else session.started_ms + v
                   for v in values)
    # bounds() widens an empty whole-session range (imports have no
    # duration); a range the request names must not be widened.
    if first is not None and last is None and first >= SessionReader(session).bounds(
            None, None)[1]:
        raise BadRequest(f"{names[0]} is at or after the session's end; "
                         f"{names[1]} must be after {names[0]}")
    if first is not None and last is not None and last <= first:
        raise BadRequest(f"{names[1]} must be after {names[0]} (the range is empty)")
    return SessionReader(session).bounds(first, last)


def process_filter(q: QueryDict) -> ProcessFilter:
    pid = int_param(q, "pid", 1, MAX_PID - 1)
    comm = q.get("comm", "").strip()
    if len(comm) > MAX_COMM:
        raise BadRequest(f"comm must be at most {MAX_COMM} characters")
    if pid is None and not comm:
        return NO_FILTER
    return ProcessFilter(pid=pid, comm=comm or None)


def max_nodes(q: QueryDict) -> int:
    n = int_param(q, "max_nodes", MIN_NODES, MAX_NODES)
    return settings.WEBPROF_MAX_NODES if n is None else n


# --------------------------------------------------------------------------- data


def flame_data(request: HttpRequest, session: Session) -> dict[str, Any]:
    q = request.GET
    kind = profile_kind(session, q.get("kind"))
    start, end = time_range(session, q)
    flt, budget = process_filter(q), max_nodes(q)
    t0 = time.perf_counter()
    with paused_gc():  # ~100k new tree objects: see timeline.paused_gc
        result = SessionReader(session).tree(kind, start, end, flt)
        tree, folded = result.tree.fitted(budget)
        wire = tree.to_wire()
    return {"kind": kind, "unit": unit(kind), "tree": wire,
            "total": result.tree.total, "from_ms": start, "to_ms": end,
            "origin_ms": session.started_ms, "folded_nodes": folded,
            "chunks_read": result.chunks_read, "rollups_read": result.rollups_read,
            "server_ms": round((time.perf_counter() - t0) * 1000, 1)}


def heatmap_data(request: HttpRequest, session: Session) -> dict[str, Any]:
    kind = profile_kind(session, request.GET.get("kind"))
    t0 = time.perf_counter()
    data = SessionReader(session).heatmap(kind).to_dict()
    data.update(kind=kind, unit=unit(kind),
                server_ms=round((time.perf_counter() - t0) * 1000, 1))
    return data


def timeline_data(request: HttpRequest, session: Session) -> dict[str, Any]:
    reader = SessionReader(session)
    kinds = {k: {"unit": unit(k), "points": reader.timeline(k)}
             for k in session.kinds if k in STACK}
    start, end = reader.bounds(None, None)
    return {"origin_ms": start, "end_ms": end, "kinds": kinds}


def latency_data(request: HttpRequest, session: Session) -> dict[str, Any]:
    kind = latency_kind(session, request.GET.get("kind"))
    return {"kind": kind, "origin_ms": session.started_ms,
            "intervals": SessionReader(session).latency(kind)}


def diff_data(request: HttpRequest) -> dict[str, Any]:
    """Two ranges of one session, or of two sessions, compared (``diff.json``)."""
    q = request.GET
    a_id = int_param(q, "a", 1, 2**62)
    if a_id is None:
        raise BadRequest("a (the first session's id) is required")
    b_id = int_param(q, "b", 1, 2**62) or a_id
    a = access.viewable(request.user, a_id)
    b = a if b_id == a_id else access.viewable(request.user, b_id)
    kind = profile_kind(a, q.get("kind"))
    if kind not in b.kinds:
        raise BadRequest(f"session {b.pk} has no {kind!r} profile to compare")
    budget = max_nodes(q)
    t0 = time.perf_counter()
    sides = []
    with paused_gc():  # two range trees: see timeline.paused_gc
        for session, prefix in ((a, "a_"), (b, "b_")):
            start, end = time_range(session, q, prefix)
            tree = SessionReader(session).tree(kind, start, end).tree
            sides.append(({"id": session.pk, "name": session.name, "from_ms": start,
                           "to_ms": end, "origin_ms": session.started_ms,
                           "total": tree.total}, tree.fitted(budget)[0]))
    (meta_a, before), (meta_b, after) = sides
    if not before.total or not after.total:
        empty = "a" if not before.total else "b"
        raise BadRequest(f"range {empty} has no {kind} samples: nothing to compare")
    return {"kind": kind, "unit": unit(kind), "a": meta_a, "b": meta_b,
            "wire": diff_wire(before, after),
            "functions": diff_functions(before, after)[:MAX_DIFF_ROWS],
            "server_ms": round((time.perf_counter() - t0) * 1000, 1)}


Handler = Callable[[HttpRequest, Session], dict[str, Any]]


def answer(produce: Callable[[], dict[str, Any]]) -> JsonResponse:
    try:
        return JsonResponse(produce())
    except BadRequest as exc:
        return error(400, str(exc))
    except Http404 as exc:
        return error(404, str(exc) or "not found")
    except ChunkFormatError as exc:
        return error(500, f"stored data could not be read: {exc}")


def api_user(request: HttpRequest) -> Any:
    """The logged-in user, or the user of an ``Authorization: Bearer`` API token
    (so a trace's result can be read with the token that started it); None if
    neither.  A request naming a token is judged by the token alone."""
    token = bearer(request)
    if token is None:
        return request.user if request.user.is_authenticated else None
    row = resolve_token(token) if token else None
    return row.user if row else None


def by_id(handler: Handler) -> Callable[..., JsonResponse]:
    """A data endpoint under ``/sessions/<id>/``: logged-in users or API tokens."""
    @require_GET
    def view(request: HttpRequest, session_id: int) -> JsonResponse:
        user = api_user(request)
        if user is None:
            return error(401, "log in (or send an API token) to see sessions")
        return answer(lambda: handler(request, access.viewable(user, session_id)))
    view.__name__ = handler.__name__
    return view


def shared_session(token: str) -> Session | None:
    """The session a share token names; None when the link is gone (unknown,
    revoked or expired: the pages do not say which)."""
    try:
        return access.shared(token)
    except Http404:
        return None


def by_token(handler: Handler) -> Callable[..., JsonResponse]:
    """The same endpoint under ``/s/<token>/``: the token alone names the session."""
    @require_GET
    def view(request: HttpRequest, token: str) -> JsonResponse:
        session = shared_session(token)
        if session is None:
            return error(404, GONE)
        return answer(lambda: handler(request, session))
    view.__name__ = f"shared_{handler.__name__}"
    return view


@require_GET
def diff_json(request: HttpRequest) -> JsonResponse:
    if not request.user.is_authenticated:
        return error(401, "log in to compare sessions")
    return answer(lambda: diff_data(request))


# --------------------------------------------------------------------------- pages


def health_rows(session: Session) -> list[dict[str, Any]]:
    """Non-zero health counters, per kind; ``warn`` for data lost or cut."""
    return [{"kind": kind, "name": name.replace("_", " "), "value": value,
             "warn": name not in INFO_COUNTERS}
            for kind, counters in (session.health or {}).items()
            for name, value in sorted(counters.items()) if value]


def manage_template() -> str | None:
    """The management panel, included only once its template exists."""
    try:
        get_template(MANAGE_TEMPLATE)
    except TemplateDoesNotExist:
        return None
    return MANAGE_TEMPLATE


def page_context(request: HttpRequest, session: Session, token: str | None) -> dict[str, Any]:
    shared = token is not None
    base = f"/s/{token}/" if shared else f"/sessions/{session.pk}/"
    health = health_rows(session)
    can_manage = not shared and access.can_manage(request.user, session)
    others = [] if shared else list(
        Session.objects.exclude(pk=session.pk).order_by("-started_ms")
        .values("id", "name", "host", "kinds")[:200])
    context: dict[str, Any] = {}
    template = manage_template() if can_manage else None
    if template:
        context.update(manage_context(request, session))
    return context | {
        "session": session, "shared": shared, "data_base": base, "export_base": f"{base}export/",
        "base_template": engines["django"].from_string(SHARED_BASE) if shared else "base.html",
        "profile_kinds": [k for k in session.kinds if k in STACK],
        "latency_kinds": [k for k in session.kinds if k in HISTOGRAM],
        "units": {k: unit(k) for k in session.kinds if k in STACK},
        "health": health, "health_warn": [h for h in health if h["warn"]],
        "gap_s": f"{session.gap_ms / 1000:.1f}",
        "can_manage": can_manage, "manage_template": template,
        "others": [o for o in others if any(k in STACK for k in o["kinds"])],
    }


@login_required
@require_GET
def session_page(request: HttpRequest, session_id: int) -> HttpResponse:
    session = access.viewable(request.user, session_id)
    return render(request, "sessions/session.html", page_context(request, session, None))


@require_GET
def shared_page(request: HttpRequest, token: str) -> HttpResponse:
    session = shared_session(token)
    if session is None:
        return render(request, "sessions/session.html",
                      {"gone": GONE, "shared": True,
                       "base_template": engines["django"].from_string(SHARED_BASE)},
                      status=404)
    return render(request, "sessions/session.html", page_context(request, session, token))


@require_GET
def shared_export(request: HttpRequest, token: str) -> HttpResponse:
    """Downloads through a share link, by the management views' exporter."""
    session = shared_session(token)
    if session is None:
        return HttpResponse(GONE, status=404, content_type="text/plain; charset=utf-8")
    return export_response(session, request.GET)


@login_required
@require_GET
def diff_page(request: HttpRequest) -> HttpResponse:
    sessions = list(Session.objects.order_by("-started_ms").values("id", "name", "kinds")[:200])
    return render(request, "sessions/diff.html", {
        "sessions": [s for s in sessions if any(k in STACK for k in s["kinds"])],
        "kinds": list(STACK), "q": request.GET})


flame_json, heatmap_json = by_id(flame_data), by_id(heatmap_data)
timeline_json, latency_json = by_id(timeline_data), by_id(latency_data)
shared_flame_json, shared_heatmap_json = by_token(flame_data), by_token(heatmap_data)
shared_timeline_json, shared_latency_json = by_token(timeline_data), by_token(latency_data)
