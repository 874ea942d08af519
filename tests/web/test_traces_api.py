"""The trace API in-process: real ASGI application, real database, and a fake
collector on a real websocket (it answers ``collector.query`` like a host
with known pids, binaries and symbols, and reports states and deltas the
way the collector does).  What a real collector does with a trace is tested
end to end in tests/e2e/test_api_traces.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission
from django.test import AsyncClient
from wshelpers import applied, applied_hello, browser, collector, delta, hello, subscribe_text

from webprof.accounts import AuditEntry
from webprof.auth import create_token, revoke_token
from webprof.core.protocol import LatencyDelta, ProfileDelta, encode
from webprof.core.trace_messages import CollectorAnswer, TraceState
from webprof.hub import get_hub
from webprof.models import Host
from webprof.sessions.models import Session
from webprof.sessions.recording import RECORDER
from webprof.traces import broker as broker_module
from webprof.traces.broker import reset_broker
from webprof.traces.models import Trace

pytestmark = [pytest.mark.web, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
HOST = "box1"
PIDS = {1, 4242}
BINARIES = {"/usr/bin/app": ["main", "parse_request", "handle"], "/etc/passwd": None}
SYSCALLS = {"read", "write", "openat"}
DEVICES = {"vda"}


class FakeCollector:
    """One collector connection: answers queries, records what it was sent."""

    def __init__(self, host: str = HOST, silent: bool = False) -> None:
        self.host = host
        self.silent = silent  # never answer queries (the 504 case)
        self.received: list[dict[str, Any]] = []
        self.answers: dict[str, Any] = {}  # what -> result, or ("error", sentence)

    async def connect(self) -> FakeCollector:
        self.comm = await collector()
        await self.comm.send_to(text_data=hello(self.host))
        await applied_hello(self.host)
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        while True:
            # A long timeout: a timeout in receive_from would cancel the consumer.
            msg = json.loads(await self.comm.receive_from(timeout=3600))
            self.received.append(msg)
            if msg["type"] == "collector.query" and not self.silent:
                await self.comm.send_to(text_data=encode(self.answer(msg)))

    def answer(self, msg: dict[str, Any]) -> CollectorAnswer:
        what, qid = msg["what"], msg["query_id"]
        if what == "check":
            return CollectorAnswer(query_id=qid, result={"errors": check(msg["args"]["spec"])})
        result = self.answers.get(what)
        if isinstance(result, tuple):
            return CollectorAnswer(query_id=qid, error=result[1])
        return CollectorAnswer(query_id=qid, result=result)

    def sent(self, type_: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["type"] == type_]

    async def wait_for(self, type_: str, n: int = 1, timeout: float = 3) -> dict[str, Any]:
        for _ in range(int(timeout / 0.01)):
            if len(self.sent(type_)) >= n:
                return self.sent(type_)[n - 1]
            await asyncio.sleep(0.01)
        raise AssertionError(f"collector got no {type_} #{n}: {self.received}")

    async def state(self, trace_id: int, state: str, **fields: Any) -> None:
        await self.comm.send_to(text_data=encode(TraceState(trace_id=trace_id, state=state,
                                                            **fields)))

    async def send(self, text: str) -> None:
        await self.comm.send_to(text_data=text)

    async def close(self) -> None:
        self.reader.cancel()
        await self.comm.disconnect()


def check(spec: dict[str, Any]) -> dict[str, str]:
    """The host facts a collector checks, for this fake host."""
    errors = {}
    if spec.get("target") == "pid" and spec.get("pid") not in PIDS:
        errors["pid"] = f"no process with pid {spec['pid']}"
    binary = spec.get("binary")
    if binary is not None and binary not in BINARIES:
        errors["binary"] = f"{binary}: no such file"
    elif binary is not None and BINARIES[binary] is None:
        errors["binary"] = f"{binary} is not an ELF file"
    elif binary is not None:
        missing = [s for s in spec.get("symbols", []) if s not in BINARIES[binary]]
        if missing:
            errors["symbols"] = f"{missing[0]!r} is not in {binary}'s symbol table"
    bad = [s for s in spec.get("syscalls", []) if s not in SYSCALLS]
    if bad:
        errors["syscalls"] = f"unknown syscall {bad[0]!r}"
    if spec.get("device") not in (None, *DEVICES):
        errors["device"] = f"no block device {spec['device']!r}"
    return errors


@pytest.fixture(autouse=True)
def fresh_broker():
    reset_broker()
    yield
    RECORDER.wait_idle()


@pytest.fixture
async def fake():
    col = await FakeCollector().connect()
    yield col
    if not col.reader.done():
        await col.close()


def make_user(name: str, *, perm: bool = False, staff: bool = False) -> Any:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(name, password="pw-123456789", is_staff=staff)
    if perm:
        user.user_permissions.add(Permission.objects.get(codename="start_traces"))
    return user


async def client_for(name: str, **kw: Any) -> AsyncClient:
    user = await database_sync_to_async(make_user)(name, **kw)
    client = AsyncClient()
    await client.aforce_login(user)
    return client


@pytest.fixture
async def tracer() -> AsyncClient:
    return await client_for("tracer", perm=True)


async def post(client: AsyncClient, path: str, body: Any = None, **kw: Any) -> Any:
    data = json.dumps(body if body is not None else {})
    return await client.post(path, data, content_type="application/json", **kw)


CPU = {"host": HOST, "kind": "cpu", "duration_s": 5, "frequency_hz": 99}


async def start(client: AsyncClient, fake: FakeCollector, **body: Any) -> dict[str, Any]:
    before = len(fake.sent("trace.start"))
    resp = await post(client, "/api/traces", {**CPU, **body})
    assert resp.status_code == 201, resp.content
    trace = resp.json()
    msg = await fake.wait_for("trace.start", before + 1)
    assert msg["trace_id"] == trace["id"]
    return trace


async def get_json(client: AsyncClient, path: str) -> dict[str, Any]:
    resp = await client.get(path)
    assert resp.status_code == 200, resp.content
    return resp.json()


async def until(predicate: Any, what: str, timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.02)):
        if await database_sync_to_async(predicate)():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not reached in {timeout} s: {what}")


def audit_actions() -> list[str]:
    return list(AuditEntry.objects.order_by("id").values_list("action", flat=True))


def trace_row(trace_id: int) -> Trace:
    return Trace.objects.select_related("session").get(pk=trace_id)


# --------------------------------------------------------------- authentication


async def test_anonymous_gets_401_json_not_a_redirect(fake):
    anon = AsyncClient()
    for method, path in [("get", "/api/traces"), ("post", "/api/traces"),
                         ("get", "/api/traces/1"), ("post", "/api/traces/1/cancel"),
                         ("get", "/api/hosts"), ("get", f"/api/hosts/{HOST}/processes"),
                         ("get", "/api/audit")]:
        resp = await getattr(anon, method)(path)
        assert resp.status_code == 401, path
        assert "Bearer" in resp.json()["error"]
    assert fake.sent("collector.query") == []


async def test_user_without_permission_gets_403_and_is_logged(fake):
    viewer = await client_for("viewer")
    resp = await post(viewer, "/api/traces", CPU)
    assert resp.status_code == 403 and "start_traces" in resp.json()["error"]
    assert (await get_json(viewer, "/api/traces")) == {"traces": []}  # viewing is allowed
    assert fake.sent("collector.query") == [] and fake.sent("trace.start") == []
    entry = await database_sync_to_async(AuditEntry.objects.get)()
    assert (entry.action, entry.username) == ("trace_refused", "viewer")
    assert entry.remote_addr == "127.0.0.1"


async def test_bearer_token_works_without_csrf_and_revoked_token_is_401(fake):
    await database_sync_to_async(make_user)("bot", perm=True)
    token, row = await database_sync_to_async(create_token)("bot", "ci")
    assert len(token) >= 43 and not token.startswith("-") and row.prefix == token[:8]
    # AsyncClient(headers=...) is not applied to requests: pass them per request.
    auth = {"Authorization": f"Bearer {token}"}
    api = AsyncClient(enforce_csrf_checks=True)
    resp = await post(api, "/api/traces", CPU, headers=auth)  # no cookie, no CSRF token
    assert resp.status_code == 201, resp.content
    assert resp.json()["created_by"] == "bot"
    entry = await database_sync_to_async(AuditEntry.objects.filter(action="trace_start").get)()
    assert (entry.username, entry.token_prefix) == ("bot", row.prefix)

    assert (await api.get("/api/hosts", headers=auth)).status_code == 200
    await database_sync_to_async(revoke_token)(row.prefix)
    assert (await api.get("/api/hosts", headers=auth)).status_code == 401
    for header in ("Bearer nope", "Bearer ", "Basic Ym90OnB3"):
        resp = await AsyncClient().get("/api/hosts", headers={"Authorization": header})
        assert resp.status_code == 401, header
    assert await database_sync_to_async(audit_actions)() == [
        "token_create", "trace_start", "token_revoke"]


async def test_cookie_posts_need_csrf(fake):
    user = await database_sync_to_async(make_user)("carol", perm=True)
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(user)
    resp = await post(client, "/api/traces", CPU)
    assert resp.status_code == 403 and "CSRF" in resp.json()["error"]
    assert fake.sent("collector.query") == []
    secret = "a" * 32
    client.cookies["csrftoken"] = secret
    resp = await post(client, "/api/traces", CPU, headers={"X-CSRFToken": secret})
    assert resp.status_code == 201, resp.content


# ----------------------------------------------------------------- bad input

SYNTAX_CASES = [
    ({"frequency_hz": 5000}, "frequency_hz"),
    ({"frequency_hz": 10**30}, "frequency_hz"),
    ({"duration_s": 0}, "duration_s"),
    ({"duration_s": -5}, "duration_s"),
    ({"duration_s": 7200}, "duration_s"),
    ({"duration_s": 1.5}, "duration_s"),
    ({"target": "pid", "pid": 99_999_999_999}, "pid"),
    ({"target": "pid", "pid": -1}, "pid"),
    ({"kind": "funclat", "frequency_hz": None, "binary": "/usr/bin/app",
      "symbols": ['main"; system("id")']}, "symbols"),
    ({"kind": "funclat", "frequency_hz": None, "binary": "/usr/bin/app",
      "symbols": ["main;handle"]}, "symbols"),
    ({"kind": "funclat", "frequency_hz": None, "binary": "/usr/bin/app",
      "symbols": ["main\nhandle"]}, "symbols"),
    ({"kind": "funclat", "frequency_hz": None, "binary": "/usr/bin/app",
      "symbols": ["main'"]}, "symbols"),
    ({"kind": "funclat", "frequency_hz": None, "binary": "/usr/bin/../../etc/shadow",
      "symbols": ["main"]}, "binary"),
    ({"kind": "funclat", "frequency_hz": None, "binary": "/usr/bin/app",
      "symbols": [f"f{i}" for i in range(9)]}, "symbols"),
    ({"kind": "offcpu", "frequency_hz": None, "min_block_us": -1}, "min_block_us"),
    ({"kind": "syscall", "frequency_hz": None, "syscalls": ["read; rm -rf /"]}, "syscalls"),
    ({"kind": "usdt", "frequency_hz": None, "binary": "/usr/bin/app",
      "probe": "a:b\nc"}, "probe"),
    ({"kind": "tracepoint", "frequency_hz": None, "tracepoint": "../sched:x"}, "tracepoint"),
    ({"kind": "nope"}, "kind"),
    ({"bpf_text": "int x;"}, "bpf_text"),
    ({"host": ""}, "host"),
    ({"name": "x" * 201}, "name"),
]


@pytest.mark.parametrize("change,field", SYNTAX_CASES, ids=[c[1] + str(i)
                                                           for i, c in enumerate(SYNTAX_CASES)])
async def test_syntax_errors_never_reach_the_collector(fake, tracer, change, field):
    resp = await post(tracer, "/api/traces", {**CPU, **change})
    assert resp.status_code == 400, resp.content
    assert field in resp.json()["errors"], resp.json()
    assert fake.sent("collector.query") == [] and fake.sent("trace.start") == []
    assert await database_sync_to_async(Trace.objects.count)() == 0
    assert await database_sync_to_async(Session.objects.count)() == 0
    entry = await database_sync_to_async(AuditEntry.objects.get)()
    assert entry.action == "trace_refused" and field in entry.detail


async def test_malformed_bodies(fake, tracer):
    for body in (b"{not json", b"[1, 2]", b'"text"'):
        resp = await tracer.post("/api/traces", body, content_type="application/json")
        assert resp.status_code == 400
        assert "__all__" in resp.json()["errors"], body
    # An HTML form works too (values are text); and curl -d '{...}' without the header.
    form = {k: str(v) for k, v in CPU.items()}
    assert (await tracer.post("/api/traces", form)).status_code == 201
    raw = json.dumps(CPU).encode()
    resp = await tracer.post("/api/traces", raw, content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 201, resp.content
    assert fake.sent("collector.query") and len(fake.sent("trace.start")) == 2


HOST_FACT_CASES = [
    ({"target": "pid", "pid": 31337}, "pid"),
    ({"kind": "funclat", "binary": "/usr/bin/missing", "symbols": ["main"]}, "binary"),
    ({"kind": "funclat", "binary": "/etc/passwd", "symbols": ["main"]}, "binary"),
    ({"kind": "funclat", "binary": "/usr/bin/app", "symbols": ["main", "nosuch"]}, "symbols"),
    ({"kind": "syscall", "syscalls": ["read", "frobnicate"]}, "syscalls"),
    ({"kind": "biolat", "device": "sdz"}, "device"),
]


@pytest.mark.parametrize("change,field", HOST_FACT_CASES, ids=[c[1] for c in HOST_FACT_CASES])
async def test_host_facts_come_from_the_collector_check(fake, tracer, change, field):
    body = {"host": HOST, "duration_s": 5, "kind": "cpu", **change}
    resp = await post(tracer, "/api/traces", body)
    assert resp.status_code == 400, resp.content
    assert list(resp.json()["errors"]) == [field]
    (query,) = fake.sent("collector.query")
    assert query["what"] == "check" and query["args"]["spec"]["kind"] == body["kind"]
    assert fake.sent("trace.start") == []
    assert await database_sync_to_async(Trace.objects.count)() == 0
    assert await database_sync_to_async(audit_actions)() == ["trace_refused"]


async def test_unknown_offline_silent_and_full_hosts(fake, tracer, settings, monkeypatch):
    resp = await post(tracer, "/api/traces", {**CPU, "host": "nowhere"})
    assert resp.status_code == 404 and "host" in resp.json()["errors"]

    settings.WEBPROF_TRACE_MAX_PER_HOST = 1
    first = await start(tracer, fake)
    resp = await post(tracer, "/api/traces", CPU)
    assert resp.status_code == 409
    assert resp.json()["error"] == f"{HOST} already runs 1 traces (limit 1)"
    await fake.state(first["id"], "finished")
    await until(lambda: trace_row(first["id"]).state == "finished", "first trace finished")
    second = await start(tracer, fake)  # a slot is free again
    await fake.state(second["id"], "finished")
    await until(lambda: trace_row(second["id"]).state == "finished", "second trace finished")

    fake.silent = True
    monkeypatch.setattr(broker_module, "ANSWER_TIMEOUT_S", 0.3)
    resp = await post(tracer, "/api/traces", CPU)
    assert resp.status_code == 504 and "did not answer" in resp.json()["error"]

    await fake.close()
    resp = await post(tracer, "/api/traces", CPU)
    assert resp.status_code == 503 and "no collector" in resp.json()["error"]
    assert await database_sync_to_async(audit_actions)() == [
        "trace_refused", "trace_start", "trace_refused", "trace_finished", "trace_start",
        "trace_finished", "trace_refused", "trace_refused"]


# ------------------------------------------------------------------- lifecycle


def profile_delta(trace_id: int, seq: int, kind: str = "cpu", leaf: str = "hot") -> str:
    return encode(ProfileDelta(
        host=HOST, kind=kind, seq=seq, start_ms=1_700_000_000_000 + 1000 * seq,
        interval_ms=1000, frequency_hz=99, strings=["app", "main", leaf],
        stacks=[[4242, 0, 5, 1, 2]], health={"samples": 5}, trace_id=trace_id))


async def test_trace_runs_fills_its_session_and_finishes(fake, tracer):
    trace = await start(tracer, fake, target="pid", pid=4242)
    spec = fake.sent("trace.start")[0]["spec"]
    assert spec == {"kind": "cpu", "duration_s": 5, "target": "pid", "pid": 4242,
                    "frequency_hz": 99}
    assert trace["state"] == "queued"
    assert trace["session_url"] == f"/sessions/{trace['session_id']}/"
    assert trace["description"] == "CPU profile, 99 Hz, pid 4242, 5 s"
    for state in ("queued", "compiling"):
        await fake.state(trace["id"], state)
    await fake.state(trace["id"], "running", elapsed_ms=1000, remaining_ms=4000)
    await fake.send(profile_delta(trace["id"], 0))
    await fake.send(profile_delta(trace["id"], 1))
    await until(lambda: trace_row(trace["id"]).state == "running", "running stored")
    now = await get_json(tracer, f"/api/traces/{trace['id']}")
    assert (now["state"], now["elapsed_ms"], now["remaining_ms"]) == ("running", 1000, 4000)

    await fake.state(trace["id"], "finished", elapsed_ms=5000)
    await until(lambda: trace_row(trace["id"]).session.state == "complete", "session complete")
    done = await get_json(tracer, f"/api/traces/{trace['id']}")
    assert (done["state"], done["elapsed_ms"], done["remaining_ms"]) == ("finished", 5000, 0)
    assert done["ended_ms"] is not None and done["created_by"] == "tracer"
    flame = await get_json(tracer, f"{done['session_url']}flame.json")
    assert flame["kind"] == "cpu" and flame["total"] == 10
    session = await database_sync_to_async(Session.objects.select_related("owner").get)(
        pk=done["session_id"])
    assert (session.source, session.owner.username, session.intervals) == ("trace", "tracer", 2)
    listed = await get_json(tracer, "/api/traces")
    assert [t["id"] for t in listed["traces"]] == [trace["id"]]
    assert await database_sync_to_async(audit_actions)() == ["trace_start", "trace_finished"]


async def test_trace_kinds_land_in_their_session(fake, tracer):
    lat = await start(tracer, fake, kind="funclat", frequency_hz=None, binary="/usr/bin/app",
                      symbols=["parse_request"])
    hits = await start(tracer, fake, kind="tracepoint", frequency_hz=None,
                       tracepoint="sched:sched_switch")
    await fake.send(encode(LatencyDelta(
        host=HOST, kind="funclat", seq=0, start_ms=1_700_000_000_000, interval_ms=1000,
        series={"parse_request": [[1024, 2048, 7]]}, health={}, trace_id=lat["id"])))
    await fake.send(profile_delta(hits["id"], 0, kind="tracepoint", leaf="schedule_[k]"))
    for trace in (lat, hits):
        await fake.state(trace["id"], "finished")
        await until(lambda t=trace: trace_row(t["id"]).session.state == "complete", "complete")
    latency = await get_json(tracer, f"/sessions/{lat['session_id']}/latency.json?kind=funclat")
    assert latency["kind"] == "funclat"
    assert latency["intervals"][0]["series"] == {"parse_request": [[1024, 2048, 7]]}
    flame = await get_json(tracer, f"/sessions/{hits['session_id']}/flame.json")
    assert flame["kind"] == "tracepoint" and flame["unit"] == "hits" and flame["total"] == 5


async def test_cancel_reaches_the_collector(fake, tracer):
    trace = await start(tracer, fake)
    await fake.state(trace["id"], "running", elapsed_ms=500, remaining_ms=4500)
    other = await client_for("other", perm=True)
    resp = await post(other, f"/api/traces/{trace['id']}/cancel")
    assert resp.status_code == 200 and resp.json()["cancelled_by"] == "other"
    msg = await fake.wait_for("trace.cancel")
    assert msg["trace_id"] == trace["id"]
    await fake.state(trace["id"], "cancelled", elapsed_ms=900)
    await until(lambda: trace_row(trace["id"]).state == "cancelled", "cancelled")
    await until(lambda: trace_row(trace["id"]).session.state == "complete", "session complete")
    resp = await post(other, f"/api/traces/{trace['id']}/cancel")
    assert resp.status_code == 409 and "already cancelled" in resp.json()["error"]
    viewer = await client_for("viewer")
    assert (await post(viewer, f"/api/traces/{trace['id']}/cancel")).status_code == 403
    assert (await post(other, "/api/traces/999/cancel")).status_code == 404
    assert await database_sync_to_async(audit_actions)() == [
        "trace_start", "trace_cancel", "trace_refused", "trace_refused"]


async def test_collector_refusal_and_disconnect_fail_traces(fake, tracer):
    refused = await start(tracer, fake)
    await fake.state(refused["id"], "failed", reason="pid 4242 exited",
                     errors={"pid": "no process with pid 4242"})
    await until(lambda: trace_row(refused["id"]).state == "failed", "refused")
    row = await get_json(tracer, f"/api/traces/{refused['id']}")
    assert row["errors"] == {"pid": "no process with pid 4242"}
    assert row["reason"] == "pid 4242 exited"

    running = await start(tracer, fake)
    await fake.state(running["id"], "running", elapsed_ms=1000, remaining_ms=4000)
    await fake.send(profile_delta(running["id"], 0))
    await until(lambda: trace_row(running["id"]).state == "running", "running")
    await fake.close()
    await until(lambda: trace_row(running["id"]).state == "failed", "failed on disconnect")
    row = await database_sync_to_async(trace_row)(running["id"])
    assert row.reason == "collector disconnected"
    await until(lambda: trace_row(running["id"]).session.state == "interrupted", "interrupted")
    session = await database_sync_to_async(Session.objects.get)(pk=row.session_id)
    assert session.intervals == 1 and "collector disconnected" in session.notes
    assert await database_sync_to_async(audit_actions)() == [
        "trace_start", "trace_failed", "trace_start", "trace_failed"]


async def test_trace_deltas_never_reach_live_views_and_live_deltas_not_traces(
        fake, tracer, session_cookie):
    live = await browser(session_cookie)
    await live.send_to(text_data=subscribe_text(HOST))
    assert (await asyncio.wait_for(live.receive_json_from(), 2))["type"] == "live.snapshot"
    await live.receive_json_from()  # host.status
    trace = await start(tracer, fake)
    await fake.send(profile_delta(trace["id"], 0))
    await fake.send(delta(0))  # a live interval, trace_id 0
    await applied(HOST, 1)
    msg = await live.receive_json_from(timeout=2)
    assert msg["type"] == "live.interval" and msg["seq"] == 0 and msg["samples"] == 10
    assert await live.receive_nothing(timeout=0.3)
    assert get_hub().serial(HOST) == 1  # the trace's interval was not applied live
    await fake.send(profile_delta(9999, 1))  # no such trace: dropped, counted
    await fake.state(trace["id"], "finished")
    await until(lambda: trace_row(trace["id"]).session.state == "complete", "complete")
    flame = await get_json(tracer, f"/sessions/{trace['session_id']}/flame.json")
    assert flame["total"] == 5  # the trace's 5 samples, not the live 10
    assert broker_module.get_broker().dropped_deltas == 1
    await live.disconnect()


# ------------------------------------------------------------ host questions


async def test_host_questions(fake, tracer):
    fake.answers = {"processes": [{"pid": 1, "comm": "init", "user": "root",
                                   "cpu_percent": 0.5, "cmdline": "/sbin/init"}],
                    "symbols": ("error", "binary: /bin/true is not an ELF file")}
    procs = await get_json(tracer, f"/api/hosts/{HOST}/processes")
    assert procs["processes"][0]["comm"] == "init"
    resp = await tracer.get(f"/api/hosts/{HOST}/symbols", {"binary": "/bin/true"})
    assert resp.status_code == 400
    assert resp.json() == {"errors": {"binary": "/bin/true is not an ELF file"}}
    asked = len(fake.sent("collector.query"))
    for params in ({"binary": "/usr/../etc/shadow"}, {"binary": "rel"}, {},
                   {"binary": "/x", "limit": "100000"}, {"binary": "/x", "prefix": "a'b"}):
        resp = await tracer.get(f"/api/hosts/{HOST}/symbols", params)
        assert resp.status_code == 400, params
    assert len(fake.sent("collector.query")) == asked
    assert (await tracer.get(f"/api/hosts/{HOST}/nonsense")).status_code == 404
    assert (await tracer.get("/api/hosts/ghost/processes")).status_code == 404
    hosts = await get_json(tracer, "/api/hosts")
    assert hosts["hosts"] == [{"name": HOST, "connected": True, "kernel": "6.18.0",
                               "collectors": ["cpu"], "running_traces": 0}]


async def test_audit_log_is_for_staff(fake, tracer):
    await post(tracer, "/api/traces", {**CPU, "frequency_hz": 0})
    assert (await tracer.get("/api/audit")).status_code == 403
    admin = await client_for("admin", staff=True)
    entries = (await get_json(admin, "/api/audit?action=trace_refused"))["entries"]
    assert len(entries) == 1 and entries[0]["user"] == "tracer"
    assert "frequency_hz" in entries[0]["detail"] and entries[0]["host"] == HOST


async def test_server_restart_leaves_no_phantom_running_trace(tracer):
    def stale() -> Trace:
        Host.objects.create(name=HOST)
        return Trace.objects.create(host=HOST, name="old", kind="cpu", duration_s=5,
                                    state="running", started_ms=1)

    old = await database_sync_to_async(stale)()
    col = await FakeCollector().connect()
    await until(lambda: trace_row(old.pk).state == "failed", "stale trace failed")
    row = await database_sync_to_async(trace_row)(old.pk)
    assert "restarted" in row.reason
    await col.close()


# ------------------------------------------------------------------------ CLI


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WEBPROF_") and k != "DATABASE_URL"}
    env["WEBPROF_DATA_DIR"] = str(data_dir)
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "webprof"), *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.mark.django_db(transaction=False)
def test_token_cli(tmp_path):
    assert run_cli(tmp_path, "token", "list").stdout == "no API tokens\n"  # migrates too
    db = sqlite3.connect(tmp_path / "webprof.sqlite3")
    db.execute("INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,"
               " email, is_staff, is_active, date_joined) VALUES"
               " ('!', 0, 'alice', '', '', '', 0, 1, '2026-01-01')")
    db.commit()
    missing = run_cli(tmp_path, "token", "create", "nobody")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("webprof token: no user named 'nobody'")

    made = run_cli(tmp_path, "token", "create", "alice", "--name", "ci")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert len(token) == 43 and not token.startswith("-") and "\n" not in token
    assert "shown only this once" in made.stderr
    import hashlib

    digest, prefix = db.execute("SELECT digest, prefix FROM webprof_apitoken").fetchone()
    assert digest == hashlib.sha256(token.encode()).hexdigest() and prefix == token[:8]
    assert token not in json.dumps(db.execute("SELECT * FROM webprof_apitoken").fetchall())

    listed = run_cli(tmp_path, "token", "list", "alice", "--json")
    assert [(t["prefix"], t["name"], t["revoked"]) for t in json.loads(listed.stdout)] == [
        (prefix, "ci", None)]
    assert run_cli(tmp_path, "token", "revoke", prefix).returncode == 0
    again = run_cli(tmp_path, "token", "revoke", token)
    assert again.returncode == 2 and "no active token" in again.stderr
    assert "revoked" in run_cli(tmp_path, "token", "list").stdout
    actions = [a for (a,) in db.execute("SELECT action FROM webprof_auditentry ORDER BY id")]
    assert actions == ["token_create", "token_revoke"]
    assert "webprof token create alice" in run_cli(tmp_path, "token", "--help").stdout
