"""Pages: the hosts list and one host's live view.  All need a login."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from .hub import MAX_HOST_NAME, get_hub
from .models import Host


def host_rows() -> list[dict[str, Any]]:
    """Known hosts, with ``connected`` from the live hub (the database row can
    be stale after a crash; the hub is what this process actually serves)."""
    hub = get_hub()
    return [
        {
            "name": h.name,
            "connected": hub.is_connected(h.name),
            "last_seen": h.last_seen.isoformat(),
            "kernel": h.kernel,
            "collectors": h.collectors,
            "frequency_hz": h.frequency_hz,
            "interval_ms": h.interval_ms,
            "url": reverse("live", args=[h.name]),
        }
        for h in Host.objects.all()
    ]


@login_required
def hosts(request: HttpRequest) -> HttpResponse:
    return render(request, "hosts.html", {"hosts": host_rows()})


@login_required
def hosts_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"hosts": host_rows()})


@login_required
def live(request: HttpRequest, name: str) -> HttpResponse:
    if len(name) > MAX_HOST_NAME:
        raise Http404("no such host")
    # A host not seen yet still gets a page: its collector may connect later.
    host = Host.objects.filter(name=name).first() or Host(name=name)
    context = {"host": host, "ws_path": "/ws/live/", "max_nodes": settings.WEBPROF_MAX_NODES}
    return render(request, "live.html", context)
