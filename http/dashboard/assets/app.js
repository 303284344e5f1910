// The dashboard page: wires the live feed to the map and the ticker, loads
// the statistics panels from PEBA's endpoints and refreshes them, and
// handles sign-in and the community / private / both switch.
//
// Data sources (all same-origin, see docs/dashboard.md):
//   /api/v1/events/stream              live events (+ replay on connect)
//   /alert/retrieveAlertStats          counters: last minute, hour, 24 h
//   /alert/datasetAlertTypesPerMonth   attacks per day by honeypot type
//   /alert/retrieveAlertsCountWithType honeypot types, last 24 h
//   /alert/topCountriesAttacks         top attacker and target countries
//   /alert/tops                        top ports and URLs (24 h)
//   /alert/retrieveAlertsJson          the latest events, to fill the ticker
//   /auth/me                           checks the credentials at sign-in
// Statistics endpoints take ci: absent = community, 0 = private, -1 = both;
// the server narrows it to what the credentials may see.

import { renderBars, renderStacked } from "./charts.js";
import { LiveFeed } from "./feed.js";
import { AttackMap, MAX_IN_FLIGHT } from "./map.js";
import { el, fmtAge, fmtClock, fmtCompact, fmtInt, shortType, typeColor, unescapeHTML } from "./util.js";

const $ = (id) => document.getElementById(id);
const store = window.sessionStorage;

const TICKER_ROWS = 30;
const PER_DAY_DAYS = 14;
const REPLAY_SPREAD_MS = 60;
const SEEN_MAX = 5000;
const RAW_MAX = 2000;

const state = {
  cred: store.getItem("peba.cred"), // "user:token" while signed in
  me: null, // /auth/me answer
  view: store.getItem("peba.view") || "community",
  gen: 0, // bumped on every sign-in, sign-out and view change
  feed: { state: "connecting" },
  lastEventAt: 0,
  received: 0,
};

// What the test hook reports: every raw event payload this page received,
// and how often each panel loaded.
const rawEvents = [];
const loads = {};

/** The view actually shown: only entitled users may pick private or both. */
function view() {
  return state.me?.private ? state.view : "community";
}

function ciParam() {
  return { community: null, private: "0", both: "-1" }[view()];
}

function authHeaders() {
  return state.cred ? { Authorization: "Bearer " + state.cred } : {};
}

class AuthError extends Error {}

/**
 * Thrown by api() when the page started over (another sign-in or view)
 * while a request was under way: its answer belongs to the data shown
 * before, and a panel that rendered it would mix the two views (a slow
 * community answer drawn on the private map, or a private one on the page
 * of a user who has just signed out).
 */
class StaleError extends Error {}

/** GET a statistics endpoint as JSON; null when PEBA answers its "Nope". */
async function api(path, params = {}) {
  const gen = state.gen;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) q.set(k, String(v));
  const ci = ciParam();
  if (ci !== null) q.set("ci", ci);
  const qs = q.toString();
  const res = await fetch(path + (qs ? "?" + qs : ""), { headers: authHeaders() });
  if (res.status === 401 || res.status === 403) throw new AuthError(path + ": credentials rejected");
  if (!res.ok) throw new Error(path + ": HTTP " + res.status);
  const text = await res.text();
  if (gen !== state.gen) throw new StaleError(path + ": answer for the data shown before");
  try {
    return JSON.parse(text);
  } catch {
    return null; // DEFAULTRESPONSE ("Nope"): PEBA's answer for "no data"
  }
}

// ---------------------------------------------------------------- panels

const PORT_NAMES = {
  21: "ftp", 22: "ssh", 23: "telnet", 25: "smtp", 53: "dns", 80: "http", 102: "s7comm", 110: "pop3", 123: "ntp",
  135: "msrpc", 143: "imap", 161: "snmp", 443: "https", 445: "smb", 502: "modbus", 1433: "mssql", 1900: "ssdp",
  2222: "ssh-alt", 2375: "docker", 3306: "mysql", 3389: "rdp", 5060: "sip", 5432: "postgres", 5555: "adb",
  5900: "vnc", 6379: "redis", 8080: "http-alt", 8443: "https-alt", 9200: "elastic", 11211: "memcached", 27017: "mongodb",
};

