"""End-to-end latency: from a sample in the kernel to the browser's redraw.

Everything is real: ``webprof serve`` (daphne, file-backed SQLite in a temporary
data directory, a user made through ``manage.py``), ``webprof collect`` (bcc in
the kernel) and headless Chromium logged in on the host's live page in "last
interval" mode.

The workload (bench/workloads/phases.c) runs phase functions with distinct
names, phase_00, phase_01, ..., one after another, and prints the wall-clock
time at which each starts.  A hook injected into the page (no change to
static/live.js: it wraps the view's ``onMessage`` and ``redraw``) records
``Date.now()`` at the end of the first redraw whose tree holds phase_k.  Both
clocks are this machine's CLOCK_REALTIME, so

    latency(k) = first redraw showing phase_k - start of phase_k.

The first sample of a phase falls within 1/frequency of its start, so this is
"sample in the kernel -> pixels", including the wait for the interval to
close.  It is split into
    wait      interval end (the collector's map flip, ``end_ms``) - phase start;
              uniform over [0, interval] by construction;
    pipeline  browser receives the message - interval end: drain, symbolize,
              encode, send, server apply + fan-out, websocket to the browser;
    browser   redraw done - message received: JSON parse, decode, draw.
Target: median latency <= interval + 300 ms.

Run as root:  .venv/bin/python bench/e2e_latency.py [--frequency 49 99]
Exit status: 0 target met, 1 target missed or a phase never drawn, 2 set-up error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD_SRC = ROOT / "bench" / "workloads" / "phases.c"
WORKLOAD_COMM = "latency_phases"  # the binary's name, hence the process's comm
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TARGET_SLACK_MS = 300
COLLECTOR_READY_S = 90  # bcc compiles the program first: seconds of CPU on 2 cores
USERNAME = "latency"

# Wraps the live view's message and redraw handlers.  Date.now() is taken
# before anything else so the walk over the tree is not counted.
HOOK_JS = """
(comm) => {
  const v = window.webprofLive.view;
  const rec = { first: {}, draws: 0 };
  window.__latency = rec;
  let lastRecv = null;
  const onMessage = v.onMessage.bind(v);
  v.onMessage = (data) => { lastRecv = Date.now(); onMessage(data); };
  const redraw = v.redraw.bind(v);
  v.redraw = () => {
    redraw();
    const drawn = Date.now();
    rec.draws += 1;
    const tree = v.tree();
    const proc = tree.children && tree.children.get(comm);
    if (!proc) return;
    const fresh = [];
    const stack = [proc];
    while (stack.length) {
      const n = stack.pop();
      if (/^phase_\\d+$/.test(n.name) && !(n.name in rec.first) && !fresh.includes(n.name)) {
        fresh.push(n.name);
      }
      if (n.children) for (const c of n.children.values()) stack.push(c);
    }
    for (const name of fresh) {
      rec.first[name] = { drawn, recv: lastRecv, end_ms: v.lastEnd, seq: v.lastSeq,
                          frame: null };
    }
    if (fresh.length) {
      requestAnimationFrame(() => {
        const t = Date.now();
        for (const name of fresh) rec.first[name].frame = t;
      });
    }
  };
}
"""


@dataclass
class PhaseRow:
    name: str
    start_ms: int
    latency_ms: int | None = None  # first redraw showing it - its start
    wait_ms: int | None = None
    pipeline_ms: int | None = None
    browser_ms: int | None = None
    frame_ms: int | None = None  # next animation frame after that redraw - start


@dataclass
class PassResult:
    frequency_hz: int
    interval_ms: int
    rows: list[PhaseRow]
    draws: int

    @property
    def latencies(self) -> list[int]:
        return [r.latency_ms for r in self.rows if r.latency_ms is not None]

    @property
    def missing(self) -> list[str]:
        return [r.name for r in self.rows if r.latency_ms is None]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen, grace_s: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Server:
    """``webprof serve`` on a free loopback port with its own data directory and user."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.token = secrets.token_urlsafe(32)
        self.password = secrets.token_urlsafe(12)
        self.log = tmp / "serve.log"
        self.env = dict(os.environ, WEBPROF_DATA_DIR=str(tmp / "data"),
                        WEBPROF_COLLECTOR_TOKEN=self.token,
                        DJANGO_SETTINGS_MODULE="webprof.settings")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str) -> None:
        out = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=self.env,
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{out.stderr[-2000:]}")

    def start(self) -> None:
        self.manage("migrate", "--verbosity", "0")
        self.manage("shell", "-c", "from django.contrib.auth import get_user_model;"
                    f"get_user_model().objects.create_user({USERNAME!r}, "
                    f"password={self.password!r})")
        cmd = [sys.executable, "-m", "webprof.cli", "serve", "--host", "127.0.0.1",
               "--port", str(self.port)]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"webprof serve exited:\n{self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"webprof serve did not listen:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


