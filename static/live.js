// The live page: one websocket to the server, three views of the profile
// built client-side from per-interval trees, and the controls around them.
//
// The server sends a snapshot once per subscribe (everything older as one
// tree plus recent intervals) and then one tree per interval, so the views
// are kept here: "last interval" is the newest tree, "last N seconds" adds the
// newest and subtracts what falls out of a ring, "since start" adds everything.

import { FlamePanel } from "./flamepanel.js";
import { cloneTree, decodeWire, emptyTree, findPath, mergeInto } from "./flametree.js";
import { fmtTime, fmtWeight } from "./format.js";
import { hasPlotly, react } from "./plot.js";
import { countBadMessage, dispatcher, renderHealth, renderHostBanner, viewSocket } from "./socket.js";

const RING_MAX = 60; // intervals kept: the longest window, 60 s at 1 s intervals
const CHART_POINTS = 60;
const HEALTH_LABELS = {
  lost_user_stacks: "lost user stacks",
  lost_kernel_stacks: "lost kernel stacks",
  stack_map_full: "stack map full",
  counts_map_full: "counts map full",
  unknown_symbols: "unknown symbols",
  lost_events: "lost events",
  start_map_full: "start map full",
  filtered: "dropped by filters",
  folded_nodes: "frames folded by node budget",
  bad_messages: "bad messages dropped",
};

const $ = (id) => document.getElementById(id);

class LiveView {
  constructor(section) {
    this.host = section.dataset.host;
    // "cpu" weights are samples; "offcpu"/"offwake" weights are µs blocked.
    this.kind = section.dataset.kind || "cpu";
    this.unit = section.dataset.unit || "samples";
    this.filter = { pid: null, comm: null };
    this.mode = $("mode").value;
    this.windowSec = Number($("window-sec").value);
    this.paused = false;
    this.intervalsReceived = 0;
    this.lastDrawMs = 0;
    this.draws = 0;
    this.socket = viewSocket(this, section, () => ({ v: 1, type: "live.subscribe",
      host: this.host, kind: this.kind, ...this.filter }));
    this.dispatch = dispatcher({
      "live.snapshot": (msg) => this.onSnapshot(msg),
      "live.interval": (msg) => this.onInterval(msg),
      "host.status": (msg) => this.onHostStatus(msg),
      error: (msg) => this.onError(msg),
    }, (sentence) => {
      countBadMessage(this, sentence);
      this.renderStatus();
    });
    this.resetState();
    this.panel = new FlamePanel({ graph: { unit: this.unit, waker: this.kind === "offwake" },
      table: { unit: this.unit }, onFilter: (text) => this.applyFilter(text) });
    this.graph = this.panel.graph;
    this.bindControls();
    this.panel.renderBreadcrumb();
    this.socket.connect();
    setInterval(() => this.renderStatus(), 500); // countdowns and "ago" texts
  }

  resetState() {
    this.ring = []; // [{seq, end_ms, samples, tree, folded}], oldest first
    this.windowTree = emptyTree();
    this.windowCount = 0; // newest ring entries summed into windowTree
    this.sinceTree = emptyTree();
    this.sinceFrom = null; // ms of a client-side reset, null: server start
    this.meta = { interval_ms: 1000, frequency_hz: 0, started_ms: 0 };
    this.health = {}; // counters summed since the last snapshot
    this.lastHealth = {};
    this.lastSeq = -1;
    this.lastEnd = 0;
  }

  // ---- messages ---------------------------------------------------------
  // One raw frame from the socket (tests inject frames here).
  onMessage(data) {
    this.dispatch(data);
  }

