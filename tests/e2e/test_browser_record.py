"""Recording from the live page in real headless Chromium against a real daphne.

A fake collector (a real websockets client speaking the protocol) streams CPU
intervals every 0.5 s; the user presses Record for a custom 3 s on the live
CPU page, watches the progress bar advance and finish, follows the link to
the session, and finds it in /sessions/ with its size on disk.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterator

import pytest
import test_browser
from test_browser import collector_socket
from test_browser_views import login_to, say_hello

from webprof.core.protocol import ProfileDelta, encode

pytestmark = pytest.mark.e2e

browser = test_browser.browser
page = test_browser.page
INTERVAL_S = 0.5


@pytest.fixture
def cpu_feed(webprof_server) -> Iterator[str]:
    """A fake collector sending one CPU profile.delta every 0.5 s."""
    host = f"fake-rec-{secrets.token_hex(3)}"
    stop = threading.Event()
    with collector_socket(webprof_server) as ws:
        say_hello(ws, host, ["cpu"])

        def feed() -> None:
            seq = 0
            while not stop.is_set():
                start = int(time.time() * 1000) - 500
                ws.send(encode(ProfileDelta(
                    host=host, kind="cpu", seq=seq, start_ms=start, interval_ms=500,
                    frequency_hz=49, strings=["recproc", "main", "recorded_hot"],
                    stacks=[[77, 0, 24, 1, 2]], health={"samples": 24},
                    slot_ms=20, slots=[[0, 12, 10, 12]])))
                seq += 1
                stop.wait(INTERVAL_S)

        thread = threading.Thread(target=feed, daemon=True)
        thread.start()
        yield host
        stop.set()
        thread.join(timeout=5)


def test_record_three_seconds_from_the_live_page(page, webprof_server, credentials, cpu_feed):
    host = cpu_feed
    login_to(page, webprof_server, *credentials, f"/hosts/{host}/cpu/")
    page.wait_for_function("window.webprofLive.tree().total > 0", timeout=10_000)
    # A custom duration out of range is refused next to the field.
    page.select_option("#record-duration", "custom")
    page.fill("#record-custom", "0")
    page.click("#record-start")
    page.wait_for_selector("#record-error-duration_s:not([hidden])")
    assert "at least 1 second" in page.inner_text("#record-error-duration_s")

    page.fill("#record-custom", "3")
    page.fill("#record-name", "browser take")
    page.click("#record-start")
    page.wait_for_selector("#record-live:not([hidden])", timeout=5_000)
    assert page.is_hidden("#record-error-duration_s")
    page.wait_for_function("window.webprofRecord.status && "
                           "window.webprofRecord.status.state === 'recording'", timeout=5_000)
    assert page.eval_on_selector("#record-bar", "b => b.max") == 3000
    first = page.eval_on_selector("#record-bar", "b => b.value")
    page.wait_for_function(f"document.getElementById('record-bar').value > {first + 500}",
                           timeout=5_000)
    text = page.inner_text("#record-text")
    assert re.search(r"recording 0:0\d, 0:0\d left · \d+ intervals?, ", text), text
    page.wait_for_selector("#record-done:not([hidden])", timeout=15_000)
    assert page.is_hidden("#record-live")
    status = page.evaluate("window.webprofRecord.status")
    assert status["state"] == "complete" and status["intervals"] >= 4, status
    assert status["size_bytes"] > 0 and 3000 <= status["elapsed_ms"] <= 4500, status
    assert page.evaluate("window.webprofRecord.polls") >= 3  # about once a second
    sid = page.evaluate("window.webprofRecord.id")

    assert page.inner_text("#record-link") == "browser take"
    with page.expect_navigation():
        page.click("#record-link")
    # The viewer may add its view state (?kind=...) to the URL.
    assert page.url.split("?")[0] == f"{webprof_server.url}/sessions/{sid}/", page.url
    assert "browser take" in page.content()

    page.goto(f"{webprof_server.url}/sessions/?q={host}")
    row = page.locator(f"#sessions tr[data-id='{sid}']")
    assert row.locator("td.name a").inner_text() == "browser take"
    assert row.locator("td.state").inner_text() == "complete"
    assert int(row.locator("td.size").get_attribute("data-bytes")) > 0
    assert re.fullmatch(r"\d+(\.\d)? (B|KiB)", row.locator("td.size").inner_text())
    assert row.locator("td").nth(1).inner_text() == host
    assert row.locator("td").nth(2).inner_text() == "cpu"
