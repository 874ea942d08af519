// Canvas flame graph for trees from flametree.js: layout, zoom, and what
// is under the mouse (tooltip, click to zoom).  flamepaint.js paints it.
//
// Built for the server's 16,384-node budget at one redraw per interval:
// layout fills flat arrays (no per-frame objects), and frames narrower than
// MIN_PX are skipped with their whole subtree (children are never wider).

import { SEP_LABEL, paintFrames } from "./flamepaint.js";
import { OTHER_KEY, WAKER_SEPARATOR, findPath } from "./flametree.js";
import { fmtPercent, fmtWeight } from "./format.js";

const MIN_PX = 0.5; // narrower frames are invisible at any device pixel ratio

export class FlameGraph {
  // colourOf(node) -> CSS colour or null, and tooltipLines(node) -> [lines]
  // or null, are optional: the diff page colours and explains by change.
  constructor(canvas, { onZoom = null, rowHeight = 16, unit = "samples", waker = false,
    colourOf = null, tooltipLines = null } = {}) {
    this.canvas = canvas;
    this.colourOf = colourOf;
    this.tooltipLines = tooltipLines;
    this.unit = unit; // of node weights: "samples" or "us"
    this.waker = waker; // off-wake: colour the waker stack above WAKER_SEPARATOR
    this.ctx = canvas.getContext("2d");
    this.onZoom = onZoom;
    this.rowH = rowHeight;
    this.root = null;
    this.zoomKeys = []; // keys from the root to the zoomed frame
    this.search = null; // name predicate or null
    this.icicle = false; // false: root at the bottom (flame), true: root on top
    this.n = 0; // frames laid out
    this.cap = 0;
    this.grow(1024);
    this.maxDepth = 0;
    this.rows = 0; // canvas height in rows, see fitRows()
    this.lastRenderMs = 0;
    this.tooltip = document.createElement("div");
    this.tooltip.className = "fg-tooltip";
    this.tooltip.hidden = true;
    // Fixed to the viewport so the graph's scroll box cannot clip it.
    document.body.appendChild(this.tooltip);
    canvas.addEventListener("mousemove", (e) => this.onMove(e));
    canvas.addEventListener("mouseleave", () => this.hideTooltip());
    canvas.addEventListener("click", (e) => this.onClick(e));
    const box = canvas.parentElement;
    // Flame mode grows upwards from the root row: keep the scroll box pinned
    // to the bottom (the root) unless the user scrolled away from it.
    this.pinBottom = true;
    box?.addEventListener("scroll", () => {
      this.pinBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 4;
    });
    if (window.ResizeObserver && box) {
      // Redraw on width changes only: our own height change must not loop.
      let lastW = box.clientWidth;
      new ResizeObserver(() => {
        const w = box.clientWidth;
        if (w !== lastW && this.root && canvas.isConnected) this.render();
        lastW = w;
      }).observe(box);
    }
  }

  grow(cap) {
    this.cap = cap;
    this.xs = new Float64Array(cap);
    this.ws = new Float64Array(cap);
    this.depths = new Int32Array(cap);
    this.flags = new Uint8Array(cap); // 1: frame at or above a waker separator
    this.nodes = new Array(cap);
  }

  // Show a new tree, keeping the zoom if its frame still exists; otherwise
  // fall back to the deepest ancestor that does (and tell the breadcrumb).
  setTree(root) {
    this.root = root;
    let keys = this.zoomKeys;
    while (keys.length && !findPath(root, keys)) keys = keys.slice(0, -1);
    const changed = keys.length !== this.zoomKeys.length;
    this.zoomKeys = keys;
    this.render();
    if (changed && this.onZoom) this.onZoom(this.zoomPath());
  }

  setSearch(test) {
    this.search = test;
    if (this.root) this.render();
  }

  setIcicle(icicle) {
    this.icicle = icicle;
    if (this.root) this.render();
  }

  zoomTo(keys) {
    this.zoomKeys = keys.slice();
    this.hideTooltip();
    if (this.root) this.render();
    if (this.onZoom) this.onZoom(this.zoomPath());
  }

  // [{key, name}] from the root to the zoomed frame (the breadcrumb).
  zoomPath() {
    const out = [{ key: "", name: "all" }];
    let node = this.root;
    for (const key of this.zoomKeys) {
      node = node && node.children && node.children.get(key);
      out.push({ key, name: node ? node.name : key });
    }
    return out;
  }

