"""Sessions at scale (issue 4, section 8): write a synthetic hour, then time the viewer.

The hour (bench/session_workload.py: 99 Hz x 16 CPUs, 5,000 stacks, 20 ms slots) goes
into a fresh database through the real ``SessionWriter``, one ``profile.delta`` at a
time.  Server time is what the session view's endpoints spend: the session row, the
``SessionReader`` call, and for flame graphs ``fitted(16384)``, ``to_wire`` and
``json.dumps``.  Measured: bytes on disk, random unaligned 1-minute ranges, the whole
hour cold (interner cache cleared) and warm, the sub-second heatmap.  Every answer is
checked against the generated samples.  Each engine runs in its own process
(bench/session_measurement.py): SQLite (a temporary WEBPROF_DATA_DIR, WAL), then a
throwaway PostgreSQL cluster on 127.0.0.1 with default durability (fsync on), removed
afterwards.  Timed phases hold /tmp/bench-quiet so that other engineers' heavy jobs pause.

    .venv/bin/python bench/session_bench.py [--minutes 60] [--engines sqlite,postgres]
    .venv/bin/python bench/session_bench.py --database-url postgresql://U:P@HOST/DB
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from session_measurement import log, run_child
from session_workload import CPUS, HZ, STACKS


@contextmanager
def temp_postgres() -> Iterator[str]:
    """A throwaway cluster on 127.0.0.1 with default durability; removed afterwards."""
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
