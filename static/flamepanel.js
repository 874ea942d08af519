// The flame-graph panel the profile pages share (live, session, diff, trace):
// the canvas, the function table beside it, the search box with its match
// share, the zoom breadcrumb and the icicle toggle, laid out by
// templates/partials/flame_toolbar.html and flame_panes.html.  The ids are
// fixed, so a page has one panel.  Where trees come from, their units and
// colours stay with each page, which hands the panel a tree to show.

import { FlameGraph } from "./flamegraph.js";
import { emptyTree, functionStats, makeMatcher, matchedSamples } from "./flametree.js";
import { cellFormat, fmtPercent } from "./format.js";
import { FunctionTable } from "./table.js";

const $ = (id) => document.getElementById(id);

export class FlamePanel {
  // graph and table: the page's own FlameGraph and FunctionTable options
  // (unit, waker, colourOf, columns, ...).  matchOf names what the match share
  // is a share of: "total" weight, or "width" where widths are not weights
  // (the diff's max(A scaled, B)).  onFilter(text), on pages with the process
  // filter form: applied ("" when cleared).
  constructor({ graph = {}, table = {}, matchOf = "total", onFilter = null } = {}) {
    this.tree = null; // the tree shown
    this.search = { test: null, error: null };
    this.matchOf = matchOf;
    this.graph = new FlameGraph($("flamegraph"),
      { ...graph, onZoom: (p) => this.renderBreadcrumb(p) });
    this.table = new FunctionTable($("functions"),
      { ...table, onSelect: (n) => this.searchExact(n) });
    $("icicle").addEventListener("change", (e) => this.graph.setIcicle(e.target.checked));
    $("search").addEventListener("input", (e) => this.setSearch(e.target.value));
    if (!onFilter) return;
    $("filter-form").addEventListener("submit", (e) => {
      e.preventDefault();
      onFilter($("filter").value);
    });
    $("filter-clear").addEventListener("click", () => {
      $("filter").value = "";
      onFilter("");
    });
  }

  // Draw `tree` and list its functions: per-function stats of the tree, or
  // the page's own `rows` when its table has its own columns.
  show(tree, rows = null) {
    this.tree = tree;
    this.graph.setTree(tree);
    if (rows) this.table.setRows(rows);
    else this.table.update(functionStats(tree), tree.total);
    this.renderSearch();
  }

  // Weights in "us" (time blocked) or sample counts, for the tooltip and table.
  setUnit(unit) {
    this.graph.unit = unit;
    this.table.fmt = cellFormat(unit);
  }

  setSearch(text) {
    this.search = makeMatcher(text);
    this.graph.setSearch(this.search.test);
    this.table.select(null);
    this.renderSearch();
  }

  // A table row selects exactly that function, hence an anchored regex.
  searchExact(name) {
    const text = `/^${name.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}$/`;
    $("search").value = text;
    this.setSearch(text);
    this.table.select(name);
  }

  renderSearch() {
    const out = $("search-result");
    const { test, error } = this.search;
    const tree = this.tree || emptyTree();
    if (error) out.textContent = error;
    else if (!test) out.textContent = "";
    else {
      const matched = tree.total ? matchedSamples(tree, test) : 0;
      out.textContent = `matched: ${fmtPercent(matched, tree.total)} of ${this.matchOf}`;
    }
  }

  // One button per step from the root to the zoomed frame; a click zooms there.
  renderBreadcrumb(path = this.graph.zoomPath()) {
    $("breadcrumb").replaceChildren(...path.map((step, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "crumb";
      b.textContent = step.name;
      b.title = step.name;
      if (i === path.length - 1) b.setAttribute("aria-current", "true");
      b.addEventListener("click", () => this.graph.zoomTo(path.slice(1, i + 1).map((s) => s.key)));
      return b;
    }));
  }
}