  onSnapshot(msg) {
    if (this.lastError?.startsWith("waiting for a collector")) this.lastError = null;
    this.resetState();
    this.socket.resetBackoff();
    this.meta = { interval_ms: msg.interval_ms, frequency_hz: msg.frequency_hz,
      started_ms: msg.started_ms };
    this.filter = { pid: msg.pid ?? null, comm: msg.comm ?? null };
    this.sinceTree = decodeWire(msg.since_start);
    for (const it of msg.recent) {
      this.addInterval(it);
      this.health.folded_nodes = (this.health.folded_nodes || 0) + it.folded_nodes;
    }
    this.lastHealth = { folded_nodes: msg.recent.length ? msg.recent.at(-1).folded_nodes : 0 };
    this.redraw();
  }

  onInterval(msg) {
    // The snapshot may already hold this interval if it raced the subscribe.
    if (msg.seq <= this.lastSeq && msg.end_ms <= this.lastEnd) return;
    const tree = decodeWire(msg.tree); // throws on a bad tree: counted, not drawn
    this.intervalsReceived += 1;
    this.lastHealth = { ...msg.health, folded_nodes: msg.folded_nodes };
    for (const [k, v] of Object.entries(this.lastHealth)) this.health[k] = (this.health[k] || 0) + v;
    this.addInterval(msg, tree);
    if (!this.paused) this.redraw();
    else this.renderStatus();
  }

  onHostStatus(msg) {
    this.hostStatus = msg;
    this.renderStatus();
  }

  onError(msg) {
    if (this.socket.refused(msg)) {
      this.lastError = `waiting for a collector to connect as ${this.host}…`;
      this.renderStatus();
      return;
    }
    this.lastError = `server: ${msg.message} (${msg.code}${msg.dropped ? `, ${msg.dropped} dropped` : ""})`;
    this.renderStatus();
  }

  // ---- the three views ----------------------------------------------------
  addInterval(it, tree = decodeWire(it.tree)) {
    const entry = { seq: it.seq, end_ms: it.end_ms, samples: it.samples, tree,
      folded: it.folded_nodes };
    this.lastSeq = it.seq;
    this.lastEnd = it.end_ms;
    this.ring.push(entry);
    mergeInto(this.sinceTree, entry.tree, 1);
    mergeInto(this.windowTree, entry.tree, 1);
    this.windowCount += 1;
    this.trimWindow();
    if (this.ring.length > RING_MAX) {
      this.ring.shift();
      this.windowCount = Math.min(this.windowCount, this.ring.length);
    }
  }

  windowIntervals() {
    return Math.max(1, Math.round((this.windowSec * 1000) / (this.meta.interval_ms || 1000)));
  }

  // Subtract the intervals that fell out of the window (merge with sign -1).
  trimWindow() {
    const want = Math.min(this.windowIntervals(), this.ring.length);
    while (this.windowCount > want) {
      mergeInto(this.windowTree, this.ring[this.ring.length - this.windowCount].tree, -1);
      this.windowCount -= 1;
    }
  }

  rebuildWindow() {
    this.windowTree = emptyTree();
    const k = Math.min(this.windowIntervals(), this.ring.length);
    for (const e of this.ring.slice(this.ring.length - k)) mergeInto(this.windowTree, e.tree, 1);
    this.windowCount = k;
  }

  tree() {
    if (this.mode === "interval") {
      return this.ring.length ? this.ring[this.ring.length - 1].tree : emptyTree();
    }
    return this.mode === "since" ? this.sinceTree : this.windowTree;
  }

  // ---- drawing --------------------------------------------------------------
  redraw() {
    this.panel.show(this.tree());
    this.lastDrawMs = this.graph.lastRenderMs;
    this.draws += 1;
    this.renderChart();
    this.renderStatus();
  }

