"""The process-wide registry of live data: per host, one stream per kind.

The embedded server is one daphne process with the in-memory channel layer,
so every consumer of that process shares this module's hub.  A host has one
stream per kind it sends (core/kinds.py decides the family): a
:class:`~webprof.core.live.ProfileStream` for stack kinds (cpu, offcpu,
offwake; weights are samples or microseconds, the state does not care) and
a :class:`~webprof.core.latency.LatencyState` for histogram kinds (runqlat,
biolat, syscall).  Both have the same face: ``apply``, ``snapshot_text``,
``interval_text``.

The ingest (webprof/ingest.py) applies each delta here exactly once and
broadcasts only a small group event ``{"type": "live.interval", "kind": K,
"serial": N}`` (``latency.interval`` for histograms); every subscribed
browser socket then asks the hub for that interval's message under its own
filter.  Encoded messages are cached per (kind, serial, filter), so ten
browsers with the same filter cost one computation.

``serial`` is the hub's own per-stream counter, not the collector's ``seq``:
a collector that restarts starts its ``seq`` at 0 again, which would make
cache keys ambiguous.

Threads: building trees is CPU-bound, so the streams are touched only
through :func:`call`, which runs hub methods one at a time on a single
worker thread.  Because the worker is the only thread touching the streams,
they need no locks and operations keep their submission order: an interval
is applied before the group event announcing it is sent.  The hub also owns
the registry of collector connections (``hub.hosts``, webprof/hosts.py),
which is small, lock-protected and read from any thread.  Imports neither
Django nor bcc.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from .core import kinds
from .core.latency import LatencyState
from .core.live import (
    DEFAULT_KEEP_INTERVALS,
    DEFAULT_MAX_NODES,
    NO_FILTER,
    LiveState,
    ProcessFilter,
    ProfileStream,
)
from .core.protocol import LatencyDelta, ProfileDelta
from .hosts import HostRegistry

# Channels group names: ASCII alphanumerics, hyphen, underscore, period, < 100 chars.
_GROUP_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

Stream = ProfileStream | LatencyState


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


def interval_event(kind: str) -> str:
    """The group event that announces a new interval of ``kind`` to browsers."""
    return "live.interval" if kinds.is_stack(kind) else "latency.interval"


class Hub:
    def __init__(
        self,
        keep_intervals: int = DEFAULT_KEEP_INTERVALS,
        max_nodes: int = DEFAULT_MAX_NODES,
    ) -> None:
        self.keep_intervals = keep_intervals
        self.max_nodes = max_nodes
        self.streams: dict[tuple[str, str], Stream] = {}  # (host, kind) -> stream
        self.hosts = HostRegistry()

    def _new_stream(self, host: str, kind: str) -> Stream:
        if kinds.is_stack(kind):
            return ProfileStream(LiveState(host, keep_intervals=self.keep_intervals,
                                           max_nodes=self.max_nodes, kind=kind))
        return LatencyState(host, kind)

    def stream(self, host: str, kind: str) -> Stream:
        """The stream of one host and kind, created on its first delta.

        Only :meth:`apply` calls this: a stream is never freed, so readers
        (browsers subscribing to any name they like) must not create one.
        """
        stream = self.streams.get((host, kind))
        if stream is None:
            stream = self.streams[(host, kind)] = self._new_stream(host, kind)
        return stream

    def serial(self, host: str, kind: str = "cpu") -> int:
        """Intervals applied so far for one stream (0 if none)."""
        stream = self.streams.get((host, kind))
        return stream.serial if stream is not None else 0

    def apply(self, delta: ProfileDelta | LatencyDelta) -> int:
        """Apply one interval of any kind; return its serial for the group event."""
        serial = self.stream(delta.host, delta.kind).apply(delta)  # type: ignore[arg-type]
        self.hosts.seen(delta.host)
        return serial

    def snapshot_text(self, host: str, kind: str,
                      flt: ProcessFilter = NO_FILTER) -> tuple[str, int]:
        """Encoded snapshot (``live.snapshot`` or ``latency.snapshot``) and the
        last serial it includes.

        The browser socket ignores group events up to that serial: they are
        already in the snapshot.
        """
        stream = self.streams.get((host, kind))
        if stream is None:
            # A known host that sent nothing of this kind yet: an empty
            # snapshot from a throwaway stream, so nothing is kept for it.
            stream = self._new_stream(host, kind)
        return stream.snapshot_text(flt)

    def interval_text(self, host: str, kind: str, serial: int,
                      flt: ProcessFilter = NO_FILTER) -> str | None:
        """Encoded interval message for one serial, or None if it was retired."""
        stream = self.streams.get((host, kind))
        return stream.interval_text(serial, flt) if stream is not None else None


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