  zoomNode() {
    return (this.root && findPath(this.root, this.zoomKeys)) || this.root;
  }

  // Lay out and draw; returns the time taken in milliseconds.
  render() {
    const t0 = performance.now();
    this.layout();
    this.draw();
    this.lastRenderMs = performance.now() - t0;
    return this.lastRenderMs;
  }

  layout() {
    const box = this.canvas.parentElement;
    const width = this.canvas.clientWidth || (box && box.clientWidth) || 800;
    this.width = width;
    this.n = 0;
    this.maxDepth = 0;
    const zoom = this.zoomNode();
    if (!zoom || zoom.total <= 0) return;
    // Ancestors of the zoomed frame span the full width, like the frame itself.
    let node = this.root;
    let flag = 0;
    for (let d = 0; d < this.zoomKeys.length; d++) {
      flag = this.waker && (flag || node.name === WAKER_SEPARATOR) ? 1 : 0;
      this.push(node, 0, width, d, flag);
      node = node.children.get(this.zoomKeys[d]);
    }
    const scale = width / zoom.total;
    const stack = [zoom, 0, this.zoomKeys.length, this.waker && (flag || node.name === WAKER_SEPARATOR) ? 1 : 0];
    while (stack.length) {
      const f = stack.pop();
      const depth = stack.pop();
      const x = stack.pop();
      const n = stack.pop();
      const w = n.total * scale;
      this.push(n, x, w, depth, f || (this.waker && n.name === WAKER_SEPARATOR) ? 1 : 0);
      if (!n.children) continue;
      const cf = f || (this.waker && n.name === WAKER_SEPARATOR) ? 1 : 0;
      let cx = x;
      for (const c of sortedChildren(n)) {
        const cw = c.total * scale;
        if (cw >= MIN_PX) stack.push(c, cx, depth + 1, cf);
        cx += cw;
      }
    }
  }

  push(node, x, w, depth, flag = 0) {
    if (this.n === this.cap) {
      const old = [this.xs, this.ws, this.depths, this.nodes, this.flags];
      this.grow(this.cap * 2);
      this.xs.set(old[0]);
      this.ws.set(old[1]);
      this.depths.set(old[2]);
      this.flags.set(old[4]);
      for (let i = 0; i < old[3].length; i++) this.nodes[i] = old[3][i];
    }
    const i = this.n++;
    this.xs[i] = x;
    this.ws[i] = w;
    this.depths[i] = depth;
    this.flags[i] = flag;
    this.nodes[i] = node;
    if (depth > this.maxDepth) this.maxDepth = depth;
  }

  rowY(depth) {
    return (this.icicle ? depth : this.rows - 1 - depth) * this.rowH;
  }

  // Canvas height in rows.  Resizing a canvas reallocates its bitmap (the
  // most expensive step of a redraw at high DPR), and stack depth wobbles
  // from one interval to the next, so grow in steps of 8 rows and shrink
  // only when 32 or more rows would be left empty.
  fitRows() {
    const need = this.maxDepth + 1;
    if (!this.rows || need > this.rows || this.rows - need >= 32) {
      this.rows = Math.ceil(need / 8) * 8;
    }
  }

