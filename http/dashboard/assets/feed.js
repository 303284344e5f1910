// The live feed: GET /api/v1/events/stream (Server-Sent Events) read with
// fetch() instead of EventSource, because EventSource cannot send the
// Authorization header that signed-in users need (docs/livefeed.md). The
// stream is parsed here, reconnected with backoff, and watched: the server
// sends a heartbeat comment every 15 s, so 45 s of silence means a dead
// connection even when TCP has not noticed.

import { sleep } from "./util.js";

const SILENCE_MS = 45000;
// Reconnect delays after consecutive failures (the server suggests 5 s
// with "retry:"; the first retry is sooner, later ones back off).
const BACKOFF_MS = [1000, 2000, 5000, 10000, 20000, 30000];

export class LiveFeed {
  /**
   * @param {object} o
   * @param {string} o.url          stream URL
   * @param {(ev: object, raw: string, id: string) => void} o.onEvent
   * @param {(state: object) => void} o.onState  {state, retryAt, error}
   */
  constructor(o) {
    this.url = o.url;
    this.onEvent = o.onEvent;
    this.onState = o.onState;
    this.ctrl = null;
    this.gen = 0;
    this.failures = 0;
    this.connected = false;
    this.wake = null;
    addEventListener("online", () => this.wake?.abort());
    // An open stream can outlive the network for a while (until the 45 s
    // watchdog); when the browser knows it is offline, say so at once.
    addEventListener("offline", () => this.drop());
  }

  /** Connects (or reconnects at once) with credentials "user:token" or null. */
  start(cred) {
    this.stop();
    const gen = ++this.gen;
    this.failures = 0;
    this.run(gen, cred);
  }

  /** Ends the current connection as a network failure would. */
  drop() {
    this.ctrl?.abort(new Error("connection dropped"));
  }

  stop() {
    this.gen++;
    this.ctrl?.abort();
    this.wake?.abort();
  }

  state(state, extra) {
    this.onState({ state, ...extra });
  }

  async run(gen, cred) {
    let everConnected = false;
    while (gen === this.gen) {
      this.state(everConnected ? "reconnecting" : "connecting");
      const ctrl = new AbortController();
      this.ctrl = ctrl;
      let watchdog = 0;
      let error = "";
      try {
        const headers = { Accept: "text/event-stream" };
        if (cred) headers.Authorization = "Bearer " + cred;
        const res = await fetch(this.url, { headers, cache: "no-store", signal: ctrl.signal });
        if (res.status === 401) {
          this.state("unauthorized", { error: "credentials rejected" });
          return;
        }
        if (!res.ok || !res.body) throw new Error("HTTP " + res.status);
        everConnected = true;
        this.failures = 0;
        this.state("live");
        let last = performance.now();
        watchdog = setInterval(() => {
          if (performance.now() - last > SILENCE_MS) ctrl.abort(new Error("no data for " + SILENCE_MS / 1000 + " s"));
        }, 5000);
        const reader = res.body.getReader();
        const dec = new TextDecoder();
        const parser = new SSEParser((id, event, data) => {
          // A chunk read just before stop() is parsed after it: its events
          // belong to the credentials (and view) of the connection stopped.
          if (gen !== this.gen || event !== "hpfeedevent") return;
          let ev;
          try {
            ev = JSON.parse(data);
          } catch {
            return;
          }
          this.onEvent(ev, data, id);
        });
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          last = performance.now();
          parser.push(dec.decode(value, { stream: true }));
        }
        error = "stream ended";
      } catch (e) {
        if (gen !== this.gen) return;
        error = String((ctrl.signal.aborted ? ctrl.signal.reason : e)?.message || e);
      } finally {
        clearInterval(watchdog);
      }
      if (gen !== this.gen) return;
      const delay = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)] * (0.8 + 0.4 * Math.random());
      this.failures++;
      const retryAt = Date.now() + delay;
      // Three failed attempts in a row (or the browser says so): offline.
      this.state(navigator.onLine === false || this.failures >= 3 ? "offline" : "reconnecting", { retryAt, error });
      this.wake = new AbortController();
      await sleep(delay, this.wake.signal);
    }
  }
}

/**
 * SSEParser implements the event-stream format (HTML Living Standard,
 * "Server-sent events"): lines "field: value", messages ended by a blank
 * line, comments starting with ":", multi-line data joined with "\n".
 */
export class SSEParser {
  constructor(dispatch) {
    this.dispatch = dispatch;
    this.buf = "";
    this.reset();
  }

  reset() {
    this.data = [];
    this.event = "";
    this.id = "";
  }

  push(chunk) {
    this.buf += chunk;
    let nl;
    while ((nl = this.buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buf.slice(0, nl);
      const len = this.buf[nl] === "\r" && this.buf[nl + 1] === "\n" ? 2 : 1;
      // A lone "\r" at the end of a chunk may be the first half of "\r\n".
      if (this.buf[nl] === "\r" && nl + 1 === this.buf.length) break;
      this.buf = this.buf.slice(nl + len);
      this.line(line);
    }
  }

  line(line) {
    if (line === "") {
      if (this.data.length) this.dispatch(this.id, this.event || "message", this.data.join("\n"));
      this.reset();
      return;
    }
    if (line[0] === ":") return;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? "" : line.slice(i + 1);
    if (value[0] === " ") value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id") this.id = value;
  }
}
