// FlameScope-style sub-second heatmap on a canvas: one column per second, one
// row per 20 ms slot (row 0, the start of the second, on top), colour by
// samples.  A drag from one cell to another selects the time range between
// them in time order (column-major, like FlameScope): it starts at the
// earlier cell's start and ends at the later cell's end.
//
// An hour is 3,600 x 50 = 180,000 cells.  They are painted once, one pixel per
// cell, into offscreen tiles; a redraw (scrolling, dragging) only scales the
// visible part of the tiles onto the screen with one drawImage each and draws
// the selection on top, so dragging stays smooth at any session length.
// Tiles are at most TILE columns wide because canvases have a size limit.

import { fmtSecond, fmtTimeMs, fmtWeight } from "./format.js";

const GUTTER = 48; // px left of the cells, for the row labels
const AXIS_H = 18; // px below the cells, for the seconds axis
const TILE = 4096;
const EMPTY = [243, 244, 246];
// white-yellow to dark red, like FlameScope's palette.
const STOPS = [[255, 241, 193], [253, 174, 97], [215, 48, 31], [127, 0, 0]];
const SELECT = { a: ["rgba(37, 99, 235, 0.33)", "#1d4ed8"], b: ["rgba(22, 163, 74, 0.33)", "#15803d"] };
const TICK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400];

export function heatColour(v, max) {
  if (!v || !max) return EMPTY;
  // Square root: a few busy cells must not wash every other cell out.
  const t = Math.sqrt(Math.min(1, v / max)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(t));
  const f = t - i;
  return STOPS[i].map((c, k) => Math.round(c + (STOPS[i + 1][k] - c) * f));
}

export class SubsecondHeatmap {
  constructor({ canvas, scroller, legend, cellHeight = 5, onSelect = null, onView = null,
    format = (v) => fmtWeight(v) }) {
    this.canvas = canvas;
    this.scroller = scroller;
    this.spacer = scroller.firstElementChild;
    this.legend = legend;
    this.ch = cellHeight;
    this.onSelect = onSelect; // (which, {from, to}) in ms from the origin
    this.onView = onView; // ([firstSecond, lastSecond]) when the visible part changes
    this.format = format;
    this.cellWidth = 8; // px per column, or "fit"
    this.hm = null;
    this.selections = { a: null, b: null };
    this.marking = "a"; // which selection the next drag sets
    this.drag = null;
    this.tooltip = document.createElement("div");
    this.tooltip.className = "fg-tooltip ss-tooltip";
    this.tooltip.hidden = true;
    document.body.appendChild(this.tooltip);
    this.bind();
  }

  bind() {
    const c = this.canvas;
    c.addEventListener("mousedown", (e) => this.onDown(e));
    c.addEventListener("mousemove", (e) => this.onMove(e));
    c.addEventListener("mouseleave", () => { this.tooltip.hidden = true; });
    window.addEventListener("mouseup", (e) => this.onUp(e));
    this.scroller.addEventListener("scroll", () => this.schedule());
    c.addEventListener("wheel", (e) => {
      const d = e.deltaX || (e.shiftKey ? e.deltaY : 0);
      if (!d) return;
      e.preventDefault();
      this.scroller.scrollLeft += d;
    }, { passive: false });
    if (window.ResizeObserver) new ResizeObserver(() => this.schedule()).observe(c.parentElement);
  }

  setData(hm) {
    this.hm = hm;
    this.tiles = [];
    for (let c0 = 0; c0 < hm.columns; c0 += TILE) this.tiles.push(this.paintTile(c0));
    this.renderLegend();
    this.render();
  }

  paintTile(c0) {
    const hm = this.hm;
    const w = Math.min(TILE, hm.columns - c0);
    const tile = document.createElement("canvas");
    tile.width = w;
    tile.height = hm.rows;
    const g = tile.getContext("2d");
    const img = g.createImageData(w, hm.rows);
    const d = img.data;
    for (let r = 0; r < hm.rows; r++) {
      const row = hm.z[r];
      for (let c = 0; c < w; c++) {
        const [R, G, B] = heatColour(row[c0 + c], hm.max);
        const i = 4 * (r * w + c);
        d[i] = R; d[i + 1] = G; d[i + 2] = B; d[i + 3] = 255;
      }
    }
    g.putImageData(img, 0, 0);
    return { c0, w, canvas: tile };
  }

  setCellWidth(w) {
    const first = this.firstColumn();
    this.cellWidth = w;
    this.layoutScroller();
    this.scroller.scrollLeft = first * this.cw();
    this.render();
  }

  setSelection(which, range) {
    this.selections[which] = range;
    this.render();
  }

