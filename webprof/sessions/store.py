"""Writing sessions interval by interval, and reading ranges back.

:class:`SessionWriter` appends collector deltas to one session, each in one
transaction: the stacks and names new in that interval, the chunk, and the
session's running totals.  :class:`SessionReader` answers the session page:
flame trees of any range, the sub-second heatmap, samples over time and the
latency histograms.  Both run in worker threads, never on the event loop.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Length

from ..core.flame import FlameTree
from ..core.kinds import STORAGE_ORDER as KIND_ORDER
from ..core.live import NO_FILTER, ProcessFilter
from ..core.protocol import (
    DEFAULT_SLOT_MS,
    LatencyDelta,
    ProfileDelta,
)
from ..core.timeline import (
    ROLLUP_MS,
    Chunk,
    Heatmap,
    Interner,
    RollupBuilder,
    add_range,
    chunk_from_delta,
    heatmap,
    pack_ids,
    plan_range,
    tree_from_counts,
    unpack_ids,
)
from .models import (
    LEVEL_INTERVAL,
    LEVEL_MINUTE,
    LatencyChunk,
    ProfileChunk,
    Session,
    SessionStack,
    SessionString,
)

# A chunk starting this long before a range can still reach into it.
MAX_CHUNK_MS = ROLLUP_MS
# A collector's intervals tile time (each starts where the previous ended), so
# a hole of at least one interval (and of this much) means nothing was
# recorded: the collector restarted or its deltas were lost.
MIN_GAP_MS = 1000


def gap_ms(prev_end_ms: int, start_ms: int, interval_ms: int) -> int:
    """The hole between an interval that ended at ``prev_end_ms`` and the next
    one, or 0 when they follow each other."""
    hole = start_ms - prev_end_ms
    return hole if hole >= max(interval_ms, MIN_GAP_MS) else 0


class SessionWriter:
    """Appends intervals to one session; one writer per session, one thread."""

    def __init__(self, session: Session, interner: Interner | None = None) -> None:
        self.session = session
        self.interner = interner or Interner()
        self.rollups: dict[str, RollupBuilder] = {}
        self.health: dict[str, Counter[str]] = {
            k: Counter(v) for k, v in (session.health or {}).items()}
        # The end of the latest interval of any kind: a hole is counted once
        # when the host's deltas resume, not once per kind, and a kind the
        # user turned off while others ran is no hole.
        self.end_ms: int | None = None

    @classmethod
    def create(cls, **fields: Any) -> SessionWriter:
        return cls(Session.objects.create(**fields))

    def add(self, delta: ProfileDelta | LatencyDelta) -> None:
        with transaction.atomic():
            if isinstance(delta, ProfileDelta):
                size = self._add_profile(delta)
            else:
                size = self._add_latency(delta)
            self._account(delta, size)

    def add_chunk(self, chunk: Chunk) -> None:
        """A chunk built elsewhere (imports, benchmarks) on this writer's interner."""
        with transaction.atomic():
            size = self._save_interned() + self._save_chunk(chunk)
            self._account_chunk(chunk.kind, chunk.start_ms, chunk.end_ms, chunk.health, size)

    def _add_profile(self, delta: ProfileDelta) -> int:
        chunk = chunk_from_delta(delta, self.interner)
        return self._save_interned() + self._save_chunk(chunk)

    def _save_chunk(self, chunk: Chunk) -> int:
        data = chunk.pack()
        ProfileChunk.objects.create(
            session=self.session, kind=chunk.kind, level=LEVEL_INTERVAL,
            start_ms=chunk.start_ms, duration_ms=chunk.duration_ms, slot_ms=chunk.slot_ms,
            weight=chunk.weight, data=data, slot_totals=chunk.slot_totals(),
            health=chunk.health)
        size = len(data)
        builder = self.rollups.get(chunk.kind)
        if builder is None:
            builder = self.rollups[chunk.kind] = RollupBuilder(chunk.kind,
                                                               self.session.started_ms)
        done = builder.add(chunk)
        if done is not None:
            size += self._save_rollup(done)
        return size

    def _save_rollup(self, rollup: Chunk) -> int:
        data = rollup.pack()
        ProfileChunk.objects.create(
            session=self.session, kind=rollup.kind, level=LEVEL_MINUTE,
            start_ms=rollup.start_ms, duration_ms=rollup.duration_ms, slot_ms=0,
            weight=rollup.weight, data=data)
        return len(data)

    def _save_interned(self) -> int:
        strings, stacks = self.interner.pending()
        SessionString.objects.bulk_create(
            [SessionString(session=self.session, idx=i, text=s) for i, s in strings],
            batch_size=2000)
        SessionStack.objects.bulk_create(
            [SessionStack(session=self.session, idx=i, pid=pid, comm=comm,
                          frames=pack_ids(frames)) for i, (pid, comm, frames) in stacks],
            batch_size=2000)
        return (sum(len(s.encode("utf-8")) for _, s in strings)
                + sum(8 + 4 * len(f) for _, (_, _, f) in stacks))

    def _add_latency(self, delta: LatencyDelta) -> int:
        LatencyChunk.objects.create(
            session=self.session, kind=delta.kind, start_ms=delta.start_ms,
            duration_ms=delta.interval_ms, series=delta.series, health=delta.health)
        return sum(12 * len(b) + len(name) for name, b in delta.series.items())

    def _account(self, delta: ProfileDelta | LatencyDelta, size: int) -> None:
        self._account_chunk(delta.kind, delta.start_ms, delta.start_ms + delta.interval_ms,
                            delta.health, size)

    def _account_chunk(self, kind: str, start_ms: int, end_ms: int, health: dict[str, int],
                       size: int) -> None:
        s = self.session
        hole = gap_ms(self.end_ms, start_ms, end_ms - start_ms) if self.end_ms else 0
        if hole:
            s.gaps += 1
            s.gap_ms += hole
        self.end_ms = max(self.end_ms or end_ms, end_ms)
        s.started_ms = min(s.started_ms, start_ms)
        s.ended_ms = max(s.ended_ms or end_ms, end_ms)
        if kind not in s.kinds:
            s.kinds = [k for k in KIND_ORDER if k in {*s.kinds, kind}]
        self.health.setdefault(kind, Counter()).update(health)
        s.health = {k: dict(v) for k, v in self.health.items()}
        s.intervals += 1
        s.size_bytes += size
        s.save(update_fields=["started_ms", "ended_ms", "kinds", "health", "intervals",
                              "size_bytes", "gaps", "gap_ms"])

    def finish(self, state: str = "complete") -> Session:
        """Write the last minute rollups and mark the session done."""
        with transaction.atomic():
            size = 0
            for builder in self.rollups.values():
                rollup = builder.flush()
                if rollup is not None:
                    size += self._save_rollup(rollup)
            s = self.session
            s.size_bytes += size
            s.state = state
            if s.ended_ms is None:
                s.ended_ms = s.started_ms
            s.save(update_fields=["size_bytes", "state", "ended_ms"])
        return self.session


