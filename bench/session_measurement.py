"""The measuring half of bench/session_bench.py: one engine, in a child process.

``run_child`` sets Django up on a temporary WEBPROF_DATA_DIR (PostgreSQL when
DATABASE_URL is set), writes the synthetic hour through the real
``SessionWriter``, checks the stored counts against the generated samples and
times what the session view's endpoints do; the figures go back to the parent as
JSON.  webprof's session modules load models, so they are imported inside the
functions, once ``run_child`` has set Django up.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from statistics import median
from typing import Any

import django
from django.core.management import call_command
from django.db import connection
from session_workload import (
    HZ,
    INTERVAL_MS,
    ORIGIN_MS,
    SLOT_MS,
    Workload,
    build_workload,
    draw_intervals,
    make_delta,
)

from webprof.core.timeline import paused_gc

MAX_NODES = 16384  # the browser's node budget (FlameTree.fitted)
QUIET = Path("/tmp/bench-quiet")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_idle(seconds: float = 3.0) -> float:
    """Share of all CPUs' time spent idle over the next ``seconds`` (/proc/stat)."""
    ticks = []
    for pause in (seconds, 0):
        ticks.append([int(x) for x in Path("/proc/stat").read_text().split()[1:11]])
        time.sleep(pause)
    d = [b - a for a, b in zip(*ticks, strict=True)]
    return (d[3] + d[4]) / max(1, sum(d))


@contextmanager
def quiet(enabled: bool, clock: Clock) -> Iterator[None]:
    """Hold /tmp/bench-quiet while timing, after another benchmark's has gone.

    Others poll it every 30 s and finish what they are running, so wait (two
    minutes at most) for the CPUs to go idle, and record how idle they were.
    """
    if not enabled:
        yield
        return
    for _ in range(20):
        if not QUIET.exists():
            break
        log("another benchmark holds /tmp/bench-quiet; waiting")
        time.sleep(30)
    token = f"session_bench pid {os.getpid()}\n"
    QUIET.write_text(token)
    try:
        idle, deadline = cpu_idle(), time.monotonic() + 120
        while idle < 0.9 and time.monotonic() < deadline:
            idle = cpu_idle()
        clock.idle.append(idle)
        log(f"quiet: CPUs {idle:.0%} idle")
        yield
    finally:
        if QUIET.exists() and QUIET.read_text() == token:
            QUIET.unlink()


