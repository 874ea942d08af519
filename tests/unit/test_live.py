import random

import pytest

from webprof.core.flame import FlameTree
from webprof.core.live import LiveState, ProcessFilter
from webprof.core.protocol import ProfileDelta

pytestmark = pytest.mark.unit


def delta(seq: int, rng: random.Random, n: int = 30) -> ProfileDelta:
    strings = ["app", "db", "main", "work", "io_[k]", "idle"] + [f"f{i}" for i in range(20)]
    stacks = []
    for _ in range(n):
        pid, comm = rng.choice([(10, 0), (11, 0), (20, 1)])
        frames = [2] + rng.sample(range(3, len(strings)), rng.randint(1, 4))
        stacks.append([pid, comm, rng.randint(1, 9), *frames])
    return ProfileDelta(
        host="h", kind="cpu", seq=seq, start_ms=1000 * seq, interval_ms=1000,
        frequency_hz=49, strings=strings, stacks=stacks, health={"samples": 1},
    )


def client_since_start(snapshot, intervals) -> FlameTree:
    """What the browser computes for "since start"."""
    tree = FlameTree.from_wire(snapshot.since_start)
    for item in snapshot.recent:
        tree.merge(FlameTree.from_wire(item["tree"]))
    for msg in intervals:
        tree.merge(FlameTree.from_wire(msg.tree))
    return tree


@pytest.mark.parametrize("flt", [ProcessFilter(), ProcessFilter(pid=10), ProcessFilter(comm="DB")])
def test_snapshot_plus_deltas_equals_fresh_snapshot(flt):
    rng = random.Random(7)
    state = LiveState("h", keep_intervals=5)
    for seq in range(12):  # older than the recent window, so `older` is used
        state.apply(delta(seq, rng))
    snap = state.snapshot(flt)
    later = [state.interval_message(state.apply(delta(seq, rng)), flt) for seq in range(12, 20)]
    fresh = state.snapshot(flt)
    assert client_since_start(snap, later).to_folded() == client_since_start(fresh, []).to_folded()
    assert client_since_start(fresh, []).to_folded() == state.since_start_tree(flt).to_folded()


def test_filter_by_pid_and_comm():
    rng = random.Random(1)
    state = LiveState("h")
    state.apply(delta(0, rng))
    assert set(state.since_start_tree(ProcessFilter(pid=20)).root.children) == {"db"}
    assert set(state.since_start_tree(ProcessFilter(comm="ap")).root.children) == {"app"}
    assert state.since_start_tree(ProcessFilter(pid=99)).total == 0


def test_interval_message_is_truncated_to_budget_with_exact_total():
    rng = random.Random(3)
    state = LiveState("h", max_nodes=10)
    record = state.apply(delta(0, rng, n=200))
    msg = state.interval_message(record, ProcessFilter())
    tree = FlameTree.from_wire(msg.tree)
    assert tree.node_count() <= 10
    assert tree.total == record.samples == msg.samples
    assert msg.folded_nodes > 0


def test_seq_gaps_are_counted():
    rng = random.Random(2)
    state = LiveState("h")
    state.apply(delta(0, rng))
    state.apply(delta(4, rng))
    assert state.missed_intervals == 3


def test_older_keys_bounded_by_merging_pids():
    rng = random.Random(5)
    state = LiveState("h", keep_intervals=1, max_older_keys=5)
    for seq in range(5):
        state.apply(delta(seq, rng))
    assert state.pids_merged
    assert {pid for pid, _, _ in state.older} == {0}
    total = sum(r.samples for r in state.recent) + sum(state.older.values())
    assert state.since_start_tree().total == total


def test_records_are_numbered_by_the_state_not_the_collector():
    rng = random.Random(4)
    state = LiveState("h", keep_intervals=2, kind="offcpu")
    first = state.apply(delta(0, rng))
    again = state.apply(delta(0, rng))  # a restarted collector starts seq at 0 again
    assert (first.serial, again.serial) == (1, 2)
    assert state.record(2) is again and state.record(7) is None
    state.apply(delta(1, rng))
    assert state.record(1) is None  # retired from the recent window
    snap = state.snapshot()
    assert (snap.kind, snap.unit) == ("offcpu", "us")
    assert state.interval_message(again, ProcessFilter()).kind == "offcpu"
