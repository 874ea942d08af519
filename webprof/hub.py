"""The process-wide registry of live data: per host, one stream per collector kind.

The embedded server is one daphne process with the in-memory channel layer,
so every consumer of that process shares this module's :data:`HUB`.  A host
has one :class:`ProfileStream` per profile kind (cpu, offcpu, offwake: a
LiveState each; weights are samples or microseconds, the state does not
care) and one :class:`LatencyStream` per latency kind (runqlat, biolat,
syscall: a ring of the last LATENCY_KEEP_INTERVALS histograms).

The collector consumer applies each delta here exactly once and broadcasts
only a small group event ``{"type": "live.interval", "kind": K, "serial": N}``
(or ``latency.interval``); every subscribed browser socket then asks the hub
for that interval's message under its own filter.  Encoded messages are
cached per (kind, serial, filter), so ten browsers with the same filter cost
one computation.

``serial`` is the hub's own per-stream counter, not the collector's ``seq``:
a collector that restarts starts its ``seq`` at 0 again, which would make
cache keys ambiguous.

Building trees is CPU-bound, so consumers never call the hub on the event
loop: they go through :func:`call`, which runs hub methods one at a time on a
single worker thread.  Because the worker is the only thread touching hub
state, no locks are needed and operations keep their submission order: an
interval is applied before the group event announcing it is sent.  Imports
neither Django nor bcc.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from .core.clock import now_ms
from .core.live import (
    DEFAULT_KEEP_INTERVALS,
    DEFAULT_MAX_NODES,
    LiveState,
    ProcessFilter,
)
from .core.protocol import (
    CollectorHello,
    HostStatus,
    LatencyDelta,
    LatencyInterval,
    LatencySnapshot,
    ProfileDelta,
    encode,
)

# Channels group names: ASCII alphanumerics, hyphen, underscore, period, < 100 chars.
_GROUP_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_HOST_NAME = 255
# Encoded messages kept per stream; a few intervals times a few distinct filters.
CACHE_ENTRIES_PER_STREAM = 256
SNAPSHOT_FILTERS_PER_STREAM = 16
# Latency history: 300 intervals (5 minutes at 1 s) is what a heatmap shows.
LATENCY_KEEP_INTERVALS = 300
# Bounds on what one latency interval may hold.  Syscall names are bounded
# (~450) but per-process run-queue series are not; a series over the cap is
# dropped whole (the busiest are kept, "all" always) and its events counted
# into the interval's health "filtered".  64 log2 buckets cover 0..2^63 µs.
LATENCY_MAX_SERIES = 64
LATENCY_MAX_BUCKETS = 64


def group_name(host: str, prefix: str = "live") -> str:
    """A Channels group for a host: ``<prefix>.<sanitized host>``.

    ``live.<host>`` holds the host's browsers, ``collector.<host>`` its
    collectors.  Names that had to be changed (unsafe characters, too long)
    get a hash suffix, so two hosts never share a group.
    """
    safe = _GROUP_UNSAFE.sub("_", host)[:60]
    if safe != host:
        safe += "-" + hashlib.sha256(host.encode()).hexdigest()[:12]
    return f"{prefix}.{safe}"


class EncodedCache:
    """A small LRU of encoded messages."""

    def __init__(self, size: int = CACHE_ENTRIES_PER_STREAM) -> None:
        self.size = size
        self.items: OrderedDict[tuple, str] = OrderedDict()

    def get(self, key: tuple, build: Callable[[], str]) -> str:
        text = self.items.get(key)
        if text is None:
            text = build()
            self.items[key] = text
            if len(self.items) > self.size:
                self.items.popitem(last=False)
        else:
            self.items.move_to_end(key)
        return text


@dataclass
class ProfileStream:
    """One profile kind of one host: its LiveState and encoded-message caches."""

    state: LiveState
    cache: EncodedCache = field(default_factory=EncodedCache)
    # Latest snapshot per filter as (serial, text): snapshots are megabytes, so
    # only the one matching the current serial is worth keeping.
    snapshots: dict[ProcessFilter, tuple[int, str]] = field(default_factory=dict)

    def snapshot_text(self, flt: ProcessFilter) -> tuple[str, int]:
        cached = self.snapshots.get(flt)
        if cached is None or cached[0] != self.state.serial:
            if len(self.snapshots) >= SNAPSHOT_FILTERS_PER_STREAM:
                self.snapshots.clear()
            cached = (self.state.serial, encode(self.state.snapshot(flt)))
            self.snapshots[flt] = cached
        return cached[1], cached[0]

    def interval_text(self, serial: int, flt: ProcessFilter) -> str | None:
        record = self.state.record(serial)
        if record is None:
            return None
        return self.cache.get(("interval", serial, flt),
                              lambda: encode(self.state.interval_message(record, flt)))


@dataclass
class LatencyRecord:
    serial: int
    seq: int
    end_ms: int
    series: dict[str, list[list[int]]]
    health: dict[str, int]

    def wire(self) -> dict[str, Any]:
        return {"seq": self.seq, "end_ms": self.end_ms, "series": self.series,
                "health": self.health}


class LatencyState:
    """The last ``keep`` intervals of one host's histograms of one latency kind."""

    def __init__(self, host: str, kind: str, keep: int = LATENCY_KEEP_INTERVALS) -> None:
        self.host = host
        self.kind = kind
        self.interval_ms = 1000
        self.records: deque[LatencyRecord] = deque(maxlen=keep)
        self.serial = 0
        self.totals: Counter[str] = Counter()  # health counters since start
        self._snapshot: tuple[int, str] | None = None
        self.cache = EncodedCache(16)

    def apply(self, delta: LatencyDelta) -> int:
        series, dropped = capped_series(delta.series)
        health = dict(delta.health)
        if dropped:
            health["filtered"] = health.get("filtered", 0) + dropped
        self.serial += 1
        self.interval_ms = delta.interval_ms
        self.totals.update(health)
        self.records.append(LatencyRecord(
            serial=self.serial, seq=delta.seq, end_ms=delta.start_ms + delta.interval_ms,
            series=series, health=health))
        return self.serial

    def snapshot_text(self) -> tuple[str, int]:
        if self._snapshot is None or self._snapshot[0] != self.serial:
            msg = LatencySnapshot(
                host=self.host, kind=self.kind, unit="us", interval_ms=self.interval_ms,
                intervals=[r.wire() for r in self.records])
            self._snapshot = (self.serial, encode(msg))
        return self._snapshot[1], self._snapshot[0]

    def interval_text(self, serial: int) -> str | None:
        record = next((r for r in reversed(self.records) if r.serial == serial), None)
        if record is None:
            return None

        def build() -> str:
            return encode(LatencyInterval(
                host=self.host, kind=self.kind, unit="us", seq=record.seq,
                end_ms=record.end_ms, series=record.series, health=record.health))

        return self.cache.get((serial,), build)