class Clock:
    """Wall and CPU milliseconds per label.  CPU time is this process's only: it is
    what load from other processes does not inflate (PostgreSQL's own work is not in it)."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}
        self.idle: list[float] = []

    def __call__(self, label: str, fn: Callable[[], Any]) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        self.cpu.setdefault(label, []).append((time.process_time() - cpu) * 1000)
        self.wall.setdefault(label, []).append((time.perf_counter() - wall) * 1000)
        return out

    def stats(self) -> dict[str, dict[str, float]]:
        out = {}
        for label, ms in self.wall.items():
            ordered = sorted(ms)
            out[label] = {"n": len(ms), "median": median(ms), "max": ordered[-1],
                          "p95": ordered[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))],
                          "sum": sum(ms), "cpu": median(self.cpu[label])}
        return out


def db_figures() -> dict[str, Any]:
    """Engine, settings, bytes on disk (SQLite: database + WAL after a checkpoint;
    PostgreSQL: the session tables with indexes and TOAST) and the WAL position."""
    # Loads models: only once run_child() has set Django up.
    from webprof.sessions import models as m

    tables = [x._meta.db_table for x in (m.Session, m.SessionString, m.SessionStack,
                                          m.ProfileChunk, m.LatencyChunk)]
    with connection.cursor() as cur:
        if connection.vendor == "sqlite":
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            name = str(connection.settings_dict["NAME"])
            disk = sum(os.path.getsize(p) for p in (name, name + "-wal") if os.path.exists(p))
            cur.execute("SELECT sqlite_version()")
            version = "SQLite " + cur.fetchone()[0]
            pragmas = []
            for pragma in ("journal_mode", "synchronous", "page_size"):
                cur.execute(f"PRAGMA {pragma}")
                pragmas.append(f"{pragma}={cur.fetchone()[0]}")
            return {"disk": disk, "wal": 0, "version": version, "settings": ", ".join(pragmas)}
        cur.execute("SELECT (SELECT sum(pg_total_relation_size(t::regclass))"
                    " FROM unnest(%s::text[]) t),"
                    " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0'), version()", [tables])
        disk, wal, version = cur.fetchone()
        names = ["fsync", "synchronous_commit", "full_page_writes", "shared_buffers"]
        cur.execute("SELECT name, setting, coalesce(unit, '') FROM pg_settings"
                    " WHERE name = ANY(%s) ORDER BY name", [names])
        settings = ", ".join(f"{n}={v}{' x ' + u if u else ''}" for n, v, u in cur.fetchall())
    return {"disk": int(disk), "wal": int(wal), "version": version.split(" on ")[0],
            "settings": settings}


def write_session(w: Workload, intervals: list, clock: Clock) -> int:
    # Loads models: only once run_child() has set Django up.
    from webprof.sessions.store import SessionWriter

    writer = SessionWriter.create(name="bench hour", host="bench", started_ms=ORIGIN_MS,
                                  frequency_hz=HZ, interval_ms=INTERVAL_MS, source="cli")
    for second, ids in enumerate(intervals):
        delta = make_delta(w, second, ids)  # the collector's work: not timed
        clock("write", lambda d=delta: writer.add(d))
    return clock("finish", writer.finish).pk


def flame_request(sid: int, from_ms: int | None, to_ms: int | None,
                  pause: bool = False) -> dict[str, Any]:
    """What the flame.json endpoint does: session row, range tree, fitted, wire, JSON;
    with ``pause``, under ``timeline.paused_gc`` from the range read to the wire."""
    # Loads models: only once run_child() has set Django up.
    from webprof.sessions.models import Session
    from webprof.sessions.store import SessionReader

    with paused_gc() if pause else nullcontext():
        result = SessionReader(Session.objects.get(pk=sid)).tree("cpu", from_ms, to_ms)
        small, folded = result.tree.fitted(MAX_NODES)
        wire = small.to_wire()
    body = json.dumps({"from_ms": result.from_ms, "to_ms": result.to_ms,
                       "total": result.tree.total, "folded_nodes": folded, "tree": wire})
    return {"bytes": len(body), "total": result.tree.total, "nodes": len(wire["nodes"]) // 3 - 1,
            "folded": folded, "chunks": result.chunks_read, "rollups": result.rollups_read}


def heatmap_request(sid: int) -> dict[str, Any]:
    # Loads models: only once run_child() has set Django up.
    from webprof.sessions.models import Session
    from webprof.sessions.store import SessionReader

    hm = SessionReader(Session.objects.get(pk=sid)).heatmap("cpu")
    body = json.dumps(hm.to_dict())
    return {"bytes": len(body), "total": sum(map(sum, hm.z)), "cells": hm.rows * hm.columns}


def time_reads(sid: int, w: Workload, seconds: int, args: argparse.Namespace,
               clock: Clock) -> dict[str, Any]:
    """Random unaligned 1-minute ranges (warm), the whole hour cold and warm, heatmap."""
    # Loads models: only once run_child() has set Django up.
    from webprof.sessions import store
    from webprof.sessions.models import Session

    rng, total = random.Random(args.seed + 1), seconds * len(w.sample_slots)
    per_slot = Counter(w.sample_slots)
    flame_request(sid, ORIGIN_MS, ORIGIN_MS + 60_000)  # the page's first request
    for i in range(args.ranges):
        a = ORIGIN_MS + rng.randrange(1, (seconds - 60) * 1000)
        for pause in (i % 2, 1 - i % 2):  # alternate which goes first
            label = "minute_paused" if pause else "minute"
            minute = clock(label, lambda a=a, p=pause: flame_request(sid, a, a + 60_000, p))
        want = sum(n for s in range(seconds) for slot, n in per_slot.items()
                   if a <= ORIGIN_MS + s * INTERVAL_MS + slot * SLOT_MS < a + 60_000)
        assert minute["total"] == want, f"range at {a - ORIGIN_MS} ms: {minute} != {want}"
    for _ in range(args.reps):
        store._INTERNERS.clear()
        clock("interner", lambda: store.load_interner(Session.objects.get(pk=sid)))
        store._INTERNERS.clear()
        hour = clock("hour_cold", lambda: flame_request(sid, None, None))
        clock("hour_warm", lambda: flame_request(sid, None, None))
        clock("hour_paused", lambda: flame_request(sid, None, None, True))
        heat = clock("heatmap", lambda: heatmap_request(sid))
    assert hour["total"] == total and heat["total"] == total, (hour, heat, total)
    return {"minute": minute, "hour": hour, "heatmap": heat}


def check_counts(sid: int, w: Workload, intervals: list, seconds: int) -> None:
    """Every stack's weight over the session equals the samples generated for it."""
    # Loads models: only once run_child() has set Django up.
    from webprof.sessions.models import Session
    from webprof.sessions.store import SessionReader, load_interner

    truth: Counter[int] = Counter()
    for ids in intervals:
        truth.update(ids)
    session = Session.objects.get(pk=sid)
    got, _, rollups = SessionReader(session).counts("cpu", ORIGIN_MS, ORIGIN_MS + seconds * 1000)
    names = load_interner(session).frames
    stored = {(pid, comm, *frames): n for pid, comm, frames, n in
              ((*names(s), n) for s, n in got.items())}
    want = {(w.stacks[s][0], *(w.strings[i] for i in (w.stacks[s][1], *w.stacks[s][2]))): n
            for s, n in truth.items()}
    assert stored == want and rollups == seconds // 60, "stored counts differ from the samples"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    # Loads models: only once run_child() has set Django up.
    from webprof.sessions.models import Session
    from webprof.sessions.store import stored_bytes

    rng, seconds, clock = random.Random(args.seed), args.minutes * 60, Clock()
    w = build_workload(rng)
    intervals = [array("H", ids) for ids in draw_intervals(rng, w, seconds)]
    log(f"generated {seconds} intervals; writing them through SessionWriter")
    before = db_figures()
    with quiet(args.quiet, clock):
        sid = write_session(w, intervals, clock)
    after = db_figures()
    check_counts(sid, w, intervals, seconds)
    log("stored counts match the samples; timing reads")
    with quiet(args.quiet, clock):
        if args.profile:  # where the time goes; the figures are then inflated
            prof = cProfile.Profile()
            sizes = prof.runcall(time_reads, sid, w, seconds, args, clock)
            pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        else:
            sizes = time_reads(sid, w, seconds, args, clock)
    session = Session.objects.get(pk=sid)
    result = {**after, "seconds": seconds, "disk": after["disk"] - before["disk"],
              "wal": after["wal"] - before["wal"], "stored": stored_bytes(session),
              "times": clock.stats(), "sizes": sizes, "idle": clock.idle}
    if args.cleanup:
        session.delete()
    return result


def run_child(args: argparse.Namespace) -> int:
    """One engine, in this process: Django on a temporary WEBPROF_DATA_DIR."""
    data_dir = tempfile.mkdtemp(prefix="webprof-bench.")
    os.environ["WEBPROF_DATA_DIR"] = data_dir
    os.environ["DJANGO_SETTINGS_MODULE"] = "webprof.settings"
    try:
        django.setup()
        call_command("migrate", verbosity=0)
        Path(args.result).write_text(json.dumps(measure(args)))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0
