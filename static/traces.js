// The traces list (/traces/): running and recent traces from GET /api/traces,
// refreshed every 2 s while one is active (its state and progress change),
// else every 15 s (a trace started elsewhere appears).
// window.webprofTraces exposes the state for tests.
import { cell, link } from "./dom.js";
import { fmtClock, fmtDateTime } from "./format.js";

const FINAL = ["finished", "cancelled", "failed"];
const ACTIVE_MS = 2000;
const IDLE_MS = 15000;
const table = document.getElementById("traces");
const state = { traces: [], loads: 0 };

function row(t) {
  const tr = document.createElement("tr");
  tr.dataset.id = t.id;
  tr.dataset.state = t.state;
  cell(tr, link(t.url, t.name), "name");
  cell(tr, t.host, "host");
  const what = document.createElement("span");
  const kind = document.createElement("strong");
  kind.textContent = t.kind;
  what.append(kind, document.createElement("br"), t.description);
  cell(tr, what, "desc");
  cell(tr, t.created_by || "—", "by");
  const badge = document.createElement("span");
  badge.className = `badge ${t.state}`;
  badge.textContent = t.state;
  const st = cell(tr, badge, "state");
  if (!FINAL.includes(t.state)) {
    st.append(` ${fmtClock(t.elapsed_ms)} / ${fmtClock(t.duration_s * 1000)}`);
  } else if (t.reason) {
    st.title = t.reason;
  }
  const time = document.createElement("time");
  time.dateTime = t.created;
  time.textContent = fmtDateTime(t.created);
  cell(tr, time, "started");
  cell(tr, `${t.duration_s} s`, "num duration");
  cell(tr, t.session_url ? link(t.session_url, FINAL.includes(t.state) ? "session" : "session (filling)")
    : "—", "result");
  return tr;
}

// Shows one answer of the API; true while a trace in it is still active.
function show(resp, data) {
  const banner = document.getElementById("list-error");
  if (!resp.ok) {
    banner.hidden = false;
    banner.textContent = resp.status === 401 ? "You are logged out: reload the page to log in."
      : `Could not load the traces: ${data.error || resp.status}`;
    return false;
  }
  banner.hidden = true;
  state.traces = data.traces;
  state.loads += 1;
  const body = table.tBodies[0];
  if (data.traces.length) body.replaceChildren(...data.traces.map(row));
  else body.innerHTML = '<tr class="empty"><td colspan="8">No traces yet. '
    + 'Start one with <a href="/traces/new/">New trace</a>.</td></tr>';
  return data.traces.some((t) => !FINAL.includes(t.state));
}

async function refresh() {
  let active = false;
  try {
    const resp = await fetch(table.dataset.src, { credentials: "same-origin",
      headers: { Accept: "application/json" } });
    const data = await resp.json().catch(() => ({ error: `HTTP ${resp.status}` }));
    active = show(resp, data);
  } catch (e) {
    // The server is restarting: try again on the next tick.
  }
  setTimeout(refresh, active ? ACTIVE_MS : IDLE_MS);
}

if (table) {
  window.webprofTraces = state;
  refresh();
}
