"""Recorded sessions as data: interned stacks, packed interval chunks, ranges.

A session keeps every collector interval so that any time range can be
re-aggregated later.  Three things make that cheap:

- **Interning.**  Each frame or process name is stored once per session in a
  string table, and each distinct ``(pid, comm, frames)`` stack once in a
  stack table; intervals refer to stacks by number.
- **Packed chunks.**  One chunk per interval and kind holds three parallel
  arrays (stack id, sub-second slot, weight), zlib-compressed, plus the total
  weight of each slot for the sub-second heatmap.  A 99 Hz x 16 CPU interval
  is about 1,600 entries, a few kilobytes.
- **Minute rollups.**  The chunks of each minute are also summed per stack
  (no slots).  A range uses a rollup when the rollup lies wholly inside it and
  the chunks only at its edges, so the whole hour reads 60 rollups instead of
  3,600 chunks.

A range ``[from_ms, to_ms)`` counts a slot when the slot's start lies in it;
a chunk without sub-second data (``slot_ms == 0``) counts when its start
does.  Pure Python: imports neither Django nor bcc.
"""

from __future__ import annotations

import gc
import sys
import zlib
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .flame import FlameTree, Node
from .live import NO_FILTER, ProcessFilter
from .protocol import ProfileDelta

ROLLUP_MS = 60_000
# Chunk arrays are stored little-endian whatever the machine.
_SWAP = sys.byteorder != "little"
_LEVEL_FAST = 1  # zlib level: level 1 is ~4x faster than 6 and only ~10 % larger here


class ChunkFormatError(ValueError):
    """A stored chunk could not be decoded (corrupt or from a newer format)."""


# --------------------------------------------------------------------------- interning


class Interner:
    """Session-wide string and stack tables; ids are list positions.

    ``pending()`` returns what was added since the last call, so a writer can
    persist new rows with each chunk and nothing twice.
    """

    def __init__(self, strings: Iterable[str] = (), stacks: Iterable[StackRow] = ()) -> None:
        self.strings: list[str] = list(strings)
        self.string_ids = {s: i for i, s in enumerate(self.strings)}
        self.stacks: list[StackRow] = [tuple(s) for s in stacks]  # type: ignore[misc]
        self.stack_ids = {s: i for i, s in enumerate(self.stacks)}
        self._saved_strings = len(self.strings)
        self._saved_stacks = len(self.stacks)

    def string(self, text: str) -> int:
        sid = self.string_ids.get(text)
        if sid is None:
            sid = self.string_ids[text] = len(self.strings)
            self.strings.append(text)
        return sid

    def stack(self, pid: int, comm: str, frames: Iterable[str]) -> int:
        row = (pid, self.string(comm), tuple(self.string(f) for f in frames))
        sid = self.stack_ids.get(row)
        if sid is None:
            sid = self.stack_ids[row] = len(self.stacks)
            self.stacks.append(row)
        return sid

    def pending(self) -> tuple[list[tuple[int, str]], list[tuple[int, StackRow]]]:
        strings = list(enumerate(self.strings))[self._saved_strings :]
        stacks = list(enumerate(self.stacks))[self._saved_stacks :]
        self._saved_strings, self._saved_stacks = len(self.strings), len(self.stacks)
        return strings, stacks

    def frames(self, stack_id: int) -> tuple[int, str, list[str]]:
        pid, comm, frames = self.stacks[stack_id]
        s = self.strings
        return pid, s[comm], [s[f] for f in frames]


StackRow = tuple[int, int, tuple[int, ...]]  # pid, comm string id, frame string ids


def pack_ids(ids: Iterable[int]) -> bytes:
    """Frame ids of one stack as stored: little-endian u32."""
    return _to_bytes(array("I", ids))


def unpack_ids(blob: bytes) -> tuple[int, ...]:
    return tuple(_from_bytes("I", blob))


# --------------------------------------------------------------------------- chunks


