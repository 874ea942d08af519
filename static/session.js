// The session page: samples over time, the sub-second heatmap, latency
// heatmaps and the flame graph of the selected range, all on one time axis
// (seconds since the session's start).
//
// The selection lives in the URL (?kind=&from=&to=&pid=&comm=, times in ms
// from the start) and is kept there with history.replaceState, so a copied
// link reopens the same range.  Every flame graph comes from the server
// (flame.json); the page keeps no profile data of its own besides the tree
// it shows.  The same script serves /s/<token>/, whose data-base points the
// requests at the token's endpoints.

import { FlamePanel } from "./flamepanel.js";
import { decodeWire } from "./flametree.js";
import { fmtBucket, fmtDateTime, fmtSpan, fmtWeight } from "./format.js";
import { rowLabel, rowOf, rowRange } from "./heatmap.js";
import { newPlot, react, relayout } from "./plot.js";
import { SubsecondHeatmap } from "./subsecond.js";

const $ = (id) => document.getElementById(id);
const MARGIN = { l: 48, r: 0 }; // the heatmap canvas's gutter: x axes line up
const COLOURS = { cpu: "#d9622b", offcpu: "#2b6cd9", offwake: "#7c3aed" };
const SELECT_FILL = { a: "rgba(37, 99, 235, 0.18)", b: "rgba(22, 163, 74, 0.18)" };

async function getJSON(url, signal) {
  const resp = await fetch(url, { signal, credentials: "same-origin" });
  let body = null;
  try {
    body = await resp.json();
  } catch {
    throw new Error(`${resp.status} ${resp.statusText}`);
  }
  if (!resp.ok) throw new Error(body.error || `${resp.status} ${resp.statusText}`);
  return body;
}

class SessionView {
  constructor(section) {
    this.base = section.dataset.base;
    this.exportBase = section.dataset.export;
    this.sessionId = section.dataset.session;
    this.origin = Number(section.dataset.origin);
    this.shared = section.dataset.shared === "1";
    this.kinds = section.dataset.kinds ? section.dataset.kinds.split(",") : [];
    this.latencyKinds = section.dataset.latencyKinds ? section.dataset.latencyKinds.split(",") : [];
    this.units = JSON.parse($("session-units").textContent);
    this.readURL();
    this.loads = 0;
    this.latency = {};
    this.view = [0, 1];
    if (!this.kinds.length) { // histograms only (latency traces): no heatmap or flame graph
      for (const k of this.latencyKinds) this.loadLatency(k);
      return;
    }
    this.unit = this.units[this.state.kind];
    this.panel = new FlamePanel({ graph: { unit: this.unit }, table: { unit: this.unit },
      onFilter: (text) => this.applyFilter(text) });
    this.graph = this.panel.graph;
    this.heatmap = new SubsecondHeatmap({ canvas: $("subsecond-canvas"),
      scroller: $("subsecond-scroll"), legend: $("subsecond-legend"),
      onSelect: (which, range) => this.onSelect(which, range),
      onView: (v) => this.onView(v), format: (v) => this.fmt(v) });
    this.bind();
    this.panel.renderBreadcrumb();
    this.loadTimeline();
    this.loadHeatmap();
    this.loadFlame();
    for (const k of this.latencyKinds) this.loadLatency(k);
  }

  fmt(v) {
    return fmtWeight(v, this.unit);
  }

  // ---- URL state ------------------------------------------------------------
  readURL() {
    const q = new URLSearchParams(location.search);
    const num = (k) => (q.get(k) !== null && /^\d+$/.test(q.get(k)) ? Number(q.get(k)) : null);
    const kind = this.kinds.includes(q.get("kind")) ? q.get("kind") : this.kinds[0];
    this.state = { kind, from: num("from"), to: num("to"), pid: num("pid"),
      comm: q.get("comm") || null };
    if (this.state.from === null || this.state.to === null) this.state.from = this.state.to = null;
  }

