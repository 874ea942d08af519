"""One trace of every kind through the HTTP API with a Bearer token, end to end.

Real parts only: daphne, a ``webprof collect`` process (root + bcc), an API
token made with ``webprof token create`` and compiled workloads whose
behaviour is known:

- ``spin`` (tests/e2e/workloads/spin.c) burns CPU in ``webprof_spin_inner``;
- ``sleep`` (below) nanosleeps 10 ms in a loop: ~100 ``clock_nanosleep``
  calls a second, each 10.05-10.5 ms (log2 bucket [8192, 16384) µs), about
  1 s off-CPU per second, two context switches per loop;
- ``call`` (below) calls ``webprof_slow_call`` (a 5 ms nanosleep: bucket
  [4096, 8192) µs) and hits the USDT probe ``webprof:tick`` once per loop;
- ``disk`` writes and fsyncs 4 KiB blocks to a file on the root disk.

Each test starts a 3 s trace with a Bearer token, polls it to ``finished``
and checks its session (source "trace") through the session endpoints.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2eproc import ROOT, Collector, Daphne, start_collector, stop_process

from tests.conftest import require_bpf
from webprof.core.flame import FlameTree

pytestmark = pytest.mark.e2e

TRACE_S = 3
CONNECT_WAIT_S = 60  # the collector compiles its CPU program before it says hello
FINISH_WAIT_S = 60  # compile (1-3 s of CPU per program) + the trace + the last drain

# A hand-written USDT note (the layout of <sys/sdt.h>'s STAP_PROBE, which the
# machine's headers lack): one argument-less probe webprof:tick.
WORKLOADS_C = r"""
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define USDT_TICK() __asm__ __volatile__ ( \
    "990: nop\n" \
    ".pushsection .note.stapsdt,\"?\",\"note\"\n" \
    ".balign 4\n" \
    ".4byte 992f-991f, 994f-993f, 3\n" \
    "991: .asciz \"stapsdt\"\n" \
    "992: .balign 4\n" \
    "993: .8byte 990b\n" \
    ".8byte _.stapsdt.base\n" \
    ".8byte 0\n" \
    ".asciz \"webprof\"\n" \
    ".asciz \"tick\"\n" \
    ".asciz \"\"\n" \
    "994: .balign 4\n" \
    ".popsection\n" \
    ".ifndef _.stapsdt.base\n" \
    ".pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat\n" \
    ".weak _.stapsdt.base\n" \
    ".hidden _.stapsdt.base\n" \
    "_.stapsdt.base: .space 1\n" \
    ".size _.stapsdt.base, 1\n" \
    ".popsection\n" \
    ".endif\n")

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, 0);
}

__attribute__((noinline)) void webprof_slow_call(void) { sleep_us(5000); }

