"""What the server sends browsers: snapshots, intervals and host status.

The server builds these from its live state (core/live.py, core/latency.py,
webprof/hosts.py) and browsers only read them, so they carry no checks
beyond their field types.  :func:`webprof.core.protocol.decode` knows them
(tests and tools decode what a browser receives).  Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .message import Message


@dataclass(frozen=True)
class IntervalTree:
    """One interval's flame tree as sent to browsers (part of other messages)."""

    seq: int
    end_ms: int
    samples: int
    tree: dict[str, list]  # FlameTree.to_wire()
    folded_nodes: int  # nodes folded into "[other ...]" by the node budget


@dataclass(frozen=True)
class LiveSnapshot(Message):
    """Server -> browser, once after each subscribe.

    ``since_start`` aggregates every interval before ``recent``; the browser
    adds the recent intervals and every later ``live.interval`` itself.
    """

    type: ClassVar[str] = "live.snapshot"
    host: str
    started_ms: int
    interval_ms: int
    frequency_hz: int
    max_nodes: int
    since_start: dict[str, list]
    recent: list[dict[str, Any]]  # IntervalTree dicts, oldest first
    pid: int | None = None
    comm: str | None = None
    kind: str = "cpu"
    unit: str = "samples"  # of every weight in the trees


@dataclass(frozen=True)
class LiveInterval(Message):
    """Server -> browser, every interval: that interval's tree only."""

    type: ClassVar[str] = "live.interval"
    host: str
    seq: int
    end_ms: int
    samples: int
    tree: dict[str, list]
    folded_nodes: int
    health: dict[str, int] = field(default_factory=dict)
    kind: str = "cpu"

@dataclass(frozen=True)
class LatencySnapshot(Message):
    """Server -> browser after latency.subscribe: the recent intervals."""

    type: ClassVar[str] = "latency.snapshot"
    host: str
    kind: str
    unit: str
    interval_ms: int
    intervals: list[dict[str, Any]]  # {seq, end_ms, series, health}, oldest first


@dataclass(frozen=True)
class LatencyInterval(Message):
    """Server -> browser, every interval: that interval's histograms."""

    type: ClassVar[str] = "latency.interval"
    host: str
    kind: str
    unit: str
    seq: int
    end_ms: int
    series: dict[str, list[list[int]]]
    health: dict[str, int] = field(default_factory=dict)

@dataclass(frozen=True)
class HostStatus(Message):
    """Server -> browser: a collector connected, disconnected or is reconnecting."""

    type: ClassVar[str] = "host.status"
    host: str
    connected: bool
    last_seen_ms: int
