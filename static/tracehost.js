// What the new-trace form (tracenew.js) asks about hosts: the connected
// hosts (/api/hosts), and per host its processes, syscalls, block devices, a
// binary's symbols and USDT probes, and the tracepoints
// (/api/hosts/<host>/...), each answered by that host's collector.  This
// module shows the answers: the host select and its line of facts, the
// process picker, the syscall datalist, the device and probe selects and the
// suggestion lists under the symbol and tracepoint inputs.  What a pick does
// to the form, and how field errors are shown, is the form's.

import { cell } from "./dom.js";
import { request } from "./http.js";

const $ = (id) => document.getElementById(id);
const DEBOUNCE_MS = 250;
const MAX_PROC_ROWS = 500;
const HOSTS_MS = 3000;
const MORE = "more match: type more of the name";

// One sentence for a failed host query: its errors, or its error.
export function failure({ status, data }) {
  if (data.errors) return Object.values(data.errors).join("; ");
  if (status === 401) return "you are logged out: reload the page to log in again";
  return data.error || `HTTP ${status}`;
}

function debounce(fn, ms = DEBOUNCE_MS) {
  let timer = 0;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
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

export class HostQueries {
  // state: the form's state, of which this writes hosts, processes,
  // hostData (host -> {syscalls, devices} as fetched) and symbolQueries,
  // and reads symbols.  form: the TraceForm, for kind(), the initial host,
  // showErrors(), clearError(), hostChanged(), addSymbol(name) and
  // pickProcess(row).
  constructor(state, form) {
    this.state = state;
    this.form = form;
    this.limits = form.limits;
  }

  host() {
    return $("host").value;
  }

  url(what, params) {
    const q = params ? `?${new URLSearchParams(params)}` : "";
    return `/api/hosts/${encodeURIComponent(this.host())}/${what}${q}`;
  }

  // ---- hosts ----------------------------------------------------------------
  // Refreshed every HOSTS_MS: a collector that connects after the page
  // opened appears without a reload, and the running counts stay current.
  async loadHosts() {
    const res = await request("/api/hosts");
    setTimeout(() => this.loadHosts(), HOSTS_MS);
    const sel = $("host");
    if (res.status !== 200) {
      if (!this.state.hosts.length) sel.replaceChildren(new Option("hosts could not be loaded", ""));
      $("host-info").textContent = `hosts could not be loaded: ${failure(res)}`;
      return;
    }
    this.state.hosts = res.data.hosts;
    const up = this.state.hosts.filter((h) => h.connected).map((h) => h.name);
    const shown = [...sel.options].map((o) => o.value);
    const before = this.host();
    if (up.length && up.join("\n") !== shown.join("\n")) {
      sel.replaceChildren(...up.map((name) => new Option(name, name)));
      const wanted = before || this.form.initialHost;
      if (up.includes(wanted)) sel.value = wanted;
    }
    if (!up.length) {
      sel.replaceChildren(new Option("no host is connected", ""));
      $("host-info").textContent = "No collector is connected. Start one on the host to trace "
        + "it (webprof collect --server ws://THIS-SERVER --token TOKEN); it appears here.";
      return;
    }
    if (this.host() !== before) this.form.hostChanged(); else this.showHostInfo();
  }

  showHostInfo() {
    const h = this.state.hosts.find((x) => x.name === this.host());
    $("host-info").textContent = h
      ? `kernel ${h.kernel || "?"} · ${h.running_traces} trace${h.running_traces === 1 ? "" : "s"} `
        + `running (limit ${this.limits.max_per_host})`
      : "";
  }

  // Another host: its facts, and what the form showed of the last one again.
  changedHost() {
    this.showHostInfo();
    this.state.processes = [];
    if (!$("picker").hidden) this.loadProcesses();
  }

  // What the chosen kind needs of the host.
  loadKindData() {
    if (!this.host()) return;
    const kind = this.form.kind();
    if (kind === "syscall") this.loadSyscalls();
    if (kind === "biolat") this.loadDevices();
    if (kind === "usdt" && $("binary").value.trim()) this.loadProbes();
  }

  // ---- process picker -------------------------------------------------------
  closePicker() {
    $("picker").hidden = true;
    $("pick-process").setAttribute("aria-expanded", "false");
  }

  togglePicker() {
    const open = $("picker").hidden;
    $("picker").hidden = !open;
    $("pick-process").setAttribute("aria-expanded", String(open));
    if (open) { this.loadProcesses(); $("proc-filter").focus(); }
  }

  async loadProcesses() {
    if (!this.host()) { $("proc-info").textContent = "choose a host first"; return; }
    $("proc-info").textContent = "loading…";
    const res = await request(this.url("processes"));
    if (res.status !== 200) { $("proc-info").textContent = failure(res); return; }
    this.state.processes = res.data.processes;
    this.renderProcesses();
  }

  renderProcesses() {
    const words = $("proc-filter").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const all = this.state.processes;
    const rows = all.filter((p) => {
      const hay = `${p.pid} ${p.comm} ${p.user} ${p.cmdline}`.toLowerCase();
      return words.every((w) => hay.includes(w));
    });
    $("procs").tBodies[0].replaceChildren(...rows.slice(0, MAX_PROC_ROWS).map(processRow));
    const shown = Math.min(rows.length, MAX_PROC_ROWS);
    $("proc-info").textContent = `${shown} of ${all.length} processes`
      + (rows.length > shown ? " (filter to see more)" : "");
  }

  // ---- host facts ------------------------------------------------------------
  cached(key) {
    const data = this.state.hostData;
    data[this.host()] = data[this.host()] || {};
    return data[this.host()][key];
  }

  async loadSyscalls() {
    if (this.cached("syscalls")) return;
    const res = await request(this.url("syscalls"));
    if (res.status !== 200) {
      this.form.showErrors({ syscalls: `syscall list: ${failure(res)}` });
      return;
    }
    this.state.hostData[this.host()].syscalls = res.data.syscalls;
    $("syscall-list").replaceChildren(...res.data.syscalls.map((s) => new Option(s, s)));
  }

  async loadDevices() {
    const sel = $("device");
    let devices = this.cached("devices");
    if (!devices) {
      const res = await request(this.url("devices"));
      if (res.status !== 200) {
        this.form.showErrors({ device: `device list: ${failure(res)}` });
        return;
      }
      devices = this.state.hostData[this.host()].devices = res.data.devices;
    }
    const keep = sel.value;
    sel.replaceChildren(new Option("all devices", ""), ...devices.map((d) => new Option(d, d)));
    if (devices.includes(keep)) sel.value = keep;
  }

  async querySymbols() {
    const binary = $("binary").value.trim();
    const prefix = $("symbol-input").value.trim();
    const list = $("symbol-suggest");
    if (!binary) { $("symbol-info").textContent = "enter the binary's path first"; return; }
    this.state.symbolQueries += 1;
    const asked = this.state.symbolQueries;
    const res = await request(this.url("symbols", { binary, prefix }));
    if (asked !== this.state.symbolQueries) return; // a newer query is on its way
    if (res.status !== 200) {
      list.replaceChildren();
      this.binaryFailed(res, "symbol-info");
      return;
    }
    this.form.clearError("binary");
    const names = res.data.symbols.filter((s) => !this.state.symbols.includes(s));
    suggest(list, $("symbol-input"), names, (name) => this.form.addSymbol(name),
      res.data.truncated ? MORE : "");
    $("symbol-info").textContent = names.length || res.data.truncated
      ? `functions of ${binary} starting with “${prefix}”`
      : `no function of ${binary} starts with “${prefix}”`;
  }

  // A refused symbols or probes query: by the binary field when it is about
  // the binary, and in the query's own line.
  binaryFailed(res, infoId) {
    if (res.data.errors?.binary) this.form.showErrors({ binary: res.data.errors.binary });
    $(infoId).textContent = failure(res);
  }

  async loadProbes() {
    const binary = $("binary").value.trim();
    const sel = $("probe");
    if (this.form.kind() !== "usdt") return;
    if (!binary) { sel.replaceChildren(new Option("enter the binary first", "")); return; }
    sel.replaceChildren(new Option("loading…", ""));
    const res = await request(this.url("usdt", { binary }));
    if (res.status !== 200) {
      sel.replaceChildren(new Option("no probes", ""));
      this.binaryFailed(res, "probe-info");
      return;
    }
    this.form.clearError("binary");
    const { probes, semaphores } = res.data;
    sel.replaceChildren(...(probes.length ? probes.map((p) => new Option(p, p))
      : [new Option("this binary declares no USDT probes", "")]));
    $("probe-info").textContent = semaphores.length
      ? `${semaphores.length} of ${probes.length} probes are guarded by a semaphore `
        + "(they fire only while traced)" : `${probes.length} probes`;
  }

  async queryTracepoints() {
    const prefix = $("tracepoint").value.trim();
    const res = await request(this.url("tracepoints", { prefix }));
    if (res.status !== 200) { $("tracepoint-info").textContent = failure(res); return; }
    const names = res.data.tracepoints;
    suggest($("tracepoint-suggest"), $("tracepoint"), names, (name) => {
      $("tracepoint").value = name;
      $("tracepoint-suggest").replaceChildren();
    }, res.data.truncated ? MORE : "");
    $("tracepoint-info").textContent = names.length
      ? `${names.length}${res.data.truncated ? "+" : ""} tracepoints match`
      : `no tracepoint starts with “${prefix}”`;
  }

  // ---- wiring ---------------------------------------------------------------
  bind() {
    $("pick-process").addEventListener("click", () => this.togglePicker());
    $("proc-refresh").addEventListener("click", () => this.loadProcesses());
    $("proc-filter").addEventListener("input", () => this.renderProcesses());
    $("procs").addEventListener("click", (e) => {
      const tr = e.target.closest("tbody tr");
      if (tr) this.form.pickProcess(tr);
    });
    $("procs").addEventListener("keydown", (e) => {
      const tr = e.target.closest("tbody tr");
      if (tr && e.key === "Enter") this.form.pickProcess(tr);
    });
    const symbolsLater = debounce(() => this.querySymbols());
    $("symbol-input").addEventListener("input", symbolsLater);
    $("symbol-input").addEventListener("focus", () => {
      if ($("binary").value.trim() && !$("symbol-suggest").children.length) symbolsLater();
    });
    const probesLater = debounce(() => this.loadProbes(), 500);
    $("binary").addEventListener("input", () => {
      $("symbol-suggest").replaceChildren();
      probesLater();
    });
    $("tracepoint").addEventListener("input", debounce(() => this.queryTracepoints()));
    $("tracepoint").addEventListener("focus", () => {
      if (!$("tracepoint-suggest").children.length) this.queryTracepoints();
    });
  }
}

// One row of the process picker; its data-pid and data-comm are what a pick fills in.
function processRow(p) {
  const tr = document.createElement("tr");
  tr.dataset.pid = p.pid;
  tr.dataset.comm = p.comm;
  tr.tabIndex = 0;
  const cells = [[p.pid, "num"], [p.comm, ""], [p.user, ""],
    [Number(p.cpu_percent).toFixed(1), "num"], [p.cmdline, "cmd"]];
  for (const [text, cls] of cells) cell(tr, text, cls);
  tr.title = p.cmdline;
  return tr;
}
