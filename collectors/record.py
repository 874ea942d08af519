"""Headless recording: ``webprof record KIND``, no server needed.

The loop, signal handling, progress line and output are shared by every
kind; ``main`` here is ``record cpu``, while ``collectors.offcpu`` and
``collectors.latency`` supply ``record_main`` for their kinds on top of
:func:`preflight`, :func:`run` and :func:`finish`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from collectors import bcc_env

EXIT_NO_BPF = 2
DRAIN_EVERY_S = 1.0  # drain often so the maps never fill during long recordings


def main(args: argparse.Namespace) -> int:
    """``webprof record cpu``: folded stacks of on-CPU samples."""
    code = preflight(args.pid)
    if code is not None:
        return code
    from collectors.cpu import CpuCollector

    folded = FoldedStacks()
    code = run(CpuCollector(frequency_hz=args.frequency, pid=args.pid), args.duration,
               args.pid, keeping(args, folded.add))
    if code is not None:
        return code
    finish(folded.text(), args.output, f"{len(folded.counts)} stacks", folded.health,
           "no samples")
    return 0


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
