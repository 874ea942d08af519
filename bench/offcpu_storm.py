"""Off-CPU collector under a context-switch storm (run as root).

    .venv/bin/python bench/offcpu_storm.py [--pairs 2] [--seconds 8]

The storm is bench/workloads/pingpong.c: thread pairs passing a byte over
pipes (200k+ context switches/s on 2 cores).  Measured, each for the same
duration:

* the storm alone (round trips/s, context switches/s from /proc/stat ctxt);
* the storm with OffCpuCollector attached (all processes, user threads only)
  in a child process that drains every second and reports its CPU time, RSS
  and the kernel's counters after each drain (bounded memory, lost events);
* the storm with bcc's offcputime-bpfcc, or, when that cannot run (it
  attaches a kprobe; kernels without kprobes refuse), with
  ``perf sched record``, whose CPU time is measured too.

The kernel-side cost of a tracepoint program is paid by the switching
threads themselves, so it shows as the storm's slowdown; the drain's cost is
the child's CPU time.  Both are reported per million context switches.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "bench" / "workloads" / "pingpong.c"


def ctxt() -> int:
    with open("/proc/stat") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("ctxt "))


def storm(binary: Path, pairs: int, seconds: float) -> dict[str, float]:
    before = ctxt()
    out = subprocess.run([str(binary), str(pairs), str(seconds)], capture_output=True,
                         text=True, check=True).stdout.split()
    switches = ctxt() - before
    elapsed = float(out[3])
    return {"round_trips_s": int(out[1]) / elapsed, "switches_s": switches / elapsed,
            "switches": switches}


def collector_child(interval_s: float) -> None:
    """Child mode: attach, print 'ready', drain every interval until SIGTERM."""
    sys.path.insert(0, str(ROOT))
    from collectors.offcpu import OffCpuCollector

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with OffCpuCollector(kind="offcpu") as off:
        start_cpu = _cpu_s()
        print(json.dumps({"ready": True}), flush=True)
        while not stop:
            time.sleep(interval_s)
            t0 = time.perf_counter()
            delta = off.drain()
            print(json.dumps({"drain_ms": (time.perf_counter() - t0) * 1000,
                              "cpu_s": _cpu_s() - start_cpu, "rss_kb": _rss_kb(),
                              "stacks": len(delta.stacks), "health": delta.health,
                              "totals": off.totals()}), flush=True)


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def with_collector(binary: Path, pairs: int, seconds: float) -> tuple[dict, list[dict]]:
    child = subprocess.Popen([sys.executable, __file__, "--child"], stdout=subprocess.PIPE,
                             text=True)
    assert json.loads(child.stdout.readline()).get("ready")
    result = storm(binary, pairs, seconds)
    time.sleep(1.2)  # one more drain after the storm
    child.send_signal(signal.SIGTERM)
    reports = [json.loads(line) for line in child.stdout]
    child.wait()
    return result, reports


def offcputime_error() -> str | None:
    """None if offcputime-bpfcc runs here, else the last line of its error."""
    env = dict(os.environ)
    try:
        env["BCC_KERNEL_SOURCE"] = Path("/var/cache/webprof/kernel-source").read_text().strip()
    except OSError:
        pass
    proc = subprocess.run(["offcputime-bpfcc", "-f", "1"], capture_output=True, text=True,
                          env=env, timeout=120)
    if proc.returncode == 0:
        return None
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {proc.returncode}"


def with_perf_sched(binary: Path, pairs: int, seconds: float) -> tuple[dict, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "perf.data"
        perf = subprocess.Popen(["perf", "sched", "record", "-o", str(data)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        result = storm(binary, pairs, seconds)
        perf.send_signal(signal.SIGINT)
        _pid, _status, usage = os.wait4(perf.pid, 0)
        size = data.stat().st_size if data.exists() else 0
    return result, usage.ru_utime + usage.ru_stime, size


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        collector_child(1.0)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "pingpong"
        subprocess.run(["gcc", "-O2", "-pthread", "-o", str(binary), str(SOURCE)], check=True)
        base = storm(binary, args.pairs, args.seconds)
        ours, reports = with_collector(binary, args.pairs, args.seconds)
        error = offcputime_error()
        perf, perf_cpu, perf_bytes = with_perf_sched(binary, args.pairs, args.seconds)
    print_table(args, base, ours, reports, error, perf, perf_cpu, perf_bytes)
    return 0


def print_table(args, base, ours, reports, error, perf, perf_cpu, perf_bytes) -> None:
    totals = reports[-1]["totals"]
    lost = {k: sum(r["health"][k] for r in reports)
            for k in ("counts_map_full", "stack_map_full", "start_map_full", "lost_events",
                      "lost_kernel_stacks")}
    cpu = reports[-1]["cpu_s"]
    switches_m = totals["switches"] / 1e6
    rss = [r["rss_kb"] for r in reports]

    ncpu = os.cpu_count() or 1

    def slow(r: dict) -> str:
        """Slowdown, and the CPU added per switch on saturated CPUs (in-kernel cost)."""
        added_us = (ncpu / r["switches_s"] - ncpu / base["switches_s"]) * 1e6
        return (f"{100 * (1 - r['round_trips_s'] / base['round_trips_s']):.1f} % "
                f"(+{added_us:.2f} s CPU per 1M switches)")

    print(f"Storm: {args.pairs} ping-pong pairs, {args.seconds:.0f} s per run, "
          f"{os.cpu_count()} CPUs\n")
    print("| run | round trips/s | switches/s | slowdown | tracer CPU | "
          "tracer CPU per 1M switches |")
    print("|---|---|---|---|---|---|")
    print(f"| storm alone | {base['round_trips_s']:,.0f} | {base['switches_s']:,.0f} | - | - | - |")
    print(f"| + OffCpuCollector (drain 1 s) | {ours['round_trips_s']:,.0f} | "
          f"{ours['switches_s']:,.0f} | {slow(ours)} | {cpu:.2f} s user space | "
          f"{cpu / switches_m:.3f} s |")
    if error is None:
        print("| + offcputime-bpfcc | ran (see its own output) | | | | |")
    print(f"| + perf sched record | {perf['round_trips_s']:,.0f} | {perf['switches_s']:,.0f} | "
          f"{slow(perf)} | {perf_cpu:.2f} s ({perf_bytes / 1e6:.0f} MB written) | "
          f"{perf_cpu / (perf['switches'] / 1e6):.3f} s |")
    if error is not None:
        print(f"\noffcputime-bpfcc could not run here: `{error}`")
    print(f"\nOffCpuCollector: {totals['switches']:,} sched_switch events seen, "
          f"{totals['samples']:,} blocks counted over {len(reports)} drains; "
          f"drain {max(r['drain_ms'] for r in reports):.1f} ms max; RSS "
          f"{min(rss) / 1024:.1f}-{max(rss) / 1024:.1f} MiB "
          f"(first {rss[0] / 1024:.1f}, last {rss[-1] / 1024:.1f}); lost/full counters: {lost}")


if __name__ == "__main__":
    sys.exit(main())
