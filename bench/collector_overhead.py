"""Collector overhead: a fixed CPU-bound workload on every core, profiled by
webprof's collector, bcc's profile-bpfcc and ``perf record -g -a``, side by side.

webprof's collector is the real ``webprof collect`` process, streaming every
second to a ``webprof serve`` started by this script (the server's CPU is not
counted: it may run on another machine).

For each tool and frequency the workload (bench/workloads/cpu_fixed.c, the
same fixed amount of work on every CPU) runs while the tool samples; the
slowdown is its wall time against runs with no profiler, interleaved with the
profiled runs so that drift on the machine affects both.  The tool's own CPU
time (user + system, all threads) is read from /proc over the same window.

Run as root:  .venv/bin/python bench/collector_overhead.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    tool: str
    hz: int
    wall_s: list[float]
    tool_cpu_s: list[float]
    wall_ratio: list[float]  # profiled wall / the unprofiled run just before it
    cpu_ratio: list[float]  # the same for the workload's own CPU time


def build_workload(tmp: Path) -> Path:
    exe = tmp / "cpu_fixed"
    subprocess.run(
        ["gcc", "-O2", "-fno-omit-frame-pointer", "-fno-inline", "-pthread",
         str(ROOT / "bench/workloads/cpu_fixed.c"), "-o", str(exe)],
        check=True,
    )
    return exe


def bcc_env() -> dict[str, str]:
    env = dict(os.environ)
    src = Path("/var/cache/webprof/kernel-source")
    if "BCC_KERNEL_SOURCE" not in env and src.exists() and src.read_text().strip():
        env["BCC_KERNEL_SOURCE"] = src.read_text().strip()
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / CLK_TCK


TOKEN = "bench-token"
PORT = 18765


def start_server(tmp: Path) -> subprocess.Popen:
    env = dict(os.environ, WEBPROF_DATA_DIR=str(tmp / "data"), WEBPROF_COLLECTOR_TOKEN=TOKEN)
    proc = subprocess.Popen(
        [sys.executable, "-m", "webprof.cli", "serve", "--port", str(PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("webprof serve did not start")


def start_tool(tool: str, hz: int, tmp: Path) -> subprocess.Popen:
    """Start a profiler and return once it is sampling."""
    if tool == "webprof":
        cmd = [sys.executable, "-m", "webprof.cli", "collect", "--server",
               f"ws://127.0.0.1:{PORT}", "--token", TOKEN, "--frequency", str(hz)]
        ready = "collecting on"
    elif tool == "bcc-profile":
        cmd = ["profile-bpfcc", "-F", str(hz)]
        ready = "Sampling at"
    elif tool == "perf":
        cmd = ["perf", "record", "-q", "-F", str(hz), "-g", "-a", "-o", str(tmp / "perf.data")]
        ready = None
    else:
        raise ValueError(tool)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=bcc_env()
    )
    if ready is None:
        time.sleep(1.5)
    else:
        assert proc.stdout is not None
        for line in proc.stdout:
            if ready in line:
                break
        else:
            raise RuntimeError(f"{tool} exited before it was ready (code {proc.wait()})")
    # Keep reading so that the tool never blocks on a full pipe.
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # type: ignore[union-attr]
    time.sleep(1.0)  # past the first drain, to measure the steady state
    return proc


def stop_tool(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_workload(exe: Path, iterations: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one workload run.

    Sampling interrupts and the BPF program run in the context of the
    interrupted task, so their cost shows in the workload's CPU time too.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([str(exe), str(os.cpu_count()), str(iterations)],
                         check=True, capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(out.split()[0]), cpu


def measure(tool: str, hz: int, exe: Path, iterations: int,
            tmp: Path) -> tuple[float, float, float]:
    proc = start_tool(tool, hz, tmp)
    try:
        before = cpu_seconds(proc.pid)
        wall, cpu = run_workload(exe, iterations)
        used = cpu_seconds(proc.pid) - before
    finally:
        stop_tool(proc)
    return wall, cpu, used


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration")
    parser.add_argument("--iterations", type=int, default=3_000_000_000,
                        help="work per thread (default 3e9, about 6 s here)")
    parser.add_argument("--hz", default="49,99,999", help="comma-separated frequencies")
    parser.add_argument("--tools", default="webprof,bcc-profile,perf")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("error: run as root (profilers need CAP_BPF/CAP_PERFMON)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        exe = build_workload(tmp)
        server = start_server(tmp)
        baseline: list[float] = []
        results: list[Result] = []
        configs = [(t, int(h)) for h in args.hz.split(",") for t in args.tools.split(",")]
        for tool, hz in configs:
            res = Result(tool, hz, [], [], [], [])
            for _ in range(args.runs):
                base_wall, base_cpu = run_workload(exe, args.iterations)
                baseline.append(base_wall)
                wall, cpu, used = measure(tool, hz, exe, args.iterations, tmp)
                res.wall_s.append(wall)
                res.tool_cpu_s.append(used)
                res.wall_ratio.append(wall / base_wall)
                res.cpu_ratio.append(cpu / base_cpu)
                print(f"  {tool:12} {hz:4} Hz: {wall:.3f} s (unprofiled {base_wall:.3f} s), "
                      f"workload CPU x{cpu / base_cpu:.4f}, tool CPU {used:.3f} s",
                      file=sys.stderr, flush=True)
            results.append(res)
        server.terminate()
        server.wait()
    base = statistics.median(baseline)
    print(f"\nworkload: {os.cpu_count()} threads x {args.iterations:,} iterations; "
          f"no profiler: median {base:.3f} s over {len(baseline)} runs "
          f"(min {min(baseline):.3f}, max {max(baseline):.3f})\n")
    print("| tool | Hz | workload wall (median) | wall slowdown | workload CPU slowdown "
          "| tool CPU | tool CPU, % of one core |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        wall = statistics.median(r.wall_s)
        cpu = statistics.median(r.tool_cpu_s)
        print(f"| {r.tool} | {r.hz} | {wall:.3f} s | "
              f"{100 * (statistics.median(r.wall_ratio) - 1):+.2f}% | "
              f"{100 * (statistics.median(r.cpu_ratio) - 1):+.2f}% | "
              f"{cpu:.3f} s | {100 * cpu / wall:.2f}% |")
    print("\nSlowdowns are medians of each profiled run against the unprofiled run just "
          "before it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
