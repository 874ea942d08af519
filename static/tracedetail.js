// One trace's page (/traces/<id>/): its state, progress and live result.
//
// GET /api/traces/<id> is polled every second while the trace is queued,
// compiling or running; the bar shows elapsed of planned time.  The result
// is the trace's session, read through the session viewer's endpoints while
// it fills: latency kinds (funclat, syscall, runqlat, biolat) as a histogram
// of the log2 buckets summed over the whole trace, with calls per second and
// percentiles; stack kinds (cpu, offcpu, offwake, usdt, tracepoint) as a flame
// graph of everything so far.  When the trace ends the page loads the result
// once more, shows why it ended and links to the saved session.
// window.webprofTrace exposes the state for tests.

import { cell } from "./dom.js";
import { FlamePanel } from "./flamepanel.js";
import { decodeWire } from "./flametree.js";
import { fmtBucket, fmtClock, fmtRate, fmtShort, fmtUs } from "./format.js";
import { percentile, rowLabel, rowOf, rowRange } from "./heatmap.js";
import { csrfToken, request } from "./http.js";
import { react } from "./plot.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
const RESULT_MS = 2000;
const FINAL_STATES = ["finished", "cancelled", "failed"];
const HISTOGRAM_KINDS = ["funclat", "syscall", "runqlat", "biolat"];
// Unit of a stack kind's weights: sample counts, blocked µs, or probe hits.
const STACK_UNITS = { cpu: "samples", offcpu: "us", offwake: "us", usdt: "hits", tracepoint: "hits" };
const MAX_BARS_SERIES = 8; // "each series" draws at most this many, the busiest
const EACH = "\u0000each"; // the series option that shows every series side by side

// Buckets of every interval summed per series: {name: [[low, high, count], ...]}.
export function sumSeries(intervals) {
  const out = {};
  for (const it of intervals) {
    for (const [name, buckets] of Object.entries(it.series)) {
      const acc = (out[name] = out[name] || new Map());
      for (const [low, high, count] of buckets) {
        const prev = acc.get(low);
        acc.set(low, [low, high, (prev ? prev[2] : 0) + count]);
      }
    }
  }
  return Object.fromEntries(Object.entries(out).map(([name, acc]) =>
    [name, [...acc.values()].sort((a, b) => a[0] - b[0])]));
}

export function peakBucket(buckets) {
  let best = null;
  for (const b of buckets) if (b[2] && (!best || b[2] > best[2])) best = b;
  return best;
}

class TracePage {
  constructor(section) {
    this.section = section;
    this.api = section.dataset.api;
    this.kind = section.dataset.kind;
    this.histogram = HISTOGRAM_KINDS.includes(this.kind);
    this.trace = null;
    this.polls = 0;
    this.resultLoads = 0;
    this.resultBusy = false;
    this.lastResultAt = 0;
    this.finalLoads = 0;
    this.sums = {};
    this.intervals = [];
    this.series = null; // chosen in the select; null until data arrives
    $("cancel")?.addEventListener("click", () => this.cancel());
    if (this.histogram) {
      $("series").addEventListener("change", () => { this.series = $("series").value; this.drawLatency(); });
    } else {
      this.initFlame();
    }
    this.poll();
  }

  initFlame() {
    const unit = STACK_UNITS[this.kind] === "us" ? "us" : "samples";
    this.panel = new FlamePanel({ graph: { unit, waker: this.kind === "offwake" }, table: { unit } });
    this.graph = this.panel.graph;
  }

  get tree() {
    return this.panel?.tree;
  }

  // ---- state ----------------------------------------------------------------
  async poll() {
    const res = await request(this.api);
    this.polls += 1;
    if (res.status === 200) {
      $("poll-error").hidden = true;
      this.show(res.data);
    } else {
      $("poll-error").hidden = false;
      $("poll-error").textContent = res.status === 401
        ? "You are logged out: reload the page to log in again."
        : `Could not refresh the trace (${res.data.error || `HTTP ${res.status}`}); retrying…`;
    }
    if (res.status === 401 || res.status === 404) return;
    if (!this.trace || !FINAL_STATES.includes(this.trace.state)) setTimeout(() => this.poll(), POLL_MS);
  }