@dataclass
class Chunk:
    """One interval of one kind, or a minute rollup (``slot_ms == 0``)."""

    kind: str
    start_ms: int
    duration_ms: int
    slot_ms: int
    stack_ids: array = field(default_factory=lambda: array("I"))
    slots: array = field(default_factory=lambda: array("I"))
    weights: array = field(default_factory=lambda: array("Q"))
    health: dict[str, int] = field(default_factory=dict)

    @property
    def weight(self) -> int:
        return sum(self.weights)

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms

    def slot_totals(self) -> list[int]:
        """Weight per slot, for the sub-second heatmap ([] without slots)."""
        if not self.slot_ms:
            return []
        totals = [0] * max(1, -(-self.duration_ms // self.slot_ms))
        last = len(totals) - 1
        for slot, weight in zip(self.slots, self.weights, strict=True):
            totals[min(slot, last)] += weight
        return totals

    def pack(self) -> bytes:
        """The three arrays, concatenated and compressed."""
        n = len(self.stack_ids)
        head = array("I", [n])
        body = b"".join(
            _to_bytes(a) for a in (head, self.stack_ids, self.slots, self.weights)
        )
        return zlib.compress(body, _LEVEL_FAST)

    @classmethod
    def unpack(cls, kind: str, start_ms: int, duration_ms: int, slot_ms: int,
               blob: bytes) -> Chunk:
        try:
            body = zlib.decompress(blob)
            (n,) = _from_bytes("I", body[:4])
            ids = _from_bytes("I", body[4 : 4 + 4 * n])
            slots = _from_bytes("I", body[4 + 4 * n : 4 + 8 * n])
            weights = _from_bytes("Q", body[4 + 8 * n :])
        except (zlib.error, ValueError) as exc:
            raise ChunkFormatError(f"chunk at {start_ms} ms cannot be decoded: {exc}") from exc
        if not len(ids) == len(slots) == len(weights) == n:
            raise ChunkFormatError(f"chunk at {start_ms} ms has arrays of different lengths")
        return cls(kind, start_ms, duration_ms, slot_ms, ids, slots, weights)


def chunk_from_delta(delta: ProfileDelta, interner: Interner) -> Chunk:
    """Intern a delta's stacks and lay them out as one chunk.

    Deltas without sub-second data put every stack in slot 0 and keep
    ``slot_ms == 0``.
    """
    slot_ms = delta.slot_ms
    slot_lists = delta.slots if slot_ms else []
    chunk = Chunk(delta.kind, delta.start_ms, delta.interval_ms, slot_ms,
                  health=dict(delta.health))
    ids, slots, weights = chunk.stack_ids, chunk.slots, chunk.weights
    for i, (pid, comm, frames, weight) in enumerate(delta.iter_stacks()):
        sid = interner.stack(pid, comm, frames)
        if slot_lists:
            pairs = slot_lists[i]
            for j in range(0, len(pairs), 2):
                ids.append(sid)
                slots.append(pairs[j])
                weights.append(pairs[j + 1])
        else:
            ids.append(sid)
            slots.append(0)
            weights.append(weight)
    return chunk


class RollupBuilder:
    """Sums chunks into per-minute rollups, minutes counted from ``origin_ms``.

    A rollup's span runs from its first chunk's start to its last chunk's
    end, so a range query can tell whether it lies wholly inside.
    """

    def __init__(self, kind: str, origin_ms: int) -> None:
        self.kind = kind
        self.origin_ms = origin_ms
        self.minute: int | None = None
        self.counts: Counter[int] = Counter()
        self.start_ms = 0
        self.end_ms = 0

    def add(self, chunk: Chunk) -> Chunk | None:
        """Add a chunk; return the previous minute's rollup when it closes."""
        minute = (chunk.start_ms - self.origin_ms) // ROLLUP_MS
        done = self.flush() if self.minute is not None and minute != self.minute else None
        if self.minute is None:
            self.minute, self.start_ms = minute, chunk.start_ms
        self.end_ms = max(self.end_ms, chunk.end_ms)
        counts = self.counts
        for sid, weight in zip(chunk.stack_ids, chunk.weights, strict=True):
            counts[sid] += weight
        return done

    def flush(self) -> Chunk | None:
        if self.minute is None:
            return None
        out = Chunk(self.kind, self.start_ms, self.end_ms - self.start_ms, 0)
        for sid in sorted(self.counts):
            out.stack_ids.append(sid)
            out.slots.append(0)
            out.weights.append(self.counts[sid])
        self.minute, self.counts, self.end_ms = None, Counter(), 0
        return out


# --------------------------------------------------------------------------- ranges


def add_range(counts: Counter[int], chunk: Chunk, from_ms: int, to_ms: int) -> None:
    """Add the part of ``chunk`` that falls in ``[from_ms, to_ms)`` to counts."""
    if chunk.start_ms >= from_ms and chunk.end_ms <= to_ms and (
        chunk.slot_ms or chunk.duration_ms
    ):
        _add_all(counts, chunk)
        return
    if not chunk.slot_ms:
        if from_ms <= chunk.start_ms < to_ms:
            _add_all(counts, chunk)
        return
    first = -(-(from_ms - chunk.start_ms) // chunk.slot_ms)  # first slot starting >= from
    last = -(-(to_ms - chunk.start_ms) // chunk.slot_ms)  # first slot starting >= to
    for sid, slot, weight in zip(chunk.stack_ids, chunk.slots, chunk.weights, strict=True):
        if first <= slot < last:
            counts[sid] += weight


def _add_all(counts: Counter[int], chunk: Chunk) -> None:
    # Counter.update over zip is the C fast path for the common whole-chunk case.
    if len(set(chunk.stack_ids)) == len(chunk.stack_ids):
        counts.update(dict(zip(chunk.stack_ids, chunk.weights, strict=True)))
    else:
        for sid, weight in zip(chunk.stack_ids, chunk.weights, strict=True):
            counts[sid] += weight


def plan_range(
    rollups: list[tuple[int, int]], from_ms: int, to_ms: int
) -> tuple[list[int], list[tuple[int, int]]]:
    """Choose which rollups to read whole and which time spans need chunks.

    ``rollups`` are ``(start_ms, end_ms)`` spans, sorted.  Returns the indexes
    of rollups wholly inside the range, and the spans ``[a, b)`` of the range
    left over, whose chunks must be read one by one.
    """
    whole: list[int] = []
    gaps: list[tuple[int, int]] = []
    cursor = from_ms
    for i, (start, end) in enumerate(rollups):
        if start >= from_ms and end <= to_ms:
            if start > cursor:
                gaps.append((cursor, start))
            whole.append(i)
            cursor = max(cursor, end)
    if cursor < to_ms:
        gaps.append((cursor, to_ms))
    return whole, gaps


def tree_from_counts(
    counts: Counter[int] | dict[int, int], interner: Interner, flt: ProcessFilter = NO_FILTER
) -> FlameTree:
    """A flame tree (process name at the top) from per-stack weights.

    5,000 stacks of 10-40 frames make up to 100,000 nodes, so the walk is inlined,
    nodes are built with every field given (the dataclass default factory costs four
    times as much) and cyclic GC is paused (see :func:`paused_gc`).
    """
    tree = FlameTree()
    root = tree.root
    strings, stacks = interner.strings, interner.stacks
    with paused_gc():
        for sid, weight in counts.items():
            if weight <= 0:
                continue
            pid, comm_id, frame_ids = stacks[sid]
            if flt is not NO_FILTER and not flt.accepts(pid, strings[comm_id]):
                continue
            root.total += weight
            node = root
            for name in (strings[comm_id], *(strings[f] for f in frame_ids)):
                child = node.children.get(name)
                if child is None:
                    child = node.children[name] = Node(name, 0, 0, {})
                child.total += weight
                node = child
            node.self_count += weight
    return tree


@contextmanager
def paused_gc() -> Iterator[None]:
    """Cyclic GC off while a flame tree is built and used.

    A range's tree is ~100,000 new objects; the collections they trigger re-scan
    them and every older object to find no cycles (trees have none, and are freed by
    reference counting).  Measured on a 1-minute range of bench/session_bench.py:
    fitting the new tree to 16,384 nodes took 185-213 ms with GC on, 57 ms paused.
    Hold it over the whole request (build, ``fitted``, ``to_wire``).  Re-enables GC
    only if it was on, so nesting and other threads' pauses stay correct.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --------------------------------------------------------------------------- heatmap


@dataclass
class Heatmap:
    """FlameScope's view: one column per second, ``rows`` slots per second."""

    origin_ms: int
    slot_ms: int
    columns: int
    rows: int
    z: list[list[int]]  # z[row][column], row 0 = start of the second
    max_weight: int

    def to_dict(self) -> dict:
        return {"origin_ms": self.origin_ms, "slot_ms": self.slot_ms, "columns": self.columns,
                "rows": self.rows, "z": self.z, "max": self.max_weight}


def heatmap(
    spans: Iterable[tuple[int, int, int, list[int]]], origin_ms: int, end_ms: int,
    slot_ms: int,
) -> Heatmap:
    """Bin per-slot totals by second.

    ``spans`` yields ``(start_ms, duration_ms, chunk_slot_ms, slot_totals)``;
    a chunk without slots (``chunk_slot_ms == 0``) lands whole in the slot of
    its start.
    """
    rows = max(1, 1000 // slot_ms)
    columns = max(1, -(-(end_ms - origin_ms) // 1000))
    z = [[0] * columns for _ in range(rows)]
    for start_ms, duration_ms, chunk_slot, totals in spans:
        step = chunk_slot or duration_ms
        for i, weight in enumerate(totals):
            if not weight:
                continue
            t = start_ms + i * step - origin_ms
            col = min(max(t // 1000, 0), columns - 1)
            row = min((t % 1000) // slot_ms, rows - 1)
            z[row][col] += weight
    peak = max((max(r) for r in z), default=0)
    return Heatmap(origin_ms, slot_ms, columns, rows, z, peak)


# --------------------------------------------------------------------------- helpers


def _to_bytes(a: array) -> bytes:
    if _SWAP:
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def _from_bytes(typecode: str, data: bytes) -> array:
    out = array(typecode)
    out.frombytes(data)
    if _SWAP:
        out.byteswap()
    return out