const panels = {
  async counters() {
    const s = await api("/alert/retrieveAlertStats");
    for (const [id, key] of [["count-minute", "AlertsLastMinute"], ["count-hour", "AlertsLastHour"], ["count-day", "AlertsLast24Hours"]]) {
      const n = s?.[key] ?? 0;
      const node = $(id);
      node.textContent = fmtInt(n);
      node.dataset.value = String(n);
    }
  },

  async perDay() {
    const d = await api("/alert/datasetAlertTypesPerMonth", { days: PER_DAY_DAYS - 1 });
    renderStacked($("types-chart"), $("types-legend"), d?.[0]?.datasetAlertsPerMonth || {}, PER_DAY_DAYS);
  },

  async share() {
    const d = await api("/alert/retrieveAlertsCountWithType", { time: 1440 });
    const items = Object.entries(d?.AlertCountPerType || {})
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, 8)
      .map(([t, n]) => ({ key: t, label: shortType(t), title: t, count: n, color: typeColor(t) }));
    renderBars($("top-types"), items, "No attacks in the last 24 hours");
  },

  async countries() {
    const d = (await api("/alert/topCountriesAttacks", { topx: 8 }))?.[0];
    const list = (l) => (l || []).map((c) => ({ key: c.code, badge: c.code, label: c.country && c.country !== "-" ? c.country : "Unknown", count: c.count }));
    renderBars($("top-src"), list(d?.attacksPerCountry), "No attacks this month");
    renderBars($("top-dst"), list(d?.attacksToTargetCountry), "No attacks this month");
  },

  async ports() {
    const d = await api("/alert/tops", { type: "destports", days: 1, topx: 8 });
    const items = Object.entries(d || {})
      .map(([port, v]) => ({ key: port, badge: port || "–", label: PORT_NAMES[port] || (port ? "port " + port : "no port"), count: v.total }))
      .sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : 1));
    renderBars($("top-ports"), items, "No attacks in the last 24 hours");
  },

  async urls() {
    const d = await api("/alert/tops", { type: "urls", days: 1, topx: 8 });
    const items = Object.entries(d || {})
      .map(([u, v]) => ({ key: u, label: u, count: v.total }))
      .sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : 1));
    renderBars($("top-urls"), items, "No web requests in the last 24 hours");
  },

  async latest() {
    const d = await api("/alert/retrieveAlertsJson");
    // Oldest first, so that the ticker ends up newest on top.
    const alerts = [...(d?.alerts || [])].reverse();
    let i = 0;
    for (const a of alerts) {
      const item = fromTicker(a);
      if (!item || !remember(item.id)) continue;
      addTicker(item);
      map.add(item, (i++) * REPLAY_SPREAD_MS * 2);
    }
  },
};

const refreshEvery = { counters: 15000, perDay: 300000, share: 30000, countries: 60000, ports: 300000, urls: 300000, latest: 60000 };
const timers = {};

async function load(name, gen) {
  const card = document.querySelector(`[data-panel~="${name}"]`);
  try {
    await panels[name]();
    if (gen !== state.gen) return;
    loads[name] = (loads[name] || 0) + 1;
    card?.classList.remove("stale");
    card?.removeAttribute("title");
  } catch (e) {
    if (gen !== state.gen) return;
    if (e instanceof AuthError && state.cred) {
      signOut("Your credentials were rejected; showing community data.");
      return;
    }
    card?.classList.add("stale");
    card?.setAttribute("title", "Could not refresh: " + e.message);
  } finally {
    if (gen === state.gen) {
      clearTimeout(timers[name]);
      timers[name] = setTimeout(() => load(name, gen), refreshEvery[name]);
    }
  }
}

function refreshAll() {
  const gen = ++state.gen;
  for (const t of Object.values(timers)) clearTimeout(t);
  for (const name of Object.keys(panels)) load(name, gen);
  return gen;
}

// ---------------------------------------------------------------- events

const seen = new Set();

/** Records an event ID; false if it was seen before (replays overlap). */
function remember(id) {
  if (!id) return true;
  if (seen.has(id)) return false;
  seen.add(id);
  if (seen.size > SEEN_MAX) seen.delete(seen.values().next().value);
  return true;
}

function num(v) {
  const n = typeof v === "string" ? parseFloat(v) : v;
  return Number.isFinite(n) ? n : NaN;
}

// PEBA's ticker reports unknown locations as DTAG's headquarters in Bonn.
const isBonn = (lat, lon) => lat === 50.708021 && lon === 7.129191;

/** An item from a live feed payload (docs/livefeed.md). */
function fromFeed(ev) {
  let detail = "";
  if (ev.url) detail = ev.url;
  else if (ev.dst_port !== undefined) detail = (PORT_NAMES[ev.dst_port] ? PORT_NAMES[ev.dst_port] + " " : "port ") + ev.dst_port + (ev.protocol ? "/" + ev.protocol : "");
  return {
    id: ev.event_id,
    time: ev.timestamp ? ev.timestamp * 1000 : Date.now(),
    ip: ev.src_ip || "",
    cc: ev.src_country || "",
    country: ev.src_country_name || "",
    type: ev.peerType || "",
    detail,
    sLat: num(ev.latitude),
    sLon: num(ev.longitude),
    dLat: num(ev.dst_latitude),
    dLon: num(ev.dst_longitude),
  };
}