def capped_series(
    series: dict[str, list[list[int]]],
) -> tuple[dict[str, list[list[int]]], int]:
    """Keep "all" and the busiest other series up to the caps; count the rest.

    Returns the kept series (buckets sorted by low bound) and the number of
    events (bucket counts) dropped.
    """
    def total(buckets: list[list[int]]) -> int:
        return sum(b[2] for b in buckets)

    names = sorted(series, key=lambda n: (n != "all", -total(series[n]), n))
    kept: dict[str, list[list[int]]] = {}
    dropped = 0
    for name in names:
        buckets = sorted(series[name], key=lambda b: b[0])
        if len(kept) >= LATENCY_MAX_SERIES:
            dropped += total(buckets)
            continue
        if len(buckets) > LATENCY_MAX_BUCKETS:
            dropped += total(buckets[LATENCY_MAX_BUCKETS:])
            buckets = buckets[:LATENCY_MAX_BUCKETS]
        kept[name] = buckets
    return kept, dropped


@dataclass
class HostEntry:
    """A host's streams and its collector connections."""

    host: str
    profiles: dict[str, ProfileStream] = field(default_factory=dict)
    latency: dict[str, LatencyState] = field(default_factory=dict)
    collectors: int = 0  # websocket connections currently sending for this host
    last_seen_ms: int = 0
    hello: CollectorHello | None = None
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=10))


