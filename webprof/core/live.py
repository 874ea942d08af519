"""Live state of one host's CPU profile: recent intervals plus everything older.

The server keeps one :class:`LiveState` per host.  Every ``profile.delta``
from the host's collector is :meth:`LiveState.apply`-ed once; each browser
then gets a :meth:`snapshot` when it subscribes and one
:meth:`interval_message` per interval after that, filtered by its own process
filter and truncated to the node budget.  The browser builds "last interval",
"last N seconds" and "since start" from those, so it never receives the
history twice.

Raw stacks are kept untruncated here so that a filter applied later still
sees every stack.  Pure Python: imports neither Django nor bcc.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from .flame import FlameTree
from .kinds import unit
from .message import encode
from .protocol import ProfileDelta
from .streamcache import LruCache
from .view_messages import IntervalTree, LiveInterval, LiveSnapshot

DEFAULT_MAX_NODES = 16_384
# Longest sliding window a browser can ask for, in intervals.
DEFAULT_KEEP_INTERVALS = 60
# Distinct (pid, comm, stack) keys kept for "since start" before pids are
# merged (pid 0) to bound memory on machines with many short-lived processes.
DEFAULT_MAX_OLDER_KEYS = 400_000

# Filters whose interval trees are cached per interval.
MAX_CACHED_FILTERS = 8
# Filters whose fitted "since start" tree of retired intervals is kept: a
# snapshot under a filter otherwise re-reads every older stack on the hub's
# one thread.  Each entry is at most max_nodes nodes.
MAX_CACHED_OLDER_FILTERS = 8
# Filters whose latest encoded snapshot a stream keeps.
SNAPSHOT_FILTERS_PER_STREAM = 16

StackKey = tuple[int, str, tuple[str, ...]]


@dataclass
class IntervalRecord:
    serial: int  # numbered by LiveState: a restarted collector starts seq at 0 again
    seq: int
    end_ms: int
    samples: int
    stacks: Counter[StackKey]
    health: dict[str, int] = field(default_factory=dict)
    # Trees already built for this interval, per filter: a snapshot re-sends
    # up to 60 intervals and must not rebuild each of them.
    trees: dict[ProcessFilter, IntervalTree] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcessFilter:
    pid: int | None = None
    comm: str | None = None  # case-insensitive substring of the process name

    def accepts(self, pid: int, comm: str) -> bool:
        if self.pid is not None and pid != self.pid:
            return False
        return not self.comm or self.comm.lower() in comm.lower()


NO_FILTER = ProcessFilter()


class LiveState:
    def __init__(
        self,
        host: str,
        keep_intervals: int = DEFAULT_KEEP_INTERVALS,
        max_nodes: int = DEFAULT_MAX_NODES,
        max_older_keys: int = DEFAULT_MAX_OLDER_KEYS,
        kind: str = "cpu",
    ) -> None:
        self.host = host
        self.kind = kind  # a stack kind (core/kinds.py): says what the weights are
        self.serial = 0  # intervals applied so far
        self.max_nodes = max_nodes
        self.max_older_keys = max_older_keys
        self.recent: deque[IntervalRecord] = deque(maxlen=keep_intervals)
        self.older: Counter[StackKey] = Counter()
        # The unfiltered "since start" tree of retired intervals, kept up to
        # date incrementally because most browsers watch without a filter.
        self.older_tree = FlameTree()
        # Filtered, fitted wire trees of ``older``, least recently used first;
        # emptied whenever ``older`` changes (an interval retires).
        self.older_fitted: LruCache[dict] = LruCache(MAX_CACHED_OLDER_FILTERS)
        self.started_ms = 0
        self.interval_ms = 1000
        self.frequency_hz = 0
        self.last_seq = -1
        self.missed_intervals = 0  # seq gaps seen from the collector
        self.pids_merged = False  # older pids were merged into 0 to bound memory
        self.totals: Counter[str] = Counter()  # health counters since start

    def apply(self, delta: ProfileDelta) -> IntervalRecord:
        if not self.started_ms:
            self.started_ms = delta.start_ms
        if self.last_seq >= 0 and delta.seq > self.last_seq + 1:
            self.missed_intervals += delta.seq - self.last_seq - 1
        self.last_seq = delta.seq
        self.interval_ms = delta.interval_ms
        self.frequency_hz = delta.frequency_hz
        stacks: Counter[StackKey] = Counter()
        samples = 0
        for pid, comm, frames, weight in delta.iter_stacks():
            stacks[(pid, comm, tuple(frames))] += weight
            samples += weight
        self.serial += 1
        record = IntervalRecord(
            serial=self.serial,
            seq=delta.seq,
            end_ms=delta.start_ms + delta.interval_ms,
            samples=samples,
            stacks=stacks,
            health=dict(delta.health),
        )
        self.totals.update(delta.health)
        if len(self.recent) == self.recent.maxlen:
            self._retire(self.recent[0])
        self.recent.append(record)
        # Built now, once: every browser without a filter gets this tree, and
        # a later snapshot re-sends it without rebuilding.
        self.interval_tree(record, NO_FILTER)
        return record

    def _retire(self, record: IntervalRecord) -> None:
        self.older.update(record.stacks)
        for (_pid, comm, frames), weight in record.stacks.items():
            self.older_tree.add((comm, *frames), weight)
        record.trees.clear()
        self.older_fitted.clear()
        if len(self.older) > self.max_older_keys:
            merged: Counter[StackKey] = Counter()
            for (_pid, comm, frames), weight in self.older.items():
                merged[(0, comm, frames)] += weight
            self.older = merged
            self.pids_merged = True

    def snapshot(self, flt: ProcessFilter = NO_FILTER) -> LiveSnapshot:
        return LiveSnapshot(
            host=self.host,
            started_ms=self.started_ms,
            interval_ms=self.interval_ms,
            frequency_hz=self.frequency_hz,
            max_nodes=self.max_nodes,
            since_start=self.older_wire(flt),
            recent=[shallow_dict(self.interval_tree(r, flt)) for r in self.recent],
            pid=flt.pid,
            comm=flt.comm,
            kind=self.kind,
            unit=unit(self.kind),
        )

    def older_wire(self, flt: ProcessFilter) -> dict:
        """The fitted "since start" tree of retired intervals under ``flt``."""
        def build() -> dict:
            older = self.older_tree if flt == NO_FILTER else build_tree(self.older.items(), flt)
            return older.fitted(self.max_nodes)[0].to_wire()

        return self.older_fitted.get(flt, build)

    def record(self, serial: int) -> IntervalRecord | None:
        """A recent interval by serial (None once it has been retired)."""
        for record in reversed(self.recent):
            if record.serial == serial:
                return record
            if record.serial < serial:
                break
        return None

    def interval_tree(self, record: IntervalRecord, flt: ProcessFilter) -> IntervalTree:
        cached = record.trees.get(flt)
        if cached is not None:
            return cached
        tree = build_tree(record.stacks.items(), flt)
        small, folded = tree.fitted(self.max_nodes)
        result = IntervalTree(
            seq=record.seq,
            end_ms=record.end_ms,
            samples=tree.total,
            tree=small.to_wire(),
            folded_nodes=folded,
        )
        if len(record.trees) >= MAX_CACHED_FILTERS:
            record.trees.clear()
        record.trees[flt] = result
        return result

    def interval_message(self, record: IntervalRecord, flt: ProcessFilter) -> LiveInterval:
        it = self.interval_tree(record, flt)
        return LiveInterval(
            host=self.host,
            seq=it.seq,
            end_ms=it.end_ms,
            samples=it.samples,
            tree=it.tree,
            folded_nodes=it.folded_nodes,
            health=record.health,
            kind=self.kind,
        )

    def since_start_tree(self, flt: ProcessFilter = NO_FILTER) -> FlameTree:
        """Untruncated aggregate of everything applied (for tests and export)."""
        tree = build_tree(self.older.items(), flt)
        for record in self.recent:
            tree.merge(build_tree(record.stacks.items(), flt))
        return tree


@dataclass
class ProfileStream:
    """One stack kind of one host as browsers see it: its LiveState and the
    encoded messages already built from it.

    Same face as :class:`webprof.core.latency.LatencyState`: ``apply``,
    ``snapshot_text`` and ``interval_text``.
    """

    state: LiveState
    cache: LruCache[str] = field(default_factory=LruCache)
    # Latest snapshot per filter as (serial, text): snapshots are megabytes, so
    # only the one matching the current serial is worth keeping.
    snapshots: dict[ProcessFilter, tuple[int, str]] = field(default_factory=dict)

    @property
    def serial(self) -> int:
        return self.state.serial

    def apply(self, delta: ProfileDelta) -> int:
        """Keep one interval; return its serial."""
        return self.state.apply(delta).serial

    def snapshot_text(self, flt: ProcessFilter = NO_FILTER) -> tuple[str, int]:
        """Encoded ``live.snapshot`` and the last serial it includes."""
        cached = self.snapshots.get(flt)
        if cached is None or cached[0] != self.state.serial:
            if len(self.snapshots) >= SNAPSHOT_FILTERS_PER_STREAM:
                self.snapshots.clear()
            cached = (self.state.serial, encode(self.state.snapshot(flt)))
            self.snapshots[flt] = cached
        return cached[1], cached[0]

    def interval_text(self, serial: int, flt: ProcessFilter = NO_FILTER) -> str | None:
        """Encoded ``live.interval`` for one serial, or None once retired."""
        record = self.state.record(serial)
        if record is None:
            return None
        return self.cache.get(("interval", serial, flt),
                              lambda: encode(self.state.interval_message(record, flt)))


def build_tree(items: Iterable[tuple[StackKey, int]], flt: ProcessFilter) -> FlameTree:
    tree = FlameTree()
    for (pid, comm, frames), weight in items:
        if flt.accepts(pid, comm):
            tree.add((comm, *frames), weight)
    return tree


def shallow_dict(obj: object) -> dict:
    """A dataclass as a dict without deep-copying its (large) list fields."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}  # type: ignore[arg-type]
