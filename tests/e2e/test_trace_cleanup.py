"""Cancel and clean-up of targeted traces, end to end.

Real parts only: a daphne of the test's own (so it can be killed), a
``webprof collect`` process running the live ``cpu`` and ``syscall``
collectors, traces started over HTTP with an API token, and a compiled
workload: ``webprof_cleanup_call`` sleeps 2 ms in a loop (it is always being
called), and ``webprof_unprobeable`` starts with a trap instruction, so the
kernel refuses a probe on it although the symbol table lists it.

What the collector process holds is read from the kernel, not from the
collector: ``bpftool -j perf list`` (every uprobe, uretprobe and tracepoint
with a BPF program, with the pid holding it) and /proc/<pid>/fd + fdinfo
(BPF programs and perf events held).  The live collectors' share is the
baseline: it must stay attached, unchanged, through every case, and every
trace must return the counts to it:

- a funclat (uprobe + uretprobe) and a tracepoint trace, cancelled over HTTP;
- the same two, then the server killed: the collector sees the connection
  drop and detaches both (how long it took is printed);
- a funclat trace whose second function cannot be probed: failed, nothing
  left, not even bcc's tracefs fallback event.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2eproc import ROOT, Collector, Daphne, start_collector, stop_process
from test_api_traces import Api

from tests.conftest import require_bpf

pytestmark = pytest.mark.e2e

CONNECT_WAIT_S = 60  # the collector compiles its live programs before it says hello
RUNNING_WAIT_S = 60  # compiles take 1-3 s of CPU each on 2 cores
DETACH_WAIT_S = 5  # cancel -> trace.cancel -> BPF.cleanup()
DISCONNECT_WAIT_S = 10  # the kill is seen at once (the kernel closes the socket)
UPROBE_EVENTS = "/sys/kernel/tracing/uprobe_events"

WORKLOAD_C = r"""
#include <time.h>

/* The kernel refuses to probe a function that starts with a trap. */
__asm__(".text\n.globl webprof_unprobeable\n.type webprof_unprobeable, @function\n"
        "webprof_unprobeable:\n\tint3\n\tret\n"
        ".size webprof_unprobeable, .-webprof_unprobeable\n");

__attribute__((noinline)) void webprof_cleanup_call(void) {
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, 0);
}

int main(void) {
    for (;;) webprof_cleanup_call();
}
"""
CALL = "webprof_cleanup_call"


@dataclass(frozen=True)
class Held:
    """What one process holds in the kernel."""

    perf: frozenset[tuple]  # bpftool perf list entries: (fd, prog_id, type, target)
    progs: frozenset[int]  # ids of the BPF programs it holds an fd of
    perf_fds: int  # perf event fds (cpu-clock samplers, uprobes, tracepoints)

    def added(self, baseline: Held) -> list[tuple]:
        return sorted(self.perf - baseline.perf, key=lambda e: e[2])


def held(pid: int) -> Held:
    out = subprocess.run(["bpftool", "-j", "perf", "list"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    perf = frozenset(
        (e["fd"], e["prog_id"], e["fd_type"], e.get("tracepoint") or e.get("filename"),
         e.get("offset"))
        for e in json.loads(out or "[]") if e.get("pid") == pid)
    progs, perf_fds = set(), 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target == "anon_inode:bpf-prog":
                info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
                progs.add(int(info.split("prog_id:")[1].split()[0]))
            elif target == "anon_inode:[perf_event]":
                perf_fds += 1
        except OSError:
            continue  # closed while we looked
    return Held(perf, frozenset(progs), perf_fds)


def online_cpus() -> int:
    """CPUs in /sys/devices/system/cpu/online ("0-1,4")."""
    text = Path("/sys/devices/system/cpu/online").read_text().strip()
    ranges = [part.split("-") for part in text.split(",")]
    return sum(int(r[-1]) - int(r[0]) + 1 for r in ranges)


def bcc_uprobe_events(pid: int) -> list[str]:
    """tracefs uprobe events bcc defined for process ``pid`` (names end in _bcc_<pid>)."""
    with open(UPROBE_EVENTS) as f:
        return [line for line in f if line.split(" ", 1)[0].endswith(f"_bcc_{pid}")]


def wait_until(what: str, check: Any, limit_s: float) -> float:
    """Poll ``check()`` every 50 ms; the seconds it took to become true."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < limit_s, f"{what}: not within {limit_s} s"
        time.sleep(0.05)
    return time.monotonic() - start


