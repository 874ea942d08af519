"""The trace pages in-process: who sees them, and what they render.

The pages are shells whose scripts talk to the JSON API (tested with the
API); here: login is required, the form lists every kind with the server's
limits, and a user without ``webprof.start_traces`` gets the form disabled
with a sentence naming who can grant it.
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.test import Client

from webprof.core.tracespec import TRACE_KINDS
from webprof.traces.models import Trace

pytestmark = [pytest.mark.web, pytest.mark.django_db]

PAGES = ["/traces/", "/traces/new/"]


def client_for(django_user_model, name: str, *, may_start: bool = False, **extra) -> Client:
    user = django_user_model.objects.create_user(name, password="s3cret-pass", **extra)
    if may_start:
        user.user_permissions.add(Permission.objects.get(
            codename="start_traces", content_type__app_label="webprof"))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def trace(django_user_model) -> Trace:
    owner = django_user_model.objects.create_user("owner", password="s3cret-pass")
    return Trace.objects.create(
        host="box1", name="parse latency", kind="funclat",
        spec={"kind": "funclat", "duration_s": 5, "binary": "/usr/bin/app",
              "symbols": ["parse"]},
        description="Function latency (uprobes), /usr/bin/app:parse, whole system, 5 s",
        duration_s=5, started_ms=1_750_000_000_000, created_by=owner, state="running")


def form_fieldset(html: str) -> str:
    match = re.search(r'<fieldset class="all" id="trace-fields"[^>]*>', html)
    assert match, "the form's fieldset is missing"
    return match.group(0)


def test_pages_need_a_login(client, trace):
    for path in [*PAGES, f"/traces/{trace.pk}/"]:
        resp = client.get(path)
        assert resp.status_code == 302, path
        assert resp["Location"].startswith("/login/?next="), resp["Location"]


def test_form_for_a_user_with_the_permission(django_user_model):
    client = client_for(django_user_model, "tracer", may_start=True)
    resp = client.get("/traces/new/")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "disabled" not in form_fieldset(html)
    assert 'id="no-permission"' not in html
    assert 'data-can-start="1"' in html
    # Every kind is offered, by its label, and the kinds' own fields are declared.
    options = re.findall(r'<option value="(\w+)"(?: selected)?>([^<]+)</option>', html)
    kinds = {k: label for k, label in options if k in TRACE_KINDS}
    assert kinds == {k: v[0] for k, v in TRACE_KINDS.items()}
    kind_fields = json.loads(re.search(
        r'<script id="trace-kind-fields" type="application/json">(.*?)</script>', html).group(1))
    assert kind_fields["funclat"] == ["binary", "symbols"]
    assert kind_fields["runqlat"] == []
    for field in ("frequency_hz", "min_block_us", "syscalls", "device", "binary", "symbols",
                  "probe", "tracepoint"):
        assert f'data-field="{field}"' in html, field
        assert f'id="error-{field}"' in html, field
    for field in ("host", "pid", "comm", "cgroup", "duration_s", "name", "__all__"):
        assert f'id="error-{field}"' in html, field
    assert 'src="/static/tracenew.js"' in html


def test_form_shows_the_server_limits(django_user_model, settings):
    settings.WEBPROF_TRACE_MAX_DURATION_S = 600
    settings.WEBPROF_TRACE_MAX_FREQUENCY_HZ = 199
    client = client_for(django_user_model, "tracer", may_start=True)
    html = client.get("/traces/new/").content.decode()
    limits = json.loads(re.search(
        r'<script id="trace-limits" type="application/json">(.*?)</script>', html).group(1))
    assert limits["max_duration_s"] == 600 and limits["max_frequency_hz"] == 199
    assert re.search(r'id="frequency_hz"[^>]*\smax="199"', html)
    presets = re.findall(r'<option value="(\d+)"(?: selected)?>\d+ (?:s|min|h)</option>', html)
    assert presets == ["1", "5", "10", "30", "60", "300", "600"]  # none above the limit


def test_form_disabled_without_the_permission(django_user_model):
    django_user_model.objects.create_superuser("root-admin", password="s3cret-pass")
    client = client_for(django_user_model, "viewer")
    resp = client.get("/traces/new/")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "disabled" in form_fieldset(html)
    assert 'data-can-start="0"' in html
    note = re.search(r'<p id="no-permission"[^>]*>(.*?)</p>', html, re.S).group(1)
    text = " ".join(note.split())
    assert "webprof.start_traces" in text
    assert "An administrator can grant it" in text and "root-admin" in text


def test_no_superuser_yet_says_how_to_make_one(django_user_model):
    html = client_for(django_user_model, "viewer").get("/traces/new/").content.decode()
    note = " ".join(re.search(r'<p id="no-permission"[^>]*>(.*?)</p>', html, re.S)
                    .group(1).split())
    assert "this server has none yet" in note and "createsuperuser" in note


def test_list_page(django_user_model):
    for may_start in (True, False):
        client = client_for(django_user_model, f"u{int(may_start)}", may_start=may_start)
        html = client.get("/traces/").content.decode()
        assert 'id="traces" data-src="/api/traces"' in html
        assert '<a href="/traces/">Traces</a>' in html  # the nav link
        assert ('id="new-trace"' in html) is may_start
        assert ('id="no-permission"' in html) is not may_start


def test_detail_page(django_user_model, trace):
    viewer = client_for(django_user_model, "viewer")
    resp = viewer.get(f"/traces/{trace.pk}/")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert f'data-api="/api/traces/{trace.pk}"' in html and 'data-kind="funclat"' in html
    assert "parse latency" in html and "/usr/bin/app:parse" in html
    assert '<dd id="created-by">owner</dd>' in html
    assert 'class="badge running"' in html
    assert 'id="cancel"' not in html  # viewing needs a login; cancelling the permission
    tracer = client_for(django_user_model, "tracer", may_start=True)
    assert 'id="cancel"' in tracer.get(f"/traces/{trace.pk}/").content.decode()


def test_unknown_trace_is_404(django_user_model):
    resp = client_for(django_user_model, "viewer").get("/traces/999999/")
    assert resp.status_code == 404


def test_nav_link_on_every_page(django_user_model):
    html = client_for(django_user_model, "viewer").get("/").content.decode()
    assert '<a href="/traces/">Traces</a>' in html


def test_page_scripts_exist():
    for name in ("traces.js", "tracenew.js", "tracedetail.js", "http.js", "traces.css",
                 "flamegraph.js", "flametree.js", "table.js", "heatmap.js",
                 "vendor/plotly.min.js"):
        assert finders.find(name), name
