// The browser side of one live websocket, shared by the live and latency
// pages: connect, subscribe, reconnect with backoff, and the banner that says
// why no data is arriving.  Parsing and dispatch stay with each page because
// what counts as a bad message (and where it is counted) is page-specific.

const BACKOFF_MIN_MS = 1000;
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