class Hub:
    def __init__(
        self,
        keep_intervals: int = DEFAULT_KEEP_INTERVALS,
        max_nodes: int = DEFAULT_MAX_NODES,
    ) -> None:
        self.keep_intervals = keep_intervals
        self.max_nodes = max_nodes
        self.hosts: dict[str, HostEntry] = {}

    def entry(self, host: str) -> HostEntry:
        entry = self.hosts.get(host)
        if entry is None:
            entry = self.hosts[host] = HostEntry(host)
        return entry

    def profile(self, host: str, kind: str = "cpu") -> ProfileStream:
        entry = self.entry(host)
        stream = entry.profiles.get(kind)
        if stream is None:
            stream = ProfileStream(LiveState(host, keep_intervals=self.keep_intervals,
                                             max_nodes=self.max_nodes, kind=kind))
            entry.profiles[kind] = stream
        return stream

    def latency(self, host: str, kind: str) -> LatencyState:
        entry = self.entry(host)
        state = entry.latency.get(kind)
        if state is None:
            state = entry.latency[kind] = LatencyState(host, kind)
        return state

    def serial(self, host: str, kind: str = "cpu") -> int:
        """Intervals applied so far for one stream (0 if none)."""
        entry = self.entry(host)
        if kind in entry.profiles:
            return entry.profiles[kind].state.serial
        latency = entry.latency.get(kind)
        return latency.serial if latency is not None else 0

    # Collector side

    def collector_connected(self, hello: CollectorHello) -> HostEntry:
        entry = self.entry(hello.host)
        entry.collectors += 1
        entry.hello = hello
        entry.last_seen_ms = now_ms()
        return entry

    def collector_hello_again(self, hello: CollectorHello) -> None:
        """A connected collector changed what it runs (after collector.config)."""
        self.entry(hello.host).hello = hello

    def collector_error(self, host: str, text: str) -> None:
        self.entry(host).errors.append(text)

    def collector_disconnected(self, host: str) -> HostEntry:
        entry = self.entry(host)
        entry.collectors = max(0, entry.collectors - 1)
        entry.last_seen_ms = now_ms()
        return entry

    def apply(self, delta: ProfileDelta) -> int:
        """Apply one profile interval; return its serial for the group event."""
        stream = self.profile(delta.host, delta.kind)
        record = stream.state.apply(delta)
        self.entry(delta.host).last_seen_ms = now_ms()
        return record.serial

    def apply_latency(self, delta: LatencyDelta) -> int:
        serial = self.latency(delta.host, delta.kind).apply(delta)
        self.entry(delta.host).last_seen_ms = now_ms()
        return serial

    def is_connected(self, host: str) -> bool:
        entry = self.hosts.get(host)
        return entry is not None and entry.collectors > 0

    def running(self, host: str) -> list[str] | None:
        """What the host's collector last said runs (None: never said hello here)."""
        entry = self.hosts.get(host)
        return list(entry.hello.collectors) if entry and entry.hello else None

    def errors(self, host: str) -> list[str]:
        entry = self.hosts.get(host)
        return list(entry.errors) if entry else []

    # Browser side

    def snapshot_text(self, host: str, flt: ProcessFilter, kind: str = "cpu") -> tuple[str, int]:
        """Encoded ``live.snapshot`` and the last serial it includes.

        The browser socket ignores group events up to that serial: they are
        already in the snapshot.
        """
        return self.profile(host, kind).snapshot_text(flt)

    def interval_text(
        self, host: str, serial: int, flt: ProcessFilter, kind: str = "cpu"
    ) -> str | None:
        """Encoded ``live.interval`` for one serial, or None if it was retired."""
        return self.profile(host, kind).interval_text(serial, flt)

    def latency_snapshot_text(self, host: str, kind: str) -> tuple[str, int]:
        return self.latency(host, kind).snapshot_text()

    def latency_interval_text(self, host: str, kind: str, serial: int) -> str | None:
        return self.latency(host, kind).interval_text(serial)

    def status_text(self, host: str) -> str:
        entry = self.entry(host)
        status = HostStatus(
            host=host, connected=entry.collectors > 0, last_seen_ms=entry.last_seen_ms
        )
        return encode(status)


_hub = Hub()
_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webprof-hub")

P = ParamSpec("P")
R = TypeVar("R")


async def call(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run a hub method on the hub's worker thread and await its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_worker, lambda: func(*args, **kwargs))


def get_hub() -> Hub:
    return _hub


def configure_hub(keep_intervals: int, max_nodes: int) -> Hub:
    """Replace the process hub with an empty one of this size (app start, tests)."""
    global _hub
    _hub = Hub(keep_intervals=keep_intervals, max_nodes=max_nodes)
    return _hub
