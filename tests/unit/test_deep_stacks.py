"""A 100,000-frame stack goes through every tree operation without recursion
and in time linear in its depth.

The protocol refuses stacks deeper than MAX_FRAMES_PER_STACK, but trees also
come from folded imports and merged ranges, and the live state must never
break for good on one message.
"""

import json
import time
from collections import Counter

import pytest

from webprof.core.diff import diff_functions, diff_wire
from webprof.core.flame import FlameTree
from webprof.core.formats import to_pprof, to_speedscope
from webprof.core.live import LiveState, ProcessFilter
from webprof.core.protocol import ProfileDelta
from webprof.core.timeline import Interner, tree_from_counts

pytestmark = pytest.mark.unit

DEPTH = 100_000
# Every operation below is linear: on this machine each takes well under a
# second for 100,000 frames; a quadratic one would take minutes.
SECONDS = 30


def deep_frames(depth: int = DEPTH, tag: str = "f") -> list[str]:
    return [f"{tag}{i}" for i in range(depth)]


def deep_delta(seq: int = 0) -> ProfileDelta:
    frames = deep_frames()
    return ProfileDelta(host="h", kind="cpu", seq=seq, start_ms=1_780_000_000_000 + seq * 1000,
                        interval_ms=1000, frequency_hz=49, strings=["deep", *frames],
                        stacks=[[7, 0, 3, *range(1, DEPTH + 1)], [7, 0, 2, 1, 2]],
                        health={"samples": 5})


def deep_tree() -> FlameTree:
    tree = FlameTree()
    tree.add(["deep", *deep_frames()], 3)
    tree.add(["deep", "f0", "f1"], 2)
    return tree


def test_live_state_applies_and_snapshots_a_deep_stack():
    started = time.monotonic()
    state = LiveState("h", keep_intervals=2, max_nodes=1000)
    for seq in range(4):  # two intervals retire into "since start"
        record = state.apply(deep_delta(seq))
    snap = state.snapshot()
    assert snap.recent[-1]["samples"] == 5
    assert state.snapshot(ProcessFilter(pid=7)).recent[-1]["samples"] == 5
    assert state.interval_message(record, ProcessFilter(comm="dee")).samples == 5
    json.dumps(snap.since_start)
    assert FlameTree.from_wire(snap.since_start).total == 10
    assert state.since_start_tree().total == 20
    assert time.monotonic() - started < SECONDS


def test_tree_operations_on_a_deep_stack():
    started = time.monotonic()
    tree = deep_tree()
    assert tree.node_count() == DEPTH + 1
    wire = tree.to_wire()
    again = FlameTree.from_wire(wire)
    assert again.to_wire() == wire and again.total == 5
    small, folded = tree.fitted(500)
    assert small.total == 5 and folded > 0 and small.node_count() <= 500
    assert tree.truncated(500).total == 5
    copy = tree.copy()
    copy.merge(tree)
    assert copy.total == 10
    copy.merge(tree, sign=-1)
    copy.merge(tree, sign=-1)
    assert copy.total == 0 and not copy.root.children
    paths = list(tree.stacks())
    assert [(len(p), w) for p, w in paths] == [(3, 2), (DEPTH + 1, 3)]
    folded_text = tree.to_folded()
    assert FlameTree.parse_folded(folded_text).to_folded() == folded_text
    assert time.monotonic() - started < SECONDS


def test_exports_and_diffs_of_a_deep_stack():
    started = time.monotonic()
    tree = deep_tree()
    doc = to_speedscope(tree, "deep")
    assert max(len(s) for s in doc["profiles"][0]["samples"]) == DEPTH + 1
    assert to_pprof(tree)[:2] == b"\x1f\x8b"
    other = FlameTree()
    other.add(["deep", *deep_frames(DEPTH // 2)], 4)
    wire = diff_wire(tree, other)
    assert len(wire["before"]) == DEPTH + 2
    rows = {r["name"]: r for r in diff_functions(tree, other)}
    assert rows["f0"]["after_total"] == 4
    assert time.monotonic() - started < SECONDS


def test_recursive_names_count_once_in_function_totals_at_depth():
    tree = FlameTree()
    tree.add(["deep", *(["recurse"] * DEPTH), "leaf"], 5)
    (row,) = [r for r in diff_functions(tree, tree) if r["name"] == "recurse"]
    assert row["after_total"] == 5


def test_session_trees_from_deep_interned_stacks():
    started = time.monotonic()
    interner = Interner()
    sid = interner.stack(7, "deep", deep_frames())
    tree = tree_from_counts(Counter({sid: 4}), interner)
    assert tree.node_count() == DEPTH + 1
    assert tree.fitted(100)[0].total == 4
    assert time.monotonic() - started < SECONDS
