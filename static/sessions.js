// Session pages: start times in the browser's local time, recording rows
// of the list kept live (status polled once a second until they end), and
// the copy button of a new share link.
import { fmtBytes, fmtDateTime, fmtElapsed } from "./format.js";

const POLL_MS = 1000;

async function follow(row) {
  let s = null;
  try {
    const resp = await fetch(row.dataset.statusUrl, { credentials: "same-origin" });
    if (resp.ok) s = await resp.json();
  } catch (e) { s = null; }
  if (s) {
    row.querySelector(".duration").textContent = fmtElapsed(s.elapsed_ms);
    const size = row.querySelector(".size");
    size.textContent = fmtBytes(s.size_bytes);
    size.dataset.bytes = s.size_bytes;
    const cell = row.querySelector(".state");
    cell.className = `state state-${s.state}`;
    cell.textContent = s.state === "recording" && s.remaining_ms != null
      ? `recording, ${fmtElapsed(s.remaining_ms)} left` : s.state;
    row.dataset.state = s.state;
    if (s.state !== "recording" && s.state !== "finishing") return;
  }
  setTimeout(() => follow(row), POLL_MS);
}

function bindCopy(button) {
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

for (const t of document.querySelectorAll("time[data-ms]")) {
  t.textContent = fmtDateTime(Number(t.dataset.ms));
}
for (const row of document.querySelectorAll("tr[data-state=recording]")) follow(row);
for (const button of document.querySelectorAll("button[data-copy]")) bindCopy(button);
