"""``webprof record cpu``: sample for a while, write folded stacks, no server.

Output is Brendan Gregg's folded format, one line per distinct stack:
``comm;outermost;...;leaf COUNT`` with kernel frames suffixed ``_[k]``;
stacks that symbolize identically are merged.  Ctrl-C (or SIGTERM) ends the
recording early and still writes what was recorded.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable

from collectors import bcc_env

EXIT_NO_BPF = 2
DRAIN_EVERY_S = 1.0  # drain often so the maps never fill during long recordings


def main(args: argparse.Namespace) -> int:
    problem = bcc_env.check_privileges()
    if problem:
        print(f"webprof record: cannot load eBPF programs: {problem}", file=sys.stderr)
        return EXIT_NO_BPF
    if args.pid is not None and not os.path.exists(f"/proc/{args.pid}"):
        print(f"webprof record: no process with pid {args.pid}", file=sys.stderr)
        return 1
    from collectors.cpu import CpuCollector

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        folded, health = _record(CpuCollector(frequency_hz=args.frequency, pid=args.pid),
                                 args.duration, args.pid, stop)
    except bcc_env.BpfUnavailable as exc:
        print(f"webprof record: {exc}", file=sys.stderr)
        return EXIT_NO_BPF
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    text = "".join(f"{stack} {count}\n" for stack, count in sorted(folded.items()))
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    summary = ", ".join(f"{k} {v}" for k, v in health.items() if v)
    where = f" -> {args.output}" if args.output else ""
    print(f"webprof record: {len(folded)} stacks ({summary or 'no samples'}){where}",
          file=sys.stderr)
    return 0


def _record(collector, duration_s: float, pid: int | None,
            stop: threading.Event) -> tuple[dict[str, int], dict[str, int]]:
    """Drain every second until the duration ends, the process exits or stop is set."""
    folded: dict[str, int] = {}
    health: dict[str, int] = {}
    tty = sys.stderr.isatty()
    with collector:
        end = time.monotonic() + duration_s
        while not stop.is_set():
            left = end - time.monotonic()
            if left <= 0 or (pid is not None and not os.path.exists(f"/proc/{pid}")):
                break
            if tty:
                print(f"\rrecording: {left:4.0f} s left (Ctrl-C to stop) ", end="",
                      file=sys.stderr, flush=True)
            stop.wait(min(DRAIN_EVERY_S, left))
            _add(folded, health, collector.drain())
        _add(folded, health, collector.drain())
    if tty:
        print("\r" + " " * 40 + "\r", end="", file=sys.stderr, flush=True)
    return folded, health


def _add(folded: dict[str, int], health: dict[str, int], delta) -> None:
    for key, value in delta.health.items():
        health[key] = health.get(key, 0) + value
    for _pid, comm, frames, weight in delta.iter_stacks():
        line = ";".join(_clean([comm, *frames]))
        folded[line] = folded.get(line, 0) + weight


def _clean(names: Iterable[str]) -> Iterable[str]:
    """Folded lines split on ';' and the last space: keep names free of ';'."""
    for name in names:
        yield name.replace(";", ":") if ";" in name else name
