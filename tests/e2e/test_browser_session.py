"""The session viewer in real headless Chromium against a real daphne.

Sessions with known phases are written into the server's own database (a
``manage.py shell`` script with the server's WEBPROF_DATA_DIR): phase A runs
``phase_a_fn`` for 10 s, then phase B runs ``phase_b_fn`` for 10 s.

- Drag-selecting phase A's seconds on the sub-second heatmap gives a flame
  graph with phase A's function and not phase B's; the URL holds the range
  and a reload keeps it.
- The diff of phase A against a session that is all phase B colours
  ``phase_b_fn`` red (grew) and ``phase_a_fn`` blue (shrank); the table
  leads with them.
- A share link opened in a fresh browser context (no login) shows the flame
  graph; a revoked link shows the "does not exist, was revoked or has
  expired" page.

Screenshots land in /tmp/shots/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import test_browser
from playwright.sync_api import Browser, Page
from test_browser import pixel
from test_browser_views import login_to

pytestmark = pytest.mark.e2e

browser = test_browser.browser
page = test_browser.page
SHOTS = Path("/tmp/shots")

BUILD = """
import json
from webprof.core.protocol import LatencyDelta, ProfileDelta
from webprof.sessions.share import create_link, revoke
from webprof.sessions.store import save_deltas
O = 1_760_000_000_000

