"""Host questions (``GET /api/hosts/<host>/<what>``) reach a root process that
reads /proc and any file: they need the permission that starting a trace
needs, and each one is written to the audit log, asked or refused."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient
from test_traces_api import HOST, FakeCollector, client_for, fresh_broker  # noqa: F401

from webprof.accounts import AuditEntry
from webprof.auth import create_token
from webprof.traces.limits import QUERIES, BadRequest, query_args

pytestmark = [pytest.mark.web, pytest.mark.django_db(transaction=True)]

PARAMS = {"symbols": {"binary": "/usr/bin/app"}, "usdt": {"binary": "/usr/bin/app"}}


@pytest.fixture
async def fake():
    col = await FakeCollector().connect()
    col.answers = {"processes": [{"pid": 1, "comm": "init", "user": "root",
                                  "cpu_percent": 0.0, "cmdline": "/sbin/init --token=s3"}],
                   "symbols": {"symbols": ["main"], "truncated": False},
                   "usdt_probes": {"probes": [], "semaphores": []},
                   "tracepoints": {"tracepoints": [], "truncated": False},
                   "devices": {"devices": ["vda"]}, "syscalls": {"syscalls": ["read"]}}
    yield col
    if not col.reader.done():
        await col.close()


def entries() -> list[tuple[str, str, str]]:
    return list(AuditEntry.objects.order_by("id").values_list("action", "username", "detail"))


@pytest.mark.parametrize("what", sorted(QUERIES))
async def test_a_user_without_the_permission_is_refused_and_logged(fake, what):
    viewer = await client_for("viewer")
    resp = await viewer.get(f"/api/hosts/{HOST}/{what}", PARAMS.get(what, {}))
    assert resp.status_code == 403, resp.content
    assert "webprof.start_traces" in resp.json()["error"]
    assert fake.sent("collector.query") == []
    [(action, user, detail)] = await database_sync_to_async(entries)()
    assert (action, user) == ("query_refused", "viewer") and what in detail


async def test_a_bearer_token_without_the_permission_is_refused(fake):
    await client_for("bot")
    token, _ = await database_sync_to_async(create_token)("bot", "ci")
    resp = await AsyncClient().get(f"/api/hosts/{HOST}/processes",
                                   headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403 and fake.sent("collector.query") == []


async def test_an_unknown_host_is_not_revealed_without_the_permission(fake):
    viewer = await client_for("viewer")
    assert (await viewer.get("/api/hosts/ghost/processes")).status_code == 403


@pytest.mark.parametrize("what", sorted(QUERIES))
async def test_a_user_with_the_permission_is_answered_and_logged(fake, what):
    tracer = await client_for("tracer", perm=True)
    resp = await tracer.get(f"/api/hosts/{HOST}/{what}", PARAMS.get(what, {}))
    assert resp.status_code == 200, resp.content
    assert len(fake.sent("collector.query")) == 1
    [(action, user, detail)] = await database_sync_to_async(entries)()
    assert (action, user) == ("host_query", "tracer") and what in detail
    if what in PARAMS:
        assert "/usr/bin/app" in detail


def test_a_host_question_prefix_with_a_trailing_newline_is_refused() -> None:
    assert query_args("tracepoints", {"prefix": "sched"})["prefix"] == "sched"
    with pytest.raises(BadRequest) as info:
        query_args("tracepoints", {"prefix": "sched\n"})
    assert "prefix" in info.value.errors
