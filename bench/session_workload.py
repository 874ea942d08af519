"""The synthetic hour of bench/session_bench.py: a 16-CPU machine sampled at 99 Hz.

Twenty processes, each with a call graph of about 140 functions, plus shared libc
and kernel frames: about 3,000 names.  5,000 distinct stacks of 10-40 frames walk
down those graphs (so stacks share prefixes, as real ones do), with Zipf-like
popularity over processes and stacks; every 10 s a burst of 20 stacks takes 10 % of
the samples.  Each 1 s interval holds 16 x 99 = 1,584 samples; each CPU's timer fires
every 1000/99 ms from its own phase, and samples are laid out in 20 ms slots exactly
as ``collectors/cpu.py`` sends them (per stack, a ``[slot, weight, ...]`` list).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from webprof.core.protocol import ProfileDelta

ORIGIN_MS = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC
CPUS, HZ, INTERVAL_MS, SLOT_MS = 16, 99, 1000, 20
STACKS, PROCESSES, FUNCTIONS = 5000, 20, 3000
COMMS = ["postgres", "nginx", "java", "python3", "node", "envoy", "redis-server", "mysqld",
         "gunicorn", "kafka", "etcd", "containerd", "dockerd", "systemd-journal", "sshd",
         "rsyslogd", "ruby", "php-fpm", "haproxy", "memcached"]


@dataclass
class Workload:
    """The synthetic machine: a string table, 5,000 stacks, their popularity."""

    strings: list[str]
    stacks: list[tuple[int, int, list[int]]]  # pid, comm string index, frame indexes
    cum_weights: list[float]  # Zipf popularity over the stacks, cumulative
    sample_slots: list[int]  # the 20 ms slot of each of one interval's 1,584 samples


def symbol(rng: random.Random) -> str:
    parts = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9)))
             for _ in range(rng.randint(2, 4))]
    return rng.choice(["", "ns::", "std::", "crate::"]) + "_".join(parts)


def build_workload(rng: random.Random) -> Workload:
    """A stack walks down its process's graph from one of three entry points, then
    sometimes into libc and the kernel; duplicates are drawn again."""
    strings: list[str] = list(COMMS)
    per_proc = (FUNCTIONS - 250) // PROCESSES
    pools = [[len(strings) + p * per_proc + i for i in range(per_proc)] for p in range(PROCESSES)]
    strings += [symbol(rng) for _ in range(per_proc * PROCESSES)]
    libc = list(range(len(strings), len(strings) + 100))
    strings += [symbol(rng) + "@plt" for _ in libc]
    kernel = list(range(len(strings), len(strings) + 150))
    strings += [symbol(rng) + "_[k]" for _ in kernel]
    callees = {f: rng.sample(pool, 3) for pool in pools for f in pool}
    pids = rng.sample(range(300, 60000), PROCESSES)
    proc_weights = [1 / (p + 1) ** 0.8 for p in range(PROCESSES)]
    seen: set[tuple[int, tuple[int, ...]]] = set()
    stacks: list[tuple[int, int, list[int]]] = []
    while len(stacks) < STACKS:
        p = rng.choices(range(PROCESSES), proc_weights)[0]
        frames = [pools[p][rng.randrange(3)]]
        for _ in range(rng.randint(9, 31)):
            frames.append(rng.choice(callees[frames[-1]]))
        if rng.random() < 0.4:
            frames += rng.sample(libc, rng.randint(1, 2)) + rng.sample(kernel, rng.randint(0, 7))
        key = (p, tuple(frames[:40]))
        if key not in seen:
            seen.add(key)
            stacks.append((pids[p], p, list(key[1])))
    rank = list(range(STACKS))
    rng.shuffle(rank)
    acc, cum = 0.0, []
    for r in rank:
        acc += 1 / (r + 1) ** 1.1
        cum.append(acc)
    return Workload(strings, stacks, cum, sample_slots(rng))


def sample_slots(rng: random.Random) -> list[int]:
    """Each CPU's timer fires every 1000/99 ms from its own phase: slot of each sample."""
    slots = []
    for _ in range(CPUS):
        phase = rng.uniform(0, 10.0)
        slots += [int((phase + k * 1000 / HZ) // SLOT_MS) for k in range(HZ)]
    return sorted(slots)


def draw_intervals(rng: random.Random, w: Workload, seconds: int) -> list[list[int]]:
    """Stack of every sample, per interval.  Every 10 s a burst of 20 stacks takes 10 %."""
    out = []
    n = len(w.sample_slots)
    burst: list[int] = []
    for second in range(seconds):
        if second % 10 == 0:
            burst = rng.sample(range(STACKS), 20)
        ids = rng.choices(range(STACKS), cum_weights=w.cum_weights, k=n)
        for i in rng.sample(range(n), n // 10):
            ids[i] = rng.choice(burst)
        out.append(ids)
    return out


def make_delta(w: Workload, second: int, ids: list[int]) -> ProfileDelta:
    """One interval as the CPU collector sends it: per stack, its [slot, weight, ...]."""
    per_stack: dict[int, Counter[int]] = {}
    for sid, slot in zip(ids, w.sample_slots, strict=True):
        per_stack.setdefault(sid, Counter())[slot] += 1
    stacks, slots = [], []
    for sid, per_slot in per_stack.items():
        pid, comm, frames = w.stacks[sid]
        stacks.append([pid, comm, per_slot.total(), *frames])
        slots.append([x for s in sorted(per_slot) for x in (s, per_slot[s])])
    # The whole name table goes with every delta (a collector sends only the names it
    # uses): that costs the writer nothing extra and keeps the generator fast.
    return ProfileDelta(host="bench", kind="cpu", seq=second,
                        start_ms=ORIGIN_MS + second * INTERVAL_MS, interval_ms=INTERVAL_MS,
                        frequency_hz=HZ, strings=w.strings, stacks=stacks,
                        health={"samples": len(ids)}, slot_ms=SLOT_MS, slots=slots)
