// Live latency heatmap (plotly): x is time (interval end), y is the log2
// latency bucket, colour is the count.  Below it, p50/p90/p99 over time; a
// click on a column shows that interval's histogram with the percentiles.
//
// Buckets arrive as [low_us, high_us, count] with high = 2 * low and a first
// bucket [0, 1, n].  Row r holds [2^(r-1), 2^r) µs, row 0 holds [0, 1) µs.
//
// Percentiles are computed from the buckets alone: find the bucket holding
// rank p * total and interpolate linearly inside it, assuming its events are
// spread evenly over [low, high).  The true value is inside the bucket, so
// the estimate is off by less than a factor of two, never more.

import { fmtBucket, fmtShort, fmtTime } from "./format.js";
import { hasPlotly, react } from "./plot.js";

const PCTS = [[0.5, "p50", "#1a7f37"], [0.9, "p90", "#d97706"], [0.99, "p99", "#cf222e"]];

export function rowOf(low) {
  return low <= 0 ? 0 : Math.round(Math.log2(low)) + 1;
}

export function rowRange(row) {
  return row === 0 ? [0, 1] : [2 ** (row - 1), 2 ** row];
}

// "<1µs", "1µs", "2µs" … "512µs", "1.02ms" … "1.05s": a row's lower bound.
export function rowLabel(row) {
  return row === 0 ? "<1µs" : fmtShort(rowRange(row)[0]);
}

// The p-quantile (0 < p <= 1) of log2 buckets, in µs; null when empty.
export function percentile(buckets, p) {
  let total = 0;
  for (const b of buckets) total += b[2];
  if (!total) return null;
  const rank = p * total;
  let seen = 0;
  const sorted = buckets.slice().sort((a, b) => a[0] - b[0]);
  for (const [low, high, count] of sorted) {
    if (count && seen + count >= rank) return low + ((high - low) * (rank - seen)) / count;
    seen += count;
  }
  const last = sorted[sorted.length - 1];
  return last[1];
}

// Fractional row position of a value in µs (for markers on row axes).
export function rowPosition(us) {
  if (us < 1) return us - 0.5;
  const row = Math.floor(Math.log2(us)) + 1;
  const [low, high] = rowRange(row);
  return row - 0.5 + (us - low) / (high - low);
}

export class LatencyHeatmap {
  constructor({ heatmap, percentiles, histogram, maxColumns = 300 }) {
    this.el = heatmap;
    this.pctEl = percentiles;
    this.histEl = histogram;
    this.maxColumns = maxColumns;
    this.revision = 0;
    this.selected = null; // end_ms of the clicked column
    this.clear();
  }

  clear() {
    this.columns = []; // [{end_ms, buckets}], oldest first
    this.rowMin = 0;
    this.rowMax = -1;
    this.z = []; // z[row - rowMin][column]: count, or null when zero
    this.pct = PCTS.map(() => []);
  }

  // Replace everything (a snapshot, or another series chosen).
  setColumns(columns) {
    this.clear();
    for (const c of columns.slice(-this.maxColumns)) this.addColumn(c, false);
    this.render();
  }

  // One interval: one more column, the oldest dropped past maxColumns.
  addColumn(column, render = true) {
    const rows = column.buckets.map((b) => rowOf(b[0]));
    const lo = Math.min(this.rowMax < 0 ? Infinity : this.rowMin, ...rows);
    const hi = Math.max(this.rowMax, ...rows);
    if (rows.length && (lo < this.rowMin || hi > this.rowMax || this.rowMax < 0)) {
      this.growRows(lo, hi);
    }
    for (const r of this.z) r.push(null);
    column.buckets.forEach((b, i) => {
      if (b[2] > 0) this.z[rows[i] - this.rowMin][this.columns.length] = b[2];
    });
    this.columns.push(column);
    PCTS.forEach(([p], k) => this.pct[k].push(percentile(column.buckets, p)));
    if (this.columns.length > this.maxColumns) {
      this.columns.shift();
      for (const r of this.z) r.shift();
      for (const s of this.pct) s.shift();
    }
    if (render) this.render();
  }

  growRows(lo, hi) {
    const old = this.z;
    const oldMin = this.rowMin;
    const n = this.columns.length;
    this.z = [];
    for (let r = lo; r <= hi; r++) {
      const prev = r >= oldMin && r - oldMin < old.length ? old[r - oldMin] : null;
      this.z.push(prev || new Array(n).fill(null));
    }
    this.rowMin = lo;
    this.rowMax = hi;
  }

