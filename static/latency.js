// The latency page: one websocket, latency.subscribe for (host, kind), and a
// live heatmap of the chosen series.  The server sends the last 300
// intervals once (latency.snapshot) and then one latency.interval each
// interval; every series is kept here so the selector switches instantly.

import { LatencyHeatmap } from "./heatmap.js";
import { countBadMessage, dispatcher, renderHealth, renderHostBanner, viewSocket } from "./socket.js";

const KEEP = 300;
const HEALTH_LABELS = {
  lost_events: "lost events",
  start_map_full: "start map full (events not timed)",
  counts_map_full: "histogram map full",
  filtered: "dropped (filters or series caps)",
  bad_messages: "bad messages dropped",
};

const $ = (id) => document.getElementById(id);

class LatencyView {
  constructor(section) {
    this.host = section.dataset.host;
    this.kind = section.dataset.kind;
    this.intervals = []; // [{seq, end_ms, series, health}], oldest first
    this.totals = new Map(); // series name -> events seen (orders the selector)
    this.series = null; // chosen series; null: "all" or the busiest
    this.health = {};
    this.lastHealth = {};
    this.intervalsReceived = 0;
    this.paused = false;
    this.socket = viewSocket(this, section,
      () => ({ v: 1, type: "latency.subscribe", host: this.host, kind: this.kind }));
    this.dispatch = dispatcher({
      "latency.snapshot": (msg) => this.onSnapshot(msg),
      "latency.interval": (msg) => this.onInterval(msg),
      "host.status": (msg) => { this.hostStatus = msg; },
      error: (msg) => {
        this.lastError = this.socket.refused(msg)
          ? `waiting for a collector to connect as ${this.host}…`
          : `server: ${msg.message} (${msg.code})`;
      },
    }, (sentence) => countBadMessage(this, sentence));
    this.heatmap = new LatencyHeatmap({ heatmap: $("heatmap"), percentiles: $("percentiles"),
      histogram: $("histogram"), maxColumns: KEEP });
    $("series").addEventListener("change", (e) => this.choose(e.target.value));
    $("pause").addEventListener("click", () => this.setPaused(!this.paused));
    this.socket.connect();
    setInterval(() => this.renderStatus(), 1000);
  }

  // One raw frame from the socket; every frame, good or bad, updates the status.
  onMessage(data) {
    this.dispatch(data);
    this.renderStatus();
  }

  onSnapshot(msg) {
    if (this.lastError?.startsWith("waiting for a collector")) this.lastError = null;
    this.socket.resetBackoff();
    this.intervalMs = msg.interval_ms;
    this.intervals = [];
    this.totals.clear();
    this.health = {};
    for (const it of msg.intervals) this.add(it);
    this.renderSeries();
    this.heatmap.setColumns(this.columns());
  }

  onInterval(msg) {
    if (this.intervals.length && msg.end_ms <= this.intervals.at(-1).end_ms
        && msg.seq <= this.intervals.at(-1).seq) return; // already in the snapshot
    this.intervalsReceived += 1;
    const known = this.totals.size;
    this.add(msg);
    this.lastHealth = msg.health || {};
    if (this.totals.size !== known) this.renderSeries();
    if (this.paused) return;
    this.heatmap.addColumn(this.column(msg));
  }

  add(it) {
    for (const [name, buckets] of Object.entries(it.series)) {
      let n = 0;
      for (const b of buckets) n += b[2];
      this.totals.set(name, (this.totals.get(name) || 0) + n);
    }
    for (const [k, v] of Object.entries(it.health || {})) this.health[k] = (this.health[k] || 0) + v;
    this.intervals.push(it);
    if (this.intervals.length > KEEP) this.intervals.shift();
  }

  chosen() {
    if (this.series !== null) return this.series;
    if (this.totals.has("all")) return "all";
    let best = null;
    for (const [name, n] of this.totals) if (best === null || n > this.totals.get(best)) best = name;
    return best || "all";
  }

  column(it) {
    return { end_ms: it.end_ms, buckets: it.series[this.chosen()] || [] };
  }

  columns() {
    return this.intervals.map((it) => this.column(it));
  }

  choose(name) {
    this.series = name;
    this.heatmap.setColumns(this.columns());
  }

  setPaused(paused) {
    this.paused = paused;
    $("pause").textContent = paused ? "resume" : "pause";
    $("pause").setAttribute("aria-pressed", String(paused));
    if (!paused) this.heatmap.setColumns(this.columns());
    this.renderStatus();
  }

  // "all" first, then by events seen, busiest first.
  renderSeries() {
    const sel = $("series");
    const names = [...this.totals.keys()].sort((a, b) =>
      (b === "all") - (a === "all") || this.totals.get(b) - this.totals.get(a) || a.localeCompare(b));
    const current = this.chosen();
    sel.replaceChildren(...names.map((n) => {
      const o = document.createElement("option");
      o.value = n;
      o.textContent = `${n} (${this.totals.get(n)})`;
      o.selected = n === current;
      return o;
    }));
  }

  renderStatus() {
    this.socket.renderBanner($("conn-banner"));
    renderHostBanner($("host-banner"), this.hostStatus);
    const parts = [this.socket.state, `interval ${this.intervalMs || "?"} ms`,
      `${this.intervals.length} intervals`, `series ${this.chosen()}`, "unit µs"];
    if (this.paused) parts.push("PAUSED");
    if (this.lastError) parts.push(this.lastError);
    $("status").textContent = parts.join(" · ");
    renderHealth($("health"), HEALTH_LABELS, this.health, this.lastHealth);
  }
}

const section = document.getElementById("latency");
if (section) {
  const view = new LatencyView(section);
  // Read-only hook for browser tests and for poking at the page by hand.
  window.webprofLatency = {
    view,
    heatmap: view.heatmap,
    get columns() { return view.heatmap.columns.length; },
    get intervalsReceived() { return view.intervalsReceived; },
    get connection() { return view.socket.state; },
  };
}
