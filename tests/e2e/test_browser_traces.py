"""A function-latency trace started from the browser, end to end.

Real parts only: daphne, a ``webprof collect`` process (root + bcc), headless
Chromium and a compiled workload whose function takes a known time per call:
``webprof_fnlat_sleep2ms`` nanosleeps 2 ms, so each call lasts 2.0 ms plus
the timer slack and the wake-up (about 2.05–2.2 ms here), which is inside the
log2 bucket [2048, 4096) µs.  A decoy function with the same prefix makes the
autocomplete choice a real choice.

A user with the ``webprof.start_traces`` permission opens /traces/new/, picks
the host and the workload's process from the picker, types the binary, picks
the function from the symbol autocomplete, starts a 5 s trace, watches the
progress bar advance and the histogram fill, and finds the peak in
[2048, 4096) µs.  Then /traces/ lists it as finished, with a working link to
its session.  Screenshots go to /tmp/shots5/.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_browser
from test_browser import collector_socket
from test_browser_views import login_to, say_hello

from webprof.core.protocol import ProfileDelta, decode, encode
from webprof.core.trace_messages import (
    CollectorAnswer,
    CollectorQuery,
    TraceCancel,
    TraceStart,
    TraceState,
)

pytestmark = pytest.mark.e2e

browser = test_browser.browser
page = test_browser.page
SHOTS = Path("/tmp/shots5")
COLLECTOR_WAIT_S = 60  # the collector compiles its CPU program before it says hello
WORKLOAD_C = r"""
#include <time.h>

/* 2 ms per call: the trace's histogram must peak in [2048, 4096) us. */
__attribute__((noinline)) void webprof_fnlat_sleep2ms(void) {
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, 0);
}

/* Same prefix, never called: the autocomplete offers both. */
__attribute__((noinline)) int webprof_fnlat_spare(int x) { return x * 3 + 1; }

