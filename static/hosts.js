// Hosts page: refresh the table from /hosts.json every 5 s (no framework).
import { cell, link } from "./dom.js";
import { fmtDateTime } from "./format.js";

const table = document.getElementById("hosts");

function row(h) {
  const tr = document.createElement("tr");
  cell(tr, link(h.url, h.name));
  cell(tr, h.connected ? "connected" : "offline", h.connected ? "up" : "down");
  const time = document.createElement("time");
  time.dateTime = h.last_seen;
  time.textContent = fmtDateTime(h.last_seen);
  cell(tr, time);
  cell(tr, h.kernel);
  cell(tr, h.frequency_hz + " Hz, " + h.interval_ms + " ms");
  return tr;
}

async function refresh() {
  try {
    const resp = await fetch(table.dataset.src, { credentials: "same-origin" });
    if (!resp.ok) return;  // logged out or server restarting: keep the old rows
    const data = await resp.json();
    if (data.hosts.length === 0) return;
    table.querySelector("tbody").replaceChildren(...data.hosts.map(row));
  } catch (err) {
    // Network hiccup: try again on the next tick.
  }
}

if (table) {
  refresh();
  setInterval(refresh, 5000);
}
