// Session pages: start times in the browser's local time, recording rows
// of the list kept live (status polled once a second until they end), and
// the copy button of a new share link.
import { fmtBytes } from "./format.js";

(function () {
  "use strict";
  const POLL_MS = 1000;
  const fmtDur = (ms) => {
    const s = Math.floor(ms / 1000);
    if (s < 60) return `${(ms / 1000).toFixed(1)} s`;
    const pad = (n) => String(n).padStart(2, "0");
    return s < 3600 ? `${Math.floor(s / 60)}:${pad(s % 60)} min`
      : `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
  };

  for (const t of document.querySelectorAll("time[data-ms]")) {
    t.textContent = new Date(Number(t.dataset.ms)).toLocaleString();
  }

  async function follow(row) {
    let s = null;
    try {
      const resp = await fetch(row.dataset.statusUrl, { credentials: "same-origin" });
      if (resp.ok) s = await resp.json();
    } catch (e) { s = null; }
    if (s) {
      row.querySelector(".duration").textContent = fmtDur(s.elapsed_ms);
      const size = row.querySelector(".size");
      size.textContent = fmtBytes(s.size_bytes);
      size.dataset.bytes = s.size_bytes;
      const cell = row.querySelector(".state");
      cell.className = `state state-${s.state}`;
      cell.textContent = s.state === "recording" && s.remaining_ms != null
        ? `recording, ${fmtDur(s.remaining_ms)} left` : s.state;
      row.dataset.state = s.state;
      if (s.state !== "recording" && s.state !== "finishing") return;
    }
    setTimeout(() => follow(row), POLL_MS);
  }
  for (const row of document.querySelectorAll("tr[data-state=recording]")) follow(row);

  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const input = document.querySelector(button.dataset.copy);
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
      } catch (e) {
        document.execCommand("copy"); // http:// pages have no async clipboard
      }
      const note = document.getElementById("share-copied");
      if (note) note.hidden = false;
    });
  }
})();
