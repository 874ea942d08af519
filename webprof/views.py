"""Pages: the hosts list, a host's overview, and its live views.  All need a login.

``/hosts/<name>/`` is the host overview (status, links to every view, the
form that chooses which collectors run and their options); ``/hosts/<name>/cpu/``,
``/offcpu/`` and ``/offwake/`` are flame graphs, ``/latency/<kind>/`` a
heatmap page.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from .consumers import config_event
from .core import kinds
from .core.hostname import MAX_HOST_NAME
from .core.protocol import CollectorConfig
from .forms import CollectorsForm, initial_for
from .hub import get_hub, group_name
from .models import COLLECTOR_KINDS, Host, can_configure

# The host form's option fields, in order, with the hint shown beside each.
FIELD_HINTS = (
    ("frequency_hz", "1..999; a prime like 49 or 99 avoids lockstep with timers"),
    ("pid", "blank: every process"),
    ("comm", "part of the kernel's 15-byte process name; blank: any"),
    ("min_block_us", "shorter blocks are not counted; blank: 1"),
    ("max_block_us", "blank: no maximum"),
)


def host_rows() -> list[dict[str, Any]]:
    """Known hosts, with ``connected`` from the registry of connections (the
    database row can be stale after a crash; the registry is what this
    process actually serves)."""
    registry = get_hub().hosts
    return [
        {
            "name": h.name,
            "connected": registry.is_connected(h.name),
            "last_seen": h.last_seen.isoformat(),
            "kernel": h.kernel,
            "collectors": h.collectors,
            "frequency_hz": h.frequency_hz,
            "interval_ms": h.interval_ms,
            "url": reverse("host", args=[h.name]),
        }
        for h in Host.objects.all()
    ]


def get_host(name: str) -> Host:
    """The host's row, or an unsaved one: its collector may connect later."""
    if len(name) > MAX_HOST_NAME:
        raise Http404("no such host")
    return Host.objects.filter(name=name).first() or Host(name=name)


@login_required
def hosts(request: HttpRequest) -> HttpResponse:
    return render(request, "hosts.html", {"hosts": host_rows()})


@login_required
def hosts_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"hosts": host_rows()})


@login_required
@require_http_methods(["GET", "POST"])
def host(request: HttpRequest, name: str) -> HttpResponse:
    row = get_host(name)
    if request.method == "POST":
        return choose_collectors(request, row)
    return render_host(request, row, None)


def render_host(request: HttpRequest, row: Host, form: CollectorsForm | None,
                status: int = 200) -> HttpResponse:
    """The overview; ``form`` is a refused post to show with its errors."""
    link = get_hub().hosts.view(row.name)
    hello = link.hello
    running = list(hello.collectors) if hello else None
    config = row.collector_config() if row.pk else CollectorConfig(collectors=["cpu"])
    if form is None:
        form = CollectorsForm(initial=initial_for(config))
    picked = form["collectors"].value() or []
    views = [
        {"kind": k.name, "title": k.title, "about": k.about,
         "running": running is not None and k.name in running,
         "url": reverse("profile" if k.is_stack else "latency", args=[row.name, k.name])}
        for k in kinds.KINDS if k.live
    ]
    choices = [{"kind": k, "title": kinds.BY_NAME[k].title, "wanted": k in picked,
                "running": running is not None and k in running} for k in COLLECTOR_KINDS]
    context = {
        "host": row, "connected": link.connected, "running": running,
        "running_hz": hello.frequency_hz if hello else None,
        "filters": describe_filters(config), "views": views, "choices": choices,
        "form": form, "option_sets": [
            {"legend": "CPU profile", "fields": fields_of(form, FIELD_HINTS[:1])},
            {"legend": "Off-CPU and off-wake filters (pid also filters the latency collectors)",
             "fields": fields_of(form, FIELD_HINTS[1:])}],
        "can_configure": can_configure(request.user),
        "errors": list(link.errors), "known": bool(row.pk),
    }
    return render(request, "host.html", context, status=status)


def fields_of(form: CollectorsForm, hints: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    return [{"field": form[name], "hint": hint} for name, hint in hints]


def describe_filters(config: CollectorConfig) -> str:
    """The filters of a config in words, for the page and the confirmation."""
    parts = []
    if config.pid is not None:
        parts.append(f"pid {config.pid}")
    if config.comm is not None:
        parts.append(f"process name contains {config.comm!r}")
    high = "∞" if config.max_block_us is None else f"{config.max_block_us}"
    parts.append(f"blocked {config.min_block_us}..{high} µs")
    parts.append("user threads only" if config.user_threads_only else "all threads")
    return ", ".join(parts)


def choose_collectors(request: HttpRequest, row: Host) -> HttpResponse:
    """Validate the form, store it and send it to the host's collectors as
    collector.config; a refused form is shown again with per-field errors and
    nothing is stored or sent."""
    if not can_configure(request.user):
        return HttpResponse(
            "You may not choose which collectors run on a host: ask an administrator "
            "for the permission \"Can choose which collectors run on a host\".",
            status=403, content_type="text/plain; charset=utf-8")
    if not row.pk:
        return HttpResponse(f"No collector has connected as {row.name!r} yet.",
                            status=404, content_type="text/plain; charset=utf-8")
    form = CollectorsForm(request.POST)
    if not form.is_valid():
        return render_host(request, row, form, status=400)
    row.wanted_collectors = form.chosen()
    row.collector_options = form.options()
    row.save(update_fields=["wanted_collectors", "collector_options"])
    config = row.collector_config()
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(group_name(row.name, "collector"), config_event(config))
    shown = ", ".join(config.collectors) or "none"
    messages.success(request, f"Sent to the collector: run {shown} at {config.frequency_hz} Hz; "
                              f"filters: {describe_filters(config)}.")
    return redirect("host", row.name)


@login_required
def profile(request: HttpRequest, name: str, kind: str) -> HttpResponse:
    if kind not in kinds.LIVE_STACK:
        raise Http404("no such view")
    context = {
        "host": get_host(name), "ws_path": "/ws/live/", "max_nodes": settings.WEBPROF_MAX_NODES,
        "kind": kind, "unit": kinds.unit(kind), "title": live_title(kinds.BY_NAME[kind]),
    }
    return render(request, "live.html", context)


@login_required
def latency(request: HttpRequest, name: str, kind: str) -> HttpResponse:
    if kind not in kinds.LIVE_HISTOGRAM:
        raise Http404("no such view")
    row = kinds.BY_NAME[kind]
    context = {"host": get_host(name), "ws_path": "/ws/live/", "kind": kind,
               "title": row.title, "about": row.about}
    return render(request, "latency.html", context)


def live_title(kind: kinds.Kind) -> str:
    """A live flame graph's title: "live CPU profile", "live off-CPU time"."""
    noun = kind.trace_title
    return "live " + (noun if noun[:2].isupper() else noun[:1].lower() + noun[1:])
