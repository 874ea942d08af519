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
import textwrap
from typing import Any

from .argtypes import (
    collector_list,
    duration,
    frequency,
    host_name,
    interval,
    non_negative,
    pid,
    port,
    seconds,
)
from .core.kinds import LIVE as LIVE_KINDS

DEFAULT_INTERVAL_S = 1.0
DEFAULT_FREQUENCY_HZ = 49
COLLECTORS_HELP = (f"comma-separated collectors to start: {','.join(LIVE_KINDS)} "
                   "(default cpu; the host page can change them while running)")
SESSION_REF = "a session id, or its exact name"
PUBLIC_URL_HELP = ("base of the printed URL (default: the WEBPROF_PUBLIC_URL setting, from the "
                   "environment variable of that name; else http://<this hostname>:8000)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webprof",
        description="Live Linux profiling in the browser, built on eBPF.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # In this order in `webprof --help`.
    for add in (_add_server_commands, _add_record_command, _add_doctor_command,
                _add_session_commands, _add_transfer_commands, _add_prune_command,
                _add_token_commands, _add_host_commands):
        add(sub)
    return parser


def _add_server_commands(sub: Any) -> None:
    """up, serve, collect: the dashboard, the collector, or both."""
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
                    help=COLLECTORS_HELP)
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
        "(or CAP_BPF and CAP_PERFMON). The collector token printed by `webprof serve` "
        "comes from $WEBPROF_TOKEN or --token-file.",
    )
    collect.add_argument("--server", required=True, metavar="URL",
                         help="e.g. ws://host:8000, or wss://host for a server behind TLS")
    collect.add_argument(
        "--ca-file", metavar="PATH",
        help="with a wss:// server: verify its certificate against the CA certificates "
        "(PEM) in PATH only (default: the system's trust store)")
    token = collect.add_mutually_exclusive_group()
    token.add_argument(
        "--token-file", metavar="PATH",
        help="read the collector token from PATH, a file owned by you with mode 0600 "
        "(default: $WEBPROF_TOKEN)")
    token.add_argument(
        "--token", metavar="TOKEN",
        help="the collector token itself; avoid: other local users can read it in the "
        "process list (ps). Use --token-file or $WEBPROF_TOKEN")
    collect.add_argument("--name", type=host_name, metavar="HOST",
                         help="host name to report: letters, digits, '-', '_' and '.' "
                         "(default: hostname)")
    _add_collect_options(collect)
    collect.add_argument("--collectors", type=collector_list, default=["cpu"], metavar="LIST",
                         help=COLLECTORS_HELP)
    collect.set_defaults(handler="collectors.runner:main")


def _add_record_command(sub: Any) -> None:
    """record KIND: one parser per kind, each writing to a file or stdout."""
    record = sub.add_parser(
        "record",
        help="record a profile headlessly, no server needed",
        description="Record with eBPF and write the result to a file or stdout; with "
        "--save NAME also keep it as a session in webprof's database.",
    )
    kinds = record.add_subparsers(dest="kind", metavar="KIND", required=True)
    _add_record_cpu(kinds)
    _add_record_offcpu(kinds)
    _add_record_latency(kinds)


def _add_record_cpu(kinds: Any) -> None:
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
    _add_save(cpu)
    cpu.set_defaults(handler="collectors.record:main")


def _add_record_offcpu(kinds: Any) -> None:
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
        p.add_argument("--min-block-us", type=non_negative, default=1, metavar="US",
                       help="ignore blocks shorter than this (default 1 us)")
        p.add_argument("--max-block-us", type=non_negative, metavar="US",
                       help="ignore blocks longer than this")
        p.add_argument("--all-threads", action="store_true",
                       help="include kernel threads (default: user threads only)")
        p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
        _add_save(p)
        p.set_defaults(handler="collectors.record:main")


def _add_record_latency(kinds: Any) -> None:
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
        _add_save(p)
        p.set_defaults(handler="collectors.record:main")


def _add_doctor_command(sub: Any) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check that this machine can run the collectors",
        description="Check privileges, the bpf syscall, tracefs, kernel headers, BTF, "
        "perf events and a trivial bcc compile; say how to fix what fails.",
    )
    doctor.set_defaults(handler="collectors.doctor:main")


