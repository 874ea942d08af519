"""Kind -> loader: the one place that builds a collector object.

The kind table (webprof/core/kinds.py) names each kind's loader class as
``"module:Class"``; :func:`loader_class` resolves it.  Two callers build
loaders, each from its own description of what to run:

- the runner's fleet, from a live ``collector.config``: :func:`for_config`
  passes the config fields the kind table lists as the kind's ``options``;
- the trace manager, from a checked trace request: :func:`for_trace` passes
  the target and the kind's ``trace_fields``, in the form the checks
  (collectors/tracecheck.py) resolved them to.

A loader class shared by several kinds (off-CPU and off-wake; USDT and
tracepoint hits) is told its kind.  Built loaders are not entered yet:
entering compiles and attaches.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from webprof.core import kinds
from webprof.core.protocol import CollectorConfig

if TYPE_CHECKING:
    from collectors.base import Collector
    from collectors.tracecheck import HostFacts
    from webprof.core.tracespec import TraceSpec

# A trace request's field -> (the loader's keyword, its checked value).  The
# checks turn names into what the kernel compares: a disk into its dev_t,
# system call names into numbers, a USDT probe into its sites' addresses, a
# binary into its real path.
TRACE_ARGUMENTS: dict[str, tuple[str, Callable[[TraceSpec, HostFacts], Any]]] = {
    "frequency_hz": ("frequency_hz", lambda spec, facts: spec.frequency_hz),
    "min_block_us": ("min_block_us", lambda spec, facts: spec.min_block_us),
    "device": ("device", lambda spec, facts: facts.device),
    "syscalls": ("syscalls", lambda spec, facts: facts.syscalls),
    "binary": ("binary", lambda spec, facts: facts.binary),
    "symbols": ("symbols", lambda spec, facts: spec.symbols),
    "probe": ("addresses", lambda spec, facts: facts.usdt_addresses),
    "tracepoint": ("tracepoint", lambda spec, facts: spec.tracepoint),
}

# Block requests are issued by kernel workers and completed in interrupts, so
# BiolatCollector refuses a process target; the checks refuse one in a trace
# request, and none is passed.
NO_PROCESS_TARGET = frozenset({"biolat"})


def loader_class(kind: str) -> type:
    """The loader class of ``kind``, imported on first use.

    Loader modules load libbcc when imported (collectors/maps.py), so they are
    imported only when a collector is built: the runner, the checks and
    ``webprof record`` can say what is missing (no privileges, no bcc) first.
    """
    module, _, name = kinds.BY_NAME[kind].loader.partition(":")
    return getattr(importlib.import_module(module), name)


def for_config(kind: str, config: CollectorConfig, interval_ms: int, host: str) -> Collector:
    """A live collector of ``kind`` built with the config fields of its options."""
    options = {name: getattr(config, name) for name in kinds.BY_NAME[kind].options}
    return _build(kind, **options, interval_ms=interval_ms, host=host)


def for_trace(spec: TraceSpec, facts: HostFacts, host: str, interval_ms: int) -> Collector:
    """The loader for a checked trace request."""
    arguments = {"pid": spec.pid, "target_comm": spec.comm, "cgroup_id": facts.cgroup_id}
    if spec.kind in NO_PROCESS_TARGET:
        del arguments["pid"], arguments["target_comm"]
    for field in kinds.BY_NAME[spec.kind].trace_fields:
        keyword, value = TRACE_ARGUMENTS[field]
        arguments[keyword] = value(spec, facts)
    return _build(spec.kind, **arguments, interval_ms=interval_ms, host=host)


def _build(kind: str, **arguments: Any) -> Collector:
    if _shared(kind):
        arguments["kind"] = kind
    return loader_class(kind)(**arguments)


def _shared(kind: str) -> bool:
    """Whether ``kind``'s loader class serves other kinds too (and takes ``kind=``)."""
    loader = kinds.BY_NAME[kind].loader
    return sum(k.loader == loader for k in kinds.KINDS) > 1