def save_deltas(deltas: Iterable[ProfileDelta | LatencyDelta], **fields: Any) -> Session:
    """A whole session at once (``webprof record --save``)."""
    writer = SessionWriter.create(state="recording", **fields)
    for delta in deltas:
        writer.add(delta)
    return writer.finish()


def save_tree(tree: FlameTree, start_ms: int, kind: str = "cpu", **fields: Any) -> Session:
    """A session from a flame tree without timing (folded imports): one chunk."""
    with transaction.atomic():
        writer = SessionWriter.create(started_ms=start_ms, state="recording", **fields)
        chunk = Chunk(kind, start_ms, 0, 0)
        for frames, weight in tree.stacks():
            chunk.stack_ids.append(writer.interner.stack(0, frames[0], frames[1:]))
            chunk.slots.append(0)
            chunk.weights.append(weight)
        writer.add_chunk(chunk)
        return writer.finish()


def stored_bytes(session: Session) -> int:
    """Payload bytes in the database for this session (blobs and names)."""
    chunks = ProfileChunk.objects.filter(session=session).aggregate(n=Sum(Length("data")))
    names = SessionString.objects.filter(session=session).aggregate(n=Sum(Length("text")))
    stacks = SessionStack.objects.filter(session=session).aggregate(n=Sum(Length("frames")))
    return sum(x["n"] or 0 for x in (chunks, names, stacks))


# --------------------------------------------------------------------------- reading


_INTERNERS: OrderedDict[tuple, Interner] = OrderedDict()
_INTERNERS_LOCK = threading.Lock()
INTERNER_CACHE = 8


def load_interner(session: Session) -> Interner:
    """The session's string and stack tables, cached while it does not grow.

    The key includes the creation time: SQLite reuses the id of a deleted
    newest row, and a new session must not get the old one's names."""
    key = (session.pk, session.created, session.intervals)
    with _INTERNERS_LOCK:
        hit = _INTERNERS.get(key)
        if hit is not None:
            _INTERNERS.move_to_end(key)
            return hit
    strings = SessionString.objects.filter(session=session).order_by("idx")
    stacks = SessionStack.objects.filter(session=session).order_by("idx")
    interner = Interner(
        strings.values_list("text", flat=True),
        ((pid, comm, unpack_ids(bytes(frames)))
         for pid, comm, frames in stacks.values_list("pid", "comm", "frames")))
    with _INTERNERS_LOCK:
        _INTERNERS[key] = interner
        while len(_INTERNERS) > INTERNER_CACHE:
            _INTERNERS.popitem(last=False)
    return interner


