// The new-trace form (/traces/new/): its fields, the errors shown by them,
// and the submit.  What it asks of the hosts (the host list, processes,
// syscalls, devices, symbols, USDT probes, tracepoints) is tracehost.js.
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
import { HostQueries, failure } from "./tracehost.js";

const $ = (id) => document.getElementById(id);

// A whole number as a number; anything else as typed (the server names the problem).
function numberOrText(text) {
  const t = String(text).trim();
  return /^-?\d{1,12}$/.test(t) ? Number(t) : t;
}

function addNames(list, text) {
  for (const name of text.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean)) {
    if (!list.includes(name)) list.push(name);
  }
}

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

// Why the server refused a start, for the banner at the top.
function refusal(res, host) {
  return {
    401: "You are logged out: reload the page and log in again.",
    403: `Refused: ${res.data.error || "you may not start traces"}`,
    404: `Unknown host: ${res.data.error || host}`,
    409: `The host is busy: ${res.data.error || "too many traces are running"}`,
    503: `The host is not connected: ${res.data.error || "its collector went away"}`,
    504: `The host did not answer in time: ${res.data.error || "try again"}`,
  }[res.status] || `The server refused (HTTP ${res.status}): ${failure(res)}`;
}

class TraceForm {
  constructor(form) {
    this.el = form;
    this.kindFields = JSON.parse($("trace-kind-fields").textContent);
    this.limits = JSON.parse($("trace-limits").textContent);
    this.state = {
      hosts: [], symbols: [], syscalls: [], processes: [], lastStatus: null, lastBody: null,
      symbolQueries: 0, hostData: {}, // host -> {syscalls, devices} as fetched
    };
    this.hosts = new HostQueries(this.state, this);
  }

  // ---- fields ---------------------------------------------------------------
  host() { return this.hosts.host(); }

  kind() { return $("kind").value; }

  target() { return this.el.querySelector("input[name=target]:checked").value; }

  get initialHost() { return this.el.dataset.initialHost; }

  showFields() {
    const used = this.kindFields[this.kind()] || [];
    for (const row of this.el.querySelectorAll(".row.param")) {
      row.hidden = !used.includes(row.dataset.field);
    }
    const label = this.el.querySelector(".row.param[data-field=binary] .hint");
    label.textContent = this.kind() === "usdt"
      ? "an absolute path to the ELF binary or library that declares the probe"
      : "an absolute path to an ELF executable or library on the host";
    for (const el of this.el.querySelectorAll(".target-field")) {
      el.hidden = !el.dataset.target.split(" ").includes(this.target());
    }
    if (this.target() === "system" || this.target() === "cgroup") this.hosts.closePicker();
    this.hosts.loadKindData();
  }

  hostChanged() {
    this.hosts.changedHost();
    $("name").placeholder = this.defaultName();
    this.hosts.loadKindData();
  }

  defaultName() {
    return `${this.kind()} on ${this.host() || "?"} ${fmtHourMinute(new Date())}`;
  }

  durationValue() {
    const v = $("duration").value;
    return v === "custom" ? $("duration-custom").value.trim() : v;
  }

  pickProcess(tr) {
    if (this.target() === "comm") {
      $("comm").value = tr.dataset.comm.slice(0, 15);
    } else {
      this.el.querySelector("input[name=target][value=pid]").checked = true;
      $("pid").value = tr.dataset.pid;
    }
    this.hosts.closePicker();
    this.showFields();
  }

  // ---- chips (syscalls, symbols) ---------------------------------------------
  renderSymbols() {
    renderChips(this.state.symbols, $("symbol-chips"), (n) => {
      this.state.symbols = this.state.symbols.filter((s) => s !== n);
      this.renderSymbols();
    });
  }

  renderSyscalls() {
    renderChips(this.state.syscalls, $("syscall-chips"), (n) => {
      this.state.syscalls = this.state.syscalls.filter((s) => s !== n);
      this.renderSyscalls();
    });
  }

  addSymbol(name) {
    addNames(this.state.symbols, name);
    this.renderSymbols();
    $("symbol-input").value = "";
    $("symbol-suggest").replaceChildren();
    $("symbol-input").setAttribute("aria-expanded", "false");
    $("symbol-input").focus();
  }