  rowsAxis(title) {
    const vals = [];
    for (let r = this.rowMin; r <= this.rowMax; r++) vals.push(r);
    return { title: { text: title }, tickvals: vals, ticktext: vals.map(rowLabel),
      range: [this.rowMin - 0.5, this.rowMax + 0.5], fixedrange: true };
  }

  render() {
    if (!hasPlotly() || !this.el) return;
    this.revision += 1;
    const x = this.columns.map((c) => new Date(c.end_ms));
    const y = this.z.map((_, i) => this.rowMin + i);
    const text = y.map((r) => fmtBucket(rowRange(r)));
    const trace = { type: "heatmap", x, y, z: this.z, colorscale: "Viridis", zmin: 0,
      hoverongaps: false, colorbar: { title: { text: "count" }, thickness: 12 },
      customdata: text.map((t) => x.map(() => t)),
      hovertemplate: "%{x}<br>%{customdata}<br>count %{z}<extra></extra>" };
    const layout = { height: 320, margin: { l: 70, r: 10, t: 10, b: 40 },
      datarevision: this.revision, uirevision: "keep",
      xaxis: { type: "date", title: { text: "time (interval end)" } },
      yaxis: this.rowsAxis("latency, µs (log2 buckets)") };
    react(this.el, [trace], layout);
    if (!this.el._webprofClick) {
      this.el._webprofClick = true;
      this.el.on("plotly_click", (ev) => this.onClick(ev));
    }
    this.renderPercentiles(x);
    if (this.selected !== null) this.renderHistogram();
  }

  renderPercentiles(x) {
    if (!this.pctEl) return;
    const traces = PCTS.map(([, name, colour], k) => ({ type: "scatter", mode: "lines", name,
      x, y: this.pct[k], line: { color: colour, width: 1.5 }, connectgaps: false,
      hovertemplate: `${name} %{y:.3s}µs<extra></extra>` }));
    const layout = { height: 180, margin: { l: 70, r: 10, t: 10, b: 30 },
      datarevision: this.revision, uirevision: "keep",
      xaxis: { type: "date" }, yaxis: { type: "log", title: { text: "µs" } },
      legend: { orientation: "h" } };
    react(this.pctEl, traces, layout);
  }

  onClick(ev) {
    const pt = ev && ev.points && ev.points[0];
    if (!pt) return;
    const col = Array.isArray(pt.pointIndex) ? pt.pointIndex[1] : pt.pointNumber?.[1];
    const column = this.columns[col];
    if (!column) return;
    this.select(column.end_ms);
  }

  // Show the histogram of the column ending at end_ms (null: hide it).
  select(endMs) {
    this.selected = endMs;
    this.renderHistogram();
  }

  renderHistogram() {
    const column = this.columns.find((c) => c.end_ms === this.selected);
    if (!column || !this.histEl) return;
    const rows = column.buckets.map((b) => rowOf(b[0]));
    const marks = PCTS.map(([p, name, colour]) => {
      const v = percentile(column.buckets, p);
      return { name, colour, v, pos: v === null ? null : rowPosition(v) };
    }).filter((m) => m.v !== null);
    this.histogramMarks = marks;
    const shapes = marks.map((m) => ({ type: "line", x0: m.pos, x1: m.pos, yref: "paper",
      y0: 0, y1: 1, line: { color: m.colour, width: 2, dash: "dot" } }));
    const annotations = marks.map((m, i) => ({ x: m.pos, yref: "paper", y: 1 - i * 0.12,
      text: `${m.name} ${fmtShort(Math.round(m.v))}`, showarrow: false, xanchor: "left",
      font: { color: m.colour, size: 11 } }));
    const trace = { type: "bar", x: rows, y: column.buckets.map((b) => b[2]),
      marker: { color: "#4c6ef5" }, customdata: column.buckets.map(fmtBucket),
      hovertemplate: "%{customdata}<br>count %{y}<extra></extra>" };
    const axis = this.rowsAxis("latency, µs (log2 buckets)");
    const layout = { height: 220, margin: { l: 50, r: 10, t: 28, b: 50 }, shapes, annotations,
      title: { text: `interval ending ${fmtTime(column.end_ms)}`,
        font: { size: 12 } },
      xaxis: axis, yaxis: { title: { text: "count" }, rangemode: "tozero" } };
    react(this.histEl, [trace], layout);
  }
}
