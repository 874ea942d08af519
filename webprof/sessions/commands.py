"""The session sub-commands of ``webprof``: list, share, export, import, prune,
and the saving half of ``webprof record --save``.

Each command loads Django (and applies pending migrations, as ``serve``
does), runs, and turns every expected failure into one line on stderr and
exit code 2: an unknown session, a bad file, a database that cannot be
reached.  Nothing here imports bcc: ``record --save`` gets the recorded
protocol messages from the collectors' side as a plain list.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import socket
import sys
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone

from ..commandline import EXIT_ERROR, CommandError, command, first_line, prepare
from . import retention
from .retention import RetentionError, human_bytes, parse_age_ms, parse_size


def find_session(ref: str) -> Any:
    """A session by id, or by exact name when no id matches."""
    # Loads models: only once command() has set Django up.
    from .models import Session

    if ref.isdigit():
        found = Session.objects.filter(pk=int(ref)).first()
        if found is not None:
            return found
    named = list(Session.objects.filter(name=ref).order_by("id"))
    if len(named) == 1:
        return named[0]
    if named:
        ids = ", ".join(str(s.pk) for s in named)
        raise CommandError(f"several sessions are named {ref!r} (ids {ids}); give an id")
    raise CommandError(f"no session has the id or name {ref!r} (see `webprof sessions`)")


def public_url(base: str | None) -> str:
    url = (base or settings.WEBPROF_PUBLIC_URL).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CommandError(f"the base URL must start with http:// or https://, got {url!r}")
    return url


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(ms: int) -> str:
    s = ms / 1000
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


# ------------------------------------------------------------------ listing


def session_row(s: Any) -> dict[str, Any]:
    return {"id": s.pk, "name": s.name, "host": s.host, "kinds": list(s.kinds),
            "started": _when(s.started_ms) + " UTC", "started_ms": s.started_ms,
            "duration_ms": s.duration_ms, "size_bytes": s.size_bytes,
            "owner": s.owner.get_username() if s.owner_id else None, "state": s.state,
            "source": s.source}


@command
def list_sessions(args: argparse.Namespace) -> int:
    # Loads models: only once command() has set Django up.
    from .models import Session

    sessions = Session.objects.select_related("owner")
    if args.query:
        q = args.query
        sessions = sessions.filter(Q(name__icontains=q) | Q(host__icontains=q)
                                   | Q(notes__icontains=q))
    rows = [session_row(s) for s in sessions]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("no sessions" + (f" match {args.query!r}" if args.query else ""), file=sys.stderr)
        return 0
    table = [("ID", "NAME", "HOST", "KINDS", "START (UTC)", "DURATION", "SIZE", "OWNER",
              "STATE")]
    for r in rows:
        table.append((str(r["id"]), r["name"], r["host"] or "-", ",".join(r["kinds"]) or "-",
                      r["started"][:-4], _duration(r["duration_ms"]),
                      human_bytes(r["size_bytes"]), r["owner"] or "-", r["state"]))
    print_table(table)
    return 0


def print_table(table: list[tuple[str, ...]]) -> None:
    widths = [min(40, max(len(row[i]) for row in table)) for i in range(len(table[0]))]
    for row in table:
        cells = [(c if len(c) <= 40 else c[:39] + "…").ljust(w) for c, w in zip(row, widths,
                                                                             strict=True)]
        print("  ".join(cells).rstrip())


# ------------------------------------------------------------------ sharing


@command
def share(args: argparse.Namespace) -> int:
    # Loads models: only once command() has set Django up.
    from .share import ShareError, create_link, parse_expiry

    session = find_session(args.session)
    base = public_url(args.base_url)
    try:
        expires_in = parse_expiry(args.expires)
    except ShareError as exc:
        raise CommandError(str(exc)) from None
    token, link = create_link(session, None, expires_in)
    print(f"{base}/s/{token}/")
    until = f"expires {link.expires:%Y-%m-%d %H:%M} UTC" if link.expires else "never expires"
    print(f"read-only link {link.prefix} to session {session.pk} {session.name!r}, {until}; "
          f"the URL is shown only now (revoke: webprof unshare -- {link.prefix})", file=sys.stderr)
    return 0


@command
def unshare(args: argparse.Namespace) -> int:
    # Loads models: only once command() has set Django up.
    from .share import ShareError, revoke

    token = args.token.strip()
    if "/s/" in token:  # a whole URL pasted: take its token
        token = token.split("/s/", 1)[1].strip("/")
    before = timezone.now()
    try:
        link = revoke(token)
    except ShareError as exc:
        raise CommandError(str(exc)) from None
    already = link.revoked is not None and link.revoked < before
    print(f"{'link was already revoked' if already else 'revoked link'} {link.prefix} "
          f"to session {link.session_id} {link.session.name!r}")
    return 0


@command
def list_shares(args: argparse.Namespace) -> int:
    session = find_session(args.session)
    links = [link for link in session.shares.order_by("created") if link.is_active()]
    rows = [{"prefix": link.prefix, "created": f"{link.created:%Y-%m-%d %H:%M:%S} UTC",
             "expires": f"{link.expires:%Y-%m-%d %H:%M:%S} UTC" if link.expires else None}
            for link in links]
    if args.json:
        print(json.dumps(rows, indent=1))
    elif not rows:
        print(f"session {session.pk} {session.name!r} has no active share links",
              file=sys.stderr)
    else:
        print_table([("PREFIX", "CREATED", "EXPIRES")]
                    + [(r["prefix"], r["created"], r["expires"] or "never") for r in rows])
    return 0


# ------------------------------------------------------------------ export and import


def _range_ms(session: Any, seconds: float | None) -> int | None:
    if seconds is None:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        raise CommandError(f"--from/--to must be seconds >= 0 from the start, got {seconds}")
    return session.started_ms + round(seconds * 1000)


@command
def export(args: argparse.Namespace) -> int:
    # Loads models: only once command() has set Django up.
    from .export import ExportError, export_session

    session = find_session(args.session)
    from_ms, to_ms = _range_ms(session, args.from_s), _range_ms(session, args.to_s)
    if from_ms is not None and to_ms is not None and to_ms <= from_ms:
        raise CommandError("--to must be after --from")
    try:
        out = export_session(session, args.format, args.kind, from_ms, to_ms)
    except ExportError as exc:
        raise CommandError(str(exc)) from None
    if args.output == "-":
        sys.stdout.buffer.write(out.data)
        sys.stdout.buffer.flush()
    else:
        with open(args.output, "wb") as fh:
            fh.write(out.data)
    where = "stdout" if args.output == "-" else args.output
    print(f"wrote {len(out.data)} bytes of {args.format} from session {session.pk} to {where}",
          file=sys.stderr)
    return 0


@command
def import_file(args: argparse.Namespace) -> int:
    # Loads models: only once command() has set Django up.
    from .export import ExportError, import_folded

    if args.file == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(args.file, "rb") as fh:
            data = fh.read()
    try:
        session = import_folded(data, args.name, host=args.host or "")
    except ExportError as exc:
        raise CommandError(f"{'stdin' if args.file == '-' else args.file}: {exc}") from None
    print(session.pk)
    print(f"imported {session.name!r}: {human_bytes(session.size_bytes)}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------ record --save


class RecordingSaver:
    """The Django half of ``webprof record KIND --save NAME``.

    :meth:`prepare` runs before anything is recorded, so a database that
    cannot be opened fails in a second, not after the recording; :meth:`save`
    stores the protocol messages the recording drained."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.name = (args.save or "").strip()

    def prepare(self) -> int | None:
        if not self.name or len(self.name) > 200:
            print("webprof record: --save needs a name of 1..200 characters", file=sys.stderr)
            return EXIT_ERROR
        return None if prepare("webprof record") else EXIT_ERROR

    def fields(self, deltas: list[Any]) -> dict[str, Any]:
        args = self.args
        options = {k: v for k, v in vars(args).items()
                   if k in ("pid", "frequency", "min_block_us", "max_block_us", "all_threads")
                   and v not in (None, False)}
        started = min((d.start_ms for d in deltas), default=int(time.time() * 1000))
        return {"name": self.name, "host": deltas[0].host if deltas else socket.gethostname(),
                "kernel": platform.release(), "source": "cli", "started_ms": started,
                "frequency_hz": getattr(args, "frequency", 0) if args.kind == "cpu" else 0,
                "interval_ms": max((d.interval_ms for d in deltas), default=0),
                "collectors": {args.kind: options}}

    def save(self, deltas: list[Any]) -> int:
        # Loads models: only once prepare() has set Django up.
        from .store import save_deltas

        try:
            session = save_deltas(deltas, **self.fields(deltas))
        except DatabaseError as exc:
            print("webprof record: the recording was not saved: database error: "
                  f"{first_line(exc)}", file=sys.stderr)
            return EXIT_ERROR
        url = f"{public_url(None)}/sessions/{session.pk}/"
        print(f"webprof record: saved session {session.pk} {session.name!r} "
              f"({session.intervals} intervals, {human_bytes(session.size_bytes)}): {url}",
              file=sys.stderr)
        return 0


