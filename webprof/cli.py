"""The ``webprof`` command.

Sub-commands import their implementation lazily: ``serve`` and ``up`` load
Django, while ``collect``, ``record`` and ``doctor`` load the privileged
``collectors`` package (and through it bcc).  Neither side is imported unless
the sub-command needs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

DEFAULT_INTERVAL_S = 1.0
DEFAULT_FREQUENCY_HZ = 49


def frequency(text: str) -> int:
    value = _int(text, "frequency")
    if not 1 <= value <= 999:
        raise argparse.ArgumentTypeError(f"frequency must be 1..999 Hz, got {value}")
    return value


def duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"duration must be > 0 and <= 86400 s, got {text}")
    return value


def interval(text: str) -> float:
    value = duration(text)
    if not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError(f"interval must be 0.1..60 s, got {text}")
    return value


def pid(text: str) -> int:
    value = _int(text, "pid")
    if not 0 < value < 2**22:
        raise argparse.ArgumentTypeError(f"pid must be a positive process id, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = _int(text, "value")
    if not 0 <= value < 2**40:
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {value}")
    return value


def port(text: str) -> int:
    value = _int(text, "port")
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1..65535, got {value}")
    return value


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be an integer, got {text!r}") from None


def _add_sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--frequency",
        type=frequency,
        default=DEFAULT_FREQUENCY_HZ,
        metavar="HZ",
        help=f"CPU sampling rate per CPU, 1..999 (default {DEFAULT_FREQUENCY_HZ}; "
        "avoid exactly 100, which beats against timer-driven code)",
    )


def _add_collect_options(p: argparse.ArgumentParser) -> None:
    _add_sampling(p)
    p.add_argument(
        "--interval",
        type=interval,
        default=DEFAULT_INTERVAL_S,
        metavar="S",
        help=f"seconds between map drains and updates (default {DEFAULT_INTERVAL_S:g})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webprof",
        description="Live Linux profiling in the browser, built on eBPF.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def collector_list(text: str) -> list[str]:
        """``cpu,offcpu,runqlat`` -> a list of known collector kinds, no repeats."""
        from .core.protocol import LATENCY_KINDS, PROFILE_KINDS

        known = (*PROFILE_KINDS, *LATENCY_KINDS)
        names = [n.strip() for n in text.split(",") if n.strip()]
        bad = [n for n in names if n not in known]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"unknown collectors {', '.join(bad) or '(none given)'}; choose from "
                f"{','.join(known)}")
        return list(dict.fromkeys(names))

    collectors_help = ("comma-separated collectors to start: cpu,offcpu,offwake,runqlat,biolat,"
                       "syscall (default cpu; the host page can change them while running)")

    up = sub.add_parser(
        "up",
        help="run the dashboard and a local collector (embedded defaults)",
        description="Start the server (daphne, SQLite, in-memory channel layer) and a "
        "collector for this machine, and print the URL. Ctrl-C stops both.",
    )
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=port, default=8000, help="port to listen on (default 8000)")
    _add_collect_options(up)
    up.add_argument("--collectors", type=collector_list, default=["cpu"], metavar="LIST",
                    help=collectors_help)
    up.set_defaults(handler="webprof.server:up")

    serve = sub.add_parser(
        "serve",
        help="run the server only, under daphne",
        description="Run the web server only. Collectors connect with the token "
        "printed at start-up (or WEBPROF_COLLECTOR_TOKEN).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=port, default=8000, help="port to listen on")
    serve.set_defaults(handler="webprof.server:serve")

    collect = sub.add_parser(
        "collect",
        help="run a collector only, streaming to a server",
        description="Profile this machine and stream to a webprof server. Needs root "
        "(or CAP_BPF and CAP_PERFMON).",
    )
    collect.add_argument("--server", required=True, metavar="URL", help="e.g. ws://host:8000")
    collect.add_argument(
        "--token",
        metavar="TOKEN",
        help="collector token shown by the server (default: $WEBPROF_TOKEN)",
    )
    collect.add_argument("--name", metavar="HOST", help="host name to report (default: hostname)")
    _add_collect_options(collect)
    collect.add_argument("--collectors", type=collector_list, default=["cpu"], metavar="LIST",
                         help=collectors_help)
    collect.set_defaults(handler="collectors.runner:main")

    record = sub.add_parser(
        "record",
        help="record a profile headlessly, no server needed",
        description="Record with eBPF and write the result to a file or stdout.",
    )
    kinds = record.add_subparsers(dest="kind", metavar="KIND", required=True)
    cpu = kinds.add_parser(
        "cpu",
        help="sample on-CPU stacks; writes folded stacks",
        description="Sample user and kernel stacks on every CPU and write Brendan "
        "Gregg's folded format: 'comm;outermost;...;leaf COUNT', kernel frames "
        "suffixed with _[k].",
    )
    cpu.add_argument("--duration", type=duration, required=True, metavar="S", help="seconds")
    _add_sampling(cpu)
    cpu.add_argument("--pid", type=pid, help="only this process (all its threads)")
    cpu.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    cpu.set_defaults(handler="collectors.record:main")

    for kind, what in (
        ("offcpu", "time blocked off-CPU per stack"),
        ("offwake", "time blocked per stack, joined to the waker's stack"),
    ):
        p = kinds.add_parser(
            kind,
            help=f"{what}; writes folded stacks in microseconds",
            description=f"Record {what} from the sched tracepoints and write folded "
            "stacks whose values are microseconds.",
        )
        p.add_argument("--duration", type=duration, required=True, metavar="S", help="seconds")
        p.add_argument("--pid", type=pid, help="only this process (all its threads)")
        p.add_argument("--min-block-us", type=_non_negative, default=1, metavar="US",
                       help="ignore blocks shorter than this (default 1 us)")
        p.add_argument("--max-block-us", type=_non_negative, metavar="US",
                       help="ignore blocks longer than this")
        p.add_argument("--all-threads", action="store_true",
                       help="include kernel threads (default: user threads only)")
        p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
        p.set_defaults(handler="collectors.offcpu:record_main")

    for kind, what in (
        ("runqlat", "run-queue latency (wakeup to running)"),
        ("biolat", "block I/O latency (issue to completion), per device and direction"),
        ("syscall", "system call latency, per system call"),
    ):
        p = kinds.add_parser(
            kind,
            help=f"{what} as log2 histograms",
            description=f"Record {what} as log2 histograms in microseconds.",
        )
        p.add_argument("--duration", type=duration, required=True, metavar="S", help="seconds")
        p.add_argument("--pid", type=pid, help="only this process (all its threads)")
        p.add_argument("--format", choices=("json", "text"), default="text",
                       help='text: log2 histograms; json: {"unit": "us", "series": '
                       "{NAME: [[low, high, count], ...]}}")
        p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
        p.set_defaults(handler="collectors.latency:record_main")

    doctor = sub.add_parser(
        "doctor",
        help="check that this machine can run the collectors",
        description="Check privileges, the bpf syscall, tracefs, kernel headers, BTF, "
        "perf events and a trivial bcc compile; say how to fix what fails.",
    )
    doctor.set_defaults(handler="collectors.doctor:main")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, func_name = args.handler.split(":")
    handler = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