__attribute__((noinline)) void webprof_sleep_loop(void) { sleep_us(10000); }

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "sleep";
    double seconds = argc > 2 ? atof(argv[2]) : 20.0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    char block[4096];
    memset(block, 'w', sizeof block);
    int fd = strcmp(mode, "disk") == 0 ? open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
    do {
        if (strcmp(mode, "call") == 0) {
            USDT_TICK();
            webprof_slow_call();
        } else if (fd >= 0) {
            if (write(fd, block, sizeof block) < 0 || fsync(fd) < 0) return 1;
        } else {
            webprof_sleep_loop();
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
    return 0;
}
"""


class Api:
    """The HTTP API as a script uses it: JSON and a Bearer token."""

    def __init__(self, base: str, token: str | None = None, cookie: str | None = None):
        self.base, self.token, self.cookie = base, token, cookie

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookie:
            headers["Cookie"] = self.cookie
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, headers=headers,
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        assert status == 200, (path, status, body)
        return body


@pytest.fixture(scope="module")
def api(webprof_server: Daphne) -> Api:
    """A user with webprof.start_traces and a token from `webprof token create`."""
    code = (
        "from django.contrib.auth import get_user_model;"
        "from django.contrib.auth.models import Permission;"
        "u = get_user_model().objects.create_user('api-tracer', password='x-12345678');"
        "u.user_permissions.add(Permission.objects.get(codename='start_traces'))"
    )
    webprof_server.manage("shell", "-c", code)
    out = subprocess.run([sys.executable, "-m", "webprof.cli", "token", "create", "api-tracer"],
                         env=webprof_server.env, cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return Api(webprof_server.url, token=out.stdout.strip())


@pytest.fixture(scope="module")
def host(webprof_server: Daphne, api: Api, tmp_path_factory) -> Iterator[str]:
    """One real collector for the module's traces."""
    require_bpf()
    name = f"api-{secrets.token_hex(3)}"
    log = tmp_path_factory.mktemp("collector") / "collector.log"
    collector: Collector = start_collector(webprof_server, name, log, interval_s=1.0)
    try:
        deadline = time.monotonic() + CONNECT_WAIT_S
        while not any(h["name"] == name and h["connected"]
                      for h in api.get("/api/hosts")["hosts"]):
            assert collector.proc.poll() is None, collector.output()
            assert time.monotonic() < deadline, f"no hello in time:\n{collector.output()}"
            time.sleep(0.2)
        yield name
    finally:
        stop_process(collector.proc)


@pytest.fixture(scope="module")
def workload_binary(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("traced") / "traced.c"
    src.write_text(WORKLOADS_C)
    out = src.with_name("webprof_traced")
    subprocess.run(["cc", "-O0", "-fno-omit-frame-pointer", "-fno-inline", "-o", str(out),
                    str(src)], check=True, timeout=60)
    return out


@pytest.fixture
def run(tmp_path) -> Iterator[Any]:
    procs: list[subprocess.Popen] = []

    def start(*cmd: str) -> subprocess.Popen:
        proc = subprocess.Popen([*cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        time.sleep(0.3)  # past exec and the dynamic loader: the pid runs the binary
        assert proc.poll() is None
        return proc

    yield start
    for proc in procs:
        stop_process(proc)


def trace(api: Api, host: str, **spec: Any) -> dict[str, Any]:
    """Start a trace, wait until it ends, return its final JSON."""
    status, body = api.call("POST", "/api/traces",
                            {"host": host, "duration_s": TRACE_S, **spec})
    assert status == 201, body
    deadline = time.monotonic() + FINISH_WAIT_S
    while body["state"] not in ("finished", "cancelled", "failed"):
        assert time.monotonic() < deadline, f"trace still {body['state']}: {body}"
        time.sleep(0.5)
        body = api.get(f"/api/traces/{body['id']}")
    assert body["state"] == "finished", (body["state"], body["reason"], body["errors"])
    return body


def result(viewer: Api, done: dict[str, Any], kind: str, what: str) -> dict[str, Any]:
    """The session's flame.json or latency.json once its last interval is stored."""
    session = done["session_url"]
    for _ in range(50):
        data = viewer.get(f"{session}{what}.json?kind={kind}")
        if viewer.get(f"{session}status.json")["state"] == "complete":
            return data
        time.sleep(0.1)
    raise AssertionError(f"session {session} not complete")


@pytest.fixture(scope="module")
def viewer(webprof_server: Daphne, login_cookie: str) -> Api:
    return Api(webprof_server.url, cookie=login_cookie)


def folded(flame: dict[str, Any]) -> dict[str, int]:
    lines = FlameTree.from_wire(flame["tree"]).to_folded().splitlines()
    return {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in lines}


def counts(latency: dict[str, Any], series: str) -> dict[int, int]:
    """Bucket low bound (µs) -> events of one series, summed over the intervals."""
    total: dict[int, int] = {}
    for interval in latency["intervals"]:
        for low, _high, n in interval["series"].get(series, []):
            total[low] = total.get(low, 0) + n
    return total


# ------------------------------------------------------------------ per kind


def test_cpu_trace_of_one_pid(api, viewer, host, spin_binary, run):
    spin = run(str(spin_binary), "20")
    done = trace(api, host, kind="cpu", target="pid", pid=spin.pid, frequency_hz=99)
    flame = result(viewer, done, "cpu", "flame")
    stacks = folded(flame)
    expected = 99 * TRACE_S
    assert 0.5 * expected <= flame["total"] <= 1.5 * expected, flame["total"]
    inner = sum(n for s, n in stacks.items() if "webprof_spin_inner" in s)
    assert inner >= 0.8 * flame["total"], stacks
    assert all(s.startswith("webprof_spin;") for s in stacks), stacks  # that pid only


def test_syscall_trace_of_one_pid(api, viewer, host, workload_binary, run):
    sleeper = run(str(workload_binary), "sleep", "20")
    done = trace(api, host, kind="syscall", target="pid", pid=sleeper.pid,
                 syscalls=["clock_nanosleep"])
    latency = result(viewer, done, "syscall", "latency")
    names = {n for i in latency["intervals"] for n in i["series"]}
    assert "clock_nanosleep" in names, names
    buckets = counts(latency, "clock_nanosleep")
    assert sum(buckets.values()) >= 0.5 * 100 * TRACE_S, buckets
    assert max(buckets, key=buckets.get) == 8192, buckets  # 10 ms sleeps


def test_offcpu_trace_of_one_pid(api, viewer, host, workload_binary, run):
    sleeper = run(str(workload_binary), "sleep", "20")
    done = trace(api, host, kind="offcpu", target="pid", pid=sleeper.pid, min_block_us=1000)
    flame = result(viewer, done, "offcpu", "flame")
    assert flame["total"] >= 0.6 * TRACE_S * 1_000_000, flame["total"]  # µs blocked
    stacks = folded(flame)
    loop = sum(n for s, n in stacks.items() if "webprof_sleep_loop" in s)
    assert loop >= 0.9 * flame["total"], stacks


def test_offwake_trace_of_one_pid(api, viewer, host, workload_binary, run):
    sleeper = run(str(workload_binary), "sleep", "20")
    done = trace(api, host, kind="offwake", target="pid", pid=sleeper.pid, min_block_us=1000)
    flame = result(viewer, done, "offwake", "flame")
    assert flame["total"] >= 0.5 * TRACE_S * 1_000_000, flame["total"]
    assert any("webprof_sleep_loop" in s for s in folded(flame))


def test_runqlat_trace_of_the_system(api, viewer, host, workload_binary, run):
    run(str(workload_binary), "sleep", "20")  # 100 wake-ups a second at least
    done = trace(api, host, kind="runqlat")
    latency = result(viewer, done, "runqlat", "latency")
    events = sum(n for i in latency["intervals"] for s in i["series"].values()
                 for _lo, _hi, n in s)
    assert events >= 100 * TRACE_S, events


def test_biolat_trace(api, viewer, host, workload_binary, run, tmp_path):
    # /tmp is on the root disk here (not tmpfs): fsync'd writes reach the block layer.
    target = Path("/var/tmp") / f"webprof-bio-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        run(str(workload_binary), "disk", "20", str(target))
        done = trace(api, host, kind="biolat")
        latency = result(viewer, done, "biolat", "latency")
        events = sum(n for i in latency["intervals"] for s in i["series"].values()
                     for _lo, _hi, n in s)
        assert events >= 10, latency
    finally:
        target.unlink(missing_ok=True)


def test_funclat_trace_of_a_function(api, viewer, host, workload_binary, run):
    caller = run(str(workload_binary), "call", "20")
    done = trace(api, host, kind="funclat", target="pid", pid=caller.pid,
                 binary=str(workload_binary), symbols=["webprof_slow_call"])
    latency = result(viewer, done, "funclat", "latency")
    buckets = counts(latency, "webprof_slow_call")
    assert sum(buckets.values()) >= 0.5 * TRACE_S * 190, buckets  # ~190 calls a second
    assert max(buckets, key=buckets.get) == 4096, buckets  # 5 ms per call


def test_usdt_trace_counts_probe_hits(api, viewer, host, workload_binary, run):
    caller = run(str(workload_binary), "call", "20")
    status, probes = api.call("GET", f"/api/hosts/{host}/usdt?binary={workload_binary}")
    assert status == 200 and "webprof:tick" in probes["probes"], probes
    done = trace(api, host, kind="usdt", target="pid", pid=caller.pid,
                 binary=str(workload_binary), probe="webprof:tick")
    flame = result(viewer, done, "usdt", "flame")
    assert 0.5 * TRACE_S * 190 <= flame["total"] <= 1.5 * TRACE_S * 200, flame["total"]


def test_tracepoint_trace_counts_hits_with_stacks(api, viewer, host, workload_binary, run):
    sleeper = run(str(workload_binary), "sleep", "20")
    done = trace(api, host, kind="tracepoint", target="pid", pid=sleeper.pid,
                 tracepoint="sched:sched_switch")
    flame = result(viewer, done, "tracepoint", "flame")
    assert flame["total"] >= 0.5 * 100 * TRACE_S, flame["total"]  # one switch-out per sleep
    assert any("webprof_sleep_loop" in s for s in folded(flame)), folded(flame)


# ------------------------------------------------------------- API behaviour


def test_refusals_over_http(api, viewer, host, webprof_server):
    anon = Api(webprof_server.url)
    assert anon.call("GET", "/api/traces")[0] == 401
    assert Api(webprof_server.url, token="not-a-token").call("GET", "/api/hosts")[0] == 401
    status, body = api.call("POST", "/api/traces", {"host": host, "kind": "cpu",
                                                    "duration_s": 3, "target": "pid",
                                                    "pid": 4_000_000})
    assert status == 400 and "pid" in body["errors"], body  # from the collector's check
    status, body = api.call("POST", "/api/traces", {
        "host": host, "kind": "funclat", "duration_s": 3, "binary": "/bin/true",
        "symbols": ["no_such_function_here"]})
    assert status == 400 and "symbols" in body["errors"], body
    status, body = api.call("GET", f"/api/hosts/{host}/processes")
    assert status == 200 and any(p["pid"] == os.getpid() for p in body["processes"])
