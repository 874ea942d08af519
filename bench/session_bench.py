"""Sessions at scale (issue 4, section 8): write a synthetic hour, then time the viewer.

The hour (bench/session_workload.py: 99 Hz x 16 CPUs, 5,000 stacks, 20 ms slots) goes
into a fresh database through the real ``SessionWriter``, one ``profile.delta`` at a
time.  Server time is what the session view's endpoints spend: the session row, the
``SessionReader`` call, and for flame graphs ``fitted(16384)``, ``to_wire`` and
``json.dumps``.  Measured: bytes on disk, random unaligned 1-minute ranges, the whole
hour cold (interner cache cleared) and warm, the sub-second heatmap.  Every answer is
checked against the generated samples.  Each engine runs in its own process: SQLite
(a temporary WEBPROF_DATA_DIR, WAL), then a throwaway PostgreSQL cluster on 127.0.0.1
with default durability (fsync on), removed afterwards.  Timed phases hold
/tmp/bench-quiet so that other engineers' heavy jobs pause.

    .venv/bin/python bench/session_bench.py [--minutes 60] [--engines sqlite,postgres]
    .venv/bin/python bench/session_bench.py --database-url postgresql://U:P@HOST/DB
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from statistics import median
from typing import Any

from session_workload import (
    CPUS,
    HZ,
    INTERVAL_MS,
    ORIGIN_MS,
    SLOT_MS,
    STACKS,
    Workload,
    build_workload,
    draw_intervals,
    make_delta,
)

MAX_NODES = 16384  # the browser's node budget (FlameTree.fitted)
QUIET = Path("/tmp/bench-quiet")


# --------------------------------------------------------------------------- measuring


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
    from django.db import connection

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
    from webprof.core.timeline import paused_gc
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
    from webprof.sessions.models import Session
    from webprof.sessions.store import SessionReader

    hm = SessionReader(Session.objects.get(pk=sid)).heatmap("cpu")
    body = json.dumps(hm.to_dict())
    return {"bytes": len(body), "total": sum(map(sum, hm.z)), "cells": hm.rows * hm.columns}


def time_reads(sid: int, w: Workload, seconds: int, args: argparse.Namespace,
               clock: Clock) -> dict[str, Any]:
    """Random unaligned 1-minute ranges (warm), the whole hour cold and warm, heatmap."""
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
    from array import array

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
            import cProfile
            import pstats

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
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        Path(args.result).write_text(json.dumps(measure(args)))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


# --------------------------------------------------------------------------- orchestration


@contextmanager
def temp_postgres() -> Iterator[str]:
    """A throwaway cluster on 127.0.0.1 with default durability; removed afterwards."""
    import secrets

    bindir = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    root = Path(tempfile.mkdtemp(prefix="webprof-bench-pg."))
    owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    (root / "sock").mkdir(mode=0o700)
    if owner:
        for p in (root, root / "sock"):
            shutil.chown(p, "postgres")

    def run(*cmd: object) -> None:
        subprocess.run([*owner, *map(str, cmd)], cwd=root, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    run(bindir / "initdb", "-D", root / "data", "-U", "postgres", "-E", "UTF8",
        "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root}/sock"
    try:
        run(bindir / "pg_ctl", "-D", root / "data", "-l", root / "log", "-w", "-o", opts, "start")
        password = secrets.token_hex(16)
        run(bindir / "psql", "-h", root / "sock", "-p", port, "-U", "postgres", "-X", "-q",
            "-v", "ON_ERROR_STOP=1", "-c", f"CREATE ROLE bench LOGIN PASSWORD '{password}'",
            "-c", "CREATE DATABASE bench OWNER bench")
        log(f"throwaway PostgreSQL on 127.0.0.1:{port} ({root})")
        yield f"postgresql://bench:{password}@127.0.0.1:{port}/bench"
    finally:
        subprocess.run([*owner, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast",
                        "-w", "stop"], cwd=root, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


def run_engine(engine: str, url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if url:
        env["DATABASE_URL"] = url
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        cmd = [sys.executable, __file__, "--child", "--result", result.name,
               "--minutes", str(args.minutes), "--ranges", str(args.ranges),
               "--reps", str(args.reps), "--seed", str(args.seed)]
        cmd += ["--profile"] * args.profile + ["--no-quiet"] * (not args.quiet)
        cmd += ["--cleanup"] * args.cleanup
        log(f"{engine}: {' '.join(cmd[1:])}")
        subprocess.run(cmd, env=env, check=True)
        return json.loads(Path(result.name).read_text())


def cell(r: dict[str, Any], label: str, p95: bool = False) -> str:
    t = r["times"][label]
    wall = f"{t['median']:,.0f} / {t['p95']:,.0f} / {t['max']:,.0f}" if p95 else \
        f"{t['median']:,.0f} / {t['max']:,.0f}"
    return f"{wall} ({t['cpu']:,.0f})"


def sizes(r: dict[str, Any]) -> str:
    return (f"{r['chunks']} + {r['rollups']}; {r['nodes']:,} + {r['folded']:,} folded; "
            f"{r['bytes'] / 1e3:,.0f} kB")


def per_hour(r: dict[str, Any], n: int) -> str:
    return f"{n * 3600 / r['seconds'] / 1e6:,.1f} MB" if n else "-"


ROWS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("engine", lambda r: r["version"]),
    ("settings", lambda r: r["settings"]),
    ("CPUs idle when timing started", lambda r: " / ".join(f"{x:.0%}" for x in r["idle"])),
    ("write: intervals/s", lambda r: "{:,.0f}".format(
        r["seconds"] * 1000 / (r["times"]["write"]["sum"] + r["times"]["finish"]["sum"]))),
    ("write: one interval, ms", lambda r: cell(r, "write", p95=True)),
    ("bytes on disk per hour", lambda r: per_hour(r, r["disk"])),
    ("stored payload per hour (stored_bytes)", lambda r: per_hour(r, r["stored"])),
    ("WAL written per hour", lambda r: per_hour(r, r["wal"])),
    ("1-minute flame graph, ms [<= 300]", lambda r: cell(r, "minute", p95=True)),
    ("  the same, GC paused over the request", lambda r: cell(r, "minute_paused", p95=True)),
    ("  chunks + rollups read; nodes sent; JSON", lambda r: sizes(r["sizes"]["minute"])),
    ("whole hour, cold, ms [<= 1,000]", lambda r: cell(r, "hour_cold")),
    ("whole hour, warm, ms [<= 1,000]", lambda r: cell(r, "hour_warm")),
    ("  warm, GC paused over the request", lambda r: cell(r, "hour_paused")),
    ("  of which: interner load, ms", lambda r: cell(r, "interner")),
    ("  chunks + rollups read; nodes sent; JSON", lambda r: sizes(r["sizes"]["hour"])),
    ("heatmap of the hour, ms [<= 300]", lambda r: cell(r, "heatmap")),
    ("  cells; JSON", lambda r: "{:,}; {:,.0f} kB".format(
        r["sizes"]["heatmap"]["cells"], r["sizes"]["heatmap"]["bytes"] / 1e3)),
]


def print_table(results: dict[str, dict[str, Any]]) -> None:
    first = next(iter(results.values()))
    print(f"\n{first['seconds'] // 60} minutes at {HZ} Hz x {CPUS} CPUs, {STACKS:,} stacks. "
          "Times: wall ms median / [p95 /] max, (median CPU ms of the server process)\n")
    print("| | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    for label, fn in ROWS:
        print(f"| {label} | " + " | ".join(fn(r) for r in results.values()) + " |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=int, default=60, help="session length (default 60)")
    ap.add_argument("--engines", default="sqlite,postgres",
                    help="comma-separated: sqlite, postgres (default both)")
    ap.add_argument("--database-url", help="PostgreSQL to use instead of a throwaway cluster")
    ap.add_argument("--ranges", type=int, default=25, help="random 1-minute ranges (25)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of hour/heatmap (5)")
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--profile", action="store_true", help="cProfile the reads to stderr")
    ap.add_argument("--no-quiet", dest="quiet", action="store_false",
                    help="do not hold /tmp/bench-quiet while timing")
    ap.add_argument("--cleanup", action="store_true", help="delete the session afterwards")
    ap.add_argument("--json", help="also write all results to this file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.minutes < 2:
        ap.error("--minutes must be at least 2 (the ranges are 1 minute long)")
    args.engines = args.engines.split(",")
    if not set(args.engines) <= {"sqlite", "postgres"}:
        ap.error("--engines takes sqlite, postgres or both")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args)
    results: dict[str, dict[str, Any]] = {}
    for engine in args.engines:
        if engine == "sqlite":
            results["SQLite"] = run_engine(engine, None, args)
        elif args.database_url:
            results["PostgreSQL"] = run_engine(engine, args.database_url, args)
        else:
            with temp_postgres() as url:
                results["PostgreSQL"] = run_engine(engine, url, args)
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
