"""Session chunks: packing, ranges at slot precision, rollups, heatmap, diff."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from webprof.core.diff import diff_functions, diff_wire
from webprof.core.flame import FlameTree
from webprof.core.protocol import ProfileDelta
from webprof.core.timeline import (
    ROLLUP_MS,
    Chunk,
    ChunkFormatError,
    Interner,
    RollupBuilder,
    add_range,
    chunk_from_delta,
    heatmap,
    plan_range,
    tree_from_counts,
)

pytestmark = pytest.mark.unit


def delta(start_ms: int, stacks: list[tuple[str, list[tuple[int, int]]]],
          interval_ms: int = 1000) -> ProfileDelta:
    """stacks: (leaf name, [(slot, weight), ...]) under process "app"."""
    strings = ["app", "main"]
    entries, slots = [], []
    for leaf, pairs in stacks:
        strings.append(leaf)
        entries.append([7, 0, sum(w for _, w in pairs), 1, len(strings) - 1])
        slots.append([x for pair in pairs for x in pair])
    return ProfileDelta(host="h", kind="cpu", seq=0, start_ms=start_ms, interval_ms=interval_ms,
                        frequency_hz=99, strings=strings, stacks=entries, health={},
                        slot_ms=20, slots=slots)


def test_pack_round_trip_and_interning() -> None:
    interner = Interner()
    d = delta(1000, [("a", [(0, 3), (49, 2)]), ("b", [(10, 1)])])
    chunk = chunk_from_delta(d, interner)
    again = chunk_from_delta(delta(2000, [("a", [(5, 1)])]), interner)
    assert len(interner.stacks) == 2  # "a" interned once across intervals
    assert again.stack_ids[0] == chunk.stack_ids[0]
    back = Chunk.unpack("cpu", 1000, 1000, 20, chunk.pack())
    assert list(back.stack_ids) == list(chunk.stack_ids)
    assert list(back.slots) == [0, 49, 10]
    assert list(back.weights) == [3, 2, 1]
    assert chunk.slot_totals()[0] == 3 and chunk.slot_totals()[49] == 2
    assert len(chunk.slot_totals()) == 50
    strings, stacks = interner.pending()
    assert [s for _, s in strings] == ["app", "main", "a", "b"]
    assert interner.pending() == ([], [])


def test_corrupt_chunk_is_a_clear_error() -> None:
    with pytest.raises(ChunkFormatError, match="cannot be decoded"):
        Chunk.unpack("cpu", 5, 1000, 20, b"not zlib")


def test_range_counts_only_slots_that_start_inside() -> None:
    interner = Interner()
    chunk = chunk_from_delta(delta(10_000, [("a", [(0, 1), (25, 2), (49, 4)])]), interner)
    def total(a: int, b: int) -> int:
        counts: Counter[int] = Counter()
        add_range(counts, chunk, a, b)
        return sum(counts.values())
    assert total(10_000, 11_000) == 7
    assert total(10_000, 10_500) == 1  # slot 25 starts at 10,500: excluded
    assert total(10_500, 10_520) == 2
    assert total(10_501, 11_000) == 4  # slot 25 started before the range
    assert total(11_000, 12_000) == 0


def test_rollups_and_plan_match_reading_every_chunk() -> None:
    rng = random.Random(3)
    interner = Interner()
    origin = 1_700_000_000_000
    chunks, rollups = [], []
    builder = RollupBuilder("cpu", origin)
    for sec in range(200):
        stacks = [(f"f{rng.randrange(30)}", [(s, rng.randrange(1, 5))])
                  for s in sorted(rng.sample(range(50), 5))]
        c = chunk_from_delta(delta(origin + sec * 1000, stacks), interner)
        chunks.append(c)
        done = builder.add(c)
        if done:
            rollups.append(done)
    rollups.append(builder.flush())
    assert len(rollups) == 4 and rollups[0].duration_ms == ROLLUP_MS
    for a, b in [(0, 200_000), (12_345, 134_567), (60_000, 120_000), (59_990, 60_010)]:
        a, b = origin + a, origin + b
        direct: Counter[int] = Counter()
        for c in chunks:
            add_range(direct, c, a, b)
        whole, gaps = plan_range([(r.start_ms, r.end_ms) for r in rollups], a, b)
        planned: Counter[int] = Counter()
        for i in whole:
            add_range(planned, rollups[i], a, b)
        for ga, gb in gaps:
            for c in chunks:
                if any(rollups[i].start_ms <= c.start_ms < rollups[i].end_ms for i in whole):
                    continue
                add_range(planned, c, ga, gb)
        assert +planned == +direct, (a - origin, b - origin)
    assert plan_range([(0, 60), (60, 120)], 0, 120) == ([0, 1], [])


def test_tree_from_counts_puts_the_process_on_top() -> None:
    interner = Interner()
    sid = interner.stack(7, "app", ["main", "a"])
    tree = tree_from_counts({sid: 5}, interner)
    assert tree.to_folded() == "app;main;a 5\n"


def test_heatmap_bins_slots_by_second_and_row() -> None:
    origin = 1_000_000
    spans = [(origin, 1000, 20, [1] + [0] * 48 + [2]),
             (origin + 1000, 1000, 20, [0] * 25 + [7] + [0] * 24)]
    hm = heatmap(spans, origin, origin + 2000, 20)
    assert (hm.rows, hm.columns) == (50, 2)
    assert hm.z[0][0] == 1 and hm.z[49][0] == 2 and hm.z[25][1] == 7
    assert sum(map(sum, hm.z)) == 10 and hm.max_weight == 7


def test_diff_is_normalised_and_keeps_vanished_code() -> None:
    before, after = FlameTree(), FlameTree()
    before.add(["app", "main", "old"], 50)
    before.add(["app", "main", "same"], 50)
    after.add(["app", "main", "same"], 100)
    after.add(["app", "main", "new"], 100)
    wire = diff_wire(before, after)
    named = {wire["names"][wire["nodes"][i * 3]]: (wire["before"][i], wire["after"][i])
             for i in range(len(wire["before"]))}
    assert wire["scale"] == 2.0
    assert named["same"] == (100.0, 100)  # same share of the total: no change
    assert named["old"] == (100.0, 0)  # gone, still laid out
    assert named["new"] == (0, 100)
    rows = {r["name"]: r for r in diff_functions(before, after)}
    assert rows["same"]["change"] == 0
    assert rows["new"]["change"] == 100 and rows["old"]["change"] == -100
