"""Session management pages: record from the live pages, list, rename and
annotate, delete, share, import and export.  The session viewer itself
(``/sessions/<id>/`` and ``/s/<token>/``) lives elsewhere and reuses
:func:`manage_context` and :func:`export_response` from here.

Every page needs a login; changing a session needs its owner or an admin
(``access.manageable``).  The recording endpoints answer JSON for
``static/record.js``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.forms import Form
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    QueryDict,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..core.clock import now_ms
from ..models import Host
from . import access, share
from .export import MAX_IMPORT_BYTES, ExportError, export_session, import_folded, too_big_message
from .forms import EditForm, ImportForm, LimitedUploadHandler, RecordForm, ShareForm
from .models import LatencyChunk, ProfileChunk, Session, ShareLink
from .recording import RECORDER
from .retention import human_bytes

PER_PAGE = 50
# ?sort= keys and the columns they order by; anything else falls back to DEFAULT_SORT.
SORTS = {"name": "name", "host": "host", "start": "started_ms", "duration": "duration",
         "size": "size_bytes", "owner": "owner__username"}
DEFAULT_SORT = "-start"
COLUMNS = (("name", "Name"), ("host", "Host"), (None, "Kinds"), ("start", "Start"),
           ("duration", "Duration"), ("size", "Size"), ("owner", "Owner"), (None, "State"))


def session_url(session_id: int) -> str:
    """The viewer page (routed by the viewer's urls)."""
    return f"/sessions/{session_id}/"


def human_ms(ms: int) -> str:
    seconds = ms // 1000
    if seconds < 60:
        return f"{ms / 1000:.1f} s"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else \
        f"{rest // 60}:{rest % 60:02d} min"


def forbidden(exc: PermissionDenied) -> HttpResponse:
    """A 403 that says who may do it, not Django's bare "Forbidden"."""
    return HttpResponse(f"403: {exc or 'you may not change this session'}.\n"
                        "Only the session's owner, staff or a superuser may change, share "
                        "or delete it.", status=403, content_type="text/plain; charset=utf-8")


def _manageable(request: HttpRequest, session_id: int) -> Session:
    return access.manageable(request.user, session_id)


def owner_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A page that changes session ``session_id``: the view gets the session,
    or the user who may not change it gets :func:`forbidden`."""
    @wraps(view)
    def wrapper(request: HttpRequest, session_id: int) -> HttpResponse:
        try:
            session = _manageable(request, session_id)
        except PermissionDenied as exc:
            return forbidden(exc)
        return view(request, session)
    return wrapper


def owner_form(form_class: type[Form], name: str) -> Callable[..., Callable[..., HttpResponse]]:
    """A form posted to change session ``session_id``: the view gets the session
    and the valid form; an invalid one shows the manage page again with its
    errors (400) as the context's ``name``."""
    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @owner_page
        @wraps(view)
        def wrapper(request: HttpRequest, session: Session) -> HttpResponse:
            form = form_class(request.POST)
            if not form.is_valid():
                return render(request, "sessions/manage_page.html",
                              manage_context(request, session, **{name: form}), status=400)
            return view(request, session, form)
        return wrapper
    return decorate


# ------------------------------------------------------------------------ recording

def errors_json(errors: dict[str, str], status: int = 400) -> JsonResponse:
    return JsonResponse({"errors": errors}, status=status)


@login_required
@require_POST
def record(request: HttpRequest) -> JsonResponse:
    """Start recording every collector of a host; any logged-in user may
    (recording only keeps what the host already streams: nothing is loaded)."""
    form = RecordForm(request.POST)
    if not form.is_valid():
        return errors_json({f: " ".join(e) for f, e in form.errors.items()})
    data = form.cleaned_data
    host = Host.objects.filter(name=data["host"]).first()
    if host is None:
        return errors_json({"host": f"no collector has ever connected as {data['host']!r}, "
                                    "so there is nothing to record"}, status=404)
    # Two requests at once may both pass: the cap is exceeded by at most those.
    limit = settings.WEBPROF_MAX_RECORDINGS_PER_USER
    if RECORDER.live_recordings_of(request.user.pk) >= limit:
        return errors_json({"__all__": f"you are already running {limit} recordings "
                                       "(WEBPROF_MAX_RECORDINGS_PER_USER); stop one first"},
                           status=409)
    started = now_ms()
    name = data["name"].strip() or \
        f"{host.name} {timezone.localtime():%Y-%m-%d %H:%M:%S}"
    session = Session.objects.create(
        name=name, host=host.name, kernel=host.kernel, frequency_hz=host.frequency_hz,
        interval_ms=host.interval_ms, collectors=asdict(host.collector_config()),
        owner=request.user, source="live", state="recording", started_ms=started,
        stop_at_ms=started + 1000 * data["duration_s"] if data["duration_s"] else None)
    RECORDER.start(session)
    return JsonResponse({"id": session.pk, "url": session_url(session.pk),
                         "status_url": reverse("session-status", args=[session.pk]),
                         "stop_url": reverse("session-stop", args=[session.pk])}, status=201)


def recording_status(session: Session) -> dict[str, Any]:
    """What the progress bar shows: live figures from the recorder while it
    records here, the stored row otherwise."""
    live = RECORDER.status(session.pk)
    planned = None if session.stop_at_ms is None else session.stop_at_ms - session.started_ms
    base = {"id": session.pk, "name": session.name, "url": session_url(session.pk),
            "planned_ms": planned}
    if live is not None:
        return {**base, **live}
    state = session.state
    if state == "recording":
        # Popped from the recorder, final rollups not yet written: a moment.
        state = "finishing"
    return {**base, "state": state, "elapsed_ms": session.duration_ms, "remaining_ms": 0,
            "intervals": session.intervals, "size_bytes": session.size_bytes, "errors": 0}


@login_required
@require_GET
def status(request: HttpRequest, session_id: int) -> JsonResponse:
    session = access.viewable(request.user, session_id)
    return JsonResponse(recording_status(session))


@login_required
@require_POST
def stop(request: HttpRequest, session_id: int) -> JsonResponse:
    try:
        session = _manageable(request, session_id)
    except PermissionDenied as exc:
        return errors_json({"__all__": str(exc)}, status=403)
    if not RECORDER.stop(session.pk):
        return errors_json({"__all__": f"session {session.pk} is not recording "
                                       f"(it is {session.state})"}, status=409)
    return JsonResponse({"stopping": True,
                         "status_url": reverse("session-status", args=[session.pk])})


# ------------------------------------------------------------------------ list

def sorted_sessions(q: str, sort: str) -> tuple[Any, str]:
    key = sort.lstrip("-")
    if key not in SORTS:
        sort, key = DEFAULT_SORT, DEFAULT_SORT.lstrip("-")
    rows = Session.objects.select_related("owner").annotate(
        duration=Coalesce(F("ended_ms"), F("started_ms")) - F("started_ms"))
    if q:
        rows = rows.filter(Q(name__icontains=q) | Q(host__icontains=q)
                           | Q(notes__icontains=q) | Q(owner__username__icontains=q))
    column = SORTS[key]
    order = F(column).desc(nulls_last=True) if sort.startswith("-") else \
        F(column).asc(nulls_last=True)
    tie = "-id" if sort.startswith("-") else "id"
    return rows.order_by(order, tie), sort


def list_row(s: Session) -> dict[str, Any]:
    return {"id": s.pk, "name": s.name, "url": session_url(s.pk), "host": s.host,
            "kinds": ", ".join(s.kinds), "started_ms": s.started_ms,
            "started": timezone.localtime(datetime.fromtimestamp(s.started_ms / 1000, tz=UTC)),
            "duration": human_ms(s.duration_ms), "size": human_bytes(s.size_bytes),
            "size_bytes": s.size_bytes, "owner": s.owner.get_username() if s.owner else "",
            "state": s.state, "source": s.get_source_display(),
            "status_url": reverse("session-status", args=[s.pk])}


@login_required
@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()[:200]
    rows, sort = sorted_sessions(q, request.GET.get("sort", DEFAULT_SORT))
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    columns = []
    for key, title in COLUMNS:
        if key is None:
            columns.append({"title": title})
            continue
        # Clicking the current column flips it; another column starts ascending,
        # except start, duration and size (newest, longest, biggest first).
        flip = {f"-{key}": key, key: f"-{key}"}.get(sort)
        nxt = flip or (f"-{key}" if key in ("start", "duration", "size") else key)
        columns.append({"title": title, "key": key, "sort": nxt,
                        "current": sort.lstrip("-") == key, "desc": sort.startswith("-")})
    context = {"page": page, "rows": [list_row(s) for s in page.object_list], "q": q,
               "sort": sort, "columns": columns, "total": page.paginator.count}
    return render(request, "sessions/list.html", context)


# ------------------------------------------------------------------------ manage

def active_shares(session: Session) -> Any:
    return (ShareLink.objects.filter(session=session, revoked__isnull=True)
            .filter(Q(expires__isnull=True) | Q(expires__gt=timezone.now()))
            .select_related("created_by").order_by("-created"))


def manage_context(request: HttpRequest, session: Session, **extra: Any) -> dict[str, Any]:
    """What templates/sessions/manage.html needs; the viewer page merges it
    into its own context to show the same controls."""
    can = access.can_manage(request.user, session)
    context = {
        "session": session, "can_manage": can, "session_url": session_url(session.pk),
        "size": human_bytes(session.size_bytes), "duration": human_ms(session.duration_ms),
        "edit_form": EditForm(initial={"name": session.name, "notes": session.notes}),
        "share_form": ShareForm(), "shares": list(active_shares(session)) if can else [],
        "exports": [k for k in session.kinds if k in ("cpu", "offcpu", "offwake")],
        # Forms return here; a POST's own path (e.g. .../shares/) answers no GET.
        "next": request.get_full_path() if request.method == "GET"
        else reverse("session-manage", args=[session.pk]),
        "new_share_url": None,
    }
    context.update(extra)
    return context


def back(request: HttpRequest, session_id: int) -> HttpResponse:
    """Where a manage form returns: its ``next`` (a path on this site) or the manage page."""
    nxt = request.POST.get("next", "")
    if nxt and url_has_allowed_host_and_scheme(nxt, {request.get_host()},
                                               require_https=request.is_secure()):
        return redirect(nxt)
    return redirect("session-manage", session_id)


@login_required
@require_GET
def manage(request: HttpRequest, session_id: int) -> HttpResponse:
    session = access.viewable(request.user, session_id)
    return render(request, "sessions/manage_page.html", manage_context(request, session))


@login_required
@require_POST
@owner_form(EditForm, "edit_form")
def edit(request: HttpRequest, session: Session, form: EditForm) -> HttpResponse:
    session.name = form.cleaned_data["name"].strip()
    session.notes = form.cleaned_data["notes"]
    session.save(update_fields=["name", "notes"])
    messages.success(request, "Saved the name and notes.")
    return back(request, session.pk)


@login_required
@require_http_methods(["GET", "POST"])
@owner_page
def delete(request: HttpRequest, session: Session) -> HttpResponse:
    if request.method == "GET":
        context = {"session": session, "size": human_bytes(session.size_bytes),
                   "duration": human_ms(session.duration_ms),
                   "chunks": ProfileChunk.objects.filter(session=session).count(),
                   "latency_chunks": LatencyChunk.objects.filter(session=session).count(),
                   "shares": active_shares(session).count(),
                   "recording": RECORDER.is_recording(session.pk)}
        return render(request, "sessions/delete.html", context)
    if RECORDER.stop(session.pk):
        # The stop is queued before wait_idle's mark, so the writer has let
        # go of the session before its rows are deleted.
        RECORDER.wait_idle()
    name = session.name
    Session.objects.filter(pk=session.pk).delete()
    messages.success(request, f"Deleted session {name!r}.")
    return redirect("sessions")


# ------------------------------------------------------------------------ share

@login_required
@require_POST
@owner_form(ShareForm, "share_form")
def create_share(request: HttpRequest, session: Session, form: ShareForm) -> HttpResponse:
    token, link = share.create_link(session, request.user,
                                    share.parse_expiry(form.cleaned_data["expires"]))
    # The token exists only in this response: the database keeps its digest.
    url = request.build_absolute_uri(f"/s/{token}/")
    context = manage_context(request, session, new_share_url=url, new_share=link)
    nxt = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(nxt, {request.get_host()},
                                       require_https=request.is_secure()):
        context["next"] = nxt
    return render(request, "sessions/manage_page.html", context)


@login_required
@require_POST
def revoke_share(request: HttpRequest, link_id: int) -> HttpResponse:
    link = get_object_or_404(ShareLink, pk=link_id)
    try:
        _manageable(request, link.session_id)
    except PermissionDenied as exc:
        return forbidden(exc)
    if link.revoked is None:
        link.revoked = timezone.now()
        link.save(update_fields=["revoked"])
    messages.success(request, f"Revoked the share link {link.prefix}…")
    return back(request, link.session_id)


# ------------------------------------------------------------------------ import, export

@login_required
@csrf_exempt  # checked by _import_form, after the size-limited upload handler is in place
@require_http_methods(["GET", "POST"])
def import_view(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, "sessions/import.html", {"form": ImportForm()})
    # Django would otherwise spool the whole upload to disk before the view
    # runs; the handler stops reading it past MAX_IMPORT_BYTES.
    limit = LimitedUploadHandler(request, MAX_IMPORT_BYTES)
    request.upload_handlers.insert(0, limit)
    return _import_form(request, limit)


@csrf_protect
def _import_form(request: HttpRequest, limit: LimitedUploadHandler) -> HttpResponse:
    form = ImportForm(request.POST, request.FILES)
    if limit.exceeded:
        form.is_valid()
        form.errors.clear()  # only the size matters: the rest was not read
        text = too_big_message()
        form.add_error("file", f"{text[:1].upper()}{text[1:]}.")
    elif form.is_valid():
        try:
            session = import_folded(form.cleaned_data["file"], form.cleaned_data["name"],
                                    owner=request.user)
        except ExportError as exc:
            form.add_error("file", str(exc))
        else:
            return redirect(session_url(session.pk))
    return render(request, "sessions/import.html", {"form": form}, status=400)


def _ms_param(params: QueryDict, key: str) -> int | None:
    raw = params.get(key, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ExportError(f"{key} must be a time in unix milliseconds, not {raw[:40]!r}") \
            from None
    if not 0 <= value < 2**53:
        raise ExportError(f"{key} is out of range")
    return value


def export_response(session: Session, params: QueryDict) -> HttpResponse:
    """A download of ``session`` as ``?format=`` (folded by default) for
    ``?kind=`` over ``?from=``..``?to=`` (unix ms); 400 with the reason for
    bad parameters.  Shared by the managed and the share-link export."""
    try:
        data = export_session(session, params.get("format", "folded"),
                              params.get("kind") or None,
                              _ms_param(params, "from"), _ms_param(params, "to"))
    except ExportError as exc:
        return HttpResponseBadRequest(f"Cannot export: {exc}.",
                                      content_type="text/plain; charset=utf-8")
    response = HttpResponse(data.data, content_type=data.content_type)
    response["Content-Disposition"] = f'attachment; filename="{data.filename}"'
    return response


@login_required
@require_GET
def export(request: HttpRequest, session_id: int) -> HttpResponse:
    return export_response(access.viewable(request.user, session_id), request.GET)
