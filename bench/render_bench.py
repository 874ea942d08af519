"""Flame graph render benchmark in headless Chromium.

Serves the repository over a loopback HTTP server, opens
bench/render_bench.html (which imports the real static/*.js modules), draws
synthetic trees of the server's 16,384-node budget and prints the median and
worst of ``--runs`` runs, in milliseconds, measured with performance.now():

- decode: wire JSON object -> tree
- first: new FlameGraph + first layout and draw
- update: redraw with a different 16k-node tree (what each interval costs)
- *Flush: the same plus a 1-pixel getImageData, which forces Chromium to
  rasterize the queued canvas commands
- pipeline: one "last N seconds" step: decode, add, subtract, draw, table stats

Targets: first draw <= 50 ms, update <= 16 ms.  Exit status 1 when a target
is missed, so the script can gate a change.

Usage: .venv/bin/python bench/render_bench.py [--runs 20] [--nodes 16384] [--dpr 1]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import sys
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TARGETS_MS = {"firstFlush": 50.0, "updateFlush": 16.0}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


def serve_repo() -> http.server.ThreadingHTTPServer:
    handler = functools.partial(QuietHandler, directory=str(REPO))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(runs: int, nodes: int, dpr: float) -> dict:
    server = serve_repo()
    url = f"http://127.0.0.1:{server.server_address[1]}/bench/render_bench.html"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(
                viewport={"width": 1280, "height": 900}, device_scale_factor=dpr
            )
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            page.wait_for_function("window.benchReady === true", timeout=10_000)
            result = page.evaluate(f"window.bench.run({runs}, {nodes})")
            browser.close()
            if errors:
                raise RuntimeError(f"page errors: {errors}")
            return result
    finally:
        server.shutdown()
        server.server_close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=16_384)
    parser.add_argument("--dpr", type=float, default=1.0, help="device pixel ratio")
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    args = parser.parse_args()
    result = run(args.runs, args.nodes, args.dpr)
    if args.json:
        print(json.dumps(result, indent=2))
    print(
        f"{result['nodes']} nodes, {result['drawn']} drawn (>= 0.5 px), "
        f"dpr {result['dpr']}, {result['runs']} runs; milliseconds, median / max"
    )
    missed = []
    for key in ("decode", "first", "firstFlush", "update", "updateFlush", "pipeline"):
        stat = result[key]
        target = TARGETS_MS.get(key)
        mark = ""
        if target is not None:
            ok = stat["median"] <= target
            mark = f"  target <= {target:g}: {'ok' if ok else 'MISSED'}"
            if not ok:
                missed.append(key)
        print(f"  {key:12s} {stat['median']:8.2f} / {stat['max']:8.2f}{mark}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