@dataclass
class Desk:
    server: Daphne
    api: Api
    collector: Collector
    host: str

    @property
    def pid(self) -> int:
        return self.collector.proc.pid

    def start(self, **spec: Any) -> int:
        status, body = self.api.call("POST", "/api/traces",
                                     {"host": self.host, "duration_s": 600, **spec})
        assert status == 201, body
        return body["id"]

    def trace(self, trace_id: int) -> dict[str, Any]:
        return self.api.get(f"/api/traces/{trace_id}")

    def wait_state(self, trace_id: int, states: tuple[str, ...]) -> dict[str, Any]:
        deadline = time.monotonic() + RUNNING_WAIT_S
        while (body := self.trace(trace_id))["state"] not in states:
            assert body["state"] not in ("finished", "cancelled", "failed"), body
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        return body

    def connected(self) -> bool:
        return any(h["name"] == self.host and h["connected"]
                   for h in self.api.get("/api/hosts")["hosts"])


def api_for(server: Daphne) -> Api:
    """A user with webprof.start_traces and a token from `webprof token create`."""
    code = (
        "from django.contrib.auth import get_user_model;"
        "from django.contrib.auth.models import Permission;"
        "u = get_user_model().objects.create_user('cleaner', password='x-12345678');"
        "u.user_permissions.add(Permission.objects.get(codename='start_traces'))"
    )
    server.manage("shell", "-c", code)
    out = subprocess.run([sys.executable, "-m", "webprof.cli", "token", "create", "cleaner"],
                         env=server.env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return Api(server.url, token=out.stdout.strip())


@pytest.fixture
def desk(own_server: Daphne, tmp_path: Path) -> Iterator[Desk]:
    require_bpf()
    if own_server.token.startswith("-"):
        # start_collector passes "--token TOKEN": argparse reads "-..." as an option.
        own_server.stop()
        own_server.token = "t" + own_server.token
        own_server.start()
    api = api_for(own_server)
    name = f"clean-{secrets.token_hex(3)}"
    collector = start_collector(own_server, name, tmp_path / "collector.log", interval_s=0.5,
                                collectors="cpu,syscall")
    desk = Desk(own_server, api, collector, name)
    try:
        deadline = time.monotonic() + CONNECT_WAIT_S
        while not desk.connected():
            assert collector.proc.poll() is None, collector.output()
            assert time.monotonic() < deadline, f"no hello in time:\n{collector.output()}"
            time.sleep(0.2)
        yield desk
    finally:
        stop_process(collector.proc)


@pytest.fixture
def workload(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    src = tmp_path / "cleanup.c"
    src.write_text(WORKLOAD_C)
    binary = tmp_path / "wp_cleanup"
    subprocess.run(["cc", "-O0", "-fno-omit-frame-pointer", "-fno-inline", "-o", str(binary),
                    str(src)], check=True, timeout=60)
    proc = subprocess.Popen([str(binary)])
    yield str(binary), proc
    proc.kill()
    proc.wait()


def baseline_of(desk: Desk) -> Held:
    """The live collectors' attachments: cpu-clock samplers and syscall tracepoints."""
    base = held(desk.pid)
    assert base.progs and base.perf_fds >= 1, base  # cpu is attached
    kinds = {e[2] for e in base.perf}
    assert kinds == {"tracepoint"}, base.perf  # syscall's raw_syscalls enter/exit
    return base


def start_both(desk: Desk, binary: str, pid: int, base: Held) -> tuple[int, int]:
    """A funclat trace of one pid and a system-wide tracepoint trace, running."""
    funclat = desk.start(kind="funclat", target="pid", pid=pid, binary=binary, symbols=[CALL])
    tracepoint = desk.start(kind="tracepoint", tracepoint="sched:sched_switch")
    for trace_id in (funclat, tracepoint):
        desk.wait_state(trace_id, ("running",))
    now = held(desk.pid)
    added = now.added(base)
    assert [e[2] for e in added] == ["tracepoint", "uprobe", "uretprobe"], added
    assert added[0][3] == "sched_switch" and added[1][3].endswith(binary), added
    assert base.perf <= now.perf and base.progs <= now.progs  # the live ones stay
    # Three programs; perf events: the three probes plus the tracepoint trace's
    # per-CPU ring of new task names (it symbolizes stacks as the cpu collector).
    assert len(now.progs - base.progs) == 3, (now, base)
    assert now.perf_fds == base.perf_fds + 3 + online_cpus(), (now, base)
    return funclat, tracepoint


def test_cancel_detaches_uprobes_and_tracepoints(desk: Desk, workload) -> None:
    binary, proc = workload
    base = baseline_of(desk)
    funclat, tracepoint = start_both(desk, binary, proc.pid, base)
    # The probes fire: the trace's session fills with calls of the function.
    session = desk.trace(funclat)["session_url"]
    wait_until("funclat results", lambda: CALL in json.dumps(
        desk.api.get(f"{session}latency.json?kind=funclat")), RUNNING_WAIT_S)

    for trace_id in (funclat, tracepoint):
        status, body = desk.api.call("POST", f"/api/traces/{trace_id}/cancel")
        assert status == 200, body
    took = wait_until("back to the baseline after cancel", lambda: held(desk.pid) == base,
                      DETACH_WAIT_S)
    print(f"cancel: detached in {took:.2f} s")
    for trace_id in (funclat, tracepoint):
        assert desk.wait_state(trace_id, ("cancelled",))["state"] == "cancelled"
    status, _ = desk.api.call("POST", f"/api/traces/{funclat}/cancel")
    assert status == 409  # already final
    time.sleep(1.5)  # three more intervals: nothing comes back
    assert held(desk.pid) == base and desk.connected()


def test_disconnect_detaches_every_trace(desk: Desk, workload) -> None:
    binary, proc = workload
    base = baseline_of(desk)
    funclat, tracepoint = start_both(desk, binary, proc.pid, base)

    desk.server.stop(signal.SIGKILL)
    took = wait_until("back to the baseline after the server died",
                      lambda: held(desk.pid) == base, DISCONNECT_WAIT_S)
    print(f"disconnect: detached {took:.2f} s after the server was killed")
    assert desk.collector.proc.poll() is None  # it keeps collecting and reconnecting
    assert "reconnecting" in desk.collector.output()

    # The server comes back: the collector reconnects, the traces stay stopped
    # (the server failed them: they ran while it was gone) and nothing re-attaches.
    desk.server.start()
    wait_until("reconnected", desk.connected, CONNECT_WAIT_S)
    for trace_id in (funclat, tracepoint):
        body = desk.trace(trace_id)
        assert body["state"] == "failed", body
    time.sleep(1.5)
    assert held(desk.pid) == base


def test_refused_attach_leaves_nothing(desk: Desk, workload) -> None:
    binary, _proc = workload  # running: the kernel checks the probe where it is mapped
    base = baseline_of(desk)
    # Both symbols are functions of the binary (the collector's check passes);
    # the kernel refuses the second after the first was attached.
    trace_id = desk.start(kind="funclat", binary=binary, duration_s=30,
                          symbols=[CALL, "webprof_unprobeable"])
    body = desk.wait_state(trace_id, ("failed",))
    assert "could not start" in body["reason"], body
    assert "refused a return probe on webprof_unprobeable" in body["reason"], body
    assert held(desk.pid) == base
    assert bcc_uprobe_events(desk.pid) == []  # bcc's tracefs fallback removed too
    assert desk.connected()
