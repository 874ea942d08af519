// Hosts page: refresh the table from /hosts.json every 5 s (no framework).
"use strict";
(function () {
  const table = document.getElementById("hosts");
  if (!table) return;
  const body = table.querySelector("tbody");

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function row(h) {
    const tr = document.createElement("tr");
    const link = document.createElement("a");
    link.href = h.url;
    link.textContent = h.name;
    cell(tr, "").appendChild(link);
    cell(tr, h.connected ? "connected" : "offline", h.connected ? "up" : "down");
    const time = document.createElement("time");
    time.dateTime = h.last_seen;
    time.textContent = new Date(h.last_seen).toLocaleString();
    cell(tr, "").appendChild(time);
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
      body.replaceChildren(...data.hosts.map(row));
    } catch (err) {
      // Network hiccup: try again on the next tick.
    }
  }

  refresh();
  setInterval(refresh, 5000);
})();