def _add_session_commands(sub: Any) -> None:
    """sessions, share, unshare, shares: list sessions and their read-only links."""
    p = _session_parser(
        sub, "sessions", "list recorded and imported sessions",
        "List sessions, newest first: id, name, host, kinds, start, duration, size on "
        "disk, owner and state.", "list_sessions",
        "webprof sessions", "webprof sessions -q checkout", "webprof sessions --json | jq '.[0]'")
    p.add_argument("-q", "--query", metavar="TEXT",
                   help="only sessions whose name, host or notes contain TEXT")
    p.add_argument("--json", action="store_true", help="print a JSON array instead")

    p = _session_parser(
        sub, "share", "create a read-only link to a session and print its URL",
        "Create a read-only share link. Opening it needs no login and shows that session "
        "only. The URL carries a secret token that is printed once and stored hashed.",
        "share", "webprof share 12", "webprof share 'before deploy' --expires 7d",
        "webprof share 12 --base-url https://prof.example.com")
    p.add_argument("session", metavar="SESSION", help=SESSION_REF)
    p.add_argument("--expires", metavar="DURATION", default="",
                   help="e.g. 30m, 12h, 7d, 2w (at most 366 days; default: never)")
    p.add_argument("--base-url", metavar="URL", help=PUBLIC_URL_HELP)

    p = _session_parser(
        sub, "unshare", "revoke a share link",
        "Revoke a share link by its token, its URL, or the 8-character prefix that "
        "`webprof shares` lists. Tokens may start with '-': put them after '--'.",
        "unshare", "webprof unshare -- Xk3_9aQz", "webprof unshare -- -bR2xY7q")
    p.add_argument("token", metavar="TOKEN", help="the token, the link's URL or its prefix")
    p = _session_parser(
        sub, "shares", "list a session's active share links",
        "List a session's active (not revoked, not expired) share links by prefix.",
        "list_shares", "webprof shares 12")
    p.add_argument("session", metavar="SESSION", help=SESSION_REF)
    p.add_argument("--json", action="store_true", help="print a JSON array instead")


