// The browser side of one live websocket, shared by the live and latency
// pages: connect, subscribe, reconnect with backoff, dispatch each frame by
// its message type to the page's table of handlers, and the banners and
// counters that say why no (good) data is arriving.

import { fmtTime } from "./format.js";

const BACKOFF_MIN_MS = 1000;
// A page opened for a host before its collector first connects is refused
// (unknown_host, nothing is kept for a name no collector used): it asks again
// this often until the collector is there.
const UNKNOWN_HOST_RETRY_MS = 5000;
const BACKOFF_MAX_MS = 10000;
// webprof.core.protocol.CLOSE_NOT_LOGGED_IN: the session is gone, so retrying
// cannot help until the user logs in again.
export const CLOSE_NOT_LOGGED_IN = 4003;

export class LiveSocket {
  // path: the ws path ("/ws/live/"); subscribe(): the subscribe message to
  // send, asked for on every (re)connect so it carries the page's current
  // filter; onMessage(data): each raw frame; onStatus(): the state changed.
  constructor({ path, subscribe, onMessage, onStatus }) {
    this.path = path;
    this.makeSubscribe = subscribe;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.ws = null;
    this.state = "connecting"; // "connecting" | "connected" | "reconnecting" | "auth"
    this.backoffMs = BACKOFF_MIN_MS;
    this.retryAt = 0;
    this.hostRetry = null; // the pending subscribe after unknown_host
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${this.path}`);
    this.ws = ws;
    this.state = "connecting";
    ws.onopen = () => {
      this.state = "connected";
      this.subscribe();
      this.onStatus();
    };
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onclose = (ev) => this.closed(ev);
    this.onStatus();
  }

  // Sends the current subscribe message; a no-op while disconnected, since
  // the next open subscribes anyway.
  subscribe() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify(this.makeSubscribe()));
  }

  // Called by the page with every error message from the server: a host no
  // collector has connected as yet is asked for again until one does.
  // Returns whether it was that refusal (the page then says it is waiting).
  refused(msg) {
    if (msg.code !== "unknown_host") return false;
    if (!this.hostRetry) {
      this.hostRetry = setTimeout(() => {
        this.hostRetry = null;
        this.subscribe();
      }, UNKNOWN_HOST_RETRY_MS);
    }
    return true;
  }

  // Called by the page once the server has answered a subscribe (its
  // snapshot): only then is the connection known to be good.  Resetting on
  // open instead would let a server that accepts and immediately closes
  // be retried every second forever.
  resetBackoff() {
    this.backoffMs = BACKOFF_MIN_MS;
  }

  closed(ev) {
    if (ev.target !== this.ws) return; // a socket already replaced
    this.ws = null;
    if (ev.code === CLOSE_NOT_LOGGED_IN) {
      this.state = "auth";
    } else {
      this.state = "reconnecting";
      this.retryAt = Date.now() + this.backoffMs;
      setTimeout(() => this.connect(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    }
    this.onStatus();
  }

  // The connection banner: hidden while connecting or connected; the page
  // calls this from its status render, which also ticks the countdown.
  renderBanner(el) {
    if (this.state === "reconnecting") {
      const s = Math.max(0, Math.ceil((this.retryAt - Date.now()) / 1000));
      el.textContent = `connection lost: reconnecting in ${s}s…`;
    } else if (this.state === "auth") {
      el.textContent = "not logged in — reload to log in";
    }
    el.hidden = !(this.state === "reconnecting" || this.state === "auth");
  }
}

// The socket of a live page's view: its path from the page's section
// (data-ws-path), each frame to view.onMessage(data) and each change of state
// to view.renderStatus().  Both are looked up on each call, not bound once, so
// that tests and the latency bench (bench/e2e_latency.py) can wrap them.
export function viewSocket(view, section, subscribe) {
  return new LiveSocket({
    path: section.dataset.wsPath || "/ws/live/",
    subscribe,
    onMessage: (data) => view.onMessage(data),
    onStatus: () => view.renderStatus(),
  });
}

// A frame handler for a table of {type: handler(msg)}.  A frame that is not
// JSON, has a type no handler takes, or whose handler throws (a bad tree, say)
// is a bad message: onBad(sentence) is told, so that the page counts and shows
// it rather than skipping it silently.
export function dispatcher(handlers, onBad) {
  return (data) => {
    try {
      const msg = JSON.parse(data);
      const handle = Object.hasOwn(handlers, msg.type) ? handlers[msg.type] : null;
      if (!handle) throw new Error(`unknown message type ${JSON.stringify(msg.type)}`);
      handle(msg);
    } catch (e) {
      onBad(`bad message from server: ${e.message}`);
    }
  };
}

// Counters a bad frame adds to: health.bad_messages, and the page's last error.
export function countBadMessage(view, sentence) {
  view.health.bad_messages = (view.health.bad_messages || 0) + 1;
  view.lastError = sentence;
}

// The collector's banner from the last host.status: hidden while it is
// connected.  withAge adds how long ago it was last seen.
export function renderHostBanner(el, hs, { withAge = false } = {}) {
  el.hidden = !hs || hs.connected;
  if (!hs || hs.connected) return;
  let when = "never";
  if (hs.last_seen_ms) {
    when = fmtTime(hs.last_seen_ms);
    if (withAge) when += ` (${Math.round((Date.now() - hs.last_seen_ms) / 1000)} s ago)`;
  }
  el.textContent = `collector disconnected, last seen ${when}`;
}

// Every non-zero drop counter of `labels` ({counter: label}): its total since
// the last snapshot, and its count in the last interval.
export function renderHealth(el, labels, health, lastHealth) {
  const items = Object.entries(labels)
    .filter(([k]) => health[k] > 0)
    .map(([k, label]) => `${label}: ${health[k]} (last interval ${lastHealth[k] || 0})`);
  el.hidden = items.length === 0;
  el.textContent = items.join(" · ");
}