  params(extra = {}) {
    const s = this.state;
    const q = new URLSearchParams({ kind: s.kind });
    if (s.from !== null) { q.set("from", s.from); q.set("to", s.to); }
    if (s.pid !== null) q.set("pid", s.pid);
    if (s.comm) q.set("comm", s.comm);
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return q;
  }

  writeURL() {
    history.replaceState(null, "", `${location.pathname}?${this.params()}`);
    // The exporter takes unix ms and no process filter.
    const s = this.state;
    for (const a of document.querySelectorAll(".exports a")) {
      const q = new URLSearchParams({ format: a.dataset.format, kind: s.kind });
      if (s.from !== null) { q.set("from", this.origin + s.from); q.set("to", this.origin + s.to); }
      a.href = `${this.exportBase}?${q}`;
    }
  }

  // ---- data -------------------------------------------------------------------
  async loadFlame() {
    this.writeURL();
    this.flameAbort?.abort();
    const abort = (this.flameAbort = new AbortController());
    $("range-info").textContent = "loading…";
    try {
      const data = await getJSON(`${this.base}flame.json?${this.params()}`, abort.signal);
      this.showFlame(data);
    } catch (e) {
      if (e.name === "AbortError") return;
      $("range-error").hidden = false;
      $("range-error").textContent = `could not load the flame graph: ${e.message}`;
      $("range-info").textContent = "";
    }
  }

  showFlame(data) {
    $("range-error").hidden = true;
    this.flame = data;
    this.panel.show(decodeWire(data.tree));
    const from = data.from_ms - data.origin_ms;
    const to = data.to_ms - data.origin_ms;
    const s = this.state;
    const parts = [
      s.from === null ? "whole session" : `+${fmtSpan(from)} … +${fmtSpan(to)}`,
      `${fmtSpan(to - from)} long`,
      fmtWeight(data.total, data.unit),
      s.pid !== null ? `pid ${s.pid}` : s.comm ? `process ~ "${s.comm}"` : "all processes",
      `server ${data.server_ms} ms`,
    ];
    if (data.folded_nodes) parts.push(`${data.folded_nodes} small frames folded`);
    $("range-info").textContent = parts.join(" · ");
    this.loads += 1;
  }

  async loadHeatmap() {
    const data = await getJSON(`${this.base}heatmap.json?kind=${this.state.kind}`);
    this.heatmap.setData(data);
    if (this.state.from !== null) {
      this.heatmap.setSelection("a", { from: this.state.from, to: this.state.to });
      this.heatmap.reveal(Math.floor(this.state.from / 1000));
    }
    this.renderSelection();
  }

  async loadTimeline() {
    const data = await getJSON(`${this.base}timeline.json`);
    const traces = Object.entries(data.kinds).map(([kind, k]) => {
      const us = k.unit === "us";
      // Step lines: an interval's rate holds from its start to its end.
      const x = [];
      const y = [];
      for (const [start, dur, w] of k.points) {
        if (w === null) {
          // A hole in the recording: the step before it runs to its end, then
          // a null y breaks the line (connectgaps false) until data resumes.
          x.push((start - data.origin_ms) / 1000, (start - data.origin_ms) / 1000);
          y.push(y.length ? y.at(-1) : null, null);
          continue;
        }
        x.push((start - data.origin_ms) / 1000);
        y.push(dur ? (w * (us ? 1 : 1000)) / dur : w); // µs/ms = ms/s; samples/s
      }
      const last = k.points.at(-1);
      if (last) { // the last interval's step runs to its end
        x.push((last[0] + last[1] - data.origin_ms) / 1000);
        y.push(y.at(-1));
      }
      return { x, y, type: "scatter", mode: "lines", connectgaps: false,
        line: { shape: "hv", color: COLOURS[kind] },
        name: us ? `${kind} (ms blocked/s)` : `${kind} (samples/s)`, yaxis: us ? "y2" : "y",
        hovertemplate: `+%{x:.1f} s: %{y:.1f}<extra>${kind}</extra>` };
    });
    this.timelineEl = $("timeline");
    const layout = this.axisLayout({ height: 170, showlegend: true,
      legend: { orientation: "h", y: 1.25 }, yaxis: { rangemode: "tozero", fixedrange: true },
      yaxis2: { rangemode: "tozero", overlaying: "y", side: "right", fixedrange: true,
        showgrid: false } });
    await newPlot(this.timelineEl, traces, layout);
    this.renderSelection();
  }

