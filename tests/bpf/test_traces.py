"""Targeted traces through TraceManager, in-process, against ground-truth workloads.

- funclat: probes.c's slow_call() sleeps 2 ms and is called 100 times a
  second, so its histogram peaks in [2048, 4096) us at ~100 calls/s; a
  function that is always running is counted however the attach falls, and
  a recursion (also past the kernel's 64 pending returns) is one call each;
- usdt / tracepoint: probes.c fires webprof:tick and getppid() exactly N
  times through main -> run_fire -> probe_burst;
- cpu, offcpu, syscall, runqlat, biolat: the workloads of the other tests,
  with the same truths, each through one trace with its target or filter;
- refusals: each bad request fails with the right per-field error;
- clean-up: uprobe / tracepoint attachments of this process (bpftool perf
  list) return to the baseline after cancel, finish, errors and close();
- cgroup: a workload in a fresh cgroup v2 directory is seen, one outside not.
"""

from __future__ import annotations

import asyncio
import json
import mmap
import os
import subprocess
import time
from pathlib import Path

import pytest

from collectors import histogram
from tests.bpf.test_cpu import DESIGN as CPU_DESIGN
from tests.bpf.test_cpu import check_shares
from tests.bpf.test_latency import block_disk
from tests.bpf.test_offcpu import DESIGN as OFFCPU_DESIGN
from tests.bpf.test_offcpu import worker_shares
from tests.conftest import require_bpf
from webprof.core.protocol import LatencyDelta, ProfileDelta, decode, encode
from webprof.core.trace_messages import FINAL_STATES, TraceStart, TraceState

pytestmark = pytest.mark.bpf

WORKLOADS = Path(__file__).parent / "workloads"
CFLAGS = ["-O0", "-fno-omit-frame-pointer", "-fno-inline", "-Wall", "-pthread"]
SLEEP_BUCKET = [2048, 4096]
FIRE_PATH = ["main", "run_fire", "probe_burst"]
N_FIRES = 500


@pytest.fixture(autouse=True)
def _bpf() -> None:
    require_bpf()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("trace-workloads")
    sources = {"probes": ["probes.c", "probes_guarded.c"], "sleeper": ["sleeper.c"],
               "runq_hog": ["runq_hog.c"], "offcpu_split": ["offcpu_split.c"],
               "cpu_shares": ["cpu_shares.c"]}
    for name, files in sources.items():
        subprocess.run(["gcc", *CFLAGS, "-o", str(out / name),
                        *(str(WORKLOADS / f) for f in files)], check=True)
    return {name: str(out / name) for name in sources}


def perf_attachments() -> list[dict]:
    """uprobes, uretprobes and tracepoints with a BPF program, held by this process."""
    run = subprocess.run(["bpftool", "-j", "perf", "list"], capture_output=True, text=True,
                         check=True)
    return [e for e in json.loads(run.stdout or "[]") if e.get("pid") == os.getpid()]


class Driver:
    """Runs a TraceManager as the runner does: drain every second, keep everything."""

    def __init__(self, **options) -> None:
        from collectors.traces import TraceManager

        self.manager = TraceManager("testhost", interval_ms=1000, **options)
        self.messages: list = []

    def start(self, trace_id: int, **spec) -> None:
        self.manager.start(TraceStart(trace_id=trace_id, spec=spec))
        self.messages += self.manager.messages()

    def tick(self) -> None:
        time.sleep(1)
        self.messages += self.manager.drain()

    def states(self, trace_id: int) -> list[TraceState]:
        return [m for m in self.messages if isinstance(m, TraceState) and m.trace_id == trace_id]

    def state(self, trace_id: int) -> str | None:
        states = self.states(trace_id)
        return states[-1].state if states else None

    def wait_for(self, trace_id: int, wanted: tuple[str, ...], limit_s: float = 60) -> str:
        deadline = time.monotonic() + limit_s
        while self.state(trace_id) not in wanted and time.monotonic() < deadline:
            self.tick()
        assert self.state(trace_id) in wanted, self.states(trace_id)
        return self.state(trace_id)

    def run(self, trace_id: int, **spec) -> list:
        """Start, run to a final state; the trace's deltas (each checked)."""
        self.start(trace_id, **spec)
        assert self.wait_for(trace_id, FINAL_STATES) == "finished", self.states(trace_id)
        return self.deltas(trace_id)

    def deltas(self, trace_id: int) -> list:
        out = [m for m in self.messages if isinstance(m, (ProfileDelta, LatencyDelta))
               and m.trace_id == trace_id]
        for delta in out:
            assert decode(encode(delta)) == delta
        return out


