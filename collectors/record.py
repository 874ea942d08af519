"""Headless recording: ``webprof record KIND``, no server needed.

:func:`main` is the command for every kind (``args.kind``): stack kinds
write folded stacks (cpu: samples; offcpu, offwake: microseconds blocked),
histogram kinds write log2 histograms as text or JSON.  The loop, signal
handling, progress line and output are shared: :func:`preflight`,
:func:`run` and :func:`finish`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from collectors import bcc_env, histogram, registry
from webprof.core import kinds

EXIT_NO_BPF = 2
DRAIN_EVERY_S = 1.0  # drain often so the maps never fill during long recordings


def main(args: argparse.Namespace) -> int:
    """``webprof record KIND``: record ``args.kind`` and write what it found."""
    code = preflight(args.pid)
    if code is not None:
        return code
    if kinds.is_histogram(args.kind):
        return _record_histograms(args)
    return _record_stacks(args)


def _record_stacks(args: argparse.Namespace) -> int:
    """cpu, offcpu, offwake: folded stacks, weighted in the kind's unit."""
    loader = registry.loader_class(args.kind)
    try:
        if args.kind == "cpu":
            collector = loader(frequency_hz=args.frequency, pid=args.pid)
        else:
            collector = loader(kind=args.kind, pid=args.pid, min_block_us=args.min_block_us,
                               max_block_us=args.max_block_us,
                               user_threads_only=not args.all_threads)
    except ValueError as exc:
        print(f"webprof record: {exc}", file=sys.stderr)
        return 1
    folded = FoldedStacks()
    code = run(collector, args.duration, args.pid, keeping(args, folded.add))
    if code is not None:
        return code
    blocked = kinds.unit(args.kind) == "us"
    finish(folded.text(), args.output,
           f"{len(folded.counts)} stacks" + (", values in microseconds" if blocked else ""),
           folded.health, "nothing blocked" if blocked else "no samples")
    return 0


def _record_histograms(args: argparse.Namespace) -> int:
    """runqlat, biolat, syscall: log2 histograms, JSON or text."""
    try:
        collector = registry.loader_class(args.kind)(pid=args.pid, max_series=None)
    except ValueError as exc:
        print(f"webprof record {args.kind}: {exc}", file=sys.stderr)
        return 1
    series: dict[str, list[list[int]]] = {}
    health: dict[str, int] = {}

    def add(delta: Any) -> None:
        add_health(health, delta)
        for name, buckets in delta.series.items():
            series[name] = histogram.merge(series.get(name, []), buckets)

    code = run(collector, args.duration, args.pid, keeping(args, add))
    if code is not None:
        return code
    if args.kind == "runqlat":
        series = _cap_buckets(series)
    if args.format == "json":
        text = json.dumps({"unit": "us", "series": series}, sort_keys=True) + "\n"
    else:
        text = histogram.render_all(series, label=kinds.BY_NAME[args.kind].series_label)
    finish(text, args.output, f"{len(series)} series", health, "no events")
    return 0


def _cap_buckets(series: dict[str, list[list[int]]]) -> dict[str, list[list[int]]]:
    """cap_series over bucket lists, keeping "all" outside the cap."""
    from collectors.latency import DEFAULT_MAX_SERIES, cap_series

    everything = series.pop("all", [])
    slots = {name: {histogram.slot_of(low): n for low, _, n in buckets}
             for name, buckets in series.items()}
    capped = {name: histogram.from_slots(s)
              for name, s in cap_series(slots, DEFAULT_MAX_SERIES).items()}
    if everything:
        capped["all"] = everything
    return capped


def preflight(pid: int | None) -> int | None:
    """Say what is missing before compiling anything; an exit code, or None."""
    problem = bcc_env.check_privileges()
    if problem:
        print(f"webprof record: cannot load eBPF programs: {problem}", file=sys.stderr)
        return EXIT_NO_BPF
    if pid is not None and not os.path.exists(f"/proc/{pid}"):
        print(f"webprof record: no process with pid {pid}", file=sys.stderr)
        return 1
    return None


def run(collector: Any, duration_s: float, pid: int | None,
        on_delta: Callable[[Any], None]) -> int | None:
    """Drain every second until the duration ends, the process exits, or
    SIGINT/SIGTERM arrives (what was recorded so far is kept).  Returns an
    exit code when the programs could not be loaded, else None."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    tty = sys.stderr.isatty()
    try:
        with collector:
            end = time.monotonic() + duration_s
            while not stop.is_set():
                left = end - time.monotonic()
                if left <= 0 or (pid is not None and not os.path.exists(f"/proc/{pid}")):
                    break
                if tty:
                    print(f"\rrecording {collector.kind}: {left:4.0f} s left (Ctrl-C to stop) ",
                          end="", file=sys.stderr, flush=True)
                stop.wait(min(DRAIN_EVERY_S, left))
                on_delta(collector.drain())
            on_delta(collector.drain())
    except bcc_env.BpfUnavailable as exc:
        print(f"webprof record: {exc}", file=sys.stderr)
        return EXIT_NO_BPF
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if tty:
            print("\r" + " " * 50 + "\r", end="", file=sys.stderr, flush=True)
    return None


def keeping(args: argparse.Namespace,
            on_delta: Callable[[Any], None]) -> Callable[[Any], None]:
    """``on_delta``, also appending every delta to ``args.keep_deltas`` when the
    caller set that list (``record --save``: the webprof side stores them).
    Kept here as plain protocol messages so this package never imports Django."""
    kept = getattr(args, "keep_deltas", None)
    if kept is None:
        return on_delta

    def both(delta: Any) -> None:
        on_delta(delta)
        kept.append(delta)

    return both


def finish(text: str, output: str | None, what: str, health: dict[str, int],
           empty: str) -> None:
    """Write the result and one summary line (with every non-zero counter)."""
    if output:
        with open(output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    summary = ", ".join(f"{k} {v}" for k, v in health.items() if v)
    where = f" -> {output}" if output else ""
    print(f"webprof record: {what} ({summary or empty}){where}", file=sys.stderr)


def add_health(health: dict[str, int], delta: Any) -> None:
    for key, value in delta.health.items():
        health[key] = health.get(key, 0) + value


class FoldedStacks:
    """Profile deltas merged into folded lines ``comm;outer;...;leaf WEIGHT``."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.health: dict[str, int] = {}

    def add(self, delta: Any) -> None:
        add_health(self.health, delta)
        for _pid, comm, frames, weight in delta.iter_stacks():
            line = ";".join(_clean([comm, *frames]))
            self.counts[line] = self.counts.get(line, 0) + weight

    def text(self) -> str:
        return "".join(f"{stack} {count}\n" for stack, count in sorted(self.counts.items()))


def _clean(names: Iterable[str]) -> Iterable[str]:
    """Folded lines split on ';' and the last space: keep names free of ';'."""
    for name in names:
        yield name.replace(";", ":") if ";" in name else name