  // ---- errors ---------------------------------------------------------------
  clearError(field) {
    const el = $(`error-${field}`);
    if (el) { el.hidden = true; el.textContent = ""; }
  }

  // Field errors by their fields; ones without a visible field at the top.
  showErrors(errors, { clear = false } = {}) {
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
  requestBody() {
    const target = this.target();
    const body = { host: this.host(), kind: this.kind(), target,
      duration_s: numberOrText(this.durationValue()) };
    const name = $("name").value.trim();
    if (name) body.name = name;
    if (target === "pid") body.pid = numberOrText($("pid").value);
    if (target === "comm") body.comm = $("comm").value.trim();
    if (target === "cgroup") body.cgroup = $("cgroup").value.trim();
    addNames(this.state.symbols, $("symbol-input").value); // typed, not yet a chip
    addNames(this.state.syscalls, $("syscall-input").value);
    $("symbol-input").value = $("syscall-input").value = "";
    this.renderSymbols();
    this.renderSyscalls();
    const values = {
      frequency_hz: () => numberOrText($("frequency_hz").value),
      min_block_us: () => numberOrText($("min_block_us").value),
      syscalls: () => this.state.syscalls.slice(),
      device: () => $("device").value,
      binary: () => $("binary").value.trim(),
      symbols: () => this.state.symbols.slice(),
      probe: () => $("probe").value,
      tracepoint: () => $("tracepoint").value.trim(),
    };
    for (const field of this.kindFields[this.kind()] || []) {
      const v = values[field]();
      if (v !== "" && !(Array.isArray(v) && !v.length)) body[field] = v;
    }
    return body;
  }

  async submit(event) {
    event.preventDefault();
    if (this.el.dataset.canStart !== "1") return;
    if (!this.host()) { this.showErrors({ host: "choose a connected host" }, { clear: true }); return; }
    if ($("duration").value === "custom" && !this.durationValue()) {
      this.showErrors({ duration_s: `type a number of seconds, 1 to ${this.limits.max_duration_s}` },
        { clear: true });
      return;
    }
    const body = this.requestBody();
    this.state.lastBody = body;
    $("start").disabled = true;
    $("submit-status").textContent = "asking the host's collector…";
    const res = await request("/api/traces", { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() } });
    this.state.lastStatus = res.status;
    $("start").disabled = false;
    $("submit-status").textContent = "";
    if (res.status === 201) {
      $("submit-status").textContent = "started; opening the trace…";
      location.href = res.data.url || `/traces/${res.data.id}/`;
      return;
    }
    if (res.status === 400 && res.data.errors) {
      this.showErrors(res.data.errors, { clear: true });
      return;
    }
    this.showErrors({ __all__: refusal(res, this.host()) }, { clear: true });
    // 404 and 503 also name the field (host) they are about.
    const byField = Object.entries(res.data.errors || {}).filter(([f]) => f !== "__all__");
    if (byField.length) this.showErrors(Object.fromEntries(byField));
  }

  // ---- wiring ---------------------------------------------------------------
  bind() {
    $("host").addEventListener("change", () => this.hostChanged());
    $("kind").addEventListener("change", () => {
      this.showFields();
      $("name").placeholder = this.defaultName();
    });
    for (const r of this.el.querySelectorAll("input[name=target]")) {
      r.addEventListener("change", () => this.showFields());
    }
    this.hosts.bind();
    chipInput($("syscall-input"), () => this.state.syscalls, () => this.renderSyscalls());
    chipInput($("symbol-input"), () => this.state.symbols, () => {
      this.renderSymbols();
      $("symbol-suggest").replaceChildren();
    });
    $("duration").addEventListener("change", () => {
      $("duration-custom-box").hidden = $("duration").value !== "custom";
      if ($("duration").value === "custom") $("duration-custom").focus();
    });
    this.el.addEventListener("submit", (e) => this.submit(e));
  }
}

const form = $("trace-form");
if (form) {
  const page = new TraceForm(form);
  window.webprofTraceForm = page.state;
  page.bind();
  page.showFields();
  page.hosts.loadHosts();
}
