// Sortable per-function table beside the flame graph.  Fed with
// flametree.functionStats(); shows the top MAX_ROWS rows by the chosen column
// so a 16k-node tree never turns into a 16k-row DOM rebuild every second.
// With unit "us" (off-CPU views) self and total are times, shown as µs/ms/s.

import { cellFormat } from "./format.js";

const MAX_ROWS = 200;
const COLUMNS = [
  { key: "name", label: "function" },
  { key: "self", label: "self" },
  { key: "selfPct", label: "self %" },
  { key: "total", label: "total" },
  { key: "totalPct", label: "total %" },
];

function escapeHtml(s) {
  // Frame names come from arbitrary binaries; never let one become markup.
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export class FunctionTable {
  // `columns` (optional) replaces the default columns: [{key, label, cell(row)
  // -> HTML-safe text, cls(row) -> class name or ""}]; rows then come from
  // setRows() and `sortKey` names the column sorted first.
  constructor(table, { onSelect = null, unit = "samples", columns = null, sortKey = null } = {}) {
    this.table = table;
    this.fmt = cellFormat(unit);
    this.onSelect = onSelect;
    this.columns = columns || COLUMNS;
    // Every off-CPU stack ends in the scheduler, so "self" says little there:
    // time-weighted tables open sorted by total instead.
    this.sortKey = sortKey || (unit === "us" ? "total" : "self");
    this.descending = true;
    this.rows = [];
    this.selected = null;
    this.head = table.createTHead();
    this.body = table.tBodies[0] || table.createTBody();
    this.caption = table.createCaption();
    this.renderHead();
    this.head.addEventListener("click", (e) => {
      const th = e.target.closest("th");
      if (th) this.sortBy(th.dataset.key);
    });
    this.body.addEventListener("click", (e) => {
      const tr = e.target.closest("tr");
      if (!tr || tr.dataset.index === undefined) return;
      const row = this.shown[Number(tr.dataset.index)];
      if (row && this.onSelect) this.onSelect(row.name);
    });
  }

  renderHead() {
    const cells = this.columns.map((c) => {
      const arrow = c.key === this.sortKey ? (this.descending ? " ▼" : " ▲") : "";
      const sort = c.key === this.sortKey ? (this.descending ? "descending" : "ascending") : "none";
      return `<th data-key="${c.key}" aria-sort="${sort}" title="sort by ${c.label}">${c.label}${arrow}</th>`;
    });
    this.head.innerHTML = `<tr>${cells.join("")}</tr>`;
  }

  // Clicking the sorted column flips the direction; another column sorts
  // descending first (biggest numbers are what one looks for), names ascending.
  sortBy(key) {
    if (!this.columns.some((c) => c.key === key)) return;
    if (key === this.sortKey) this.descending = !this.descending;
    else {
      this.sortKey = key;
      this.descending = key !== "name";
    }
    this.renderHead();
    this.renderBody();
  }

  // stats: Map of key -> {name, self, total}; totalSamples: the view's total.
  update(stats, totalSamples) {
    const t = totalSamples || 1;
    this.rows = Array.from(stats.values(), (s) => ({
      name: s.name,
      self: s.self,
      total: s.total,
      selfPct: (100 * s.self) / t,
      totalPct: (100 * s.total) / t,
    }));
    this.renderBody();
  }

  // Rows of the caller's own columns (see the constructor).
  setRows(rows) {
    this.rows = rows;
    this.renderBody();
  }

  select(name) {
    this.selected = name;
    this.renderBody();
  }

  renderBody() {
    const key = this.sortKey;
    const dir = this.descending ? -1 : 1;
    const cmp = key === "name"
      ? (a, b) => dir * a.name.localeCompare(b.name)
      : (a, b) => dir * (a[key] - b[key]) || a.name.localeCompare(b.name);
    this.shown = this.rows.slice().sort(cmp).slice(0, MAX_ROWS);
    const custom = this.columns !== COLUMNS;
    const html = this.shown.map((r, i) => {
      const sel = r.name === this.selected ? ' class="selected"' : "";
      const kernel = r.name.endsWith("_[k]") ? ' data-kernel="1"' : "";
      const head = `<tr data-index="${i}"${sel}${kernel}><td class="fn" title="${escapeHtml(r.name)}">`
        + `${escapeHtml(r.name)}</td>`;
      if (custom) {
        return head + this.columns.slice(1).map((c) => {
          const cls = c.cls ? c.cls(r) : "";
          return `<td${cls ? ` class="${cls}"` : ""}>${c.cell(r)}</td>`;
        }).join("") + "</tr>";
      }
      return head + `<td>${this.fmt(r.self)}</td><td>${r.selfPct.toFixed(2)}</td>`
        + `<td>${this.fmt(r.total)}</td><td>${r.totalPct.toFixed(2)}</td></tr>`;
    });
    this.body.innerHTML = html.join("");
    const more = this.rows.length > MAX_ROWS ? ` (top ${MAX_ROWS} shown)` : "";
    this.caption.textContent = `${this.rows.length} functions${more}`;
  }
}
