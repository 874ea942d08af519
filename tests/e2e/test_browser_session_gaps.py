"""A session with an 11 s hole (the collector restarted) in real Chromium: the
page says so and the timeline's line breaks at the hole instead of carrying
the last rate across it.  Screenshot: /tmp/shots/session-gap.png."""

from __future__ import annotations

import json

import pytest
import test_browser
from test_browser_session import shot, wait_loaded
from test_browser_views import login_to

pytestmark = pytest.mark.e2e

browser = test_browser.browser
page = test_browser.page

BUILD = """
import json
from webprof.core.protocol import ProfileDelta
from webprof.sessions.store import save_deltas
O = 1_770_000_000_000
def second(s, n):
    return ProfileDelta(host="lab", kind="cpu", seq=s, start_ms=O + s * 1000, interval_ms=1000,
                        frequency_hz=99, strings=["app", "main", "gap_fn"],
                        stacks=[[42, 0, n, 1, 2]], health={})
seconds = [*range(20), *range(31, 41)]  # 20 s, 11 s missing, 10 s
s = save_deltas([second(x, 60 + x) for x in seconds], name="restarted", host="lab",
                started_ms=O, frequency_hz=99, interval_ms=1000)
print(json.dumps({"id": s.pk}))
"""


def test_the_hole_is_shown_and_breaks_the_timeline(page, webprof_server, credentials):
    out = webprof_server.manage("shell", "-c", BUILD)
    sid = json.loads(out.strip().splitlines()[-1])["id"]
    login_to(page, webprof_server, *credentials, f"/sessions/{sid}/")
    wait_loaded(page, 1)
    page.wait_for_selector("#timeline .main-svg", state="attached", timeout=10_000)
    assert "1 gap, 11.0 s in all" in page.inner_text("#gaps")
    y = page.evaluate("document.getElementById('timeline').data[0].y")
    assert y.count(None) == 1 and y[:20] == [(60 + s) * 1.0 for s in range(20)]
    # The line is drawn in two pieces, one each side of the hole.
    pieces = page.evaluate("document.querySelectorAll('#timeline .scatterlayer .js-line').length")
    assert pieces == 2
    shot(page, "session-gap.png")
