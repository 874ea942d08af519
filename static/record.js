// The Record control of the live pages: start a recording of this host
// (POST /sessions/record/), poll its status about once a second for the
// progress bar, stop it, and link to the session once it has ended.
//
// Errors come back as {"errors": {field: message}} and are shown next to the
// field they belong to.  window.webprofRecord exposes the state for tests.
import { fmtBytes, fmtClock, fmtStamp } from "./format.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
const root = $("record");
const state = { id: null, status: null, polls: 0, statusUrl: null, stopUrl: null, url: null };

const csrf = () => root.querySelector("[name=csrfmiddlewaretoken]").value;

function defaultName() {
  return `${root.dataset.host} ${fmtStamp(new Date())}`;
}

function showErrors(errors) {
  for (const el of root.querySelectorAll(".field-error")) { el.hidden = true; el.textContent = ""; }
  for (const [field, message] of Object.entries(errors || {})) {
    const el = $(`record-error-${field}`) || $("record-error-host");
    el.textContent = message;
    el.hidden = false;
  }
}

function durationValue() {
  const choice = $("record-duration").value;
  return choice === "custom" ? $("record-custom").value.trim() : choice;
}

async function post(url, body) {
  const resp = await fetch(url, { method: "POST", body, credentials: "same-origin",
    headers: { "X-CSRFToken": csrf(), Accept: "application/json" } });
  let data = {};
  try { data = await resp.json(); } catch (e) {
    data = { errors: { host: `the server answered ${resp.status} ${resp.statusText}` } };
  }
  return { ok: resp.ok, data };
}

async function start(event) {
  event.preventDefault();
  if ($("record-duration").value === "custom" && !durationValue()) {
    showErrors({ duration_s: "Type a number of seconds, 1 to 86400." });
    return;
  }
  const body = new FormData();
  body.append("host", root.dataset.host);
  body.append("name", $("record-name").value.trim() || defaultName());
  body.append("duration_s", durationValue());
  $("record-start").disabled = true;
  const { ok, data } = await post(root.dataset.url, body);
  $("record-start").disabled = false;
  if (!ok) { showErrors(data.errors); return; }
  showErrors({});
  Object.assign(state, { id: data.id, statusUrl: data.status_url, stopUrl: data.stop_url,
    url: data.url, status: null, polls: 0 });
  $("record-form").hidden = true;
  $("record-done").hidden = true;
  $("record-live").hidden = false;
  $("record-stop").disabled = false;
  poll();
}

function render(s) {
  const bar = $("record-bar");
  if (s.planned_ms) {
    bar.max = s.planned_ms;
    bar.value = Math.min(s.planned_ms, s.elapsed_ms);
  } else {
    bar.removeAttribute("value"); // indeterminate: until stopped
  }
  const left = s.remaining_ms != null && s.planned_ms ? `, ${fmtClock(s.remaining_ms)} left` : "";
  const what = s.state === "finishing" ? "finishing" : "recording";
  $("record-text").textContent = `● ${what} ${fmtClock(s.elapsed_ms)}${left} · `
    + `${s.intervals} interval${s.intervals === 1 ? "" : "s"}, ${fmtBytes(s.size_bytes)}`
    + (s.errors ? ` · ${s.errors} not saved` : "");
}

function finish(s) {
  $("record-live").hidden = true;
  $("record-form").hidden = false;
  $("record-name").value = "";
  const link = $("record-link");
  link.href = state.url;
  link.textContent = s.name;
  $("record-summary").textContent = `${s.state === "interrupted" ? "interrupted · " : ""}`
    + `${fmtClock(s.elapsed_ms)}, ${s.intervals} intervals, ${fmtBytes(s.size_bytes)}`;
  $("record-done").hidden = false;
}

async function poll() {
  let s;
  try {
    const resp = await fetch(state.statusUrl, { credentials: "same-origin" });
    s = resp.ok ? await resp.json() : null;
  } catch (e) { s = null; }
  state.polls++;
  if (s) {
    state.status = s;
    if (s.state === "recording" || s.state === "finishing") render(s);
    else { finish(s); return; }
  }
  setTimeout(poll, POLL_MS);
}

async function stop() {
  $("record-stop").disabled = true;
  const { ok, data } = await post(state.stopUrl, new FormData());
  if (!ok && data.errors) $("record-text").textContent = Object.values(data.errors).join(" ");
}

if (root) {
  window.webprofRecord = state;
  $("record-duration").addEventListener("change", () => {
    $("record-custom").hidden = $("record-duration").value !== "custom";
  });
  $("record-form").addEventListener("submit", start);
  $("record-stop").addEventListener("click", stop);
  $("record-name").placeholder = defaultName();
}