def build_workload(tmp: Path) -> Path:
    exe = tmp / WORKLOAD_COMM
    subprocess.run(["gcc", "-O0", "-fno-omit-frame-pointer", "-fno-inline",
                    "-o", str(exe), str(WORKLOAD_SRC)], check=True, timeout=120)
    return exe


def start_collector(server: Server, host: str, hz: int, interval_s: float,
                    log: Path) -> subprocess.Popen:
    """``webprof collect`` against the server; returns once it says it is sampling."""
    cmd = [sys.executable, "-m", "webprof.cli", "collect", "--server",
           f"ws://127.0.0.1:{server.port}", "--token", server.token, "--name", host,
           "--frequency", str(hz), "--interval", str(interval_s)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + COLLECTOR_READY_S
    while time.monotonic() < deadline:
        if "collecting on" in log.read_text(errors="replace"):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"webprof collect did not start:\n{log.read_text()[-2000:]}")


def log_in(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/login/?next=/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", server.password)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{server.url}/")


def open_live(page: Page, server: Server, host: str) -> None:
    """The host's live page in "last interval" mode, past its first intervals, hooked."""
    page.goto(f"{server.url}/hosts/{host}/cpu/")
    page.wait_for_function("window.webprofLive !== undefined")
    page.select_option("#mode", "interval")
    page.wait_for_function("window.webprofLive.mode === 'interval'"
                           " && window.webprofLive.intervalsReceived >= 2", timeout=30_000)
    page.evaluate(HOOK_JS, WORKLOAD_COMM)


def run_workload(exe: Path, args: argparse.Namespace) -> dict[str, int]:
    """Run the phases; return each phase's start (unix ms) as the workload printed it."""
    cmd = [str(exe), str(args.phases), str(args.phase_ms), str(args.warmup_ms)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         timeout=args.warmup_ms / 1000 + args.phases * args.phase_ms / 1000 + 60)
    starts = {}
    for line in out.stdout.splitlines():
        name, stamp = line.split()
        if name.startswith("phase_"):
            starts[name] = int(stamp)
    return starts


def rows_from(starts: dict[str, int], first: dict[str, dict]) -> list[PhaseRow]:
    rows = []
    for name, start in sorted(starts.items()):
        row = PhaseRow(name=name, start_ms=start)
        seen = first.get(name)
        if seen:
            row.latency_ms = seen["drawn"] - start
            row.wait_ms = seen["end_ms"] - start
            if seen["recv"] is not None:
                row.pipeline_ms = seen["recv"] - seen["end_ms"]
                row.browser_ms = seen["drawn"] - seen["recv"]
            if seen["frame"] is not None:
                row.frame_ms = seen["frame"] - start
        rows.append(row)
    return rows


def run_pass(page: Page, server: Server, exe: Path, hz: int, args: argparse.Namespace,
             tmp: Path) -> PassResult:
    host = f"latency-{hz}hz"
    collector = start_collector(server, host, hz, args.interval, tmp / f"collect-{hz}.log")
    try:
        open_live(page, server, host)
        starts = run_workload(exe, args)
        # The last phase's first interval closes within one interval of its start,
        # which lies phase_ms before now: a few intervals more is plenty.
        deadline = time.monotonic() + 3 * args.interval + 5
        want = len(starts)
        while time.monotonic() < deadline:
            if page.evaluate("Object.keys(window.__latency.first).length") >= want:
                break
            page.wait_for_timeout(200)
        rec = page.evaluate("window.__latency")
    finally:
        stop(collector)
    return PassResult(frequency_hz=hz, interval_ms=round(args.interval * 1000),
                      rows=rows_from(starts, rec["first"]), draws=rec["draws"])