/** An item from /alert/retrieveAlertsJson (no attacker address there). */
function fromTicker(a) {
  const t = Date.parse((a.dateCreated || "").replace(" ", "T") + "Z");
  const it = {
    id: a.id,
    time: Number.isFinite(t) ? t : Date.now(),
    ip: "",
    cc: a.country && a.country !== "-" ? a.country : "",
    country: a.countryName && a.countryName !== "-" ? a.countryName : "",
    type: a.analyzerType || "",
    detail: unescapeHTML(a.requestString || ""),
    sLat: num(a.sourceLat),
    sLon: num(a.sourceLng),
    dLat: num(a.destLat),
    dLon: num(a.destLng),
  };
  if (isBonn(it.sLat, it.sLon)) it.sLat = it.sLon = NaN;
  if (isBonn(it.dLat, it.dLon)) it.dLat = it.dLon = NaN;
  return it;
}

/** Whether a live event belongs to the current view. */
function inView(ev) {
  const v = view();
  if (v === "both") return true;
  // Anonymous payloads carry no domain: they are community events.
  const d = ev.domain || "community";
  return v === d;
}

let replayIndex = 0;

function onFeedEvent(ev, raw, id) {
  if (rawEvents.length >= RAW_MAX) rawEvents.shift();
  rawEvents.push(raw);
  if (!inView(ev)) return;
  const item = fromFeed(ev);
  item.id ||= id;
  if (!remember(item.id)) {
    // Already shown from /alert/retrieveAlertsJson, which has no attacker
    // address: whichever arrived first, the ticker row gets the address.
    enrichTicker(item);
    return;
  }
  state.received++;
  state.lastEventAt = Date.now();
  addTicker(item);
  // Events older than a few seconds are the server's replay of the recent
  // past: spread them out instead of firing them all in one frame.
  const replay = Date.now() - item.time > 3000;
  map.add(item, replay ? (replayIndex++ % 100) * REPLAY_SPREAD_MS : undefined);
  updateHealth();
}

// The ticker is re-rendered at most four times a second, whatever the rate.
const ticker = [];
let tickerDirty = false;

function addTicker(item) {
  ticker.push(item);
  ticker.sort((a, b) => b.time - a.time);
  if (ticker.length > TICKER_ROWS) ticker.length = TICKER_ROWS;
  if (!tickerDirty) {
    tickerDirty = true;
    setTimeout(renderTicker, 250);
  }
}

/** Completes a ticker row seeded without an address from a feed item. */
function enrichTicker(item) {
  const row = ticker.find((it) => it.id === item.id);
  if (!row || row.ip || !item.ip) return;
  row.ip = item.ip;
  if (!tickerDirty) {
    tickerDirty = true;
    setTimeout(renderTicker, 250);
  }
}

function renderTicker() {
  tickerDirty = false;
  const ol = $("ticker");
  if (!ticker.length) {
    ol.replaceChildren(el("li", { class: "empty" }, "Waiting for attacks…"));
    return;
  }
  ol.replaceChildren(
    ...ticker.map((it) => {
      const dot = el("span", { class: "dot" });
      dot.style.background = typeColor(it.type);
      return el(
        "li",
        { dataset: { id: it.id || "" } },
        el("time", { datetime: new Date(it.time).toISOString() }, fmtClock(it.time)),
        el("span", { class: "badge", title: it.country || "unknown country" }, it.cc || "??"),
        el("span", { class: "who" }, el("span", { class: "ip" }, it.ip || it.country || "unknown"), el("span", { class: "type" }, dot, shortType(it.type))),
        el("span", { class: "what", title: it.detail }, it.detail),
      );
    }),
  );
}

// ---------------------------------------------------------------- health

const HEALTH_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting",
  offline: "Offline",
  unauthorized: "Sign-in rejected",
};

function updateHealth() {
  const h = $("health");
  const s = state.feed;
  h.dataset.state = s.state;
  let label = HEALTH_TEXT[s.state] || s.state;
  if ((s.state === "reconnecting" || s.state === "offline") && s.retryAt) {
    label += ` · retry in ${Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000))} s`;
  }
  $("health-label").textContent = label;
  $("health-age").textContent = state.lastEventAt ? "last event " + fmtAge(Date.now() - state.lastEventAt) + " ago" : "no events yet";
  h.title = s.error ? "Live feed: " + s.error : "Live feed: /api/v1/events/stream";
}

function onFeedState(s) {
  state.feed = s;
  if (s.state === "unauthorized" && state.cred) {
    signOut("Your credentials were rejected; showing community data.");
    return;
  }
  updateHealth();
}

// ---------------------------------------------------------------- sign-in

async function whoAmI(cred) {
  const res = await fetch("/auth/me", { headers: { Authorization: "Bearer " + cred }, cache: "no-store" });
  if (res.status === 401 || res.status === 403) return null;
  if (!res.ok) throw new Error("HTTP " + res.status);
  const me = await res.json();
  return me.active ? me : null;
}

