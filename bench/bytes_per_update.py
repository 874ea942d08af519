"""Measure the encoded size of each message per update, for docs/PROTOCOL.md.

Builds synthetic but realistic CPU intervals: stacks are walks down a random
call graph (so stacks share prefixes as real ones do), 10-30 frames deep,
with symbol names of typical length and a few kernel frames at the leaf.
Prints, per scenario, the bytes of one ``profile.delta`` (collector ->
server), one unfiltered ``live.interval`` (server -> each browser) and the
``live.snapshot`` a browser gets after the server kept 60 intervals, plus
the zlib-compressed size for reference and the server-side build time.

    .venv/bin/python bench/bytes_per_update.py
"""

from __future__ import annotations

import random
import string
import time
import zlib
from dataclasses import dataclass

from webprof.core.live import NO_FILTER, LiveState
from webprof.core.protocol import ProfileDelta, encode


@dataclass(frozen=True)
class Scenario:
    name: str
    cpus: int
    frequency_hz: int
    distinct_stacks: int


SCENARIOS = (
    Scenario("2 CPUs, 49 Hz, ~100 stacks", 2, 49, 100),
    Scenario("2 CPUs, 999 Hz, ~1,500 stacks", 2, 999, 1500),
    Scenario("8 CPUs, 999 Hz, ~3,000 stacks", 8, 999, 3000),
)
INTERVALS_KEPT = 60


def symbol(rng: random.Random) -> str:
    parts = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(3)]
    return "_".join(parts) + rng.choice(["", "_impl", "::operator()", "@plt"])


class CallGraph:
    """Per process, a fixed set of functions each calling a few others."""

    def __init__(self, rng: random.Random, functions: int = 600) -> None:
        self.rng = rng
        self.names = [symbol(rng) for _ in range(functions)]
        self.kernel = [symbol(rng) + "_[k]" for _ in range(80)]
        self.callees = {i: rng.sample(range(functions), 4) for i in range(functions)}

    def stack(self) -> list[str]:
        node = self.rng.randrange(20)  # a few entry points: main, thread starts
        frames = [self.names[node]]
        for _ in range(self.rng.randint(10, 30)):
            node = self.rng.choice(self.callees[node])
            frames.append(self.names[node])
        if self.rng.random() < 0.3:  # in a system call: kernel frames at the leaf
            frames += self.rng.sample(self.kernel, self.rng.randint(2, 8))
        return frames


def make_stacks(rng: random.Random, graph: CallGraph, count: int) -> list[tuple]:
    comms = [(1000 + i, f"worker-{i}") for i in range(10)]
    return [(*rng.choice(comms), tuple(graph.stack())) for _ in range(count)]


def make_delta(rng: random.Random, sc: Scenario, pool: list[tuple], seq: int) -> ProfileDelta:
    samples = sc.cpus * sc.frequency_hz
    picked = rng.sample(pool, min(sc.distinct_stacks, samples))
    weights = [1] * len(picked)
    for _ in range(samples - len(picked)):  # the rest of the samples, skewed to hot stacks
        weights[min(int(rng.expovariate(0.05)), len(picked) - 1)] += 1
    strings: dict[str, int] = {}
    stacks = []
    for (pid, comm, frames), weight in zip(picked, weights, strict=True):
        ids = [strings.setdefault(s, len(strings)) for s in (comm, *frames)]
        stacks.append([pid, ids[0], weight, *ids[1:]])
    return ProfileDelta(
        host="bench", kind="cpu", seq=seq, start_ms=1_700_000_000_000 + 1000 * seq,
        interval_ms=1000, frequency_hz=sc.frequency_hz, strings=list(strings),
        stacks=stacks, health={"samples": samples, "stacks": len(stacks)},
    )


def sizes(text: str) -> str:
    raw = text.encode()
    return f"{len(raw):>10,} B ({len(zlib.compress(raw, 6)):>8,} B zlib)"


def run(sc: Scenario) -> None:
    rng = random.Random(42)
    graph = CallGraph(rng)
    pool = make_stacks(rng, graph, sc.distinct_stacks * 2)
    state = LiveState("bench", keep_intervals=INTERVALS_KEPT)
    delta = make_delta(rng, sc, pool, 0)
    for seq in range(INTERVALS_KEPT * 2):  # half retired into since_start
        delta = make_delta(rng, sc, pool, seq)
        t_apply = time.perf_counter()
        record = state.apply(delta)  # builds and caches the unfiltered interval tree
        apply_ms = 1000 * (time.perf_counter() - t_apply)
    t0 = time.perf_counter()
    interval = encode(state.interval_message(record, NO_FILTER))
    t1 = time.perf_counter()
    snapshot = encode(state.snapshot(NO_FILTER))
    t2 = time.perf_counter()
    print(f"{sc.name}: {len(delta.stacks)} stacks, {sum(s[2] for s in delta.stacks)} samples")
    print(f"  profile.delta  {sizes(encode(delta))}")
    print(f"  live.interval  {sizes(interval)}  apply + tree {apply_ms:.1f} ms, "
          f"encode {1000 * (t1 - t0):.1f} ms")
    print(f"  live.snapshot  {sizes(snapshot)}  built in {1000 * (t2 - t1):.1f} ms "
          f"({INTERVALS_KEPT} recent intervals + since_start)")


def main() -> None:
    for sc in SCENARIOS:
        run(sc)


if __name__ == "__main__":
    main()
