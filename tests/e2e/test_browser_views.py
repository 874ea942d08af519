"""Issue-3 views in real headless Chromium against a real daphne.

- Latency page fed by a fake collector (a real websockets client sending
  latency.delta every 0.5 s): the heatmap appears, gains columns while the
  page is open, and a click on a column shows that interval's histogram with
  p50/p90/p99 computed in the page.
- Off-wake page: the separator is drawn as a thin dark band labelled
  "woken by ↑" and the waker's frames above it are blue.
- With a real collector (root + bcc): a staff user ticks "syscall" on the
  host page, the collector starts it, and the syscall heatmap fills.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import pytest
import test_browser
from e2eproc import start_collector, stop_process
from playwright.sync_api import Page
from test_browser import collector_socket, open_live, pixel

from tests.conftest import require_bpf
from webprof.core.protocol import CollectorHello, LatencyDelta, ProfileDelta, encode

pytestmark = pytest.mark.e2e

SEP_BAND_RGB = (0x3B, 0x3F, 0x46)  # SEP_BAND in static/flamepaint.js
# The same Chromium (module scope) and page fixtures as the CPU page's tests.
browser = test_browser.browser
page = test_browser.page


def say_hello(ws, host: str, collectors: list[str]) -> None:
    ws.send(encode(CollectorHello(host=host, kernel="6.18", collectors=collectors,
                                  frequency_hz=49, interval_ms=500, agent_version="e2e")))


@pytest.fixture
def latency_feed(webprof_server) -> Iterator[str]:
    """A fake collector sending one syscall latency.delta every 0.5 s."""
    host = f"fake-lat-{secrets.token_hex(3)}"
    stop = threading.Event()
    with collector_socket(webprof_server) as ws:
        say_hello(ws, host, ["syscall"])

        def feed() -> None:
            seq = 0
            while not stop.is_set():
                start = int(time.time() * 1000) - 500
                # read: mostly [2048, 4096) µs; its p50 is in that bucket.
                series = {"all": [[0, 1, 3], [2, 4, 10], [2048, 4096, 80], [8192, 16384, 7]],
                          "read": [[2048, 4096, 80], [8192, 16384, 7]]}
                ws.send(encode(LatencyDelta(host=host, kind="syscall", seq=seq, start_ms=start,
                                            interval_ms=500, series=series,
                                            health={"samples": 100, "lost_events": 1})))
                seq += 1
                stop.wait(0.5)

        thread = threading.Thread(target=feed, daemon=True)
        thread.start()
        yield host
        stop.set()
        thread.join(timeout=5)


def login_to(page: Page, server, username: str, password: str, path: str) -> None:
    page.goto(f"{server.url}/login/?next={path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("form button[type=submit]")
    page.wait_for_url(f"**{path}")


def test_heatmap_appears_and_gains_columns(page, webprof_server, credentials, latency_feed):
    login_to(page, webprof_server, *credentials, f"/hosts/{latency_feed}/latency/syscall/")
    page.wait_for_function("window.webprofLatency && window.webprofLatency.columns >= 2",
                           timeout=10_000)
    page.wait_for_selector("#heatmap .heatmaplayer, #heatmap .hm", state="attached",
                           timeout=10_000)
    first = page.evaluate("window.webprofLatency.columns")
    page.wait_for_function(f"window.webprofLatency.columns >= {first + 3}", timeout=10_000)
    rows = page.evaluate("window.webprofLatency.heatmap.z.length")
    assert rows == 15  # log2 rows <1µs .. 8.19ms: 0..14
    ticks = page.eval_on_selector_all("#heatmap .ytick text", "els => els.map(e => e.textContent)")
    assert "<1µs" in ticks and "2.05ms" in ticks, ticks
    assert "lost events" in page.inner_text("#health")
    # The series selector lists both series, "all" first and chosen.
    options = page.locator("#series option").all_inner_texts()
    assert options[0].startswith("all (") and any(o.startswith("read (") for o in options)
    # Click the newest column: the histogram shows that interval with percentiles.
    page.evaluate("""() => {
      const h = window.webprofLatency.heatmap;
      h.select(h.columns[h.columns.length - 1].end_ms);
    }""")
    page.wait_for_selector("#histogram .bars .point", state="attached", timeout=5_000)
    marks = page.evaluate("window.webprofLatency.heatmap.histogramMarks"
                          ".map((m) => [m.name, m.v])")
    # 100 events: rank 50 falls in [2048, 4096) after 13 below it: 2048 + 2048 * 37/80.
    assert marks[0][0] == "p50" and abs(marks[0][1] - (2048 + 2048 * 37 / 80)) < 1e-6
    assert marks[2][0] == "p99" and 8192 <= marks[2][1] < 16384
    assert "p50" in page.inner_text("#histogram")
    page.select_option("#series", "read")
    page.wait_for_function("window.webprofLatency.heatmap.z.length === 3")  # rows 12..14
    # A real click on the plot also selects a column.
    box = page.locator("#heatmap .nsewdrag").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
    page.wait_for_function("window.webprofLatency.heatmap.selected !== null")


def test_offwake_separator_band(page, webprof_server, credentials):
    host = f"fake-wake-{secrets.token_hex(3)}"
    with collector_socket(webprof_server) as ws:
        say_hello(ws, host, ["offwake"])
        strings = ["app", "main", "do_read", "schedule_[k]", "--", "try_to_wake_up_[k]",
                   "feeder_write", "feeder_main", "feeder"]
        ws.send(encode(ProfileDelta(
            host=host, kind="offwake", seq=0, start_ms=int(time.time() * 1000) - 1000,
            interval_ms=1000, frequency_hz=0, strings=strings,
            stacks=[[42, 0, 250_000, *range(1, 9)]], health={})))
        open_live(page, webprof_server, *credentials, host, kind="offwake")
        page.wait_for_function("window.webprofLive.tree().total > 0", timeout=10_000)
        sep = page.evaluate("window.webprofLive.graph.frameRect('--')")
        assert sep and sep["waker"], sep
        r, g, b, _ = pixel(page, sep["x"] + sep["w"] / 2, sep["y"] + sep["h"] / 2)
        assert max(abs(r - SEP_BAND_RGB[0]), abs(g - SEP_BAND_RGB[1]),
                   abs(b - SEP_BAND_RGB[2])) <= 6, (r, g, b)
        # Above the band (flame mode: a smaller y) sits the waker, in blue.
        waker = page.evaluate("window.webprofLive.graph.frameRect('feeder_write')")
        assert waker["y"] < sep["y"] and waker["waker"]
        r, g, b, _ = pixel(page, waker["x"] + waker["w"] - 3, waker["y"] + waker["h"] / 2)
        assert b - r > 40, (r, g, b)
        blocked = page.evaluate("window.webprofLive.graph.frameRect('do_read')")
        assert blocked["y"] > sep["y"] and not blocked["waker"]
        page.mouse.move(sep["clientX"], sep["clientY"])
        tip = page.inner_text(".fg-tooltip")
        assert "woken by ↑" in tip and "250 ms" in tip, tip
        assert "250 ms in view" in page.inner_text("#status")


def make_staff(server) -> tuple[str, str]:
    username, password = f"staff-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    server.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model;"
        f"get_user_model().objects.create_user({username!r}, password={password!r}, "
        "is_staff=True)"))
    return username, password


def test_host_page_starts_real_syscall_collector(page, webprof_server, tmp_path):
    require_bpf()
    name = f"e2e-cfg-{secrets.token_hex(3)}"
    col = start_collector(webprof_server, name, tmp_path / "c.log", collectors="cpu")
    try:
        login_to(page, webprof_server, *make_staff(webprof_server), f"/hosts/{name}/")
        deadline = time.monotonic() + 45
        while "collector connected" not in page.inner_text("#host-state"):
            assert col.proc.poll() is None and time.monotonic() < deadline, col.output()
            page.wait_for_timeout(500)
            page.reload()
        assert page.inner_text("#running") == "cpu"
        page.check("input[name=collectors][value=syscall]")
        page.click("#collectors-form button[type=submit]")
        page.wait_for_selector(".messages .banner.ok")
        while page.inner_text("#running") != "cpu, syscall":
            assert col.proc.poll() is None and time.monotonic() < deadline, col.output()
            page.wait_for_timeout(500)
            page.reload()
        page.goto(f"{webprof_server.url}/hosts/{name}/latency/syscall/")
        page.wait_for_function("window.webprofLatency && window.webprofLatency.columns >= 2",
                               timeout=15_000)
        # Real syscall names (not numbers), busiest first, the first one shown.
        names = page.locator("#series option").all_inner_texts()
        assert len(names) > 1 and any(n.startswith(("read (", "write (")) for n in names), names
        assert page.eval_on_selector("#series", "s => s.selectedIndex") == 0
        assert "collector.config applied" in col.output()
    finally:
        stop_process(col.proc)


def test_page_opened_before_its_collector_waits_for_it(page, webprof_server, credentials):
    """A host no collector has connected as yet is refused (unknown_host); the
    page says it is waiting and asks again until the collector is there."""
    host = f"late-{secrets.token_hex(3)}"
    login_to(page, webprof_server, *credentials, f"/hosts/{host}/latency/syscall/")
    page.wait_for_function(
        "document.body.innerText.includes('waiting for a collector to connect as')",
        timeout=10_000)
    with collector_socket(webprof_server) as ws:
        say_hello(ws, host, ["syscall"])
        deadline = time.monotonic() + 20
        seq = 0
        while page.evaluate("window.webprofLatency.columns") < 1:
            assert time.monotonic() < deadline, page.inner_text("body")[:2000]
            ws.send(encode(LatencyDelta(
                host=host, kind="syscall", seq=seq, start_ms=int(time.time() * 1000) - 500,
                interval_ms=500, series={"all": [[2, 4, 10]]}, health={"samples": 10})))
            seq += 1
            time.sleep(0.5)
    assert "waiting for a collector" not in page.inner_text("body")