function applyAuth() {
  const signedIn = !!state.me;
  $("signin-open").hidden = signedIn;
  $("account").hidden = !signedIn;
  $("account-name").textContent = state.me?.name || "";
  $("view").hidden = !state.me?.private;
  $("view-note").hidden = !!state.me?.private;
  $("view-note").textContent = signedIn ? "Community data (this account has no private data)" : "Community data";
  for (const b of $("view").querySelectorAll("button")) b.setAttribute("aria-checked", String(b.dataset.view === view()));
  document.body.dataset.view = view();
  restart();
}

/** Starts over for a new sign-in or view: clear, reconnect, reload. */
function restart() {
  seen.clear();
  ticker.length = 0;
  renderTicker();
  map.clear();
  replayIndex = 0;
  state.received = 0;
  state.lastEventAt = 0;
  refreshAll();
  feed.start(state.me ? state.cred : null);
}

function signOut(message) {
  state.cred = null;
  state.me = null;
  store.removeItem("peba.cred");
  if (message) toast(message);
  applyAuth();
}

function toast(message) {
  const t = $("toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 6000);
}

function setupSignIn() {
  const dlg = $("signin");
  const form = $("signin-form");
  $("signin-open").addEventListener("click", () => {
    $("signin-error").textContent = "";
    dlg.showModal();
    $("signin-user").focus();
  });
  $("signin-cancel").addEventListener("click", () => dlg.close());
  $("signout").addEventListener("click", () => signOut());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const user = $("signin-user").value.trim();
    const token = $("signin-token").value;
    if (!user || !token) {
      $("signin-error").textContent = "Enter your user name and token.";
      return;
    }
    const cred = user + ":" + token;
    $("signin-submit").disabled = true;
    try {
      const me = await whoAmI(cred);
      if (!me) {
        $("signin-error").textContent = "User or token not accepted.";
        return;
      }
      state.cred = cred;
      state.me = me;
      store.setItem("peba.cred", cred);
      $("signin-token").value = "";
      dlg.close();
      applyAuth();
    } catch (err) {
      $("signin-error").textContent = "Cannot sign in now (" + err.message + ").";
    } finally {
      $("signin-submit").disabled = false;
    }
  });
  for (const b of $("view").querySelectorAll("button")) {
    b.addEventListener("click", () => {
      if (state.view === b.dataset.view) return;
      state.view = b.dataset.view;
      store.setItem("peba.view", state.view);
      applyAuth();
    });
  }
}

// ---------------------------------------------------------------- start

const map = new AttackMap($("map"), document.body.dataset.world);
const feed = new LiveFeed({ url: "/api/v1/events/stream", onEvent: onFeedEvent, onState: onFeedState });

map.onStats = (s, inFlight, final) => {
  const now = performance.now();
  if (!final && now - (map.onStats.last || 0) < 250) return;
  map.onStats.last = now;
  $("map-inflight").textContent = fmtInt(inFlight);
  $("map-drawn").textContent = fmtCompact(s.drawn);
  const sk = $("map-skipped");
  sk.textContent = fmtCompact(s.skipped);
  sk.parentElement.hidden = s.skipped === 0;
  const nl = $("map-noloc");
  nl.textContent = fmtCompact(s.noLocation);
  nl.parentElement.hidden = s.noLocation === 0;
};

setInterval(updateHealth, 1000);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refreshAll();
});
addEventListener("resize", () => {
  clearTimeout(window.__pebaResize);
  window.__pebaResize = setTimeout(() => load("perDay", state.gen), 200);
});

setupSignIn();
renderTicker();
updateHealth();

(async () => {
  if (state.cred) {
    try {
      state.me = await whoAmI(state.cred);
      if (!state.me) {
        state.cred = null;
        store.removeItem("peba.cred");
      }
    } catch {
      // The server is unreachable: start anonymous; the feed shows "offline".
    }
  }
  applyAuth();
})();

// Test hook (read-only): what the page received and drew. The browser test
// (http/dashboard/testdata/browser) reads it; nothing here is secret, the
// page shows the same data.
window.__peba = {
  stats: () => ({
    // map: events given to the map (feed and ticker seed, de-duplicated),
    // arcs drawn, sampled out (not animated), without a location.
    map: { ...map.stats, inFlight: map.arcs.length, pending: map.live.length + map.replay.length, maxInFlight: MAX_IN_FLIGHT },
    feed: state.feed.state,
    received: state.received, // live feed events shown (after de-duplication and the view filter)
    lastEventAt: state.lastEventAt,
    view: view(),
    signedIn: !!state.me,
    loads: { ...loads },
  }),
  rawEvents: () => rawEvents.slice(),
  refresh: () => refreshAll(),
  mapReady: () => map.ready.then(() => true),
};