def merged_series(deltas: list[LatencyDelta]) -> dict[str, list[list[int]]]:
    series: dict[str, list[list[int]]] = {}
    for delta in deltas:
        for name, buckets in delta.series.items():
            series[name] = histogram.merge(series.get(name, []), buckets)
    return series


def contains_run(frames: list[str], run: list[str]) -> bool:
    return any(frames[i:i + len(run)] == run for i in range(len(frames) - len(run) + 1))


# -- funclat, usdt, tracepoint ------------------------------------------------------
def test_funclat_peak_bucket_and_calls_per_second(built: dict[str, str]) -> None:
    proc = subprocess.Popen([built["probes"], "funclat", "60"], stdout=subprocess.DEVNULL)
    try:
        driver = Driver()
        deltas = driver.run(1, kind="funclat", duration_s=3, target="pid", pid=proc.pid,
                            binary=built["probes"], symbols=["slow_call"])
    finally:
        proc.kill()
        proc.wait()
    states = [s.state for s in driver.states(1)]
    assert states[:3] == ["queued", "compiling", "running"] and states[-1] == "finished"
    running = [s for s in driver.states(1) if s.state == "running"][1:]
    assert running and all(s.elapsed_ms + s.remaining_ms == 3000 for s in running)
    assert all(d.kind == "funclat" and d.trace_id == 1 for d in deltas)
    calls = merged_series(deltas)["slow_call"]
    assert histogram.peak(calls)[:2] == SLEEP_BUCKET, calls
    seconds = sum(d.interval_ms for d in deltas) / 1000
    assert 90 <= histogram.total(calls) / seconds <= 110, (calls, seconds)


# A function that is nearly always running (2 ms sleeps back to back: a probe
# attached at a random moment lands mid-call almost surely), and a recursion
# run on demand: ``recurse DEPTH N`` prints "ready", waits for a line, makes N
# outermost calls of descend(DEPTH) (3 ms of sleep at the bottom: bucket
# [2048, 4096) us), prints "done" and waits for stdin to close.
FUNCLAT_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void sleep_us(long us) {
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, 0);
}

__attribute__((noinline)) void always_busy(void) { sleep_us(2000); }

/* A function the kernel refuses to probe: it starts with a trap (never called). */
__asm__(".text\n.globl unprobeable\n.type unprobeable, @function\n"
        "unprobeable:\n\tint3\n\tret\n.size unprobeable, .-unprobeable\n");

__attribute__((noinline)) int descend(int depth) {
    if (depth <= 1) { sleep_us(3000); return 1; }
    return 1 + descend(depth - 1);
}