int main(int argc, char **argv) {
    (void)argv;
    if (argc > 5) return webprof_fnlat_spare(argc);
    for (;;) webprof_fnlat_sleep2ms();
}
"""
TARGET = "webprof_fnlat_sleep2ms"


@pytest.fixture
def fnlat_workload(tmp_path) -> Iterator[tuple[Path, subprocess.Popen]]:
    src = tmp_path / "fnlat.c"
    src.write_text(WORKLOAD_C)
    binary = tmp_path / "wp_fnlat_e2e"  # comm: at most 15 characters
    subprocess.run(["cc", "-O0", "-fno-omit-frame-pointer", "-fno-inline", "-o", str(binary),
                    str(src)], check=True, timeout=60)
    proc = subprocess.Popen([str(binary)])
    yield binary, proc
    proc.kill()
    proc.wait()


@pytest.fixture
def tracer(webprof_server) -> tuple[str, str]:
    """A user with the permission to start traces."""
    username, password = f"tracer-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    code = (
        "from django.contrib.auth import get_user_model;"
        "from django.contrib.auth.models import Permission;"
        f"u = get_user_model().objects.create_user({username!r}, password={password!r});"
        "u.user_permissions.add(Permission.objects.get("
        "codename='start_traces', content_type__app_label='webprof'))"
    )
    webprof_server.manage("shell", "-c", code)
    return username, password


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def histogram(page) -> dict:
    """What the plotly bar chart shows: per series, bucket text -> count."""
    return page.evaluate("""() => {
      const el = document.getElementById('histogram');
      const out = {};
      for (const t of el.data || []) {
        out[t.name] = Object.fromEntries(t.customdata.map((c, i) => [c, t.y[i]]));
      }
      return out;
    }""")


def test_function_latency_trace_from_the_browser(page, webprof_server, collector_process,
                                                 tracer, fnlat_workload):
    binary, workload = fnlat_workload
    host = collector_process.name
    login_to(page, webprof_server, *tracer, "/traces/new/")
    page.wait_for_function(
        "(h) => [...document.querySelectorAll('#host option')].some((o) => o.value === h)",
        arg=host, timeout=COLLECTOR_WAIT_S * 1000)
    page.select_option("#host", host)
    page.select_option("#kind", "funclat")
    assert page.is_visible("#binary") and page.is_visible("#symbol-input")
    assert page.is_hidden("#frequency_hz") and page.is_hidden("#tracepoint")

    # The process picker: filter by the workload's name, click its row.
    page.check("input[name=target][value=pid]")
    page.click("#pick-process")
    row = page.locator(f"#procs tbody tr[data-pid='{workload.pid}']")
    page.fill("#proc-filter", binary.name)
    row.wait_for(timeout=15_000)
    assert binary.name in row.inner_text()
    shot(page, "01-process-picker")
    row.click()
    assert page.input_value("#pid") == str(workload.pid)
    assert page.is_hidden("#picker")

    # The symbol autocomplete: both functions of the prefix are offered.
    page.fill("#binary", str(binary))
    page.click("#symbol-input")
    page.keyboard.type("webprof_fnlat_s", delay=30)
    suggestions = page.locator("#symbol-suggest button")
    page.wait_for_function("document.querySelectorAll('#symbol-suggest button').length >= 2",
                           timeout=15_000)
    assert sorted(suggestions.all_inner_texts()) == ["webprof_fnlat_sleep2ms",
                                                      "webprof_fnlat_spare"]
    shot(page, "02-symbol-autocomplete")
    suggestions.filter(has_text=TARGET).click()
    assert page.locator("#symbol-chips .chip").evaluate_all(
        "els => els.map((e) => e.dataset.name)") == [TARGET]

    page.select_option("#duration", "5")
    name = f"fnlat from the browser {secrets.token_hex(2)}"
    page.fill("#name", name)
    shot(page, "03-form-filled")
    with page.expect_navigation(timeout=15_000):
        page.click("#start")
    match = re.search(r"/traces/(\d+)/$", page.url)
    assert match, page.url
    trace_id = int(match.group(1))
    body = page.evaluate("window.webprofTraceForm === undefined")
    assert body  # a new page: the trace's own

    # Progress: the bar advances while it runs.
    page.wait_for_function("window.webprofTrace && window.webprofTrace.trace"
                           " && window.webprofTrace.trace.state === 'running'", timeout=30_000)
    assert page.is_visible("#progress") and page.is_visible("#cancel")
    assert page.eval_on_selector("#progress-bar", "b => b.max") == 5000
    first = page.eval_on_selector("#progress-bar", "b => b.value")
    page.wait_for_function(f"document.getElementById('progress-bar').value >= {first + 900}",
                           timeout=5_000)
    assert re.search(r"running 0:0\d of 0:05 · 0:0\d left", page.inner_text("#progress-text"))
    # The live result: the histogram appears while the trace still runs.
    page.wait_for_function("Object.keys(window.webprofTrace.sums).length > 0"
                           " && window.webprofTrace.trace.state === 'running'", timeout=10_000)
    shot(page, "04-running")

    page.wait_for_function("window.webprofTrace.trace.state === 'finished'", timeout=30_000)
    page.wait_for_function("window.webprofTrace.resultLoads >= 2", timeout=10_000)
    page.wait_for_selector("#session-link", state="visible")
    assert page.is_hidden("#progress")
    trace = page.evaluate("window.webprofTrace.trace")
    assert trace["created_by"] == tracer[0] and trace["session_id"], trace
    assert 4500 <= trace["elapsed_ms"] <= 7000, trace
    shot(page, "05-finished")

    bars = histogram(page)
    assert list(bars) == [TARGET], bars
    counts = bars[TARGET]
    calls = sum(counts.values())
    peak = max(counts, key=counts.get)
    assert peak == "[2048, 4096) µs", counts
    # ~470 calls/s for 5 s; the bucket holds nearly all of them.
    assert calls >= 1000, counts
    assert counts[peak] >= 0.9 * calls, counts
    stats = page.locator(f"#latency-stats tr[data-series='{TARGET}']")
    assert stats.locator("td.peak").get_attribute("data-low") == "2048"
    cells = stats.locator("td").all_inner_texts()
    assert cells[1].replace(",", "") == str(calls), cells
    rate = float(cells[2].replace(",", ""))
    assert 200 <= rate <= 520, cells  # calls per second: one call per ~2.1 ms at most
    # p50, interpolated inside its log2 bucket: within [2.048, 4.096) ms.
    p50 = re.fullmatch(r"(\d\.\d+) ms", cells[4])
    assert p50 and 2.048 <= float(p50.group(1)) < 4.096, cells

    # The list: finished, started by the user, with a link to the session.
    page.goto(f"{webprof_server.url}/traces/")
    row = page.locator(f"#traces tr[data-id='{trace_id}']")
    row.wait_for(timeout=10_000)
    assert row.get_attribute("data-state") == "finished"
    assert row.locator("td.name").inner_text() == name
    assert row.locator("td.host").inner_text() == host
    assert row.locator("td.by").inner_text() == tracer[0]
    assert TARGET in row.locator("td.desc").inner_text()
    shot(page, "06-list")
    with page.expect_navigation():
        row.locator("td.result a").click()
    assert page.url.split("?")[0] == f"{webprof_server.url}/sessions/{trace['session_id']}/"
    # The session page draws the trace's histograms over the session's time axis.
    page.wait_for_function(
        "() => { const el = document.getElementById('latency-funclat');"
        " return el && el.data && el.data[0].z.flat().some((v) => v > 0); }",
        timeout=10_000)
    span = page.evaluate("document.getElementById('latency-funclat').layout.xaxis.range")
    assert span[0] == 0 and span[1] >= 4, span
    assert name in page.inner_text("h1")
    shot(page, "07-session")


# --------------------------------------------------------------------------- fake collector
# The same pages against a fake collector (a real websockets client speaking
# the protocol): the form's host questions, refusals by field, a stack kind's
# live flame graph and Cancel.  No root needed.

FAKE_SYMBOLS = ["main", "parse_header", "parse_request", "render", "write_reply"]


class FakeTraceCollector:
    """Answers collector.query and runs trace.start as a 0.5 s-interval feed."""

    def __init__(self, ws, host: str) -> None:
        self.ws, self.host = ws, host
        self.stop = threading.Event()
        self.cancelled: set[int] = set()
        self.started: list[dict] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def answer(self, what: str, args: dict) -> tuple[object, str]:
        if what == "processes":
            return [{"pid": 4242, "comm": "nginx", "user": "www-data", "cpu_percent": 12.5,
                     "cmdline": "nginx: worker process"},
                    {"pid": 77, "comm": "postgres", "user": "postgres", "cpu_percent": 3.0,
                     "cmdline": "postgres: checkpointer"}], ""
        if what == "symbols":
            if not args["binary"].startswith("/usr/"):
                return None, f"binary: {args['binary']} does not exist"
            names = [s for s in FAKE_SYMBOLS if s.startswith(args.get("prefix", ""))]
            return {"symbols": names, "truncated": False}, ""
        if what == "check":
            spec = args["spec"]
            if spec.get("pid") == 999999:
                return {"errors": {"pid": "no process with pid 999999 on this host"}}, ""
            return {"errors": {}}, ""
        return {"devices": {"devices": ["vda", "vdb"]}, "syscalls": {"syscalls": ["read", "write"]},
                "tracepoints": {"tracepoints": ["sched:sched_switch", "sched:sched_wakeup"],
                                "truncated": False},
                "usdt_probes": {"probes": ["app:request"], "semaphores": []}}[what], ""

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                msg = decode(self.ws.recv(timeout=0.2))
            except TimeoutError:
                continue
            except Exception:  # the socket closed: the test is over
                return
            if isinstance(msg, CollectorQuery):
                result, err = self.answer(msg.what, msg.args)
                self.ws.send(encode(CollectorAnswer(query_id=msg.query_id, result=result,
                                                    error=err)))
            elif isinstance(msg, TraceStart):
                self.started.append(msg.spec)
                threading.Thread(target=self.run, args=(msg.trace_id, msg.spec),
                                 daemon=True).start()
            elif isinstance(msg, TraceCancel):
                self.cancelled.add(msg.trace_id)

    def run(self, trace_id: int, spec: dict) -> None:
        send = self.ws.send
        send(encode(TraceState(trace_id=trace_id, state="compiling")))
        total_ms, elapsed, seq = spec["duration_s"] * 1000, 0, 0
        while elapsed < total_ms and not self.stop.is_set():
            if trace_id in self.cancelled:
                send(encode(TraceState(trace_id=trace_id, state="cancelled", elapsed_ms=elapsed,
                                       reason="cancelled by a user")))
                return
            time.sleep(0.5)
            start = int(time.time() * 1000) - 500
            send(encode(ProfileDelta(
                host=self.host, kind="cpu", seq=seq, start_ms=start, interval_ms=500,
                frequency_hz=49, strings=["nginx", "main", "parse_request"],
                stacks=[[4242, 0, 20, 1, 2]], health={"samples": 20}, trace_id=trace_id)))
            elapsed, seq = elapsed + 500, seq + 1
            send(encode(TraceState(trace_id=trace_id, state="running", elapsed_ms=elapsed,
                                   remaining_ms=max(0, total_ms - elapsed))))
        send(encode(TraceState(trace_id=trace_id, state="finished", elapsed_ms=elapsed)))


@pytest.fixture
def fake_host(webprof_server) -> Iterator[FakeTraceCollector]:
    host = f"fake-trace-{secrets.token_hex(3)}"
    with collector_socket(webprof_server) as ws:
        say_hello(ws, host, ["cpu"])
        fake = FakeTraceCollector(ws, host)
        yield fake
        fake.stop.set()
        fake.thread.join(timeout=5)


def open_form(page, server, user: tuple[str, str], host: str) -> None:
    login_to(page, server, *user, "/traces/new/")
    page.wait_for_function(
        "(h) => [...document.querySelectorAll('#host option')].some((o) => o.value === h)",
        arg=host, timeout=10_000)
    page.select_option("#host", host)


def test_form_asks_the_host_and_shows_errors_by_field(page, webprof_server, tracer, fake_host):
    open_form(page, webprof_server, tracer, fake_host.host)
    # Each kind shows its own parameters only.
    visible = {"cpu": "#frequency_hz", "offcpu": "#min_block_us", "syscall": "#syscall-input",
               "biolat": "#device", "funclat": "#symbol-input", "usdt": "#probe",
               "tracepoint": "#tracepoint"}
    for kind, selector in visible.items():
        page.select_option("#kind", kind)
        assert page.is_visible(selector), kind
        others = [s for k, s in visible.items() if s != selector and k != kind]
        assert not any(page.is_visible(s) for s in others), kind
    page.select_option("#kind", "biolat")
    page.wait_for_function("document.querySelectorAll('#device option').length === 3")
    assert page.locator("#device option").all_inner_texts() == ["all devices", "vda", "vdb"]
    page.select_option("#kind", "tracepoint")
    page.fill("#tracepoint", "sched:sched_w")
    page.locator("#tracepoint-suggest button", has_text="sched:sched_wakeup").click()
    assert page.input_value("#tracepoint") == "sched:sched_wakeup"

    # The process picker fills the pid; a name target takes the name instead.
    page.check("input[name=target][value=comm]")
    page.click("#pick-process")
    page.locator("#procs tbody tr[data-pid='4242']").click()
    assert page.input_value("#comm") == "nginx"

    # Function latency with nothing filled in: the server's errors by their fields.
    page.check("input[name=target][value=system]")
    page.select_option("#kind", "funclat")
    page.click("#start")
    page.wait_for_selector("#error-binary:not([hidden])")
    assert "absolute path" in page.inner_text("#error-binary")
    assert "at least one" in page.inner_text("#error-symbols")
    # A symbol with a quote is refused by the server's own check, by the field.
    page.fill("#binary", "/usr/sbin/app")
    page.fill("#symbol-input", "parse'x")
    page.click("#start")
    page.wait_for_function("document.getElementById('error-symbols').textContent.includes(\"parse'x\")")
    assert page.is_hidden("#error-binary")
    # The collector's host check: a pid that does not exist, by the pid field.
    page.locator("#symbol-chips .chip button").click()
    page.click("#symbol-input")
    page.keyboard.type("parse_r")
    page.locator("#symbol-suggest button", has_text="parse_request").click()
    page.check("input[name=target][value=pid]")
    page.fill("#pid", "999999")
    page.click("#start")
    page.wait_for_selector("#error-pid:not([hidden])")
    assert page.inner_text("#error-pid") == "no process with pid 999999 on this host"
    assert page.is_hidden("#error-symbols")
    # A binary the collector cannot read: its error shows by the binary field.
    page.fill("#binary", "/opt/missing")
    page.fill("#symbol-input", "p")
    page.wait_for_selector("#error-binary:not([hidden])")
    assert "does not exist" in page.inner_text("#error-binary")
    shot(page, "10-field-errors")
    assert fake_host.started == []  # nothing was started by any of this


def test_cpu_trace_live_flame_and_cancel(page, webprof_server, tracer, fake_host):
    open_form(page, webprof_server, tracer, fake_host.host)
    page.select_option("#kind", "cpu")
    page.fill("#frequency_hz", "99")
    page.select_option("#duration", "custom")
    page.fill("#duration-custom", "120")
    with page.expect_navigation():
        page.click("#start")
    assert fake_host.started[0] == {"kind": "cpu", "duration_s": 120, "target": "system",
                                    "frequency_hz": 99}
    page.wait_for_function("window.webprofTrace?.trace?.state === 'running'", timeout=10_000)
    page.wait_for_function("window.webprofTrace.view.tree"
                           " && window.webprofTrace.view.tree.total >= 40", timeout=10_000)
    names = page.evaluate("(() => { const g = window.webprofTrace.view.graph;"
                          " return g.nodes.slice(0, g.n).map((n) => n.name); })()")
    assert "parse_request" in names, names
    assert "samples" in page.inner_text("#result-info")
    shot(page, "11-cpu-running")
    page.once("dialog", lambda d: d.accept())
    page.click("#cancel")
    page.wait_for_function("window.webprofTrace.trace.state === 'cancelled'", timeout=10_000)
    assert page.inner_text("#cancelled-by") == tracer[0]
    assert page.inner_text("#final-text").startswith(f"Cancelled by {tracer[0]} after 0:0")
    assert page.is_visible("#session-link") and page.is_hidden("#progress")
    shot(page, "12-cpu-cancelled")