  async loadLatency(kind) {
    const data = await getJSON(`${this.base}latency.json?kind=${kind}`);
    const names = new Set();
    for (const it of data.intervals) for (const n of Object.keys(it.series)) names.add(n);
    const sel = document.querySelector(`select.series[data-kind="${kind}"]`);
    const list = ["all", ...[...names].filter((n) => n !== "all").sort()];
    sel.replaceChildren(...list.map((n) => new Option(n, n)));
    sel.addEventListener("change", () => this.renderLatency(kind, sel.value));
    this.latency[kind] = data;
    if (!this.heatmap) { // no sub-second heatmap to follow: show the whole session
      const ends = data.intervals.map((it) => (it.start_ms + it.interval_ms - data.origin_ms) / 1000);
      this.view = [0, Math.max(1, this.view[1], ...ends)];
    }
    this.renderLatency(kind, "all");
  }

  // One latency kind as a plotly heatmap: x the interval (seconds since the
  // start), y the log2 bucket; "all" sums the series when none is named so.
  renderLatency(kind, series) {
    const data = this.latency[kind];
    const cols = data.intervals.map((it) => {
      if (series !== "all" || it.series.all) return it.series[series] || [];
      const sum = new Map();
      for (const b of Object.values(it.series).flat()) sum.set(b[0], [b[0], b[1], (sum.get(b[0])?.[2] || 0) + b[2]]);
      return [...sum.values()];
    });
    const rows = cols.flat().map((b) => rowOf(b[0]));
    const lo = rows.length ? Math.min(...rows) : 0;
    const hi = rows.length ? Math.max(...rows) : 0;
    const z = [];
    for (let r = lo; r <= hi; r++) z.push(cols.map(() => null));
    cols.forEach((buckets, c) => { for (const b of buckets) if (b[2]) z[rowOf(b[0]) - lo][c] = b[2]; });
    const x = data.intervals.map((it) => (it.start_ms - data.origin_ms + it.interval_ms / 2) / 1000);
    const y = z.map((_, i) => lo + i);
    const text = y.map((r) => x.map(() => fmtBucket(rowRange(r))));
    const trace = { type: "heatmap", x, y, z, colorscale: "Viridis", zmin: 0, showscale: false,
      hoverongaps: false, customdata: text,
      hovertemplate: "+%{x:.1f} s<br>%{customdata}<br>count %{z}<extra></extra>" };
    const layout = this.axisLayout({ height: 220, yaxis: { fixedrange: true,
      tickvals: y, ticktext: y.map(rowLabel), range: [lo - 0.5, hi + 0.5] } });
    react($(`latency-${kind}`), [trace], layout);
  }

  // A plotly layout on the heatmap's time axis: same left margin, same range.
  axisLayout(extra) {
    const shapes = this.selectionShapes();
    return { margin: { ...MARGIN, t: 24, b: 28 }, shapes, ...extra,
      xaxis: { range: this.view.slice(), fixedrange: true, ticksuffix: " s", zeroline: false } };
  }

  selectionShapes() {
    const out = [];
    for (const which of ["a", "b"]) {
      const r = this.heatmap?.selections[which];
      if (!r) continue;
      out.push({ type: "rect", xref: "x", yref: "paper", x0: r.from / 1000, x1: r.to / 1000,
        y0: 0, y1: 1, fillcolor: SELECT_FILL[which], line: { width: 0 } });
    }
    return out;
  }

