// The differential flame graph page (/sessions/diff/?a=&a_from=&a_to=&b=...).
//
// The server sends core.diff.diff_wire: the flame wire format whose widths
// are max(before scaled, after), plus `before` (already scaled to after's
// total) and `after` per node in wire order.  Frames are red where B's share
// grew and blue where it shrank, the more saturated the larger the relative
// change, grey within UNCHANGED of each other.  Scaling is FlameGraph's
// difffolded -n: a function that kept its share shows no change.

import { FlamePanel } from "./flamepanel.js";
import { decodeWire } from "./flametree.js";
import { cellFormat, fmtChangePct, fmtSigned, fmtWeight } from "./format.js";

const UNCHANGED = 0.02; // relative change under which a frame stays grey
const $ = (id) => document.getElementById(id);

// Relative change of a node: (after - before) / max(before, after), in [-1, 1].
export function relChange(before, after) {
  const m = Math.max(before, after);
  return m > 0 ? (after - before) / m : 0;
}

export function diffColour(before, after) {
  const rel = relChange(before, after);
  if (Math.abs(rel) < UNCHANGED) return "rgb(200, 200, 200)";
  const k = Math.min(1, Math.abs(rel));
  const light = Math.round(88 - 43 * k);
  return rel > 0 ? `hsl(0, 85%, ${light}%)` : `hsl(218, 85%, ${light}%)`;
}

// The wire to a tree like flametree.decodeWire's, each node carrying its
// `before` and `after`; folds under one parent merge (their sums add).
export function decodeDiff(wire) {
  const { before, after } = wire;
  return decodeWire(wire, (node, i) => {
    node.before = (node.before || 0) + before[i];
    node.after = (node.after || 0) + after[i];
  });
}

class DiffView {
  constructor() {
    this.fmt = cellFormat("samples");
    const fmt = (v) => this.fmt(v);
    const graph = {
      colourOf: (n) => (n.before === undefined ? null : diffColour(n.before, n.after)),
      tooltipLines: (n) => this.explain(n),
    };
    const table = {
      sortKey: "absChange",
      columns: [
        { key: "name", label: "function" },
        { key: "before_total", label: "before", cell: (r) => fmt(r.before_total) },
        { key: "after_total", label: "after", cell: (r) => fmt(r.after_total) },
        { key: "change", label: "change", cell: (r) => fmtSigned(r.change, fmt),
          cls: (r) => (Math.abs(relChange(r.before_total, r.after_total)) < UNCHANGED ? ""
            : r.change > 0 ? "grew" : "shrank") },
        { key: "changePct", label: "change %", cell: (r) => fmtChangePct(r.change, r.before_total) },
        { key: "absChange", label: "|change|", cell: (r) => fmt(Math.abs(r.change)) },
      ],
    };
    this.panel = new FlamePanel({ graph, table, matchOf: "width" });
    this.graph = this.panel.graph;
    this.table = this.panel.table;
    this.loads = 0;
    if (new URLSearchParams(location.search).get("a")) this.load();
  }

  get tree() {
    return this.panel.tree;
  }

  explain(n) {
    if (n.before === undefined) return null;
    const change = n.after - n.before;
    return [`before ${this.fmt(n.before)} (scaled) · after ${this.fmt(n.after)}`,
      `change ${fmtSigned(change, this.fmt)} (${fmtChangePct(change, n.before)})`];
  }

  async load() {
    const info = $("diff-info");
    try {
      const resp = await fetch(`/sessions/diff.json${location.search}`, { credentials: "same-origin" });
      const data = await resp.json();
      if (!resp.ok) throw new Error(data.error || resp.statusText);
      this.show(data);
    } catch (e) {
      $("diff-error").hidden = false;
      $("diff-error").textContent = `cannot compare: ${e.message}`;
      info.textContent = "";
    }
  }

  show(data) {
    this.data = data;
    this.fmt = cellFormat(data.unit);
    this.graph.unit = data.unit;
    this.panel.show(decodeDiff(data.wire), data.functions.map((r) => ({ ...r,
      absChange: Math.abs(r.change),
      changePct: r.before_total ? r.change / r.before_total : (r.change ? Infinity : 0) })));
    const side = (s) => `#${s.id} ${s.name} +${(s.from_ms - s.origin_ms) / 1000} s … `
      + `+${(s.to_ms - s.origin_ms) / 1000} s (${fmtWeight(s.total, data.unit)})`;
    $("diff-info").textContent = `${data.kind}: A ${side(data.a)} → B ${side(data.b)} · `
      + `A scaled ×${data.wire.scale.toPrecision(3)} · server ${data.server_ms} ms`;
    this.loads += 1;
  }
}

if ($("diff")) {
  const view = new DiffView();
  window.webprofDiff = { view, graph: view.graph, table: view.table,
    get loads() { return view.loads; }, get data() { return view.data; } };
}
