// The new-trace form (/traces/new/).  Everything it knows about a host comes
// from the JSON API: connected hosts (/api/hosts), and per host its processes,
// syscalls, block devices, a binary's symbols and USDT probes, and the
// tracepoints (/api/hosts/<host>/...), each asked of that host's collector.
// Submitting POSTs JSON to /api/traces; a 400's {"errors": {field: message}}
// are shown by their fields, other refusals in the banner at the top, and a
// 201 goes to the trace's page.
//
// Only the fields of the chosen kind are sent, so a field left over from
// another kind cannot make the server refuse the request.  The server checks
// everything again: this page only helps to fill the form in.
// window.webprofTraceForm exposes the state for tests.
import { fmtHourMinute } from "./format.js";
import { csrfToken, request } from "./http.js";

(function () {
  "use strict";
  const form = document.getElementById("trace-form");
  if (!form) return;
  const $ = (id) => document.getElementById(id);
  const DEBOUNCE_MS = 250;
  const MAX_PROC_ROWS = 500;
  const HOSTS_MS = 3000;
  const KIND_FIELDS = JSON.parse($("trace-kind-fields").textContent);
  const LIMITS = JSON.parse($("trace-limits").textContent);
  const state = {
    hosts: [], symbols: [], syscalls: [], processes: [], lastStatus: null, lastBody: null,
    symbolQueries: 0, hostData: {}, // host -> {syscalls, devices} as fetched
  };
  window.webprofTraceForm = state;

  // ---- requests -------------------------------------------------------------
  // One sentence for a failed host query: its errors, or its error.
  function failure({ status, data }) {
    if (data.errors) return Object.values(data.errors).join("; ");
    if (status === 401) return "you are logged out: reload the page to log in again";
    return data.error || `HTTP ${status}`;
  }

  function hostUrl(what, params) {
    const q = params ? `?${new URLSearchParams(params)}` : "";
    return `/api/hosts/${encodeURIComponent(host())}/${what}${q}`;
  }

  function debounce(fn, ms = DEBOUNCE_MS) {
    let timer = 0;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  }

  // ---- fields ---------------------------------------------------------------
  const host = () => $("host").value;
  const kind = () => $("kind").value;
  const target = () => form.querySelector("input[name=target]:checked").value;

  function showFields() {
    const used = KIND_FIELDS[kind()] || [];
    for (const row of form.querySelectorAll(".row.param")) {
      const field = row.dataset.field;
      row.hidden = !used.includes(field);
    }
    const label = form.querySelector(".row.param[data-field=binary] .hint");
    label.textContent = kind() === "usdt"
      ? "an absolute path to the ELF binary or library that declares the probe"
      : "an absolute path to an ELF executable or library on the host";
    for (const el of form.querySelectorAll(".target-field")) {
      el.hidden = !el.dataset.target.split(" ").includes(target());
    }
    if (target() === "system" || target() === "cgroup") closePicker();
    loadKindData();
  }

  function loadKindData() {
    if (!host()) return;
    if (kind() === "syscall") loadSyscalls();
    if (kind() === "biolat") loadDevices();
    if (kind() === "usdt" && $("binary").value.trim()) loadProbes();
  }

  function defaultName() {
    return `${kind()} on ${host() || "?"} ${fmtHourMinute(new Date())}`;
  }

  function durationValue() {
    const v = $("duration").value;
    return v === "custom" ? $("duration-custom").value.trim() : v;
  }

  // A whole number as a number; anything else as typed (the server names the problem).
  function numberOrText(text) {
    const t = String(text).trim();
    return /^-?\d{1,12}$/.test(t) ? Number(t) : t;
  }

  // ---- hosts ----------------------------------------------------------------
  // Refreshed every HOSTS_MS: a collector that connects after the page
  // opened appears without a reload, and the running counts stay current.
  async function loadHosts() {
    const res = await request("/api/hosts");
    setTimeout(loadHosts, HOSTS_MS);
    const sel = $("host");
    if (res.status !== 200) {
      if (!state.hosts.length) sel.replaceChildren(new Option("hosts could not be loaded", ""));
      $("host-info").textContent = `hosts could not be loaded: ${failure(res)}`;
      return;
    }
    state.hosts = res.data.hosts;
    const up = state.hosts.filter((h) => h.connected).map((h) => h.name);
    const shown = [...sel.options].map((o) => o.value);
    const before = host();
    if (up.length && up.join("\n") !== shown.join("\n")) {
      sel.replaceChildren(...up.map((name) => new Option(name, name)));
      const wanted = before || form.dataset.initialHost;
      if (up.includes(wanted)) sel.value = wanted;
    }
    if (!up.length) {
      sel.replaceChildren(new Option("no host is connected", ""));
      $("host-info").textContent = "No collector is connected. Start one on the host to trace "
        + "it (webprof collect --server ws://THIS-SERVER --token TOKEN); it appears here.";
      return;
    }
    if (host() !== before) onHost(); else showHostInfo();
  }

  function showHostInfo() {
    const h = state.hosts.find((x) => x.name === host());
    $("host-info").textContent = h
      ? `kernel ${h.kernel || "?"} · ${h.running_traces} trace${h.running_traces === 1 ? "" : "s"} `
        + `running (limit ${LIMITS.max_per_host})`
      : "";
  }

  function onHost() {
    showHostInfo();
    state.processes = [];
    if (!$("picker").hidden) loadProcesses();
    $("name").placeholder = defaultName();
    loadKindData();
  }

  // ---- process picker -------------------------------------------------------
  function closePicker() {
    $("picker").hidden = true;
    $("pick-process").setAttribute("aria-expanded", "false");
  }

  async function loadProcesses() {
    if (!host()) { $("proc-info").textContent = "choose a host first"; return; }
    $("proc-info").textContent = "loading…";
    const res = await request(hostUrl("processes"));
    if (res.status !== 200) { $("proc-info").textContent = failure(res); return; }
    state.processes = res.data.processes;
    renderProcesses();
  }

  function renderProcesses() {
    const words = $("proc-filter").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const rows = state.processes.filter((p) => {
      const hay = `${p.pid} ${p.comm} ${p.user} ${p.cmdline}`.toLowerCase();
      return words.every((w) => hay.includes(w));
    });
    const body = $("procs").tBodies[0];
    body.replaceChildren(...rows.slice(0, MAX_PROC_ROWS).map((p) => {
      const tr = document.createElement("tr");
      tr.dataset.pid = p.pid;
      tr.dataset.comm = p.comm;
      tr.tabIndex = 0;
      const cells = [[p.pid, "num"], [p.comm, ""], [p.user, ""],
        [Number(p.cpu_percent).toFixed(1), "num"], [p.cmdline, "cmd"]];
      for (const [text, cls] of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        td.className = cls;
        tr.appendChild(td);
      }
      tr.title = p.cmdline;
      return tr;
    }));
    const shown = Math.min(rows.length, MAX_PROC_ROWS);
    $("proc-info").textContent = `${shown} of ${state.processes.length} processes`
      + (rows.length > shown ? " (filter to see more)" : "");
  }

  function pickProcess(tr) {
    if (target() === "comm") {
      $("comm").value = tr.dataset.comm.slice(0, 15);
    } else {
      form.querySelector("input[name=target][value=pid]").checked = true;
      $("pid").value = tr.dataset.pid;
    }
    closePicker();
    showFields();
  }

  // ---- chips (syscalls, symbols) ---------------------------------------------
  function renderChips(list, box, onRemove) {
    box.replaceChildren(...list.map((name) => {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.dataset.name = name;
      chip.append(name);
      const x = document.createElement("button");
      x.type = "button";
      x.textContent = "×";
      x.setAttribute("aria-label", `remove ${name}`);
      x.addEventListener("click", () => onRemove(name));
      chip.appendChild(x);
      return chip;
    }));
  }

  function addNames(list, text) {
    for (const name of text.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean)) {
      if (!list.includes(name)) list.push(name);
    }
  }

  const renderSymbols = () => renderChips(state.symbols, $("symbol-chips"), (n) => {
    state.symbols = state.symbols.filter((s) => s !== n);
    renderSymbols();
  });
  const renderSyscalls = () => renderChips(state.syscalls, $("syscall-chips"), (n) => {
    state.syscalls = state.syscalls.filter((s) => s !== n);
    renderSyscalls();
  });

  // Enter or a comma turns what was typed into chips.
  function chipInput(input, list, render) {
    input.addEventListener("keydown", (e) => {
      if ((e.key === "Enter" || e.key === ",") && input.value.trim()) {
        e.preventDefault();
        addNames(list(), input.value);
        input.value = "";
        render();
      } else if (e.key === "Backspace" && !input.value && list().length) {
        list().pop();
        render();
      }
    });
  }

  // ---- host facts ------------------------------------------------------------
  function cached(key) {
    state.hostData[host()] = state.hostData[host()] || {};
    return state.hostData[host()][key];
  }

  async function loadSyscalls() {
    if (cached("syscalls")) return;
    const res = await request(hostUrl("syscalls"));
    if (res.status !== 200) { showErrors({ syscalls: `syscall list: ${failure(res)}` }); return; }
    state.hostData[host()].syscalls = res.data.syscalls;
    $("syscall-list").replaceChildren(...res.data.syscalls.map((s) => new Option(s, s)));
  }

  async function loadDevices() {
    const sel = $("device");
    let devices = cached("devices");
    if (!devices) {
      const res = await request(hostUrl("devices"));
      if (res.status !== 200) { showErrors({ device: `device list: ${failure(res)}` }); return; }
      devices = state.hostData[host()].devices = res.data.devices;
    }
    const keep = sel.value;
    sel.replaceChildren(new Option("all devices", ""), ...devices.map((d) => new Option(d, d)));
    if (devices.includes(keep)) sel.value = keep;
  }

  // A list of clickable suggestions under an input.
  function suggest(list, input, names, onPick, more) {
    list.replaceChildren(...names.map((name) => {
      const li = document.createElement("li");
      li.setAttribute("role", "option");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = name;
      b.addEventListener("click", () => onPick(name));
      li.appendChild(b);
      return li;
    }));
    if (more) {
      const li = document.createElement("li");
      li.className = "more";
      li.textContent = more;
      list.appendChild(li);
    }
    input.setAttribute("aria-expanded", names.length ? "true" : "false");
  }

  async function querySymbols() {
    const binary = $("binary").value.trim();
    const prefix = $("symbol-input").value.trim();
    const list = $("symbol-suggest");
    if (!binary) { $("symbol-info").textContent = "enter the binary's path first"; return; }
    state.symbolQueries += 1;
    const asked = state.symbolQueries;
    const res = await request(hostUrl("symbols", { binary, prefix }));
    if (asked !== state.symbolQueries) return; // a newer query is on its way
    if (res.status !== 200) {
      list.replaceChildren();
      if (res.data.errors?.binary) showErrors({ binary: res.data.errors.binary });
      $("symbol-info").textContent = failure(res);
      return;
    }
    clearError("binary");
    const names = res.data.symbols.filter((s) => !state.symbols.includes(s));
    suggest(list, $("symbol-input"), names, addSymbol,
      res.data.truncated ? "more match: type more of the name" : "");
    $("symbol-info").textContent = names.length || res.data.truncated
      ? `functions of ${binary} starting with “${prefix}”`
      : `no function of ${binary} starts with “${prefix}”`;
  }

  function addSymbol(name) {
    addNames(state.symbols, name);
    renderSymbols();
    $("symbol-input").value = "";
    $("symbol-suggest").replaceChildren();
    $("symbol-input").setAttribute("aria-expanded", "false");
    $("symbol-input").focus();
  }

  async function loadProbes() {
    const binary = $("binary").value.trim();
    const sel = $("probe");
    if (kind() !== "usdt") return;
    if (!binary) { sel.replaceChildren(new Option("enter the binary first", "")); return; }
    sel.replaceChildren(new Option("loading…", ""));
    const res = await request(hostUrl("usdt", { binary }));
    if (res.status !== 200) {
      sel.replaceChildren(new Option("no probes", ""));
      if (res.data.errors?.binary) showErrors({ binary: res.data.errors.binary });
      $("probe-info").textContent = failure(res);
      return;
    }
    clearError("binary");
    const { probes, semaphores } = res.data;
    sel.replaceChildren(...(probes.length ? probes.map((p) => new Option(p, p))
      : [new Option("this binary declares no USDT probes", "")]));
    $("probe-info").textContent = semaphores.length
      ? `${semaphores.length} of ${probes.length} probes are guarded by a semaphore `
        + "(they fire only while traced)" : `${probes.length} probes`;
  }

  async function queryTracepoints() {
    const prefix = $("tracepoint").value.trim();
    const res = await request(hostUrl("tracepoints", { prefix }));
    if (res.status !== 200) { $("tracepoint-info").textContent = failure(res); return; }
    const names = res.data.tracepoints;
    suggest($("tracepoint-suggest"), $("tracepoint"), names, (name) => {
      $("tracepoint").value = name;
      $("tracepoint-suggest").replaceChildren();
    }, res.data.truncated ? "more match: type more of the name" : "");
    $("tracepoint-info").textContent = names.length
      ? `${names.length}${res.data.truncated ? "+" : ""} tracepoints match`
      : `no tracepoint starts with “${prefix}”`;
  }

  // ---- errors ---------------------------------------------------------------
  function clearError(field) {
    const el = $(`error-${field}`);
    if (el) { el.hidden = true; el.textContent = ""; }
  }

  // Field errors by their fields; ones without a visible field at the top.
  function showErrors(errors, { clear = false } = {}) {
    if (clear) {
      for (const el of document.querySelectorAll(".field-error, #error-__all__")) {
        el.hidden = true;
        el.textContent = "";
      }
    }
    const top = [];
    let first = null;
    for (const [field, message] of Object.entries(errors || {})) {
      const el = field !== "__all__" && $(`error-${field}`);
      // An error <p> is hidden itself; what counts is whether its row is shown.
      if (el && el.parentElement.getClientRects().length) {
        el.textContent = message;
        el.hidden = false;
        first = first || el;
      } else {
        top.push(field === "__all__" ? message : `${field}: ${message}`);
      }
    }
    if (top.length) {
      const banner = $("error-__all__");
      banner.textContent = top.join(" · ");
      banner.hidden = false;
      first = banner;
    }
    if (first) first.scrollIntoView({ block: "center", behavior: "instant" });
  }

  // ---- submit ---------------------------------------------------------------
  function requestBody() {
    const body = { host: host(), kind: kind(), target: target(),
      duration_s: numberOrText(durationValue()) };
    const name = $("name").value.trim();
    if (name) body.name = name;
    if (target() === "pid") body.pid = numberOrText($("pid").value);
    if (target() === "comm") body.comm = $("comm").value.trim();
    if (target() === "cgroup") body.cgroup = $("cgroup").value.trim();
    addNames(state.symbols, $("symbol-input").value); // typed, not yet a chip
    addNames(state.syscalls, $("syscall-input").value);
    $("symbol-input").value = $("syscall-input").value = "";
    renderSymbols();
    renderSyscalls();
    const values = {
      frequency_hz: () => numberOrText($("frequency_hz").value),
      min_block_us: () => numberOrText($("min_block_us").value),
      syscalls: () => state.syscalls.slice(),
      device: () => $("device").value,
      binary: () => $("binary").value.trim(),
      symbols: () => state.symbols.slice(),
      probe: () => $("probe").value,
      tracepoint: () => $("tracepoint").value.trim(),
    };
    for (const field of KIND_FIELDS[kind()] || []) {
      const v = values[field]();
      if (v !== "" && !(Array.isArray(v) && !v.length)) body[field] = v;
    }
    return body;
  }

  async function submit(event) {
    event.preventDefault();
    if (form.dataset.canStart !== "1") return;
    if (!host()) { showErrors({ host: "choose a connected host" }, { clear: true }); return; }
    if ($("duration").value === "custom" && !durationValue()) {
      showErrors({ duration_s: `type a number of seconds, 1 to ${LIMITS.max_duration_s}` },
        { clear: true });
      return;
    }
    const body = requestBody();
    state.lastBody = body;
    $("start").disabled = true;
    $("submit-status").textContent = "asking the host's collector…";
    const res = await request("/api/traces", { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() } });
    state.lastStatus = res.status;
    $("start").disabled = false;
    $("submit-status").textContent = "";
    if (res.status === 201) {
      $("submit-status").textContent = "started; opening the trace…";
      location.href = res.data.url || `/traces/${res.data.id}/`;
      return;
    }
    if (res.status === 400 && res.data.errors) {
      showErrors(res.data.errors, { clear: true });
      return;
    }
    const why = {
      401: "You are logged out: reload the page and log in again.",
      403: `Refused: ${res.data.error || "you may not start traces"}`,
      404: `Unknown host: ${res.data.error || host()}`,
      409: `The host is busy: ${res.data.error || "too many traces are running"}`,
      503: `The host is not connected: ${res.data.error || "its collector went away"}`,
      504: `The host did not answer in time: ${res.data.error || "try again"}`,
    }[res.status] || `The server refused (HTTP ${res.status}): ${failure(res)}`;
    showErrors({ __all__: why }, { clear: true });
    // 404 and 503 also name the field (host) they are about.
    const byField = Object.entries(res.data.errors || {}).filter(([f]) => f !== "__all__");
    if (byField.length) showErrors(Object.fromEntries(byField));
  }

  // ---- wiring ---------------------------------------------------------------
  $("host").addEventListener("change", onHost);
  $("kind").addEventListener("change", () => { showFields(); $("name").placeholder = defaultName(); });
  for (const r of form.querySelectorAll("input[name=target]")) r.addEventListener("change", showFields);
  $("pick-process").addEventListener("click", () => {
    const open = $("picker").hidden;
    $("picker").hidden = !open;
    $("pick-process").setAttribute("aria-expanded", String(open));
    if (open) { loadProcesses(); $("proc-filter").focus(); }
  });
  $("proc-refresh").addEventListener("click", loadProcesses);
  $("proc-filter").addEventListener("input", renderProcesses);
  $("procs").addEventListener("click", (e) => {
    const tr = e.target.closest("tbody tr");
    if (tr) pickProcess(tr);
  });
  $("procs").addEventListener("keydown", (e) => {
    const tr = e.target.closest("tbody tr");
    if (tr && e.key === "Enter") pickProcess(tr);
  });
  chipInput($("syscall-input"), () => state.syscalls, renderSyscalls);
  chipInput($("symbol-input"), () => state.symbols, () => {
    renderSymbols();
    $("symbol-suggest").replaceChildren();
  });
  const symbolsLater = debounce(querySymbols);
  $("symbol-input").addEventListener("input", symbolsLater);
  $("symbol-input").addEventListener("focus", () => {
    if ($("binary").value.trim() && !$("symbol-suggest").children.length) symbolsLater();
  });
  const probesLater = debounce(loadProbes, 500);
  $("binary").addEventListener("input", () => {
    $("symbol-suggest").replaceChildren();
    probesLater();
  });
  $("tracepoint").addEventListener("input", debounce(queryTracepoints));
  $("tracepoint").addEventListener("focus", () => {
    if (!$("tracepoint-suggest").children.length) queryTracepoints();
  });
  $("duration").addEventListener("change", () => {
    $("duration-custom-box").hidden = $("duration").value !== "custom";
    if ($("duration").value === "custom") $("duration-custom").focus();
  });
  form.addEventListener("submit", submit);
  showFields();
  loadHosts();
})();