  plots() {
    return [this.timelineEl, ...this.latencyKinds.map((k) => $(`latency-${k}`))]
      .filter((el) => el && el.data);
  }

  // The heatmap scrolled or resized: move the plotly charts with it (once per frame).
  onView(view) {
    this.view = view;
    if (this.viewPending) return;
    this.viewPending = requestAnimationFrame(() => {
      this.viewPending = 0;
      for (const el of this.plots()) relayout(el, { "xaxis.range": this.view.slice() });
    });
  }

  renderSelection() {
    const shapes = this.selectionShapes();
    for (const el of this.plots()) relayout(el, { shapes });
    const s = this.state;
    $("selection").textContent = s.from === null ? "selection: whole session"
      : `selection: +${fmtSpan(s.from)} … +${fmtSpan(s.to)}`;
  }

  // ---- controls -------------------------------------------------------------
  onSelect(which, range) {
    if (which === "b") {
      this.heatmap.marking = "a";
      $("compare-range").classList.remove("armed");
      $("compare-range").textContent = "compare this range with another range…";
      this.showCompareLink(range);
    } else {
      Object.assign(this.state, range);
      this.loadFlame();
    }
    this.renderSelection();
  }

  showCompareLink(b) {
    const s = this.state;
    const q = new URLSearchParams({ a: this.sessionId, b: this.sessionId, kind: s.kind,
      b_from: b.from, b_to: b.to });
    if (s.from !== null) { q.set("a_from", s.from); q.set("a_to", s.to); }
    const link = $("compare-link");
    link.href = `/sessions/diff/?${q}`;
    link.textContent = `open the diff: selection (blue) → +${fmtSpan(b.from)} … +${fmtSpan(b.to)} (green)`;
    link.hidden = false;
  }

  bind() {
    $("kind").value = this.state.kind;
    $("kind").addEventListener("change", (e) => {
      this.state.kind = e.target.value;
      this.unit = this.units[this.state.kind];
      this.panel.setUnit(this.unit);
      this.loadHeatmap();
      this.loadFlame();
    });
    $("cell-width").addEventListener("change", (e) => this.heatmap.setCellWidth(e.target.value));
    $("whole").addEventListener("click", () => {
      this.state.from = this.state.to = null;
      this.heatmap.setSelection("a", null);
      this.renderSelection();
      this.loadFlame();
    });
    $("filter").value = this.state.pid ?? this.state.comm ?? "";
    if (this.shared) return;
    $("compare-range").addEventListener("click", () => {
      this.heatmap.marking = "b";
      $("compare-range").classList.add("armed");
      $("compare-range").textContent = "now drag the second range on the heatmap…";
    });
    $("compare-session").addEventListener("submit", (e) => {
      const f = e.target;
      f.kind.value = this.state.kind;
      f.a_from.value = this.state.from ?? "";
      f.a_to.value = this.state.to ?? "";
      for (const el of [f.a_from, f.a_to]) el.disabled = el.value === "";
    });
  }

  applyFilter(text) {
    const t = text.trim();
    if (/^\d+$/.test(t)) Object.assign(this.state, { pid: Number(t), comm: null });
    else Object.assign(this.state, { pid: null, comm: t || null });
    this.loadFlame();
  }

  get tree() {
    return this.panel?.tree;
  }
}

for (const el of document.querySelectorAll(".when[data-ms]")) {
  el.textContent = fmtDateTime(Number(el.dataset.ms));
}
const dur = $("duration");
if (dur) dur.textContent = fmtSpan(Number(dur.dataset.ms));

const section = $("session");
if (section) {
  const view = new SessionView(section);
  // Read-only hook for browser tests and for poking at the page by hand.
  window.webprofSession = {
    view,
    graph: view.graph,
    heatmap: view.heatmap,
    get loads() { return view.loads; },
    get flame() { return view.flame; },
    get state() { return { ...view.state }; },
    tree: () => view.tree,
  };
}
