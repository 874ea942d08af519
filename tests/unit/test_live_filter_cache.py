"""Snapshots under a process filter: the "since start" tree of retired
intervals is built once per filter while it stays valid, and a flood of
distinct filters keeps a bounded number of them.  Memory, not time."""

import gc
import random
import tracemalloc

import pytest

from webprof.core import live
from webprof.core.flame import FlameTree
from webprof.core.live import LiveState, ProcessFilter, ProfileStream
from webprof.core.protocol import ProfileDelta

pytestmark = pytest.mark.unit

COMMS = ["app", "db", "web", "cron"]


def delta(seq: int, rng: random.Random) -> ProfileDelta:
    strings = COMMS + [f"f{i}" for i in range(40)]
    stacks = []
    for _ in range(60):
        comm = rng.randrange(len(COMMS))
        frames = rng.sample(range(len(COMMS), len(strings)), rng.randint(1, 6))
        stacks.append([rng.randint(1, 50), comm, rng.randint(1, 9), *frames])
    return ProfileDelta(host="h", kind="cpu", seq=seq, start_ms=1000 * seq, interval_ms=1000,
                        frequency_hz=49, strings=strings, stacks=stacks, health={})


def filled(keep: int = 5, intervals: int = 12) -> LiveState:
    rng = random.Random(3)
    state = LiveState("h", keep_intervals=keep)
    for seq in range(intervals):  # more than `keep`: `older` is not empty
        state.apply(delta(seq, rng))
    return state


def test_filtered_older_tree_is_not_rebuilt_while_older_is_unchanged(monkeypatch):
    state = filled()
    flt = ProcessFilter(comm="db")
    state.snapshot(flt)
    builds = []
    real = live.build_tree
    monkeypatch.setattr(live, "build_tree", lambda items, f: builds.append(f) or real(items, f))
    state.snapshot(flt)  # the recent trees are cached per record; older must be too
    assert builds == []


def test_cached_older_tree_follows_retirement():
    state = filled()
    flt = ProcessFilter(comm="web")
    state.snapshot(flt)
    rng = random.Random(11)
    for seq in range(12, 15):  # each retires one interval into `older`
        state.apply(delta(seq, rng))
    snap = state.snapshot(flt)
    tree = FlameTree.from_wire(snap.since_start)
    for item in snap.recent:
        tree.merge(FlameTree.from_wire(item["tree"]))
    assert tree.to_folded() == state.since_start_tree(flt).to_folded()


def test_flood_of_distinct_filters_keeps_bounded_memory():
    stream = ProfileStream(filled(keep=5, intervals=40))
    flood = 2_000

    def snapshot_all(start: int, stop: int) -> None:
        for i in range(start, stop):
            stream.snapshot_text(ProcessFilter(pid=i % 50 + 1, comm=f"x{i}"[: i % 4 + 1]))

    tracemalloc.start()
    try:
        snapshot_all(0, 200)  # warm-up: every cache reaches its bound
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        snapshot_all(200, flood)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(stream.state.older_fitted) <= live.MAX_CACHED_OLDER_FILTERS
    assert len(stream.snapshots) <= live.SNAPSHOT_FILTERS_PER_STREAM
    print(f"\n{flood} distinct filters: traced memory grew {grown / 1e3:.1f} kB "
          "after the first 200")
    assert grown < 200_000, f"memory grew by {grown} bytes"