def percentile(values: list[int], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(values: list[int | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "n/a"
    return (f"median {statistics.median(got):6.0f}  p90 {percentile(got, 90):6.0f}"
            f"  max {max(got):6.0f}")


def fmt(value: int | None) -> str:
    return "-" if value is None else str(value)


def report(result: PassResult) -> bool:
    """Print one pass; return whether its target was met."""
    target = result.interval_ms + TARGET_SLACK_MS
    print(f"\n== {result.frequency_hz} Hz, interval {result.interval_ms} ms, "
          f"{len(result.rows)} phases, {result.draws} redraws ==")
    print(f"{'phase':<10}{'latency':>9}{'wait':>7}{'pipeline':>10}{'browser':>9}{'frame':>8}")
    for r in result.rows:
        print(f"{r.name:<10}{fmt(r.latency_ms):>9}{fmt(r.wait_ms):>7}"
              f"{fmt(r.pipeline_ms):>10}{fmt(r.browser_ms):>9}{fmt(r.frame_ms):>8}")
    print("all in ms.  latency = first redraw showing the phase - its start")
    for label, attr in (("latency", "latency_ms"), ("  wait", "wait_ms"),
                        ("  pipeline", "pipeline_ms"), ("  browser", "browser_ms"),
                        ("next frame", "frame_ms")):
        print(f"{label:<12}{summary([getattr(r, attr) for r in result.rows])}")
    if result.missing:
        print(f"NEVER DRAWN: {', '.join(result.missing)}")
    met = bool(result.latencies) and not result.missing and (
        statistics.median(result.latencies) <= target)
    med = statistics.median(result.latencies) if result.latencies else float("nan")
    print(f"target: median <= interval + {TARGET_SLACK_MS} = {target} ms: "
          f"{'MET' if met else 'MISSED'} (median {med:.0f} ms)")
    return met


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frequency", type=int, nargs="+", default=[49], metavar="HZ",
                   help="sampling rates, one pass each (default 49)")
    p.add_argument("--interval", type=float, default=1.0, metavar="S",
                   help="collector interval in seconds (default 1)")
    p.add_argument("--phases", type=int, default=15, help="phases per pass (1..30, default 15)")
    # Not a multiple of the interval: phase starts then walk across the interval
    # (offsets 0, .57, .14, .71, ... s) instead of hitting the same two points.
    p.add_argument("--phase-ms", type=int, default=2570, help="busy time per phase (2570)")
    p.add_argument("--warmup-ms", type=int, default=1500,
                   help="busy time before phase_00, so the collector has met the process "
                        "and loaded its symbols (default 1500)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    args = p.parse_args()
    if not 1 <= args.phases <= 30 or args.phase_ms <= 0 or args.warmup_ms < 0:
        p.error("--phases must be 1..30, --phase-ms > 0, --warmup-ms >= 0")
    return args


def run_all(args: argparse.Namespace, tmp: Path, errors: list[str]) -> list[PassResult]:
    """Every pass against one server and one browser; page errors go to ``errors``."""
    exe = build_workload(tmp)
    server = Server(tmp)
    server.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            log_in(page, server)
            results = [run_pass(page, server, exe, hz, args, tmp) for hz in args.frequency]
            browser.close()
    finally:
        server.stop()
    return results


def main() -> int:
    args = parse_args()
    if os.geteuid() != 0:
        print("e2e_latency: run as root (the collector loads eBPF programs)", file=sys.stderr)
        return 2
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="webprof-latency-") as tmp:
        try:
            results = run_all(args, Path(tmp), errors)
        except (RuntimeError, subprocess.CalledProcessError, PlaywrightError) as exc:
            print(f"e2e_latency: {exc}", file=sys.stderr)
            return 2
    python = os.path.relpath(sys.executable, ROOT)
    print(f"command: {' '.join([python, *sys.argv])}  (in {ROOT})")
    met = [report(r) for r in results]
    if errors:
        print(f"JavaScript errors on the live page: {errors}")
    if args.json:
        args.json.write_text(json.dumps([{**asdict(r), "latencies": r.latencies}
                                         for r in results], indent=1))
    return 0 if all(met) and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
