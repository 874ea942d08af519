"""The kinds of data webprof collects: one row each, one table.

A *kind* is what one BPF program measures and one loader drains: on-CPU
samples, off-CPU time, a latency histogram, probe hits.  Everything that
lists kinds (the protocol's checks, the collector's registry, the host page,
the trace form, session storage and export) reads :data:`KINDS`, so adding a
kind is one row here, one program under ``bpf/`` and one loader under
``collectors/`` (``tests/unit/test_kinds.py`` fails loudly when one of the
three is missing).

A kind belongs to one of two **families**, which decide its wire message
and its pages:

- ``stack``: weighted stacks in ``profile.delta``, drawn as flame graphs;
- ``histogram``: log2 latency buckets in ``latency.delta``, drawn as heatmaps.

A **live** kind can run continuously on a host (chosen on the host page or
with ``--collectors``) and has a live page; the others only run as targeted
traces, whose deltas carry a ``trace_id``.

Pure Python: imports neither Django nor bcc.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["stack", "histogram"]

# Live collector options (fields of collector.config) and what a change of
# each restarts.  See CollectorConfig in protocol.py.
BLOCK_OPTIONS = ("pid", "comm", "min_block_us", "max_block_us", "user_threads_only")


@dataclass(frozen=True)
class Kind:
    """One kind of data.  Names of other code are strings, so this table stays pure."""

    name: str
    family: Family
    unit: str  # of every weight or bucket count: "samples", "us", "hits"
    title: str  # the page's heading and the host page's link
    about: str  # one line under the title
    program: str  # the BPF source under bpf/
    loader: str  # "module:Class" of the collector that loads it
    live: bool = True  # False: only a targeted trace runs it
    # collector.config fields a live collector of this kind is built with;
    # a change of any restarts it.
    options: tuple[str, ...] = ()
    trace_title: str = ""  # the trace form's label
    # Trace request fields the kind uses besides duration and target.
    trace_fields: tuple[str, ...] = ()
    series_label: str = ""  # histograms: what one series is (record's text output)

    @property
    def is_stack(self) -> bool:
        return self.family == "stack"

    @property
    def is_histogram(self) -> bool:
        return self.family == "histogram"

    @property
    def message_type(self) -> str:
        """The wire message that carries this kind's intervals."""
        return "profile.delta" if self.is_stack else "latency.delta"


KINDS: tuple[Kind, ...] = (
    Kind("cpu", "stack", "samples", "CPU flame graph", "where CPU time is spent (samples)",
         "cpu.bpf.c", "collectors.cpu:CpuCollector",
         options=("frequency_hz",), trace_title="CPU profile", trace_fields=("frequency_hz",)),
    Kind("offcpu", "stack", "us", "Off-CPU flame graph", "where threads block, in time blocked",
         "offcpu.bpf.c", "collectors.offcpu:OffCpuCollector",
         options=BLOCK_OPTIONS, trace_title="Off-CPU time", trace_fields=("min_block_us",)),
    Kind("offwake", "stack", "us", "Off-wake flame graph",
         "blocked stacks with the stack that woke them",
         "offcpu.bpf.c", "collectors.offcpu:OffCpuCollector",
         options=BLOCK_OPTIONS, trace_title="Off-wake time", trace_fields=("min_block_us",)),
    Kind("runqlat", "histogram", "us", "Run-queue latency", "wakeup to running, heatmap",
         "runqlat.bpf.c", "collectors.latency:RunqlatCollector",
         options=("pid",), trace_title="Run-queue latency", series_label="task"),
    Kind("biolat", "histogram", "us", "Block I/O latency",
         "issue to completion per device, heatmap",
         "biolat.bpf.c", "collectors.latency:BiolatCollector",
         options=("pid",), trace_title="Block I/O latency", trace_fields=("device",),
         series_label="disk"),
    Kind("syscall", "histogram", "us", "Syscall latency", "per syscall name, heatmap",
         "syscall.bpf.c", "collectors.latency:SyscallCollector",
         options=("pid",), trace_title="Syscall latency", trace_fields=("syscalls",),
         series_label="syscall"),
    Kind("funclat", "histogram", "us", "Function latency", "per function, from uprobes",
         "funclat.bpf.c", "collectors.funclat:FuncLatCollector", live=False,
         trace_title="Function latency (uprobes)", trace_fields=("binary", "symbols"),
         series_label="function"),
    Kind("usdt", "stack", "hits", "USDT probe hits", "stacks that reached a USDT probe",
         "cpu.bpf.c", "collectors.probecount:ProbeCountCollector", live=False,
         trace_title="USDT probe counts", trace_fields=("binary", "probe")),
    Kind("tracepoint", "stack", "hits", "Tracepoint hits", "stacks that hit a tracepoint",
         "cpu.bpf.c", "collectors.probecount:ProbeCountCollector", live=False,
         trace_title="Tracepoint hits with stacks", trace_fields=("tracepoint",)),
)

BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS}


def names(*, family: Family | None = None, live: bool | None = None) -> tuple[str, ...]:
    """Kind names in table order, optionally of one family and/or liveness."""
    return tuple(k.name for k in KINDS
                 if (family is None or k.family == family) and (live is None or k.live == live))


def unit(name: str) -> str:
    return BY_NAME[name].unit


def is_stack(name: str) -> bool:
    kind = BY_NAME.get(name)
    return kind is not None and kind.is_stack


def is_histogram(name: str) -> bool:
    kind = BY_NAME.get(name)
    return kind is not None and kind.is_histogram


# The common selections, in table order.
LIVE = names(live=True)  # what a host can run and the host page lists
STACK = names(family="stack")  # every kind sent as profile.delta
HISTOGRAM = names(family="histogram")  # every kind sent as latency.delta
LIVE_STACK = names(family="stack", live=True)  # the live flame graph pages
LIVE_HISTOGRAM = names(family="histogram", live=True)  # the live heatmap pages
# Sessions store and list kinds stacks first, then histograms.
STORAGE_ORDER = STACK + HISTOGRAM