  show(t) {
    this.trace = t;
    const badge = $("state");
    badge.textContent = t.state;
    badge.className = `badge ${t.state}`;
    $("trace-name").textContent = t.name;
    $("description").textContent = t.description;
    $("created-by").textContent = t.created_by || "—";
    $("cancelled-by-box").hidden = !t.cancelled_by;
    $("cancelled-by").textContent = t.cancelled_by || "";
    document.title = `${t.name} · ${t.state} · trace · webprof`;
    const final = FINAL_STATES.includes(t.state);
    $("progress").hidden = final;
    if (final) this.showFinal(t); else this.showProgress(t);
    if (t.session_id) {
      $("session-box").hidden = !final;
      $("session-link").href = t.session_url;
      $("session-link").textContent = t.name;
      $("result").hidden = false;
      this.maybeLoadResult(final);
    }
  }

  showProgress(t) {
    const bar = $("progress-bar");
    bar.max = t.duration_s * 1000;
    const text = $("progress-text");
    if (t.state === "running") {
      bar.value = Math.min(bar.max, t.elapsed_ms);
      text.textContent = `running ${fmtClock(t.elapsed_ms)} of ${fmtClock(t.duration_s * 1000)}`
        + ` · ${fmtClock(t.remaining_ms)} left`;
    } else {
      bar.removeAttribute("value"); // indeterminate until it runs
      text.textContent = t.state === "queued"
        ? "queued: waiting for the host's collector" : "compiling and attaching the BPF program…";
    }
  }

  showFinal(t) {
    $("final").hidden = false;
    const took = fmtClock(t.elapsed_ms || (t.ended_ms && t.started_ms ? t.ended_ms - t.started_ms : 0));
    $("final-text").textContent = {
      finished: `Finished after ${took}.`,
      cancelled: `Cancelled${t.cancelled_by ? ` by ${t.cancelled_by}` : ""} after ${took}; `
        + "what was collected until then is kept.",
      failed: "The trace failed.",
    }[t.state];
    $("reason").hidden = !t.reason;
    $("reason").textContent = t.reason || "";
    $("reason").className = t.state === "failed" ? "banner" : "banner note";
    const errors = Object.entries(t.errors || {});
    $("errors").hidden = !errors.length;
    $("errors").replaceChildren(...errors.flatMap(([field, msg]) => {
      const dt = document.createElement("dt");
      dt.textContent = field === "__all__" ? "request" : field;
      const dd = document.createElement("dd");
      dd.textContent = msg;
      return [dt, dd];
    }));
    $("result-title").textContent = "Result";
  }

  async cancel() {
    const t = this.trace;
    if (!t || !window.confirm(`Cancel the trace “${t.name}”? What it collected so far is kept.`)) return;
    $("cancel").disabled = true;
    const res = await request(`${this.api}/cancel`, { method: "POST",
      headers: { "X-CSRFToken": csrfToken() } });
    $("cancel").disabled = false;
    if (res.status === 200) { $("cancel-error").hidden = true; this.show(res.data); return; }
    $("cancel-error").hidden = false;
    $("cancel-error").textContent = {
      403: `You may not cancel traces: ${res.data.error || "permission needed"}`,
      409: `Nothing to cancel: ${res.data.error || "the trace has already ended"}`,
    }[res.status] || `Cancel failed: ${res.data.error || `HTTP ${res.status}`}`;
  }