  plotWidth() {
    return Math.max(50, (this.canvas.parentElement.clientWidth || 800) - GUTTER);
  }

  // Never narrower than "fit": a short session fills the width, so its time
  // axis lines up with the charts above and below.
  cw() {
    if (!this.hm) return 8;
    const fit = this.plotWidth() / this.hm.columns;
    return this.cellWidth === "fit" ? fit : Math.max(fit, Number(this.cellWidth));
  }

  firstColumn() {
    return this.hm ? this.scroller.scrollLeft / this.cw() : 0;
  }

  // [first, last) seconds on screen, fractional.
  visibleSeconds() {
    const first = this.firstColumn();
    return [first, Math.min(this.hm ? this.hm.columns : 1, first + this.plotWidth() / this.cw())];
  }

  // Bring second `s` into view (centred) unless it is already visible.
  reveal(s) {
    const [a, b] = this.visibleSeconds();
    if (s >= a && s < b) return;
    this.scroller.scrollLeft = Math.max(0, (s - (b - a) / 2) * this.cw());
  }

  layoutScroller() {
    this.scroller.style.marginLeft = `${GUTTER}px`;
    this.spacer.style.width = `${Math.ceil(this.hm.columns * this.cw())}px`;
  }

  schedule() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      this.render();
    });
  }

  render() {
    if (!this.hm) return;
    const t0 = performance.now();
    this.layoutScroller();
    const hm = this.hm;
    const dpr = window.devicePixelRatio || 1;
    const cssW = this.plotWidth() + GUTTER;
    const cssH = hm.rows * this.ch + AXIS_H;
    if (this.canvas.width !== Math.round(cssW * dpr) || this.canvas.height !== Math.round(cssH * dpr)) {
      this.canvas.width = Math.round(cssW * dpr);
      this.canvas.height = Math.round(cssH * dpr);
      this.canvas.style.width = `${cssW}px`;
      this.canvas.style.height = `${cssH}px`;
    }
    const g = this.canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cssW, cssH);
    g.imageSmoothingEnabled = false;
    const cw = this.cw();
    const [first, last] = this.visibleSeconds();
    for (const t of this.tiles) {
      const a = Math.max(first, t.c0);
      const b = Math.min(last, t.c0 + t.w);
      if (b <= a) continue;
      g.drawImage(t.canvas, a - t.c0, 0, b - a, hm.rows,
        GUTTER + (a - first) * cw, 0, (b - a) * cw, hm.rows * this.ch);
    }
    for (const which of ["a", "b"]) {
      const sel = this.drag && this.drag.which === which ? this.drag.range : this.selections[which];
      if (sel) this.drawSelection(g, sel, SELECT[which]);
    }
    this.drawAxes(g, first, last, cw);
    this.lastRenderMs = performance.now() - t0;
    if (this.onView) this.onView([first, last]);
  }

  // A range as screen rectangles: the tail of its first column, whole
  // columns, the head of its last column.
  drawSelection(g, { from, to }, [fill, line]) {
    const hm = this.hm;
    const slot = hm.slot_ms;
    const c1 = Math.floor(from / 1000);
    const r1 = Math.floor((from % 1000) / slot);
    const c2 = Math.floor((to - 1) / 1000);
    const r2 = Math.floor(((to - 1) % 1000) / slot);
    const rects = c1 === c2 ? [[c1, c1 + 1, r1, r2 + 1]]
      : [[c1, c1 + 1, r1, hm.rows], [c1 + 1, c2, 0, hm.rows], [c2, c2 + 1, 0, r2 + 1]];
    const first = this.firstColumn();
    const cw = this.cw();
    g.save();
    g.beginPath();
    g.rect(GUTTER, 0, this.plotWidth(), hm.rows * this.ch);
    g.clip();
    g.fillStyle = fill;
    for (const [ca, cb, ra, rb] of rects) {
      if (cb <= ca || rb <= ra) continue;
      g.fillRect(GUTTER + (ca - first) * cw, ra * this.ch, (cb - ca) * cw, (rb - ra) * this.ch);
    }
    // One outline around the whole range, not one per rectangle.
    const X = (c) => GUTTER + (c - first) * cw;
    const Y = (r) => r * this.ch;
    const pts = c1 === c2
      ? [[c1, r1], [c1 + 1, r1], [c1 + 1, r2 + 1], [c1, r2 + 1]]
      : [[c1, r1], [c1 + 1, r1], [c1 + 1, 0], [c2 + 1, 0], [c2 + 1, r2 + 1], [c2, r2 + 1],
        [c2, hm.rows], [c1, hm.rows]];
    g.beginPath();
    pts.forEach(([c, r], i) => (i ? g.lineTo(X(c), Y(r)) : g.moveTo(X(c), Y(r))));
    g.closePath();
    g.strokeStyle = line;
    g.lineWidth = 2;
    g.stroke();
    g.restore();
  }

  drawAxes(g, first, last, cw) {
    const hm = this.hm;
    const h = hm.rows * this.ch;
    g.clearRect(0, 0, GUTTER, h + AXIS_H);
    g.fillStyle = "#444";
    g.font = "10px system-ui, sans-serif";
    g.textBaseline = "middle";
    g.textAlign = "right";
    for (const ms of [0, 250, 500, 750]) {
      g.fillText(`${ms} ms`, GUTTER - 4, Math.min(h - 5, (ms / hm.slot_ms) * this.ch + 5));
    }
    const step = TICK_STEPS.find((s) => s * cw >= 60) || TICK_STEPS.at(-1);
    g.textAlign = "center";
    g.textBaseline = "top";
    for (let s = Math.ceil(first / step) * step; s <= last; s += step) {
      const x = GUTTER + (s - first) * cw;
      g.fillRect(x, h, 1, 4);
      g.fillText(fmtSecond(s), Math.max(GUTTER + 12, x), h + 5);
    }
  }

  renderLegend() {
    if (!this.legend) return;
    const max = this.hm.max;
    const stops = [0, 0.25, 0.5, 0.75, 1].map((t) => {
      const [r, g, b] = heatColour(max * t * t || (t ? 1 : 0), max);
      return `rgb(${r}, ${g}, ${b}) ${t * 100}%`;
    });
    this.legend.innerHTML = "";
    const bar = document.createElement("span");
    bar.className = "ss-bar";
    bar.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
    const lo = document.createElement("span");
    lo.textContent = "0";
    const hi = document.createElement("span");
    hi.textContent = `${this.format(max)} per 20 ms cell`;
    this.legend.append(lo, bar, hi);
  }

  // The cell under a mouse event: {col, row, t} with t in ms from the origin.
  cellAt(e) {
    const r = this.canvas.getBoundingClientRect();
    const x = e.clientX - r.left - GUTTER;
    const y = e.clientY - r.top;
    const hm = this.hm;
    if (!hm || y < 0) return null;
    const col = Math.min(hm.columns - 1, Math.max(0, Math.floor(this.firstColumn() + x / this.cw())));
    const row = Math.min(hm.rows - 1, Math.max(0, Math.floor(y / this.ch)));
    return { col, row, t: col * 1000 + row * hm.slot_ms, inside: x >= 0 && y < hm.rows * this.ch };
  }

  rangeOf(a, b) {
    const lo = Math.min(a.t, b.t);
    const hi = Math.max(a.t, b.t);
    return { from: lo, to: hi + this.hm.slot_ms };
  }

  onDown(e) {
    const cell = this.cellAt(e);
    if (!cell || !cell.inside || e.button !== 0) return;
    e.preventDefault();
    this.drag = { which: this.marking, anchor: cell, range: this.rangeOf(cell, cell) };
    this.render();
  }

  onMove(e) {
    const cell = this.cellAt(e);
    if (this.drag && cell) {
      this.drag.range = this.rangeOf(this.drag.anchor, cell);
      this.schedule();
    }
    if (!cell || !cell.inside) {
      this.tooltip.hidden = true;
      return;
    }
    const v = this.hm.z[cell.row][cell.col];
    this.tooltip.textContent = `+${(cell.t / 1000).toFixed(2)} s `
      + `(${fmtTimeMs(this.hm.origin_ms + cell.t)})\n${this.format(v)}`;
    this.tooltip.hidden = false;
    this.tooltip.style.left = `${Math.min(e.clientX + 12, window.innerWidth - 220)}px`;
    this.tooltip.style.top = `${e.clientY + 14}px`;
  }

  onUp() {
    if (!this.drag) return;
    const { which, range } = this.drag;
    this.drag = null;
    this.selections[which] = range;
    this.render();
    if (this.onSelect) this.onSelect(which, range);
  }

  // Where a range's first cell sits on screen (what a browser test drags from).
  cellCentre(t) {
    const r = this.canvas.getBoundingClientRect();
    const col = Math.floor(t / 1000);
    const row = Math.floor((t % 1000) / this.hm.slot_ms);
    const cw = this.cw();
    return { x: r.left + GUTTER + (col - this.firstColumn() + 0.5) * cw,
      y: r.top + (row + 0.5) * this.ch };
  }
}