int main(int argc, char **argv) {
    char line[16];
    if (argc == 2 && strcmp(argv[1], "busy") == 0)
        for (;;) always_busy();
    if (argc != 4 || strcmp(argv[1], "recurse") != 0) return 2;
    int depth = atoi(argv[2]), n = atoi(argv[3]);
    printf("ready\n"); fflush(stdout);
    if (!fgets(line, sizeof line, stdin)) return 1;
    for (int i = 0; i < n; i++)
        if (descend(depth) != depth) return 1;
    printf("done\n"); fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {}
    return 0;
}
"""


@pytest.fixture(scope="module")
def funclat_binary(tmp_path_factory: pytest.TempPathFactory) -> str:
    src = tmp_path_factory.mktemp("funclat") / "funclat_calls.c"
    src.write_text(FUNCLAT_C)
    out = src.with_suffix("")
    subprocess.run(["gcc", *CFLAGS, "-o", str(out), str(src)], check=True)
    return str(out)


def test_funclat_attached_mid_call_counts_every_later_call(funclat_binary: str) -> None:
    """Regression: attaching while the function runs (a call entered between
    the entry and the return probe, whose return is never seen) used to make
    every later call look nested inside it: whole runs came back empty, about
    one attach in two on this workload.  Each fresh workload and collector,
    by pid and system-wide, must see the ~470 calls a second."""
    from collectors.funclat import FuncLatCollector

    for attempt in range(6):
        proc = subprocess.Popen([funclat_binary, "busy"])  # attached right after exec
        try:
            pid = proc.pid if attempt % 2 == 0 else None
            with FuncLatCollector(funclat_binary, ["always_busy"], pid=pid) as collector:
                time.sleep(1)
                delta = collector.drain()
        finally:
            proc.kill()
            proc.wait()
        calls = delta.series.get("always_busy", [])
        rate = histogram.total(calls) / (delta.interval_ms / 1000)
        assert 300 <= rate <= 520, (attempt, pid, delta.series, delta.health)
        assert histogram.peak(calls)[:2] == SLEEP_BUCKET, calls


def test_funclat_refused_probe_leaves_nothing_behind(funclat_binary: str) -> None:
    """A symbol that exists but cannot be probed fails the attach with a clear
    error; the probes attached before it and bcc's tracefs fallback event
    are all gone."""
    from collectors.bcc_env import bcc_uprobe_events
    from collectors.funclat import FuncLatCollector

    before = perf_attachments()
    proc = subprocess.Popen([funclat_binary, "busy"])  # maps the binary: the kernel checks
    try:
        time.sleep(0.2)
        with pytest.raises(RuntimeError, match="kernel refused a return probe on unprobeable"):
            with FuncLatCollector(funclat_binary, ["always_busy", "unprobeable"]):
                pass
    finally:
        proc.kill()
        proc.wait()
    assert perf_attachments() == before and bcc_uprobe_events() == set()


@pytest.mark.parametrize("depth", [10, 100])
def test_funclat_recursion_is_one_call_even_past_the_return_limit(funclat_binary: str,
                                                                  depth: int) -> None:
    """Each outermost descend() is one call with its whole duration.  At depth
    100 the kernel hooks only the first 64 returns of the thread; the
    outermost return is among them, so every call is still counted exactly."""
    from collectors.funclat import FuncLatCollector

    calls = 200
    proc = subprocess.Popen([funclat_binary, "recurse", str(depth), str(calls)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with FuncLatCollector(funclat_binary, ["descend"], pid=proc.pid) as collector:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "done"
            delta = collector.drain()
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
        proc.stdout.close()
    series = delta.series.get("descend", [])
    assert histogram.total(series) == calls, (series, delta.health)
    assert histogram.peak(series)[:2] == SLEEP_BUCKET, series


def fire_trace(built: dict[str, str], trace_id: int, **spec) -> tuple[Driver, list, int]:
    """Run ``probes fire N`` once the trace runs; returns its deltas and the pid."""
    proc = subprocess.Popen([built["probes"], "fire", str(N_FIRES)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        driver = Driver()
        spec = {k: (proc.pid if v == "PID" else v) for k, v in spec.items()}
        driver.start(trace_id, duration_s=3, **spec)
        assert driver.wait_for(trace_id, ("running", *FINAL_STATES)) == "running"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done"
        assert driver.wait_for(trace_id, FINAL_STATES) == "finished"
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
        proc.stdout.close()
    return driver, driver.deltas(trace_id), proc.pid


def test_usdt_probe_counts_and_stack(built: dict[str, str]) -> None:
    _, deltas, pid = fire_trace(built, 2, kind="usdt", binary=built["probes"],
                                probe="webprof:tick", target="pid", pid="PID")
    stacks = [(p, f, w) for d in deltas for p, _, f, w in d.iter_stacks()]
    assert all(d.kind == "usdt" and d.trace_id == 2 for d in deltas)
    assert sum(w for _, _, w in stacks) == N_FIRES, stacks
    for p, frames, _ in stacks:
        assert p == pid and contains_run(frames, [*FIRE_PATH, "fire_tick"]), frames


def test_tracepoint_hits_and_stack(built: dict[str, str]) -> None:
    _, deltas, pid = fire_trace(built, 3, kind="tracepoint",
                                tracepoint="syscalls:sys_enter_getppid")
    ours = [(f, w) for d in deltas for p, _, f, w in d.iter_stacks() if p == pid]
    assert all(d.kind == "tracepoint" for d in deltas)
    assert sum(w for _, w in ours) >= N_FIRES, ours
    for frames, _ in ours:
        assert contains_run(frames, FIRE_PATH), frames
        assert any(f.endswith("_[k]") for f in frames), frames  # the kernel side too


# -- the live kinds, as traces ----------------------------------------------------------
def test_cpu_trace_of_one_pid(built: dict[str, str]) -> None:
    proc = subprocess.Popen([built["cpu_shares"], "60"], stdout=subprocess.DEVNULL)
    other = subprocess.Popen([built["cpu_shares"], "60"], stdout=subprocess.DEVNULL)
    try:
        deltas = Driver().run(4, kind="cpu", duration_s=3, target="pid", pid=proc.pid,
                              frequency_hz=499)
    finally:
        for p in (proc, other):
            p.kill()
            p.wait()
    stacks = [(p, f, w) for d in deltas for p, _, f, w in d.iter_stacks()]
    assert {p for p, _, _ in stacks} == {proc.pid}
    check_shares([(f, w) for _, f, w in stacks], CPU_DESIGN, min_samples=500)


def test_offcpu_trace_of_one_pid(built: dict[str, str]) -> None:
    proc = subprocess.Popen([built["offcpu_split"], "60"], stdout=subprocess.DEVNULL)
    try:
        deltas = Driver().run(5, kind="offcpu", duration_s=4, target="pid", pid=proc.pid,
                              min_block_us=1)
    finally:
        proc.kill()
        proc.wait()
    stacks = [(f, us) for d in deltas for p, _, f, us in d.iter_stacks()]
    assert all(p == proc.pid for d in deltas for p, *_ in d.iter_stacks())
    shares = worker_shares(stacks, min_us=1_000_000)
    for fn, share in OFFCPU_DESIGN.items():
        assert abs(shares[fn] - share) <= 0.07, shares


def test_syscall_trace_with_names_filter(built: dict[str, str]) -> None:
    proc = subprocess.Popen([built["sleeper"], "60"], stdout=subprocess.DEVNULL)
    try:
        deltas = Driver().run(6, kind="syscall", duration_s=2, target="pid", pid=proc.pid,
                              syscalls=["clock_nanosleep"])
    finally:
        proc.kill()
        proc.wait()
    series = merged_series(deltas)
    assert set(series) == {"clock_nanosleep"}, sorted(series)  # clock_gettime is vdso
    assert histogram.peak(series["clock_nanosleep"])[:2] == SLEEP_BUCKET
    assert histogram.total(series["clock_nanosleep"]) >= 500


def test_runqlat_trace_of_one_pid(built: dict[str, str]) -> None:
    threads = max(8, 4 * (os.cpu_count() or 1))
    hog = subprocess.Popen([built["runq_hog"], str(threads), "60"])
    try:
        time.sleep(0.5)
        deltas = Driver().run(7, kind="runqlat", duration_s=3, target="pid", pid=hog.pid)
    finally:
        hog.kill()
        hog.wait()
    series = merged_series(deltas)
    assert set(series) <= {"all", "runq_hog"}, sorted(series)
    p50 = histogram.percentile(series["runq_hog"], 0.5)
    assert p50 is not None and p50 >= 1000, series


def test_biolat_trace_of_one_device(tmp_path: Path) -> None:
    for where in (tmp_path, Path("/var/tmp"), Path("/root")):
        disk = block_disk(where)
        if disk:
            break
    assert disk, "no directory on a block device among tmp, /var/tmp, /root"
    if disk.startswith("dm-"):
        pytest.skip(f"{disk} is device-mapper: requests are counted on its member disks")
    driver = Driver()
    driver.start(8, kind="biolat", duration_s=3, device=disk)
    assert driver.wait_for(8, ("running", *FINAL_STATES)) == "running"
    target = where / f"webprof-trace-dio-{os.getpid()}.bin"
    block = mmap.mmap(-1, 65536)
    block.write(os.urandom(65536))
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
    try:
        for _ in range(64):
            assert os.write(fd, block) == len(block)
        os.fsync(fd)
    finally:
        os.close(fd)
        target.unlink()
    assert driver.wait_for(8, FINAL_STATES) == "finished"
    series = merged_series(driver.deltas(8))
    assert series and all(name.startswith(f"{disk}:") for name in series), sorted(series)
    assert histogram.total(series.get(f"{disk}:write", [])) >= 64, series


# -- refusals ------------------------------------------------------------------------
def free_pid() -> int:
    pid = 4_000_000
    while os.path.exists(f"/proc/{pid}"):
        pid += 1
    return pid


REFUSALS = {
    "missing pid": ({"kind": "cpu", "target": "pid", "pid": "FREE"}, "pid", "no process"),
    "missing binary": ({"kind": "funclat", "binary": "/nonexistent/app", "symbols": ["f"]},
                       "binary", "no file"),
    "not ELF": ({"kind": "funclat", "binary": "/etc/passwd", "symbols": ["f"]}, "binary",
                "not an ELF file"),
    "directory": ({"kind": "funclat", "binary": "/usr/bin", "symbols": ["f"]}, "binary",
                  "not a regular file"),
    "symbol": ({"kind": "funclat", "binary": "PROBES", "symbols": ["slow_call", "nope"]},
               "symbols", "'nope' is not a function"),
    "syscall": ({"kind": "syscall", "syscalls": ["read", "frobnicate"]}, "syscalls",
                "unknown system call 'frobnicate'"),
    "device": ({"kind": "biolat", "device": "nosuchdisk0"}, "device", "no block device"),
    "tracepoint": ({"kind": "tracepoint", "tracepoint": "sched:no_such_event"}, "tracepoint",
                   "no tracepoint"),
    "usdt probe": ({"kind": "usdt", "binary": "PROBES", "probe": "webprof:nope"}, "probe",
                   "webprof:tick"),
    "usdt semaphore": ({"kind": "usdt", "binary": "PROBES", "probe": "webprof_guarded:hit"},
                       "probe", "semaphore"),
    "biolat by pid": ({"kind": "biolat", "target": "pid", "pid": "SELF"}, "target",
                      "cannot be filtered by process"),
    "cgroup": ({"kind": "cpu", "target": "cgroup", "cgroup": "NOGROUP"},
               "cgroup", "no cgroup"),
    "injection": ({"kind": "funclat", "binary": "PROBES", "symbols": ["f'; drop"]}, "symbols",
                  "not valid"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_fail_with_the_field_error(built: dict[str, str], case: str) -> None:
    spec, field, words = REFUSALS[case]
    from collectors.tracecheck import cgroup2_roots

    values = {"FREE": free_pid(), "SELF": os.getpid(), "PROBES": built["probes"],
              "NOGROUP": f"{(cgroup2_roots() or ['/sys/fs/cgroup'])[0]}/no-such-group"}
    spec = {k: values.get(v, v) if isinstance(v, str) else v for k, v in spec.items()}
    before = perf_attachments()
    driver = Driver()
    driver.start(20, duration_s=5, **spec)
    (state,) = driver.states(20)
    assert state.state == "failed" and words in state.errors.get(field, ""), state
    assert state.reason.startswith("refused by the collector") and len(state.reason) <= 500
    assert driver.manager.active() == [] and perf_attachments() == before


# -- cancel and clean-up ------------------------------------------------------------------
def test_attachments_return_to_baseline(built: dict[str, str]) -> None:
    from collectors.funclat import FuncLatCollector

    baseline = len(perf_attachments())
    proc = subprocess.Popen([built["probes"], "funclat", "120"], stdout=subprocess.DEVNULL)
    spec = {"kind": "funclat", "binary": built["probes"], "symbols": ["slow_call", "now_s"]}
    try:
        driver = Driver()
        # cancel while running
        driver.start(30, duration_s=60, **spec)
        assert driver.wait_for(30, ("running",)) == "running"
        assert len(perf_attachments()) == baseline + 4  # 2 uprobes + 2 uretprobes
        assert driver.manager.cancel(30)
        driver.messages += driver.manager.messages()
        assert driver.state(30) == "cancelled" and len(perf_attachments()) == baseline
        # normal finish
        driver.start(31, duration_s=1, **spec)
        assert driver.wait_for(31, FINAL_STATES) == "finished"
        assert len(perf_attachments()) == baseline
        # close(): the server connection dropped; nothing more is reported
        driver.start(32, duration_s=60, **spec)
        driver.start(33, duration_s=60, kind="tracepoint", tracepoint="sched:sched_switch")
        driver.wait_for(32, ("running",))
        driver.wait_for(33, ("running",))
        assert len(perf_attachments()) == baseline + 5
        driver.manager.close()
        assert len(perf_attachments()) == baseline
        assert driver.manager.drain() == [] and driver.manager.active() == []
    finally:
        proc.kill()
        proc.wait()

    class BrokenDrain(FuncLatCollector):
        def drain(self):
            raise RuntimeError("map read failed")

    def broken(spec, facts, host, interval_ms):
        return BrokenDrain(facts.binary, spec.symbols, interval_ms=interval_ms, host=host)

    def bad_attach(spec, facts, host, interval_ms):  # the second symbol is not there
        return FuncLatCollector(facts.binary, [*spec.symbols, "not_a_symbol"], host=host)

    for trace_id, make, words in ((34, broken, "reading the results failed: map read"),
                                  (35, bad_attach, "could not start")):
        driver = Driver(make=make)
        driver.start(trace_id, duration_s=30, **spec)
        assert driver.wait_for(trace_id, FINAL_STATES) == "failed"
        assert words in driver.states(trace_id)[-1].reason
        assert len(perf_attachments()) == baseline


def test_queued_beyond_the_concurrency_limit(built: dict[str, str]) -> None:
    driver = Driver(max_active=1)
    driver.start(40, duration_s=1, kind="tracepoint", tracepoint="sched:sched_switch")
    driver.start(41, duration_s=1, kind="tracepoint", tracepoint="sched:sched_wakeup")
    assert driver.state(40) == "compiling" and driver.state(41) == "queued"
    assert driver.wait_for(40, FINAL_STATES) == "finished"
    assert driver.wait_for(41, FINAL_STATES) == "finished"
    first_41_compiling = next(i for i, m in enumerate(driver.messages)
                              if getattr(m, "trace_id", 0) == 41 and m.state == "compiling")
    finished_40 = next(i for i, m in enumerate(driver.messages)
                       if getattr(m, "trace_id", 0) == 40 and getattr(m, "state", "") == "finished")
    assert finished_40 < first_41_compiling


# -- cgroup target ---------------------------------------------------------------------------
def test_cgroup_target_sees_only_its_members(built: dict[str, str]) -> None:
    from collectors.tracecheck import cgroup2_roots

    roots = cgroup2_roots()
    assert roots, "no cgroup v2 hierarchy under /sys/fs/cgroup"
    group = Path(roots[0], f"webprof-test-{os.getpid()}")
    group.mkdir()
    inside = subprocess.Popen([built["cpu_shares"], "60"], stdout=subprocess.DEVNULL)
    outside = subprocess.Popen([built["cpu_shares"], "60"], stdout=subprocess.DEVNULL)
    try:
        (group / "cgroup.procs").write_text(f"{inside.pid}\n")
        deltas = Driver().run(50, kind="cpu", duration_s=2, target="cgroup",
                              cgroup=str(group), frequency_hz=199)
    finally:
        for p in (inside, outside):
            p.kill()
            p.wait()
        for _ in range(50):  # the killed member leaves the group asynchronously
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)
    pids = {p for d in deltas for p, *_ in d.iter_stacks()}
    # The filter compares bpf_get_current_cgroup_id() with the directory's inode
    # number: seeing the member proves the kernel's id is that number.
    assert pids == {inside.pid}, (pids, inside.pid, outside.pid)
    assert not group.exists()


# -- runner: trace.start through the uplink ------------------------------------------------
def test_runner_pushes_states_deltas_and_answers(built: dict[str, str]) -> None:
    from collectors.client import Uplink
    from collectors.runner import TraceDesk
    from collectors.traces import TraceManager
    from webprof.core.protocol import CollectorHello
    from webprof.core.trace_messages import CollectorQuery

    async def scenario() -> list[dict]:
        desk = TraceDesk(TraceManager("testhost", 1000))
        hello = CollectorHello(host="testhost", kernel="k", collectors=[], frequency_hz=49,
                               interval_ms=1000, agent_version="t")
        uplink = Uplink("ws://127.0.0.1:9/ws/collector/", "token", hello,
                        buffer_intervals=1000, on_trace=desk.on_message,
                        on_disconnect=desk.on_disconnect)
        desk.uplink = uplink
        uplink._handle(encode(TraceStart(trace_id=60, spec={
            "kind": "tracepoint", "tracepoint": "sched:sched_switch", "duration_s": 2})))
        uplink._handle(encode(CollectorQuery(query_id=7, what="usdt_probes",
                                             args={"binary": built["probes"]})))
        for _ in range(30):
            await asyncio.sleep(1)
            await desk.drain()
            if any('"state":"finished"' in text for text in uplink.buffer):
                break
        await asyncio.sleep(0)
        return [json.loads(text) for text in uplink.buffer]

    sent = asyncio.run(scenario())
    states = [m["state"] for m in sent if m["type"] == "trace.state"]
    assert states[:3] == ["queued", "compiling", "running"] and states[-1] == "finished"
    deltas = [m for m in sent if m["type"] == "profile.delta"]
    assert deltas and all(m["trace_id"] == 60 and m["kind"] == "tracepoint" for m in deltas)
    assert sum(e[2] for m in deltas for e in m["stacks"]) > 0
    (reply,) = [m for m in sent if m["type"] == "collector.answer"]
    assert reply["query_id"] == 7 and reply["result"]["semaphores"] == ["webprof_guarded:hit"]

