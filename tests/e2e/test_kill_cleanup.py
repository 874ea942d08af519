"""kill -9 of a collector leaves nothing in the kernel, and the next collector
removes what dead collectors left in tracefs.

While the live ``cpu`` and ``syscall`` collectors and a funclat (uprobe +
uretprobe) trace run, the ids of every BPF program and map the collector
holds are read from /proc/<pid>/fdinfo.  After SIGKILL the kernel must have
freed them all (``bpftool prog/map show id``), no perf attachment may point
at the workload, and no tracefs event named after the collector's pid may
remain.  Ids are checked rather than system-wide counts: other tests on the
machine load and free programs at the same time.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import test_trace_cleanup as cleanup
from e2eproc import start_collector
from test_trace_cleanup import (
    CALL,
    CONNECT_WAIT_S,
    UPROBE_EVENTS,
    Desk,
    bcc_uprobe_events,
    wait_until,
)

from tests.conftest import require_bpf

pytestmark = pytest.mark.e2e
desk, workload = cleanup.desk, cleanup.workload  # the fixtures, shared

FREE_WAIT_S = 10  # the kernel frees programs after an RCU grace period
DEAD_PID = 999_999


def bpf_ids(pid: int) -> tuple[set[int], set[int], int]:
    """(program ids, map ids, perf event fds) process ``pid`` holds."""
    progs, maps, perf = set(), set(), 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        if target == "anon_inode:bpf-prog":
            progs.add(int(info.split("prog_id:")[1].split()[0]))
        elif target == "anon_inode:bpf-map":
            maps.add(int(info.split("map_id:")[1].split()[0]))
        elif target == "anon_inode:[perf_event]":
            perf += 1
    return progs, maps, perf


def exists(what: str, object_id: int) -> bool:
    out = subprocess.run(["bpftool", what, "show", "id", str(object_id)],
                         capture_output=True, text=True, timeout=30)
    return out.returncode == 0


def perf_targets() -> str:
    return subprocess.run(["bpftool", "perf", "list"], capture_output=True, text=True,
                          check=True, timeout=30).stdout


def test_kill_9_leaves_no_programs_maps_or_probes(desk: Desk, workload) -> None:
    binary, proc = workload
    trace_id = desk.start(kind="funclat", target="pid", pid=proc.pid, binary=binary,
                          symbols=[CALL])
    desk.wait_state(trace_id, ("running",))
    pid = desk.pid
    progs, maps, perf = bpf_ids(pid)
    probes = [line for line in perf_targets().splitlines() if binary in line]
    events = bcc_uprobe_events(pid)
    print(f"before kill -9: {len(progs)} programs, {len(maps)} maps, {perf} perf events, "
          f"{len(probes)} uprobes on the workload, {len(events)} tracefs events")
    assert progs and maps and perf and len(probes) == 2, (progs, maps, perf, probes)
    assert all(exists("prog", i) for i in progs) and all(exists("map", i) for i in maps)

    os.kill(pid, signal.SIGKILL)
    desk.collector.proc.wait(timeout=30)
    took = wait_until("programs and maps freed",
                      lambda: not any(exists("prog", i) for i in progs)
                      and not any(exists("map", i) for i in maps), FREE_WAIT_S)
    left = [line for line in perf_targets().splitlines() if binary in line]
    print(f"after kill -9: freed in {took:.2f} s; 0 of {len(progs)} programs, 0 of "
          f"{len(maps)} maps, {len(left)} uprobes, {len(bcc_uprobe_events(pid))} tracefs events")
    assert left == [] and bcc_uprobe_events(pid) == []
    wait_until("the server sees the collector gone", lambda: not desk.connected(), 30)


@pytest.fixture
def leftover() -> str:
    """A uprobe event as bcc's tracefs fallback names it, of a pid that is dead."""
    assert not os.path.exists(f"/proc/{DEAD_PID}")
    name = f"p__bin_true_0x1000_bcc_{DEAD_PID}"
    fd = os.open(UPROBE_EVENTS, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, f"p:uprobes/{name} /bin/true:0x1000\n".encode())
    finally:
        os.close(fd)
    assert name in Path(UPROBE_EVENTS).read_text()
    yield name
    if name in Path(UPROBE_EVENTS).read_text():
        fd = os.open(UPROBE_EVENTS, os.O_WRONLY | os.O_APPEND)
        os.write(fd, f"-:uprobes/{name}\n".encode())
        os.close(fd)


def test_the_next_collector_removes_dead_collectors_events(leftover, own_server,
                                                           tmp_path) -> None:
    require_bpf()
    live = f"p__bin_true_0x1000_bcc_{os.getpid()}"  # a live process's: kept
    fd = os.open(UPROBE_EVENTS, os.O_WRONLY | os.O_APPEND)
    os.write(fd, f"p:uprobes/{live} /bin/true:0x1000\n".encode())
    os.close(fd)
    collector = start_collector(own_server, "sweeper", tmp_path / "c.log", collectors="cpu")
    try:
        wait_until("the collector started", lambda: "collecting on" in collector.output()
                   or collector.proc.poll() is not None, CONNECT_WAIT_S)
        assert collector.proc.poll() is None, collector.output()
        text = Path(UPROBE_EVENTS).read_text()
        assert leftover not in text and live in text
    finally:
        collector.proc.kill()
        collector.proc.wait()
        fd = os.open(UPROBE_EVENTS, os.O_WRONLY | os.O_APPEND)
        os.write(fd, f"-:uprobes/{live}\n".encode())
        os.close(fd)