  // Sizes the canvas to the rows laid out, then paints.
  draw() {
    const dpr = window.devicePixelRatio || 1;
    this.fitRows();
    const cssH = this.rows * this.rowH;
    const pw = Math.round(this.width * dpr);
    const ph = Math.round(cssH * dpr);
    // Assigning width/height reallocates the bitmap; only do it on a change.
    if (this.canvas.width !== pw || this.canvas.height !== ph) {
      this.canvas.width = pw;
      this.canvas.height = ph;
      this.canvas.style.height = `${cssH}px`;
    }
    const box = this.canvas.parentElement;
    if (box && !this.icicle && this.pinBottom) box.scrollTop = box.scrollHeight;
    const ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.width, cssH);
    paintFrames(this, ctx);
  }

  // Index of the laid-out frame under canvas CSS pixel (x, y), or -1.
  indexAt(x, y) {
    const row = Math.floor(y / this.rowH);
    const depth = this.icicle ? row : this.rows - 1 - row;
    for (let i = 0; i < this.n; i++) {
      if (this.depths[i] === depth && x >= this.xs[i] && x < this.xs[i] + this.ws[i]) return i;
    }
    return -1;
  }

  frameAt(x, y) {
    const i = this.indexAt(x, y);
    return i < 0 ? null : this.describe(i);
  }

  // The widest laid-out frame called `name`: its box in canvas CSS pixels and
  // its centre in viewport coordinates (what a test clicks).
  frameRect(name) {
    let best = -1;
    for (let i = 0; i < this.n; i++) {
      if (this.nodes[i].name === name && (best < 0 || this.ws[i] > this.ws[best])) best = i;
    }
    return best < 0 ? null : this.describe(best);
  }

  describe(i) {
    const r = this.canvas.getBoundingClientRect();
    const x = this.xs[i];
    const y = this.rowY(this.depths[i]);
    const w = this.ws[i];
    const node = this.nodes[i];
    return {
      name: node.name, samples: node.total, self: node.self, depth: this.depths[i],
      waker: this.flags[i] === 1,
      x, y, w, h: this.rowH, canvasWidth: this.width,
      clientX: r.left + x + w / 2, clientY: r.top + y + this.rowH / 2,
    };
  }

  // Keys from the root to laid-out frame i.  Layout is a pre-order walk, so
  // the nearest earlier frame one level up is the parent.
  keysOf(i) {
    const keys = [];
    let depth = this.depths[i];
    for (let j = i; j >= 0 && depth > 0; j--) {
      if (this.depths[j] !== depth) continue;
      keys.push(this.nodes[j].key);
      depth -= 1;
    }
    return keys.reverse();
  }

  onClick(e) {
    const r = this.canvas.getBoundingClientRect();
    const i = this.indexAt(e.clientX - r.left, e.clientY - r.top);
    if (i < 0) return;
    const depth = this.depths[i];
    if (depth <= this.zoomKeys.length) this.zoomTo(this.zoomKeys.slice(0, depth));
    else this.zoomTo(this.keysOf(i));
  }

  onMove(e) {
    const r = this.canvas.getBoundingClientRect();
    const i = this.indexAt(e.clientX - r.left, e.clientY - r.top);
    if (i < 0) return this.hideTooltip();
    const node = this.nodes[i];
    const total = this.root.total || 1;
    const zoom = this.zoomNode();
    const sep = this.flags[i] && node.name === WAKER_SEPARATOR;
    const fmt = (v) => fmtWeight(v, this.unit);
    const lines = [
      node === this.root ? "all" : sep ? `${SEP_LABEL} (the waker's stack is above)` : node.name,
      `${fmt(node.total)} (self ${fmt(node.self)})`,
      `${fmtPercent(node.total, total)} of total, ${fmtPercent(node.total, zoom.total)} of zoomed frame`,
    ];
    if (node.key === OTHER_KEY) {
      lines.push(`${node.folded} small frames folded to stay within the node budget`);
    }
    const extra = this.tooltipLines && this.tooltipLines(node);
    if (extra) lines.splice(1, lines.length - 1, ...extra);
    this.tooltip.textContent = lines.join("\n");
    this.tooltip.hidden = false;
    // Keep it on screen near the right and bottom edges.
    const tw = this.tooltip.offsetWidth;
    const th = this.tooltip.offsetHeight;
    const left = e.clientX + 12 + tw > window.innerWidth ? e.clientX - tw - 12 : e.clientX + 12;
    const top = e.clientY + 12 + th > window.innerHeight ? e.clientY - th - 12 : e.clientY + 12;
    this.tooltip.style.left = `${Math.max(0, left)}px`;
    this.tooltip.style.top = `${Math.max(0, top)}px`;
  }

  hideTooltip() {
    this.tooltip.hidden = true;
  }
}

// Children in name order (as flamegraph.pl does) so frames keep their place
// from one interval to the next; folds go last.  Cached per node and reused
// while the child set is unchanged in size and order is still valid.
function sortedChildren(node) {
  const kids = node.children;
  if (node._sorted && node._sortedFor === kids && node._sorted.length === kids.size) {
    let ok = true;
    for (const c of node._sorted) if (kids.get(c.key) !== c) { ok = false; break; }
    if (ok) return node._sorted;
  }
  const arr = Array.from(kids.values());
  arr.sort((a, b) => (a.key === OTHER_KEY) - (b.key === OTHER_KEY) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  node._sorted = arr;
  node._sortedFor = kids;
  return arr;
}
