"""Retention: delete old sessions, then the oldest ones, until they fit.

``webprof prune`` runs this from cron.  It must be safe to run at any time and
twice at once: a lock file in the data directory serialises runs, a session
that is still recording is never a candidate (re-checked inside each delete's
transaction, so a recording that starts meanwhile is not touched either), and
a run with nothing to do changes nothing.  The parsers at the top have no
Django imports so that ``webprof.settings`` can use them.

The size limit bounds finished sessions: a session still recording is not
counted, as it cannot be deleted (it counts once it has finished).  Counting
it would let one long recording over the limit delete every finished session.

The same run applies the audit log's retention (:func:`prune_audit`):
refused requests each add a row, so the log is bounded by age and by rows.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DELETE_BATCH = 20  # sessions per transaction: each cascades to thousands of chunk rows
LOCK_NAME = "prune.lock"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdw]?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_AGE_HOURS = {"h": 1, "": 24, "d": 24, "w": 24 * 7}
NO_LIMIT = ("none", "never", "off", "unlimited")


class RetentionError(ValueError):
    """A retention limit that cannot be understood; the message says why."""


def parse_size(text: str) -> int | None:
    """``"500M"``, ``"10G"``, ``"1.5T"``, ``"4096"`` (bytes; powers of 1024);
    ``"none"`` for no limit."""
    if text.strip().lower() in NO_LIMIT:
        return None
    match = _SIZE.match(text)
    if not match:
        raise RetentionError(f"size {text!r} is not like 500M, 10G or 1T")
    value = int(float(match[1]) * _SIZE_UNITS[match[2].lower()])
    if value <= 0:
        raise RetentionError(f"size {text!r} must be above zero")
    return value


def parse_age_ms(text: str) -> int | None:
    """``"30d"``, ``"2w"``, ``"12h"``, a bare number of days; ``"none"`` for no limit."""
    if text.strip().lower() in NO_LIMIT:
        return None
    match = _AGE.match(text)
    if not match:
        raise RetentionError(f"age {text!r} is not like 30d, 2w or 12h")
    value = int(float(match[1]) * _AGE_HOURS[match[2].lower()] * 3_600_000)
    if value <= 0:
        raise RetentionError(f"age {text!r} must be above zero")
    return value


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass
class Victim:
    id: int
    name: str
    started_ms: int
    size_bytes: int
    reason: str


@dataclass
class PrunePlan:
    victims: list[Victim] = field(default_factory=list)
    total_bytes: int = 0  # every session's size_bytes before pruning
    kept_recording_bytes: int = 0

    @property
    def freed_bytes(self) -> int:
        return sum(v.size_bytes for v in self.victims)


def plan(max_age_ms: int | None, max_bytes: int | None, now_ms: int | None = None) -> PrunePlan:
    """Which sessions to delete: first every finished one older than the age
    (by its end), then the oldest finished ones until the finished ones fit."""
    from .models import Session

    now = int(time.time() * 1000) if now_ms is None else now_ms
    rows = list(Session.objects.order_by("started_ms", "id").values_list(
        "id", "name", "started_ms", "ended_ms", "size_bytes", "state"))
    result = PrunePlan(total_bytes=sum(r[4] for r in rows))
    chosen: set[int] = set()
    if max_age_ms is not None:
        for sid, name, started, ended, size, state in rows:
            if state != "recording" and (ended or started) < now - max_age_ms:
                chosen.add(sid)
                days = (now - (ended or started)) / 86_400_000
                result.victims.append(Victim(sid, name, started, size,
                                             f"ended {days:.1f} days ago"))
    result.kept_recording_bytes = sum(r[4] for r in rows if r[5] == "recording")
    if max_bytes is not None:
        left = result.total_bytes - result.kept_recording_bytes - result.freed_bytes
        for sid, name, started, _ended, size, state in rows:
            if left <= max_bytes:
                break
            if sid in chosen or state == "recording":
                continue
            chosen.add(sid)
            left -= size
            result.victims.append(Victim(sid, name, started, size,
                                         f"oldest while over {human_bytes(max_bytes)}"))
    return result


def delete(victims: list[Victim], on_deleted: Callable[[Victim], None]) -> int:
    """Delete in batches, one transaction each; returns how many went.

    The state is checked again in the DELETE itself: a session that started
    recording since :func:`plan` looked stays."""
    from django.db import transaction

    from .models import Session

    deleted = 0
    for i in range(0, len(victims), DELETE_BATCH):
        batch = victims[i:i + DELETE_BATCH]
        with transaction.atomic():
            ids = set(Session.objects.filter(id__in=[v.id for v in batch])
                      .exclude(state="recording").select_for_update()
                      .values_list("id", flat=True))
            Session.objects.filter(id__in=ids).delete()
        for victim in batch:
            if victim.id in ids:
                deleted += 1
                on_deleted(victim)
    return deleted


def prune_audit(max_age_days: int, max_rows: int, dry_run: bool = False,
                now: Any = None) -> int:
    """Delete audit rows older than ``max_age_days``, then the oldest beyond
    ``max_rows`` (0: no such limit); returns how many went (or would go)."""
    from datetime import timedelta

    from django.db.models import Q
    from django.utils import timezone

    from ..accounts import AuditEntry

    doomed = AuditEntry.objects.none()
    if max_age_days:
        cutoff = (now or timezone.now()) - timedelta(days=max_age_days)
        doomed = AuditEntry.objects.filter(time__lt=cutoff)
    if max_rows:
        # The newest row kept last, in the log's own order (time, then id).
        kept = list(AuditEntry.objects.order_by("-time", "-id").values_list(
            "time", "id")[max_rows - 1:max_rows])
        if kept:
            last = kept[0]
            doomed = doomed | AuditEntry.objects.filter(
                Q(time__lt=last[0]) | Q(time=last[0], id__lt=last[1]))
    if dry_run:
        return doomed.count()
    return AuditEntry.objects.filter(id__in=doomed.values("id")).delete()[0]


def give_space_back(vacuum: bool) -> str:
    """Make the database release the deleted rows' space; says what it did.

    SQLite keeps deleted pages in the WAL until a checkpoint and then on its
    free list (reused by new sessions); TRUNCATE empties the WAL file, VACUUM
    rewrites the database to shrink it.  PostgreSQL's VACUUM marks the space
    reusable (it shrinks files only at their end)."""
    from django.db import connection

    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            if vacuum:
                cursor.execute("VACUUM")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return "VACUUM and WAL checkpoint done" if vacuum else "WAL checkpoint done"
    if vacuum and connection.vendor == "postgresql":
        from .models import LatencyChunk, ProfileChunk, Session, SessionStack, SessionString

        with connection.cursor() as cursor:
            for model in (ProfileChunk, LatencyChunk, SessionStack, SessionString, Session):
                cursor.execute(f"VACUUM {connection.ops.quote_name(model._meta.db_table)}")
        return "VACUUM done"
    return ""


def database_files_bytes() -> int | None:
    """Bytes of the SQLite database file and its WAL, or None on other databases."""
    from django.db import connection

    if connection.vendor != "sqlite":
        return None
    name = str(connection.settings_dict["NAME"])
    return sum(os.path.getsize(p) for p in (name, name + "-wal") if os.path.exists(p))


class LockBusy(Exception):
    """Another prune holds the lock."""


@contextmanager
def prune_lock(data_dir: Path, wait: bool) -> Iterator[Any]:
    """An exclusive flock on ``data_dir/prune.lock``, released when the process
    ends even if it is killed, so a crashed run never blocks the next one."""
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockBusy(str(path)) from None
        yield path
    finally:
        os.close(fd)
