"""Live state of one host's latency histograms of one kind, and the one rule
that caps how many series an interval may carry.

The server keeps one :class:`LatencyState` per (host, histogram kind): a
ring of the last ``keep`` intervals, each a map of series name to log2
buckets.  Browsers get the whole ring as a ``latency.snapshot`` when they
subscribe and one ``latency.interval`` per interval after that.

Capping: a series is a syscall, a disk, a thread name; names such as thread
names are unbounded, so every place that holds series ranks them by one
rule, :func:`rank_series` ("all" first, then the busiest, ties by name),
and keeps a bounded number.  What happens to the rest depends on who holds
it: a collector folds it into the series ``"other"`` so totals stay exact
(its own summary of what it measured), while the server, receiving a
message over the protocol's bound from a peer, drops it and counts the
dropped events into the interval's health ``filtered``.

Pure Python: imports neither Django nor bcc.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .message import encode
from .protocol import LatencyDelta
from .streamcache import LruCache
from .view_messages import LatencyInterval, LatencySnapshot

# Latency history: 300 intervals (5 minutes at 1 s) is what a heatmap shows.
LATENCY_KEEP_INTERVALS = 300
# Bounds on what one live latency interval may hold.  Syscall names are
# bounded (~450) but per-process run-queue series are not.  64 log2 buckets
# cover 0..2^63 µs.
LATENCY_MAX_SERIES = 64
LATENCY_MAX_BUCKETS = 64
ALL = "all"  # the whole-system series: never capped away
OTHER = "other"  # where a collector folds the series beyond its cap


def rank_series(totals: Mapping[str, int], limit: int | None) -> tuple[list[str], list[str]]:
    """Series names kept and left over under a cap of ``limit`` names.

    "all" comes first, then the largest totals, ties by name; ``None`` keeps
    every name (still ranked).
    """
    ranked = sorted(totals, key=lambda name: (name != ALL, -totals[name], name))
    if limit is None:
        return ranked, []
    return ranked[:limit], ranked[limit:]


def bounded_series(
    series: dict[str, list[list[int]]],
) -> tuple[dict[str, list[list[int]]], int]:
    """The server's bound: the series :func:`rank_series` keeps under
    LATENCY_MAX_SERIES, each at most LATENCY_MAX_BUCKETS buckets sorted by
    low bound, and the number of events (bucket counts) dropped."""
    totals = {name: sum(b[2] for b in buckets) for name, buckets in series.items()}
    kept_names, rest = rank_series(totals, LATENCY_MAX_SERIES)
    dropped = sum(totals[name] for name in rest)
    kept: dict[str, list[list[int]]] = {}
    for name in kept_names:
        buckets = sorted(series[name], key=lambda b: b[0])
        if len(buckets) > LATENCY_MAX_BUCKETS:
            dropped += sum(b[2] for b in buckets[LATENCY_MAX_BUCKETS:])
            buckets = buckets[:LATENCY_MAX_BUCKETS]
        kept[name] = buckets
    return kept, dropped


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
    """The last ``keep`` intervals of one host's histograms of one latency kind.

    Same face as :class:`webprof.core.live.ProfileStream`: ``apply``,
    ``snapshot_text`` and ``interval_text`` (a latency subscription has no
    process filter, so ``flt`` is ignored).
    """

    def __init__(self, host: str, kind: str, keep: int = LATENCY_KEEP_INTERVALS) -> None:
        self.host = host
        self.kind = kind
        self.interval_ms = 1000
        self.records: deque[LatencyRecord] = deque(maxlen=keep)
        self.serial = 0
        self.totals: Counter[str] = Counter()  # health counters since start
        self._snapshot: tuple[int, str] | None = None
        self.cache: LruCache[str] = LruCache(16)

    def apply(self, delta: LatencyDelta) -> int:
        """Keep one interval; return its serial."""
        series, dropped = bounded_series(delta.series)
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

    def snapshot_text(self, flt: object = None) -> tuple[str, int]:
        """Encoded ``latency.snapshot`` and the last serial it includes."""
        if self._snapshot is None or self._snapshot[0] != self.serial:
            msg = LatencySnapshot(
                host=self.host, kind=self.kind, unit="us", interval_ms=self.interval_ms,
                intervals=[r.wire() for r in self.records])
            self._snapshot = (self.serial, encode(msg))
        return self._snapshot[1], self._snapshot[0]

    def interval_text(self, serial: int, flt: object = None) -> str | None:
        """Encoded ``latency.interval`` for one serial, or None once retired."""
        record = next((r for r in reversed(self.records) if r.serial == serial), None)
        if record is None:
            return None

        def build() -> str:
            return encode(LatencyInterval(
                host=self.host, kind=self.kind, unit="us", seq=record.seq,
                end_ms=record.end_ms, series=record.series, health=record.health))

        return self.cache.get((serial,), build)
