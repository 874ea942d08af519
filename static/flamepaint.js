// Painting a laid-out flame graph (flamegraph.js) onto its canvas: the
// palette, the colour of each frame, the rectangles and the labels.
//
// Fast enough for the server's 16,384-node budget at one redraw per interval:
// rectangles are filled in one pass per colour, and text is drawn only where
// a monospace label fits, which avoids measureText per frame.
//
// `g`, the graph painted, is read only: its frames 0..g.n-1 as laid out in
// g.xs, g.ws (CSS px), g.depths, g.flags (1: at or above a waker separator)
// and g.nodes, with g.rowY(depth), g.rowH, g.root, g.search (name predicate
// or null), g.colourOf (node -> CSS colour or null), g.unit and g.width.

import { OTHER_KEY, WAKER_SEPARATOR } from "./flametree.js";
import { fmtWeight } from "./format.js";

const FONT_PX = 11;
const FONT = `${FONT_PX}px ui-monospace, "DejaVu Sans Mono", monospace`;
const TEXT = "#1d1d1d";
// Warm hues for user frames, cooler teal/blue for kernel frames ("_[k]"),
// as in Brendan Gregg's flamegraph.pl "java"/"perl" palettes.
const WARM = 16;
const COOL = 8;
const HIGHLIGHT = WARM + COOL; // colour slot for search matches
const OTHER = HIGHLIGHT + 1; // hatched slot for "[other: N frames]" folds
// Off-wake views: frames of the waker's stack (above the separator) get a
// blue family of their own, and the separator is drawn as a thin band.
const WAKE = OTHER + 1;
const WAKE_N = 8;
const SEP = WAKE + WAKE_N;
export const SEP_LABEL = "woken by ↑";
const SEP_BAND = "#3b3f46"; // the band's line colour (tests look for it)
const SEP_FILL = "#e6e9ee";
const PALETTE = [];
for (let i = 0; i < WARM; i++) {
  PALETTE.push(`hsl(${(8 + (i * 37) % 42)}, ${78 + (i % 3) * 6}%, ${55 + (i * 7) % 14}%)`);
}
for (let i = 0; i < COOL; i++) {
  PALETTE.push(`hsl(${(178 + (i * 11) % 40)}, 55%, ${52 + (i * 5) % 14}%)`);
}
PALETTE.push("hsl(300, 80%, 62%)");
PALETTE.push("#c8c8c8"); // OTHER: replaced by the hatch pattern
for (let i = 0; i < WAKE_N; i++) {
  PALETTE.push(`hsl(${205 + (i * 7) % 35}, ${58 + (i % 3) * 6}%, ${58 + (i * 5) % 12}%)`);
}
PALETTE.push(SEP_FILL);

// Per canvas context: the hatch pattern and the monospace character width,
// made once.
const cache = new WeakMap();

