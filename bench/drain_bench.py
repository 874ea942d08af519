"""Drain cost of the CPU collector with 10,000+ distinct stacks per interval.

bench/workloads/many_stacks.c walks a binary tree of 32,767 functions and
spins in its 16,384 leaves, one process per CPU, so every interval holds
thousands of distinct user stacks.  A real :class:`collectors.cpu.CpuCollector`
samples it; after each long interval the bench times the drain's parts:

* ``read``    ``read_interval()``: flip sets, batch-drain the counts map;
* ``stacks``  ``take_stacks()``: read and free every stack of the interval;
* ``symbol``  ``delta_from_stacks()``: symbolize, merge, encode the message.

``build`` = stacks + symbol = ``build_delta()``.  The first interval is
cold (no symbols cached); the others are warm and their median is reported
(stacks not seen before still get symbolized in a warm interval: the
workload has more paths than one interval samples).

For comparison, bcc's own symbolizer (``BPF.sym`` / ``BPF.ksym``, what
bcc's profile tool calls for every frame of every stack) is timed over the
same addresses of the last interval, cold and then warm.

Run as root:  .venv/bin/python bench/drain_bench.py [--interval 9] [--intervals 5]
Add --profile to print a cProfile of one warm ``delta_from_stacks()``.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.bcc_env import BpfUnavailable  # noqa: E402
from collectors.cpu import CpuCollector, RawInterval  # noqa: E402
from collectors.maps import unpack_stack  # noqa: E402

WORKLOAD = ROOT / "bench" / "workloads" / "many_stacks.c"
TARGET_MS = 100.0


@dataclass
class Drain:
    keys: int  # counts entries: distinct (pid, user stack, kernel stack, slot, comm)
    user_stacks: int  # distinct user stack ids
    rows: int  # stacks in the message after merging identical names
    strings: int
    read_ms: float
    stacks_ms: float
    symbol_ms: float
    build_cpu_ms: float  # CPU time of this thread in build_delta (wall includes waiting)
    cached_ms: float  # delta_from_stacks() again on the same stacks: every name cached
    cached_cpu_ms: float
    health: dict[str, int]

    @property
    def build_ms(self) -> float:
        return self.stacks_ms + self.symbol_ms


def build_workload(tmp: Path) -> Path:
    exe = tmp / "many_stacks"
    print("compiling many_stacks.c (32,767 functions, -O0) ...", flush=True)
    subprocess.run(["gcc", "-O0", "-fno-omit-frame-pointer", "-fno-inline",
                    str(WORKLOAD), "-o", str(exe)], check=True)
    return exe


def timed_drain(cpu: CpuCollector, profile: bool) -> tuple[Drain, RawInterval, dict]:
    t0 = time.perf_counter()
    raw = cpu.read_interval()
    t1, c1 = time.perf_counter(), time.thread_time()
    stacks = cpu.take_stacks(raw)
    t2 = time.perf_counter()
    delta = cpu.delta_from_stacks(raw, stacks)
    t3, c3 = time.perf_counter(), time.thread_time()
    # The same stacks again: every name is cached now (what "warm" means for
    # symbolization; the next interval of this workload still brings new
    # leaf addresses).  The replay's seq is taken back.
    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    cpu.delta_from_stacks(raw, stacks)
    if prof:
        prof.disable()
        print("\n--- cProfile of delta_from_stacks, all names cached ---")
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)
    t4, c4 = time.perf_counter(), time.thread_time()
    cpu.seq -= 1
    drain = Drain(
        keys=len(raw.counts), user_stacks=len({(r[0], r[1]) for r in raw.counts if r[1] >= 0}),
        rows=len(delta.stacks), strings=len(delta.strings), read_ms=(t1 - t0) * 1e3,
        stacks_ms=(t2 - t1) * 1e3, symbol_ms=(t3 - t2) * 1e3, build_cpu_ms=(c3 - c1) * 1e3,
        cached_ms=(t4 - t3) * 1e3, cached_cpu_ms=(c4 - c3) * 1e3, health=dict(delta.health))
    return drain, raw, stacks


def bcc_symbolize(raw: RawInterval, stacks: dict[int, bytes]) -> tuple[float, int]:
    """Time bcc naming every frame of every counts entry, as its profile tool does."""
    from bcc import BPF

    addrs = {sid: unpack_stack(trace) for sid, trace in stacks.items()}
    frames = 0
    t0 = time.perf_counter()
    for tgid, uid, kid in {row[:3] for row in raw.counts}:  # each stack once, not per slot
        for addr in addrs.get(uid, ()):
            BPF.sym(addr, tgid)
        for addr in addrs.get(kid, ()):
            BPF.ksym(addr)
        frames += len(addrs.get(uid, ())) + len(addrs.get(kid, ()))
    return (time.perf_counter() - t0) * 1e3, frames


def show(label: str, d: Drain) -> None:
    lost = {k: v for k, v in d.health.items()
            if k in ("stack_map_full", "counts_map_full", "lost_user_stacks",
                     "lost_kernel_stacks", "unknown_symbols") and v}
    print(f"{label:>6}  keys={d.keys:6d} stack_keys={d.health.get('stacks', 0):6d} "
          f"user_stacks={d.user_stacks:6d} rows={d.rows:6d} "
          f"strings={d.strings:6d} samples={d.health.get('samples', 0):6d}  "
          f"read={d.read_ms:6.1f} ms  stacks={d.stacks_ms:6.1f} ms  "
          f"symbol={d.symbol_ms:6.1f} ms  build={d.build_ms:6.1f} ms "
          f"(cpu {d.build_cpu_ms:6.1f} ms)  {lost or ''}",
          flush=True)


def run(args: argparse.Namespace, exe: Path) -> int:
    nprocs = args.procs or os.cpu_count() or 1
    total_s = args.interval * (args.intervals + 1) + 30
    with CpuCollector(frequency_hz=args.frequency, counts_size=args.counts_size,
                      stack_storage_size=args.stack_storage_size) as cpu:
        # nice: the spinning workload would otherwise take half of the drain's
        # CPU and the wall times would measure CFS's sharing, not the drain.
        procs = [subprocess.Popen(["nice", "-n", str(args.nice), str(exe), str(total_s)],
                                  stdout=subprocess.DEVNULL) for _ in range(nprocs)]
        try:
            time.sleep(0.5)
            cpu.drain()  # start of the first measured interval
            drains = []
            for i in range(args.intervals):
                time.sleep(args.interval)
                profile = args.profile and i == args.intervals - 1
                drain, raw, stacks = timed_drain(cpu, profile)
                show("cold" if i == 0 else f"warm{i}", drain)
                drains.append(drain)
            bcc_cold, frames = bcc_symbolize(raw, stacks)
            bcc_warm, _ = bcc_symbolize(raw, stacks)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    report(args, nprocs, drains, frames, bcc_cold, bcc_warm)
    return 0


def report(args: argparse.Namespace, nprocs: int, drains: list[Drain], frames: int,
           bcc_cold: float, bcc_warm: float) -> None:
    warm = drains[1:] or drains

    def med(attr: str) -> float:
        return statistics.median(getattr(d, attr) for d in warm)

    cold = drains[0]
    print(f"\n{args.frequency} Hz, {nprocs} workload processes (nice {args.nice}), "
          f"{args.interval:g} s intervals, "
          f"stack_storage_size={args.stack_storage_size}, counts_size={args.counts_size}")
    print(f"counts entries per interval (stack key x 20 ms slot): median {med('keys'):.0f}; "
          f"distinct stack keys: median {statistics.median(d.health['stacks'] for d in warm):.0f} "
          f"(user stack ids {med('user_stacks'):.0f})")
    print(f"read_interval:     cold {cold.read_ms:7.1f} ms   warm median {med('read_ms'):7.1f} ms")
    print(f"  take_stacks:     cold {cold.stacks_ms:7.1f} ms   warm median "
          f"{med('stacks_ms'):7.1f} ms")
    print(f"  symbolize+enc:   cold {cold.symbol_ms:7.1f} ms   warm median "
          f"{med('symbol_ms'):7.1f} ms")
    print(f"  symbolize+enc, every name cached (same stacks again): median "
          f"{med('cached_ms'):.1f} ms (CPU {med('cached_cpu_ms'):.1f} ms)")
    print(f"build_delta:       cold {cold.build_ms:7.1f} ms   warm median "
          f"{med('build_ms'):7.1f} ms   (CPU time: cold {cold.build_cpu_ms:.1f} ms, "
          f"warm median {med('build_cpu_ms'):.1f} ms)")
    for label, total in (("next interval", med("read_ms") + med("build_ms")),
                         ("names cached", med("read_ms") + med("stacks_ms") + med("cached_ms"))):
        verdict = "meets" if total <= TARGET_MS else "MISSES"
        print(f"drain (read+build), {label}: median {total:.1f} ms: {verdict} the "
              f"{TARGET_MS:.0f} ms target")
    print(f"bcc BPF.sym/ksym over the last interval's {frames} frames "
          f"({drains[-1].keys} stacks): cold {bcc_cold:.1f} ms, warm {bcc_warm:.1f} ms "
          f"(names only: no merge, no encoding)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interval", type=float, default=9.0, help="seconds per interval")
    parser.add_argument("--intervals", type=int, default=5, help="1 cold + N-1 warm")
    parser.add_argument("--frequency", type=int, default=999)
    parser.add_argument("--procs", type=int, default=0, help="workload processes (0: per CPU)")
    parser.add_argument("--nice", type=int, default=19, help="workload niceness (0: compete)")
    parser.add_argument("--stack-storage-size", type=int, default=65536)
    parser.add_argument("--counts-size", type=int, default=65536)
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the last interval's delta_from_stacks()")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("drain_bench: run as root (eBPF)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_workload(Path(tmp))
        try:
            return run(args, exe)
        except BpfUnavailable as exc:
            print(f"drain_bench: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