  renderChart() {
    const el = $("rate-chart");
    if (!hasPlotly() || !el) return;
    const pts = this.ring.slice(-CHART_POINTS);
    const perSec = 1000 / (this.meta.interval_ms || 1000);
    // Time units: µs blocked per second of wall time, shown as ms/s.
    const us = this.unit === "us";
    const scale = us ? perSec / 1000 : perSec;
    const what = us ? "ms blocked per second" : "samples per second";
    const trace = { x: pts.map((p) => new Date(p.end_ms)), y: pts.map((p) => p.samples * scale),
      type: "scatter", mode: "lines", fill: "tozeroy", line: { color: us ? "#2b6cd9" : "#d9622b" },
      hovertemplate: `%{y:.${us ? 1 : 0}f} ${us ? "ms/s" : "samples/s"}<extra></extra>` };
    const layout = { height: 140, margin: { l: 50, r: 10, t: 24, b: 30 },
      title: { text: what, font: { size: 12 } },
      yaxis: { rangemode: "tozero" }, xaxis: { type: "date" } };
    react(el, [trace], layout);
  }

  renderStatus() {
    this.socket.renderBanner($("conn-banner"));
    renderHostBanner($("host-banner"), this.hostStatus, { withAge: true });
    const tree = this.tree();
    const f = this.filter;
    const parts = [
      this.socket.state,
      `interval ${this.meta.interval_ms} ms`,
      `${this.meta.frequency_hz} Hz`,
      `${fmtWeight(tree.total, this.unit)} in view`,
      f.pid !== null ? `pid ${f.pid}` : f.comm ? `process ~ "${f.comm}"` : "all processes",
    ];
    if (this.mode === "since" && this.sinceFrom) parts.push(`since reset at ${fmtTime(this.sinceFrom)}`);
    if (this.paused) parts.push("PAUSED");
    if (this.lastError) parts.push(this.lastError);
    $("status").textContent = parts.join(" · ");
    $("status").classList.toggle("paused", this.paused);
    renderHealth($("health"), HEALTH_LABELS, this.health, this.lastHealth);
  }

  // ---- controls ---------------------------------------------------------------
  bindControls() {
    $("mode").addEventListener("change", (e) => this.setMode(e.target.value));
    $("window-sec").addEventListener("change", (e) => {
      this.windowSec = Number(e.target.value);
      this.rebuildWindow();
      this.redraw();
    });
    $("reset").addEventListener("click", () => {
      this.sinceTree = emptyTree();
      this.sinceFrom = Date.now();
      if (this.mode === "since") this.redraw();
    });
    $("pause").addEventListener("click", () => this.setPaused(!this.paused));
    $("window-label").hidden = this.mode !== "window";
  }

  setMode(mode) {
    this.mode = mode;
    $("mode").value = mode;
    $("window-label").hidden = mode !== "window";
    this.redraw();
  }

  setPaused(paused) {
    this.paused = paused;
    $("pause").textContent = paused ? "resume" : "pause";
    $("pause").setAttribute("aria-pressed", String(paused));
    if (!paused) this.redraw();
    else this.renderStatus();
  }

  // Digits mean a pid, anything else a process-name substring; the server
  // filters and answers with a fresh snapshot that replaces local state.
  applyFilter(text) {
    const t = text.trim();
    const bad = (m) => { this.lastError = m; this.renderStatus(); };
    if (/^\d+$/.test(t)) {
      const pid = Number(t);
      if (pid < 1 || pid >= 2 ** 22) return bad(`pid ${t} is out of range`);
      this.filter = { pid, comm: null };
    } else if (t.length > 64) {
      return bad("process name filter is longer than 64 characters");
    } else {
      this.filter = { pid: null, comm: t || null };
    }
    this.lastError = null;
    this.socket.subscribe();
    this.renderStatus();
  }
}

const section = document.getElementById("live");
if (section) {
  const view = new LiveView(section);
  // Read-only hook for browser tests and for poking at the page by hand.
  window.webprofLive = {
    view,
    graph: view.graph,
    get kind() { return view.kind; },
    tree: () => view.tree(),
    get mode() { return view.mode; },
    get lastDrawMs() { return view.lastDrawMs; },
    get draws() { return view.draws; },
    get intervalsReceived() { return view.intervalsReceived; },
    get connection() { return view.socket.state; },
    findPath,
    cloneTree,
  };
}