function hashName(name) {
  // FNV-1a: cheap, stable across page loads, so a function keeps its colour.
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

function colourSlot(node, waker) {
  if (waker) return node.name === WAKER_SEPARATOR ? SEP : WAKE + (hashName(node.name) % WAKE_N);
  if (node._c === undefined) {
    if (node.key === OTHER_KEY) node._c = OTHER;
    else if (node.name.endsWith("_[k]")) node._c = WARM + (hashName(node.name) % COOL);
    else node._c = hashName(node.name) % WARM;
  }
  return node._c;
}

// Draws every laid-out frame of g on ctx, already scaled to CSS pixels and
// cleared.
export function paintFrames(g, ctx) {
  const { buckets, custom } = colourGroups(g);
  const h = g.rowH - 1; // 1 px gap between rows
  const fill = (list) => {
    for (const i of list) {
      const w = g.ws[i];
      ctx.fillRect(g.xs[i], g.rowY(g.depths[i]), w > 1.5 ? w - 0.5 : w, h);
    }
  };
  for (const [colour, list] of custom) {
    ctx.fillStyle = colour;
    fill(list);
  }
  for (let s = 0; s < buckets.length; s++) {
    if (!buckets[s].length) continue;
    ctx.fillStyle = s === OTHER ? hatchPattern(ctx) : PALETTE[s];
    fill(buckets[s]);
  }
  // The separator: a light row crossed by a thin dark band.
  ctx.fillStyle = SEP_BAND;
  for (const i of buckets[SEP]) {
    ctx.fillRect(g.xs[i], g.rowY(g.depths[i]) + h / 2 - 1, g.ws[i], 3);
  }
  if (g.n === 0) {
    ctx.font = FONT;
    ctx.fillStyle = "#666";
    ctx.textBaseline = "middle";
    ctx.fillText("no samples in this view yet", 6, g.rowH / 2);
  }
  paintLabels(g, ctx);
}

// Frame indexes by colour: search matches, the page's own colours
// (colourOf), then the palette slots.
function colourGroups(g) {
  const buckets = PALETTE.map(() => []);
  const custom = new Map(); // colour -> frames, from colourOf
  const test = g.search;
  for (let i = 0; i < g.n; i++) {
    const node = g.nodes[i];
    if (test && node !== g.root && test(node.name)) {
      buckets[HIGHLIGHT].push(i);
      continue;
    }
    const colour = g.colourOf && g.colourOf(node);
    if (colour) {
      if (!custom.has(colour)) custom.set(colour, []);
      custom.get(colour).push(i);
    } else buckets[colourSlot(node, g.flags[i])].push(i);
  }
  return { buckets, custom };
}

function paintLabels(g, ctx) {
  ctx.font = FONT;
  const charW = charWidth(ctx);
  ctx.fillStyle = TEXT;
  ctx.textBaseline = "middle";
  const minW = charW * 3 + 6;
  const yOff = (g.rowH - 1) / 2;
  for (let i = 0; i < g.n; i++) {
    const w = g.ws[i];
    if (w < minW) continue;
    const node = g.nodes[i];
    const sep = g.flags[i] && node.name === WAKER_SEPARATOR;
    const name = node === g.root ? `all (${fmtWeight(node.total, g.unit)})`
      : sep ? SEP_LABEL : node.name;
    const fit = Math.floor((w - 6) / charW);
    const label = name.length <= fit ? name : `${name.slice(0, fit - 1)}…`;
    const x = g.xs[i] + 3;
    const y = g.rowY(g.depths[i]) + yOff;
    if (sep) {
      // Readable over the band: a light box behind the label.
      ctx.fillStyle = SEP_FILL;
      ctx.fillRect(x - 2, y - FONT_PX / 2, label.length * charW + 4, FONT_PX);
      ctx.fillStyle = TEXT;
    }
    ctx.fillText(label, x, y);
  }
}

function cached(ctx) {
  if (!cache.has(ctx)) cache.set(ctx, { hatch: null, charW: 0 });
  return cache.get(ctx);
}

// Measured once per context, with ctx.font already set to FONT.
function charWidth(ctx) {
  const c = cached(ctx);
  if (!c.charW) c.charW = ctx.measureText("abcdefghijklmnopqrstuvwxyz").width / 26;
  return c.charW;
}

// Grey diagonal hatching marks folds so they never pass for a real function.
function hatchPattern(ctx) {
  const c = cached(ctx);
  if (!c.hatch) {
    const tile = document.createElement("canvas");
    tile.width = tile.height = 8;
    const t = tile.getContext("2d");
    t.fillStyle = "#c8c8c8";
    t.fillRect(0, 0, 8, 8);
    t.strokeStyle = "#8a8a8a";
    t.lineWidth = 2;
    t.beginPath();
    t.moveTo(-2, 10);
    t.lineTo(10, -2);
    t.stroke();
    c.hatch = ctx.createPattern(tile, "repeat");
  }
  return c.hatch;
}