  // ---- result ---------------------------------------------------------------
  // While running, at most every RESULT_MS; once final, twice more (the
  // last interval may be stored just after the state arrives).
  maybeLoadResult(final) {
    const now = Date.now();
    if (final) {
      if (this.finalLoads >= 2) return;
      this.finalLoads += 1;
      setTimeout(() => this.loadResult(), this.finalLoads === 1 ? 0 : RESULT_MS);
      return;
    }
    if (this.resultBusy || now - this.lastResultAt < RESULT_MS) return;
    this.lastResultAt = now;
    this.loadResult();
  }

  async loadResult() {
    this.resultBusy = true;
    try {
      if (this.histogram) await this.loadLatency(); else await this.loadFlame();
    } finally {
      this.resultBusy = false;
    }
  }

  async loadLatency() {
    const t = this.trace;
    const res = await request(`/sessions/${t.session_id}/latency.json?kind=${this.kind}`);
    if (res.status !== 200) { this.noResult(res); return; }
    this.intervals = res.data.intervals;
    this.sums = sumSeries(this.intervals);
    this.resultLoads += 1;
    const names = Object.keys(this.sums).sort((a, b) => (a === "all" ? -1 : b === "all" ? 1 : a.localeCompare(b)));
    if (!names.length) { this.noResult({ status: 200, data: {} }); return; }
    $("hist-block").hidden = false;
    const options = [...(names.length > 1 ? [[EACH, "each series"]] : []), ...names.map((n) => [n, n])];
    const sel = $("series");
    if (sel.options.length !== options.length) {
      sel.replaceChildren(...options.map(([v, label]) => new Option(label, v)));
    }
    if (this.series === null || !options.some(([v]) => v === this.series)) {
      this.series = names.length === 1 ? names[0]
        : this.kind !== "funclat" && names.includes("all") ? "all" : EACH;
    }
    sel.value = this.series;
    this.drawLatency();
  }

  noResult(res) {
    // A 400 while nothing has arrived: the session has no interval of this kind yet.
    const final = this.trace && FINAL_STATES.includes(this.trace.state);
    $("result-info").textContent = res.status === 400 || res.status === 200
      ? (final ? "The trace recorded nothing." : "waiting for the first interval…")
      : `could not load the result: ${res.data.error || `HTTP ${res.status}`}`;
  }

  shownSeries() {
    if (this.series !== EACH) return [this.series];
    const total = (n) => this.sums[n].reduce((s, b) => s + b[2], 0);
    return Object.keys(this.sums).filter((n) => n !== "all" || Object.keys(this.sums).length === 1)
      .sort((a, b) => total(b) - total(a)).slice(0, MAX_BARS_SERIES).sort();
  }

  drawLatency() {
    const shown = this.shownSeries();
    const rows = shown.flatMap((n) => this.sums[n].filter((b) => b[2]).map((b) => rowOf(b[0])));
    const lo = rows.length ? Math.min(...rows) : 0;
    const hi = rows.length ? Math.max(...rows) : 0;
    const x = [];
    for (let r = lo; r <= hi; r++) x.push(r);
    const traces = shown.map((name) => {
      const byRow = new Map(this.sums[name].map((b) => [rowOf(b[0]), b[2]]));
      return { type: "bar", name, x, y: x.map((r) => byRow.get(r) || 0),
        customdata: x.map((row) => fmtBucket(rowRange(row))),
        hovertemplate: `%{customdata}<br>%{y} calls<extra>${name.replace(/[<>&]/g, "")}</extra>` };
    });
    const layout = { barmode: "group", height: 320, margin: { l: 60, r: 10, t: 10, b: 50 },
      showlegend: shown.length > 1, legend: { orientation: "h", y: 1.12 },
      xaxis: { title: { text: "latency bucket (log2, lower bound)" }, tickvals: x,
        ticktext: x.map(rowLabel), fixedrange: true },
      yaxis: { title: { text: "calls" }, rangemode: "tozero", fixedrange: true } };
    react($("histogram"), traces, layout);
    this.drawStats(shown);
    this.drawRate(shown);
  }