def _add_transfer_commands(sub: Any) -> None:
    """export, import: a session to a file and a folded-stacks file to a session."""
    p = _session_parser(
        sub, "export", "write a session (or a time range of it) to a file",
        "Export one profile kind of a session as folded stacks (FlameGraph, speedscope), "
        "speedscope's JSON format, or gzipped pprof (go tool pprof, Pyroscope, Parca).",
        "export", "webprof export 12 --format pprof -o cpu.pb.gz",
        "webprof export 12 --format folded --from 10 --to 12.5 -o - | flamegraph.pl > a.svg",
        "webprof export 'nightly' --format speedscope --kind offcpu -o off.json")
    p.add_argument("session", metavar="SESSION", help=SESSION_REF)
    p.add_argument("--format", required=True, choices=("folded", "speedscope", "pprof"))
    p.add_argument("--kind", choices=("cpu", "offcpu", "offwake"),
                   help="which profile (default: the session's first)")
    p.add_argument("--from", dest="from_s", type=seconds, metavar="S",
                   help="start of the range, seconds from the session's start (default 0)")
    p.add_argument("--to", dest="to_s", type=seconds, metavar="S",
                   help="end of the range, seconds from the session's start (default: its end)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="'-' for stdout")

    p = _session_parser(
        sub, "import", "make a session from a folded-stacks file",
        "Import folded stacks as a new session and print its id. Reads webprof's own "
        "folded output, `perf script | stackcollapse-perf.pl` output and bcc "
        "`profile -f` output. A bad line is reported by number and nothing is created.",
        "import_file", "webprof import cpu.folded --name 'prod, Monday'",
        "perf script | stackcollapse-perf.pl | webprof import - --name perf-run")
    p.add_argument("file", metavar="FILE", help="'-' for stdin")
    p.add_argument("--name", required=True, help="the new session's name")
    p.add_argument("--host", help="the host it was recorded on (default: none)")


def _add_prune_command(sub: Any) -> None:
    p = _session_parser(
        sub, "prune", "delete old sessions to keep within age and size limits (cron-safe)",
        "Delete finished sessions older than the age limit, then the oldest finished ones "
        "until the total size fits; sessions still recording are never touched. Limits "
        "come from WEBPROF_RETENTION_MAX_AGE_DAYS and WEBPROF_RETENTION_MAX_BYTES unless "
        "given here; with neither it does nothing. Safe to run from cron: no questions, "
        "exit 0 when there is nothing to do, a lock file (prune.lock in the data directory) "
        "so only one runs at a time (another run exits 1 with a message, or waits with "
        "--wait). On SQLite a WAL checkpoint gives the deleted rows' space back to the "
        "database; --vacuum also runs VACUUM, which shrinks the file itself but rewrites "
        "it (needs that much free disk, and blocks writes while it runs).",
        "prune", "webprof prune --max-age 30d --dry-run", "webprof prune --max-size 10G",
        "# in /etc/cron.d/webprof, nightly at 03:17:",
        "17 3 * * *  root  /opt/webprof/.venv/bin/webprof prune --max-age 30d --max-size 10G")
    p.add_argument("--max-age", metavar="AGE",
                   help="e.g. 30d, 2w, 12h, or 'none' (default: the setting)")
    p.add_argument("--max-size", metavar="SIZE",
                   help="total size_bytes to keep, e.g. 500M, 10G, or 'none' "
                   "(default: the setting)")
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    p.add_argument("--vacuum", action="store_true",
                   help="also run VACUUM after deleting, to shrink the database files")
    p.add_argument("--wait", action="store_true",
                   help="wait for a running prune to finish instead of exiting")


def _add_token_commands(sub: Any) -> None:
    p = sub.add_parser(
        "token", help="create, revoke or list API tokens (Authorization: Bearer)",
        description=textwrap.fill(
            "API tokens let scripts use the HTTP API (docs/API.md) as a user: "
            "'Authorization: Bearer TOKEN'. A token is printed once and stored hashed.", 78),
        epilog=_examples("TOKEN=$(webprof token create alice --name ci)",
                         "curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8000/api/hosts",
                         "webprof token list alice", "webprof token revoke Xk3_9aQz"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler="webprof.traces.commands:token")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a token for an existing user; print it once")
    create.add_argument("username", metavar="USERNAME")
    create.add_argument("--name", metavar="LABEL", help="a label to tell tokens apart")
    revoke = actions.add_parser(
        "revoke", help="revoke a token by its text or 8-character prefix",
        description="Tokens never start with '-'; put one after '--' anyway if in doubt.")
    revoke.add_argument("token", metavar="TOKEN_OR_PREFIX")
    listing = actions.add_parser("list", help="list tokens (prefix, user, state, last use)")
    listing.add_argument("username", metavar="USERNAME", nargs="?", help="only this user's")
    listing.add_argument("--json", action="store_true", help="print a JSON array instead")


def _add_host_commands(sub: Any) -> None:
    p = sub.add_parser(
        "host", help="enroll or revoke a host's own collector token",
        description=textwrap.fill(
            "A per-host collector token works for one host name only: a collector using it "
            "cannot speak for another host. It is printed once and stored hashed. The shared "
            "token printed by `webprof serve` keeps working.", 78),
        epilog=_examples("webprof host enroll db-7 > db-7.token   # then copy it to db-7, "
                         "mode 0600", "webprof host revoke db-7", "webprof host list"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler="webprof.hostcommands:host")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    enroll = actions.add_parser("enroll", help="make (or replace) a host's token; print it once")
    enroll.add_argument("name", type=host_name, metavar="NAME")
    revoke = actions.add_parser("revoke", help="delete a host's token")
    revoke.add_argument("name", metavar="NAME")
    listing = actions.add_parser("list", help="list enrolled hosts (name, token prefix, date)")
    listing.add_argument("--json", action="store_true", help="print a JSON array instead")


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


def _add_save(p: argparse.ArgumentParser) -> None:
    kind = p.prog.split()[-1]
    p.epilog = _examples(f"webprof record {kind} --duration 30 -o {kind}.out",
                         f"webprof record {kind} --duration 60 --save 'after fix' > /dev/null")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--save", metavar="NAME",
                   help="also save the recording as a session named NAME in webprof's "
                   "database (WEBPROF_DATA_DIR or DATABASE_URL) and print its id and URL")


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _session_parser(sub: Any, name: str, summary: str, description: str, handler: str,
                    *examples: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=summary, description=textwrap.fill(description, 78),
                       epilog=_examples(*examples),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=f"webprof.sessions.commands:{handler}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, func_name = args.handler.split(":")
    handler = getattr(importlib.import_module(module_name), func_name)
    try:
        if getattr(args, "save", None) is not None:
            return record_and_save(args, handler)
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130


def record_and_save(args: argparse.Namespace, handler: Any) -> int:
    """``record ... --save``: the collectors' side records as usual and keeps
    its protocol messages in ``args.keep_deltas``; the Django side stores them.
    Only this dispatcher sees both sides, so neither package imports the other."""
    # Django's side, loaded only for --save: a plain `record` never imports Django.
    from .sessions.commands import RecordingSaver

    saver = RecordingSaver(args)
    code = saver.prepare()
    if code is not None:
        return code
    args.keep_deltas = []
    code = int(handler(args) or 0)
    if code:
        return code
    return saver.save(args.keep_deltas)


if __name__ == "__main__":
    sys.exit(main())