# ------------------------------------------------------------------ prune


@command
def prune(args: argparse.Namespace) -> int:
    max_age_ms, max_bytes = _limits(args)
    try:
        with retention.prune_lock(settings.DATA_DIR, args.wait):
            if max_age_ms is None and max_bytes is None:
                print("webprof prune: no limit set (WEBPROF_RETENTION_MAX_AGE_DAYS, "
                      "WEBPROF_RETENTION_MAX_BYTES, --max-age, --max-size): no session "
                      "is pruned")
                code = 0
            else:
                code = _prune_locked(args, max_age_ms, max_bytes)
            _prune_audit(args.dry_run)
            return code
    except retention.LockBusy as exc:
        print(f"webprof prune: another prune is running (lock {exc} is held); "
              "not pruning this time", file=sys.stderr)
        return 1


def _prune_audit(dry_run: bool) -> None:
    """The audit log's retention: WEBPROF_AUDIT_MAX_AGE_DAYS and _MAX_ROWS."""
    days, rows = settings.WEBPROF_AUDIT_MAX_AGE_DAYS, settings.WEBPROF_AUDIT_MAX_ROWS
    gone = retention.prune_audit(days, rows, dry_run=dry_run)
    if gone:
        limits = [f"older than {days} days"] if days else []
        limits += [f"beyond the newest {rows}"] if rows else []
        print(f"{'would remove' if dry_run else 'removed'} {gone} audit log entries "
              f"({' or '.join(limits)})")