  // Calls per second over the whole trace (first interval's start to last's end)
  // and in the newest interval; percentiles from the summed buckets.
  drawStats(shown) {
    const its = this.intervals;
    const span = its.length ? (its.at(-1).start_ms + its.at(-1).interval_ms - its[0].start_ms) / 1000 : 0;
    const last = its.at(-1);
    const rows = shown.map((name) => {
      const buckets = this.sums[name];
      const calls = buckets.reduce((s, b) => s + b[2], 0);
      const lastCalls = last ? (last.series[name] || []).reduce((s, b) => s + b[2], 0) : 0;
      const peak = peakBucket(buckets);
      const tr = document.createElement("tr");
      tr.dataset.series = name;
      const cells = [name, calls.toLocaleString(), span ? fmtRate(calls / span) : "—",
        last ? fmtRate(lastCalls / (last.interval_ms / 1000)) : "—",
        ...[0.5, 0.9, 0.99].map((p) => (calls ? fmtUs(percentile(buckets, p)) : "—")),
        peak ? `${fmtShort(peak[0])} – ${fmtShort(peak[1])}` : "—"];
      for (const text of cells) cell(tr, text);
      const peakCell = tr.lastChild;
      peakCell.className = "peak";
      if (peak) { peakCell.dataset.low = peak[0]; peakCell.dataset.high = peak[1]; }
      return tr;
    });
    $("latency-stats").tBodies[0].replaceChildren(...rows);
    const total = shown.reduce((s, n) => s + this.sums[n].reduce((a, b) => a + b[2], 0), 0);
    $("result-info").textContent = `${its.length} interval${its.length === 1 ? "" : "s"}, `
      + `${span.toFixed(1)} s, ${total.toLocaleString()} calls`
      + (FINAL_STATES.includes(this.trace.state) ? "" : " so far (updates every 2 s)");
  }

  drawRate(shown) {
    const its = this.intervals;
    const origin = its.length ? its[0].start_ms : 0;
    const traces = shown.map((name) => ({
      type: "scatter", mode: "lines+markers", name, line: { shape: "hv" },
      x: its.map((it) => (it.start_ms + it.interval_ms - origin) / 1000),
      y: its.map((it) => (it.series[name] || []).reduce((s, b) => s + b[2], 0) / (it.interval_ms / 1000)),
      hovertemplate: `+%{x:.1f} s: %{y:.1f} calls/s<extra></extra>` }));
    react($("rate"), traces, { height: 180, margin: { l: 60, r: 10, t: 10, b: 30 },
      showlegend: false,
      xaxis: { ticksuffix: " s", fixedrange: true, range: [0, Math.max(1, ...traces.flatMap((t) => t.x))] },
      yaxis: { rangemode: "tozero", fixedrange: true } });
  }

  async loadFlame() {
    const t = this.trace;
    const res = await request(`/sessions/${t.session_id}/flame.json?kind=${this.kind}`);
    if (res.status !== 200) { this.noResult(res); return; }
    this.resultLoads += 1;
    this.flame = res.data;
    if (!res.data.total) { this.noResult({ status: 200, data: {} }); return; }
    $("flame-block").hidden = false;
    this.panel.show(decodeWire(res.data.tree));
    const unit = STACK_UNITS[this.kind];
    const total = unit === "us" ? fmtUs(res.data.total) : `${res.data.total.toLocaleString()} ${unit}`;
    $("result-info").textContent = `${total} over ${fmtClock(res.data.to_ms - res.data.from_ms)}`
      + (res.data.folded_nodes ? ` · ${res.data.folded_nodes} small frames folded` : "")
      + (FINAL_STATES.includes(t.state) ? "" : " so far (updates every 2 s)");
  }
}

const section = $("trace");
if (section) {
  const view = new TracePage(section);
  window.webprofTrace = {
    view,
    get trace() { return view.trace; },
    get polls() { return view.polls; },
    get resultLoads() { return view.resultLoads; },
    get sums() { return view.sums; },
    peak: (name) => peakBucket(view.sums[name] || []),
  };
}