def second(s, leaf, n=99):
    per = [n // 50 + (1 if i < n % 50 else 0) for i in range(50)]
    pairs = [x for i, k in enumerate(per) if k for x in (i, k)]
    return ProfileDelta(host="lab", kind="cpu", seq=s, start_ms=O + s * 1000, interval_ms=1000,
                        frequency_hz=99, strings=["app", "main", "work", leaf],
                        stacks=[[42, 0, n, 1, 2, 3]], health={}, slot_ms=20, slots=[pairs])

lat = [LatencyDelta(host="lab", kind="runqlat", seq=s, start_ms=O + s * 1000, interval_ms=1000,
                    series={"all": [[4, 8, 20 + s], [64, 128, s]]}, health={}) for s in range(20)]
a = save_deltas([second(s, "phase_a_fn" if s < 10 else "phase_b_fn") for s in range(20)] + lat,
                name="two phases", host="lab", started_ms=O, frequency_hz=99, interval_ms=1000)
b = save_deltas([second(s, "phase_b_fn") for s in range(10)], name="all phase b", host="lab",
                started_ms=O + 100_000, frequency_hz=99, interval_ms=1000)
token, _ = create_link(a, None, None)
gone, _ = create_link(a, None, None)
revoke(gone)
print(json.dumps({"a": a.pk, "b": b.pk, "token": token, "revoked": gone}))
"""


@pytest.fixture(scope="module")
def sessions(webprof_server) -> dict:
    out = webprof_server.manage("shell", "-c", BUILD)
    return json.loads(out.strip().splitlines()[-1])


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)


def drawn_names(page: Page, hook: str = "webprofSession") -> set[str]:
    return set(page.evaluate(
        f"(() => {{ const g = window.{hook}.graph;"
        " return g.nodes.slice(0, g.n).map((n) => n.name); })()"))


def wait_loaded(page: Page, loads: int) -> None:
    page.wait_for_function(f"window.webprofSession && window.webprofSession.loads >= {loads}",
                           timeout=15_000)


def test_drag_select_phase_a(page, webprof_server, credentials, sessions):
    sid = sessions["a"]
    login_to(page, webprof_server, *credentials, f"/sessions/{sid}/")
    wait_loaded(page, 1)
    page.wait_for_function("window.webprofSession.heatmap.hm !== null", timeout=10_000)
    page.wait_for_selector("#timeline .main-svg", state="attached", timeout=10_000)
    page.wait_for_selector("#latency-runqlat .heatmaplayer", state="attached", timeout=10_000)
    assert {"phase_a_fn", "phase_b_fn"} <= drawn_names(page)
    assert page.evaluate("window.webprofSession.flame.total") == 20 * 99
    # Drag from second 1, slot 0 to second 8, last slot: [1000, 9000) ms.
    start = page.evaluate("window.webprofSession.heatmap.cellCentre(1000)")
    end = page.evaluate("window.webprofSession.heatmap.cellCentre(8980)")
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move((start["x"] + end["x"]) / 2, end["y"], steps=4)
    page.mouse.move(end["x"], end["y"], steps=4)
    page.mouse.up()
    wait_loaded(page, 2)
    flame = page.evaluate("window.webprofSession.flame")
    assert (flame["from_ms"] - flame["origin_ms"], flame["to_ms"] - flame["origin_ms"]) == (
        1000, 9000)
    assert flame["total"] == 8 * 99
    names = drawn_names(page)
    assert "phase_a_fn" in names and "phase_b_fn" not in names, names
    assert "from=1000" in page.url and "to=9000" in page.url and "kind=cpu" in page.url
    # The export links carry the range in unix ms.
    href = page.get_attribute("#export-pprof", "href")
    assert "format=pprof" in href and f"from={1_760_000_001_000}" in href
    # The selection is drawn on the heatmap (blue overlay) and on the timeline.
    assert page.evaluate("document.querySelectorAll('#timeline .shapelayer path').length") >= 1
    shot(page, "session-selected.png")
    # Search highlights, click zooms, the table lists the function.
    page.fill("#search", "phase_a")
    assert "100.00%" in page.inner_text("#search-result")
    assert "phase_a_fn" in page.inner_text("#functions")
    page.reload()
    wait_loaded(page, 1)
    flame = page.evaluate("window.webprofSession.flame")
    assert flame["from_ms"] - flame["origin_ms"] == 1000 and flame["total"] == 8 * 99
    assert "phase_b_fn" not in drawn_names(page)
    assert "+1 s … +9 s" in page.inner_text("#selection")
    # Whole session again.
    page.click("#whole")
    wait_loaded(page, 2)
    assert "from=" not in page.url and "phase_b_fn" in drawn_names(page)


def test_process_filter_from_the_url(page, webprof_server, credentials, sessions):
    sid = sessions["a"]
    login_to(page, webprof_server, *credentials, f"/sessions/{sid}/")
    page.goto(f"{webprof_server.url}/sessions/{sid}/?kind=cpu&pid=999")
    wait_loaded(page, 1)
    assert page.evaluate("window.webprofSession.flame.total") == 0
    page.fill("#filter", "app")
    page.click("#filter-form button[type=submit]")
    wait_loaded(page, 2)
    assert page.evaluate("window.webprofSession.flame.total") == 20 * 99
    assert "comm=app" in page.url


def test_diff_colours_and_table(page, webprof_server, credentials, sessions):
    q = f"a={sessions['a']}&a_from=0&a_to=10000&b={sessions['b']}&kind=cpu"
    login_to(page, webprof_server, *credentials, "/sessions/diff/")
    page.goto(f"{webprof_server.url}/sessions/diff/?{q}")
    page.wait_for_function("window.webprofDiff && window.webprofDiff.loads >= 1",
                           timeout=15_000)
    grew = page.evaluate("window.webprofDiff.graph.frameRect('phase_b_fn')")
    shrank = page.evaluate("window.webprofDiff.graph.frameRect('phase_a_fn')")
    same = page.evaluate("window.webprofDiff.graph.frameRect('work')")
    r, g, b, _ = pixel(page, grew["x"] + grew["w"] / 2, grew["y"] + grew["h"] / 2)
    assert r > 180 and g < 120 and b < 120, (r, g, b)  # red
    r, g, b, _ = pixel(page, shrank["x"] + shrank["w"] / 2, shrank["y"] + shrank["h"] / 2)
    assert b > 180 and r < 120, (r, g, b)  # blue
    r, g, b, _ = pixel(page, same["x"] + same["w"] / 2, same["y"] + same["h"] / 2)
    assert r == g == b == 200, (r, g, b)  # unchanged: grey
    rows = page.locator("#functions tbody tr").all_inner_texts()
    assert rows[0].startswith("phase_a_fn") or rows[0].startswith("phase_b_fn"), rows
    assert "−990" in page.inner_text("#functions") and "+990" in page.inner_text("#functions")
    assert page.locator("#functions td.grew").count() == 1
    page.mouse.move(grew["clientX"], grew["clientY"])
    tip = page.inner_text(".fg-tooltip")
    assert "before 0 (scaled) · after 990" in tip and "new" in tip, tip
    page.click("#functions th[data-key=name]")
    assert page.locator("#functions tbody tr").first.inner_text().startswith("app")
    shot(page, "diff.png")


def test_share_link_without_login(browser: Browser, webprof_server, sessions):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{webprof_server.url}/s/{sessions['token']}/?from=10000&to=20000")
        wait_loaded(page, 1)
        names = drawn_names(page)
        assert "phase_b_fn" in names and "phase_a_fn" not in names
        assert page.locator("header.nav a").count() == 0  # no navigation links
        assert page.locator("#manage, #compare-session, #compare-range").count() == 0
        href = page.get_attribute("#export-folded", "href")
        assert href.startswith(f"/s/{sessions['token']}/export/?")
        shot(page, "shared.png")
        resp = page.goto(f"{webprof_server.url}/s/{sessions['revoked']}/")
        assert resp.status == 404
        assert "does not exist, was revoked or has expired" in page.inner_text("main")
        shot(page, "shared-revoked.png")
    finally:
        context.close()
    assert not errors, errors


def test_an_hour_of_heatmap_stays_fast(page, webprof_server, credentials, sessions):
    """3,600 columns x 50 rows drawn by the page's own heatmap: painting once,
    then every redraw (scroll, drag) well under a frame."""
    login_to(page, webprof_server, *credentials, f"/sessions/{sessions['a']}/")
    wait_loaded(page, 1)
    timings = page.evaluate("""() => {
      const h = window.webprofSession.heatmap;
      const z = [];
      for (let r = 0; r < 50; r++) {
        z.push(Array.from({ length: 3600 }, (_, c) => (c * 7 + r * 13) % 40));
      }
      let t0 = performance.now();
      h.setData({ origin_ms: 0, slot_ms: 20, columns: 3600, rows: 50, z, max: 39 });
      const paint = performance.now() - t0;
      const redraws = [];
      for (let i = 0; i < 20; i++) {
        h.scroller.scrollLeft = i * 1000;
        h.render();
        redraws.push(h.lastRenderMs);
      }
      const scrollable = h.scroller.scrollWidth > h.scroller.clientWidth;
      h.setCellWidth("fit");
      return { paint, redraws, worst: Math.max(...redraws), fit: h.lastRenderMs, scrollable,
               fitScrollable: h.scroller.scrollWidth > h.scroller.clientWidth };
    }""")
    assert timings["paint"] < 500 and timings["worst"] < 40 and timings["fit"] < 40, timings
    assert timings["scrollable"] and not timings["fitScrollable"], timings
    shot(page, "session-hour.png")