def _limits(args: argparse.Namespace) -> tuple[int | None, int | None]:
    days = settings.WEBPROF_RETENTION_MAX_AGE_DAYS
    max_age_ms = days * 86_400_000 if days else None
    max_bytes = settings.WEBPROF_RETENTION_MAX_BYTES
    try:
        if args.max_age is not None:
            max_age_ms = parse_age_ms(args.max_age)
        if args.max_size is not None:
            max_bytes = parse_size(args.max_size)
    except RetentionError as exc:
        raise CommandError(str(exc)) from None
    return max_age_ms, max_bytes


def _prune_locked(args: argparse.Namespace, max_age_ms: int | None,
                  max_bytes: int | None) -> int:
    todo = retention.plan(max_age_ms, max_bytes)
    verb = "would remove" if args.dry_run else "removed"

    def say(v: retention.Victim) -> None:
        print(f"{verb} session {v.id} {v.name!r} (started {_when(v.started_ms)} UTC, "
              f"{human_bytes(v.size_bytes)}): {v.reason}")

    if max_bytes is not None and todo.kept_recording_bytes > max_bytes:
        print(f"webprof prune: sessions still recording hold "
              f"{human_bytes(todo.kept_recording_bytes)}, over the limit; they are kept "
              "and not counted until they finish", file=sys.stderr)
    if not todo.victims:
        print(f"nothing to prune ({human_bytes(todo.total_bytes)} in sessions)")
        return 0
    if args.dry_run:
        for victim in todo.victims:
            say(victim)
        print(f"would free {human_bytes(todo.freed_bytes)} of "
              f"{human_bytes(todo.total_bytes)} (dry run: nothing removed)")
        return 0
    before = retention.database_files_bytes()
    gone: list[retention.Victim] = []
    retention.delete(todo.victims, lambda v: (gone.append(v), say(v)))
    done = retention.give_space_back(args.vacuum)
    after = retention.database_files_bytes()
    files = (f"; database files {human_bytes(before)} -> {human_bytes(after)}"
             if before is not None and after is not None else "")
    print(f"removed {len(gone)} sessions, freed {human_bytes(sum(v.size_bytes for v in gone))}"
          f" of session data{files}{f' ({done})' if done else ''}")
    return 0
