"""The process-wide registry of live profiles: one LiveState per host.

The embedded server is one daphne process with the in-memory channel layer,
so every consumer of that process shares this module's :data:`HUB`.  The
collector consumer applies each ``profile.delta`` here exactly once and
broadcasts only a small group event ``{"type": "live.interval", "serial": N}``;
every subscribed browser socket then asks the hub for that interval's message
under its own process filter.  Encoded messages are cached per
(host, serial, filter), so ten browsers with the same filter cost one
computation.

``serial`` is the hub's own per-host counter, not the collector's ``seq``: a
collector that restarts starts its ``seq`` at 0 again, which would make cache
keys ambiguous.

Building trees is CPU-bound (a snapshot of 60 busy intervals takes seconds
in pure Python), so consumers never call the hub on the event loop: they go
through :func:`call`, which runs hub methods one at a time on a single worker
thread.  That keeps websockets (pings, other hosts, refusals) responsive, and
because the worker is the only thread touching hub state, no locks are
needed and operations keep their submission order: an interval is applied
before the group event announcing it is sent.  Imports neither Django nor bcc.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from .core.live import (
    DEFAULT_KEEP_INTERVALS,
    DEFAULT_MAX_NODES,
    IntervalRecord,
    LiveState,
    ProcessFilter,
)
from .core.protocol import CollectorHello, HostStatus, ProfileDelta, encode

# Channels group names: ASCII alphanumerics, hyphen, underscore, period, < 100 chars.
_GROUP_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_HOST_NAME = 255
# Encoded messages kept per host; a few intervals times a few distinct filters.
CACHE_ENTRIES_PER_HOST = 256
SNAPSHOT_FILTERS_PER_HOST = 16


def group_name(host: str) -> str:
    """The Channels group of a host's browsers: ``live.<sanitized host>``.

    Names that had to be changed (unsafe characters, too long) get a hash
    suffix, so two hosts never share a group.
    """
    safe = _GROUP_UNSAFE.sub("_", host)[:60]
    if safe != host:
        safe += "-" + hashlib.sha256(host.encode()).hexdigest()[:12]
    return f"live.{safe}"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class HostEntry:
    """A host's live state, its recent records by serial, and its collectors."""

    state: LiveState
    records: deque[tuple[int, IntervalRecord]]
    serial: int = 0
    collectors: int = 0  # websocket connections currently sending for this host
    last_seen_ms: int = 0
    hello: CollectorHello | None = None
    cache: OrderedDict[tuple, str] = field(default_factory=OrderedDict)
    # Latest snapshot per filter as (serial, text): snapshots are megabytes, so
    # only the one matching the current serial is worth keeping.
    snapshots: dict[ProcessFilter, tuple[int, str]] = field(default_factory=dict)

    def record(self, serial: int) -> IntervalRecord | None:
        for s, rec in reversed(self.records):
            if s == serial:
                return rec
            if s < serial:
                break
        return None

    def cached(self, key: tuple, build: Callable[[], str]) -> str:
        text = self.cache.get(key)
        if text is None:
            text = build()
            self.cache[key] = text
            if len(self.cache) > CACHE_ENTRIES_PER_HOST:
                self.cache.popitem(last=False)
        else:
            self.cache.move_to_end(key)
        return text


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
            state = LiveState(host, keep_intervals=self.keep_intervals, max_nodes=self.max_nodes)
            entry = HostEntry(state=state, records=deque(maxlen=self.keep_intervals))
            self.hosts[host] = entry
        return entry

    # Collector side

    def collector_connected(self, hello: CollectorHello) -> HostEntry:
        entry = self.entry(hello.host)
        entry.collectors += 1
        entry.hello = hello
        entry.last_seen_ms = now_ms()
        return entry

    def collector_disconnected(self, host: str) -> HostEntry:
        entry = self.entry(host)
        entry.collectors = max(0, entry.collectors - 1)
        entry.last_seen_ms = now_ms()
        return entry

    def apply(self, delta: ProfileDelta) -> int:
        """Apply one interval; return its serial for the group event."""
        entry = self.entry(delta.host)
        record = entry.state.apply(delta)
        entry.serial += 1
        entry.records.append((entry.serial, record))
        entry.last_seen_ms = now_ms()
        return entry.serial

    def is_connected(self, host: str) -> bool:
        entry = self.hosts.get(host)
        return entry is not None and entry.collectors > 0

    # Browser side

    def snapshot_text(self, host: str, flt: ProcessFilter) -> tuple[str, int]:
        """Encoded ``live.snapshot`` and the last serial it includes.

        The browser socket ignores group events up to that serial: they are
        already in the snapshot.
        """
        entry = self.entry(host)
        cached = entry.snapshots.get(flt)
        if cached is None or cached[0] != entry.serial:
            if len(entry.snapshots) >= SNAPSHOT_FILTERS_PER_HOST:
                entry.snapshots.clear()
            cached = (entry.serial, encode(entry.state.snapshot(flt)))
            entry.snapshots[flt] = cached
        return cached[1], cached[0]

    def interval_text(self, host: str, serial: int, flt: ProcessFilter) -> str | None:
        """Encoded ``live.interval`` for one serial, or None if it was retired."""
        entry = self.entry(host)
        record = entry.record(serial)
        if record is None:
            return None
        key = ("interval", serial, flt)
        return entry.cached(key, lambda: encode(entry.state.interval_message(record, flt)))

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
