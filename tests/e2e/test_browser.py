"""The live page in real headless Chromium against a real daphne.

- With a real collector (root + bcc) and a compiled workload with known
  function names: the table lists them, the canvas has pixels, clicking a
  frame zooms, search highlights, the view modes differ as they should.
- With a fake collector (a real websockets client speaking the protocol):
  "[other: N frames]" folds are drawn hatched grey and explained, and the
  reconnect and "not logged in" banners appear when daphne goes away.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from websockets.sync.client import ClientConnection, connect

from webprof.core.protocol import CollectorHello, ProfileDelta, encode

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# Search highlight colour of static/flamepaint.js, hsl(300, 80%, 62%), as RGB.
HIGHLIGHT_RGB = (236, 80, 236)
COLLECTOR_WAIT_S = 45  # bcc compiles the program first: seconds of CPU on 2 cores


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                              args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def open_live(page: Page, server, username: str, password: str, host: str,
              kind: str = "cpu") -> None:
    """Log in through the login form and land on the host's live page."""
    page.goto(f"{server.url}/login/?next=/hosts/{host}/{kind}/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("form button[type=submit]")
    page.wait_for_url(f"**/hosts/{host}/{kind}/")
    page.wait_for_function("window.webprofLive !== undefined")


def frame_names(page: Page) -> list[str]:
    return page.evaluate(
        "(() => { const g = window.webprofLive.graph;"
        " return g.nodes.slice(0, g.n).map((n) => n.name); })()"
    )


def scroll_to_frame(page: Page, name: str) -> dict:
    """Scroll the graph so frame ``name`` is visible; return its frameRect."""
    rect = page.evaluate(
        """(name) => {
          const g = window.webprofLive.graph;
          const r = g.frameRect(name);
          if (!r) return null;
          const wrap = g.canvas.parentElement;
          wrap.scrollTop = Math.max(0, r.y - wrap.clientHeight / 2);
          return g.frameRect(name);
        }""",
        name,
    )
    assert rect is not None, f"frame {name!r} is not drawn; drawn: {frame_names(page)[:40]}"
    return rect


def pixel(page: Page, x: float, y: float) -> list[int]:
    """RGBA of the canvas at CSS pixel (x, y)."""
    return page.evaluate(
        """([x, y]) => {
          const c = document.getElementById('flamegraph');
          const dpr = c.width / c.clientWidth;
          return Array.from(c.getContext('2d')
            .getImageData(Math.floor(x * dpr), Math.floor(y * dpr), 1, 1).data);
        }""",
        [x, y],
    )


def count_pixels(page: Page, rgb: tuple[int, int, int] | None = None) -> int:
    """Painted pixels on the canvas (or pixels of colour ``rgb``, +-4 per channel)."""
    return page.evaluate(
        """(rgb) => {
          const c = document.getElementById('flamegraph');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 0; i < d.length; i += 4) {
            if (!d[i + 3]) continue;
            if (!rgb || (Math.abs(d[i] - rgb[0]) <= 4 && Math.abs(d[i + 1] - rgb[1]) <= 4
                && Math.abs(d[i + 2] - rgb[2]) <= 4)) n++;
          }
          return n;
        }""",
        list(rgb) if rgb else None,
    )


def crumbs(page: Page) -> list[str]:
    return page.locator("#breadcrumb .crumb").all_inner_texts()


def wait_intervals(page: Page, more: int = 1, timeout_ms: int = 10_000) -> None:
    n = page.evaluate("window.webprofLive.intervalsReceived")
    page.wait_for_function(
        f"window.webprofLive.intervalsReceived >= {n + more}", timeout=timeout_ms
    )


# ---- real collector ---------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_spin(tmp_path_factory) -> Path:
    """workloads/browser_spin.c built with frame pointers (see its header)."""
    out = tmp_path_factory.mktemp("browser-workload") / "browser_spin"
    src = Path(__file__).parent / "workloads" / "browser_spin.c"
    cmd = ["cc", "-O1", "-fno-omit-frame-pointer", "-fno-inline", "-o", str(out), str(src)]
    subprocess.run(cmd, check=True, timeout=60)
    return out


@pytest.fixture
def spin_process(browser_spin: Path) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([str(browser_spin), "300"])
    yield proc
    proc.kill()
    proc.wait()


def wait_for_table_row(page: Page, name: str, collector) -> None:
    """Poll the function table; fail with the collector's log if it died."""
    deadline = time.monotonic() + COLLECTOR_WAIT_S
    while time.monotonic() < deadline:
        if page.locator("#functions td.fn", has_text=name).count():
            return
        assert collector.proc.poll() is None, f"collector exited:\n{collector.output()}"
        page.wait_for_timeout(500)
    status = page.inner_text("#status")
    pytest.fail(f"{name} not in the table after {COLLECTOR_WAIT_S} s; status: {status}\n"
                f"collector log:\n{collector.output()[-3000:]}")


def wait_connected(page: Page, server, name: str, collector) -> None:
    """Wait until the collector said hello: only then can its host be watched
    (a subscribe to a host never seen is refused as unknown_host)."""
    deadline = time.monotonic() + COLLECTOR_WAIT_S
    while time.monotonic() < deadline:
        rows = page.request.get(f"{server.url}/hosts.json").json()["hosts"]
        if any(r["name"] == name and r["connected"] for r in rows):
            return
        assert collector.proc.poll() is None, f"collector exited:\n{collector.output()}"
        page.wait_for_timeout(500)
    pytest.fail(f"{name} not connected after {COLLECTOR_WAIT_S} s:\n{collector.output()[-3000:]}")


def test_live_page_with_real_collector(
    page, webprof_server, credentials, collector_process, spin_process
):
    open_live(page, webprof_server, *credentials, collector_process.name)
    wait_connected(page, webprof_server, collector_process.name, collector_process)
    page.reload()
    page.wait_for_function("window.webprofLive !== undefined")
    # The process filter goes to the server; the table then holds only the workload.
    page.fill("#filter", "browser_spin")
    page.click("#filter-form button[type=submit]")
    wait_for_table_row(page, "browser_spin_inner", collector_process)
    # The filtered snapshot has arrived once the tree holds only the workload.
    page.wait_for_function(
        "(() => { const k = [...(window.webprofLive.tree().children || new Map()).keys()];"
        " return k.length === 1 && k[0] === 'browser_spin'; })()", timeout=10_000)
    assert 'process ~ "browser_spin"' in page.inner_text("#status")
    table = page.locator("#functions td.fn").all_inner_texts()
    assert "browser_spin_inner" in table and "browser_spin_outer" in table, table

    # The canvas really has pixels on it.
    assert count_pixels(page) > 2000

    # Clicking the outer frame zooms: a new breadcrumb, the frame spans the width.
    before = crumbs(page)
    rect = scroll_to_frame(page, "browser_spin_outer")
    assert rect["w"] < rect["canvasWidth"] - 1 or len(before) == 1
    page.mouse.click(rect["clientX"], rect["clientY"])
    after = crumbs(page)
    assert len(after) > len(before) and after[-1] == "browser_spin_outer", after
    zoomed = page.evaluate("window.webprofLive.graph.frameRect('browser_spin_outer')")
    assert abs(zoomed["w"] - zoomed["canvasWidth"]) < 1, zoomed
    # The zoom survives the next intervals' redraws.
    wait_intervals(page, 2)
    assert crumbs(page)[-1] == "browser_spin_outer"
    page.locator("#breadcrumb .crumb").first.click()
    assert crumbs(page) == ["all"]

    # Search highlights the matching frames and reports their share.
    page.fill("#search", "spin_inner")
    result = page.inner_text("#search-result")
    match = re.fullmatch(r"matched: (\d+\.\d\d)% of total", result)
    assert match, result
    assert 50 < float(match.group(1)) <= 100  # the filtered workload is inner's loop
    assert count_pixels(page, HIGHLIGHT_RGB) > 100
    page.fill("#search", "")
    assert count_pixels(page, HIGHLIGHT_RGB) == 0
    check_modes(page)


def check_modes(page: Page) -> None:
    """Each mode shows its own tree: interval <= window <= since start."""
    page.select_option("#window-sec", "60")
    totals = {}
    for mode in ("interval", "window", "since"):
        page.select_option("#mode", mode)
        assert page.evaluate("window.webprofLive.mode") == mode
        totals[mode] = page.evaluate(
            # One evaluate, so no interval can land between the reads.
            "(() => { const w = window.webprofLive, v = w.view;"
            " return [w.tree().total, v.ring.at(-1).samples, v.windowTree.total,"
            " v.sinceTree.total, document.getElementById('status').textContent]; })()"
        )
        shown, last, window, since, status = totals[mode]
        assert shown == {"interval": last, "window": window, "since": since}[mode]
        assert f"{shown} samples in view" in status
    assert 0 < totals["interval"][0] <= totals["window"][0] <= totals["since"][0]
    # Click and read in one task: an interval arriving later would add to it.
    after_reset = page.evaluate(
        "(() => { document.getElementById('reset').click();"
        " return window.webprofLive.tree().total; })()")
    assert after_reset == 0
    wait_intervals(page)
    assert page.evaluate("window.webprofLive.tree().total") > 0


# ---- fake collector ---------------------------------------------------------------


class FakeCollector:
    """A real websocket client on /ws/collector/ pushing synthetic intervals."""

    def __init__(self, ws: ClientConnection, host: str) -> None:
        self.host = host
        self.seq = 0
        self.ws = ws
        self.ws.send(encode(CollectorHello(
            host=host, kernel="6.18", collectors=["cpu"], frequency_hz=99, interval_ms=1000,
            agent_version="browser-test")))

    def send(self, stacks: dict[tuple[str, ...], int]) -> None:
        """``stacks``: frames (comm first) -> weight."""
        strings: list[str] = []
        index: dict[str, int] = {}
        rows = []
        for frames, weight in stacks.items():
            ids = [index.setdefault(f, len(index)) for f in frames]
            rows.append([4242, ids[0], weight, *ids[1:]])
        strings = list(index)
        self.ws.send(encode(ProfileDelta(
            host=self.host, kind="cpu", seq=self.seq, start_ms=int(time.time() * 1000) - 1000,
            interval_ms=1000, frequency_hz=99, strings=strings, stacks=rows,
            health={"samples": sum(stacks.values()), "lost_user_stacks": 3})))
        self.seq += 1

    def close(self) -> None:
        self.ws.close()


def collector_socket(server) -> ClientConnection:
    return connect(f"{server.ws_url}/ws/collector/", max_size=None,
                   additional_headers={"Authorization": f"Bearer {server.token}"})


def test_folded_frames_are_drawn_and_explained(page, webprof_server, credentials):
    host = f"fake-fold-{secrets.token_hex(3)}"
    with collector_socket(webprof_server) as ws:
        fake = FakeCollector(ws, host)
        check_folds(page, webprof_server, credentials, fake)


def check_folds(page: Page, webprof_server, credentials, fake: FakeCollector) -> None:
    # 17,000 one-sample leaves exceed the 16,384-node budget: the server
    # folds the smallest into one "[other: N frames]" node.
    stacks = {("fakeproc", "main", "big_hot"): 20_000}
    stacks.update({("fakeproc", "main", f"small_{i}"): 1 for i in range(17_000)})
    fake.send(stacks)
    open_live(page, webprof_server, *credentials, fake.host)
    page.wait_for_function("window.webprofLive.tree().total > 0", timeout=10_000)
    others = [n for n in frame_names(page) if n.startswith("[other: ")]
    assert len(others) == 1, others
    label = others[0]
    folded = int(re.fullmatch(r"\[other: (\d+) frames\]", label).group(1))
    assert 0 < folded < 17_000
    rect = scroll_to_frame(page, label)
    # Hatched grey, not a warm function colour: r, g and b close together.
    r, g, b, a = pixel(page, rect["x"] + rect["w"] - 2, rect["y"] + rect["h"] / 2)
    assert a == 255 and max(r, g, b) - min(r, g, b) < 10, (r, g, b)
    hot = scroll_to_frame(page, "big_hot")
    r, g, b, _ = pixel(page, hot["x"] + hot["w"] - 2, hot["y"] + hot["h"] / 2)
    assert r - b > 40, (r, g, b)  # warm
    page.mouse.move(rect["clientX"], rect["clientY"])
    tip = page.inner_text(".fg-tooltip")
    assert f"{folded} small frames folded to stay within the node budget" in tip
    assert f"frames folded by node budget: {folded}" in page.inner_text("#health")
    assert page.locator("#functions td.fn", has_text="[other: folded frames]").count()
    # A second interval adds up in "since start" and the fold stays one node;
    # its health counters (only live.interval carries them) are shown.
    fake.send(stacks)
    wait_intervals(page)
    health = page.inner_text("#health")
    assert "lost user stacks: 3 (last interval 3)" in health, health
    page.select_option("#mode", "since")
    assert page.evaluate("window.webprofLive.tree().total") == 2 * 37_000
    assert len([n for n in frame_names(page) if n.startswith("[other: ")]) == 1
    # Collector gone: the page says so instead of silently freezing.
    fake.close()
    page.wait_for_selector("#host-banner:not([hidden])", timeout=10_000)
    assert "collector disconnected, last seen" in page.inner_text("#host-banner")


def test_reconnect_and_logged_out_banners(page, own_server):
    username, password = "reconnect-user", secrets.token_urlsafe(12)
    own_server.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model;"
        f"get_user_model().objects.create_user({username!r}, password={password!r})"))
    open_live(page, own_server, username, password, "fake-reconnect")
    page.wait_for_function("window.webprofLive.connection === 'connected'", timeout=10_000)
    banner = page.locator("#conn-banner")
    assert banner.is_hidden()

    own_server.stop()
    page.wait_for_selector("#conn-banner:not([hidden])", timeout=10_000)
    assert re.search(r"reconnecting in \d+s", banner.inner_text()), banner.inner_text()
    assert page.inner_text("#status").startswith("reconnecting")

    own_server.start()  # same port, same data dir: the session is still valid
    page.wait_for_function("window.webprofLive.connection === 'connected'", timeout=20_000)
    page.wait_for_selector("#conn-banner", state="hidden", timeout=5_000)

    # Without a session the server closes with 4003: no retry loop, a clear message.
    page.context.clear_cookies()
    own_server.stop()
    page.wait_for_selector("#conn-banner:not([hidden])", timeout=10_000)
    own_server.start()
    page.wait_for_function("window.webprofLive.connection === 'auth'", timeout=20_000)
    assert banner.inner_text() == "not logged in — reload to log in"


def test_bad_message_is_counted_not_hidden(page, webprof_server, credentials):
    """A message the page cannot use shows up as a counted drop."""
    open_live(page, webprof_server, *credentials, "fake-bad")
    page.wait_for_function("window.webprofLive.connection === 'connected'")
    page.evaluate(
        "(m) => window.webprofLive.view.onMessage(m)",
        json.dumps({"v": 1, "type": "live.interval", "host": "fake-bad", "seq": 99,
                    "end_ms": 1, "samples": 1, "tree": {"names": [""], "nodes": [0, 1]},
                    "folded_nodes": 0, "health": {}}),
    )
    assert "bad messages dropped: 1" in page.inner_text("#health")
    assert "bad message from server" in page.inner_text("#status")