@dataclass
class RangeResult:
    tree: FlameTree
    from_ms: int
    to_ms: int
    chunks_read: int
    rollups_read: int


class SessionReader:
    def __init__(self, session: Session) -> None:
        self.session = session

    def bounds(self, from_ms: int | None, to_ms: int | None) -> tuple[int, int]:
        s = self.session
        start = s.started_ms if from_ms is None else from_ms
        end = (s.ended_ms if s.ended_ms is not None else s.started_ms) if to_ms is None else to_ms
        if end <= start:  # an imported session has no duration: its chunk sits at start
            end = start + 1
        return start, end

    def counts(self, kind: str, from_ms: int, to_ms: int) -> tuple[Counter[int], int, int]:
        """Weights per stack id in ``[from_ms, to_ms)``; with rows read."""
        chunks = ProfileChunk.objects.filter(session=self.session, kind=kind)
        rollups = list(chunks.filter(level=LEVEL_MINUTE, start_ms__lt=to_ms,
                                     start_ms__gte=from_ms)
                       .order_by("start_ms").values_list("id", "start_ms", "duration_ms"))
        whole, gaps = plan_range([(s, s + d) for _, s, d in rollups], from_ms, to_ms)
        counts: Counter[int] = Counter()
        whole_ids = [rollups[i][0] for i in whole]
        for row in chunks.filter(id__in=whole_ids).values_list(
                "start_ms", "duration_ms", "data"):
            add_range(counts, Chunk.unpack(kind, row[0], row[1], 0, bytes(row[2])),
                      from_ms, to_ms)
        covered = [(rollups[i][1], rollups[i][1] + rollups[i][2]) for i in whole]
        n_chunks = 0
        for a, b in gaps:
            rows = chunks.filter(level=LEVEL_INTERVAL, start_ms__lt=b,
                                 start_ms__gte=a - MAX_CHUNK_MS).values_list(
                "start_ms", "duration_ms", "slot_ms", "data")
            for start, duration, slot_ms, data in rows:
                if start + max(duration, 1) <= a or any(x <= start < max(y, x + 1)
                                                           for x, y in covered):
                    continue
                n_chunks += 1
                add_range(counts, Chunk.unpack(kind, start, duration, slot_ms, bytes(data)),
                          a, b)
        return counts, n_chunks, len(whole_ids)

    def tree(self, kind: str, from_ms: int | None = None, to_ms: int | None = None,
             flt: ProcessFilter = NO_FILTER) -> RangeResult:
        start, end = self.bounds(from_ms, to_ms)
        counts, n_chunks, n_rollups = self.counts(kind, start, end)
        tree = tree_from_counts(counts, load_interner(self.session), flt)
        return RangeResult(tree, start, end, n_chunks, n_rollups)

    def heatmap(self, kind: str, slot_ms: int = DEFAULT_SLOT_MS) -> Heatmap:
        s = self.session
        rows = (ProfileChunk.objects.filter(session=s, kind=kind, level=LEVEL_INTERVAL)
                .order_by("start_ms")
                .values_list("start_ms", "duration_ms", "slot_ms", "slot_totals", "weight"))
        spans = ((a, d, sl, tot if sl else [w]) for a, d, sl, tot, w in rows)
        start, end = self.bounds(None, None)
        return heatmap(spans, start, end, slot_ms)

    def timeline(self, kind: str) -> list[list[int | None]]:
        """``[start_ms, duration_ms, weight]`` per interval: samples over time.

        A hole (see :func:`gap_ms`) is one more point ``[end_ms, hole_ms, None]``
        where it begins: the chart breaks the line there instead of carrying
        the last rate across time nobody measured."""
        rows = (ProfileChunk.objects.filter(session=self.session, kind=kind,
                                            level=LEVEL_INTERVAL)
                .order_by("start_ms").values_list("start_ms", "duration_ms", "weight"))
        points: list[list[int | None]] = []
        end = None
        for start, duration, weight in rows:
            hole = gap_ms(end, start, duration) if end is not None else 0
            if hole:
                points.append([end, hole, None])
            points.append([start, duration, weight])
            end = max(end or 0, start + duration)
        return points

    def latency(self, kind: str) -> list[dict[str, Any]]:
        rows = (LatencyChunk.objects.filter(session=self.session, kind=kind)
                .order_by("start_ms")
                .values_list("start_ms", "duration_ms", "series", "health"))
        return [{"start_ms": a, "interval_ms": d, "series": s, "health": h}
                for a, d, s, h in rows]
