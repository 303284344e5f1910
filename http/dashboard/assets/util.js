// Small helpers shared by the dashboard's modules. No framework: the page
// is built with DOM calls only (never innerHTML with data), so attacker-
// controlled strings (URLs, usernames) can never become markup.

const nf = new Intl.NumberFormat("en-US");

/** Formats a count with thousands separators ("12,345"). */
export function fmtInt(n) {
  return Number.isFinite(n) ? nf.format(Math.round(n)) : "–";
}

/** Formats a count compactly for tight spaces ("12.3k", "4.1M"). */
export function fmtCompact(n) {
  if (!Number.isFinite(n)) return "–";
  const a = Math.abs(n);
  if (a < 10000) return nf.format(Math.round(n));
  if (a < 1e6) return (n / 1e3).toFixed(a < 1e5 ? 1 : 0) + "k";
  if (a < 1e9) return (n / 1e6).toFixed(a < 1e7 ? 2 : 1) + "M";
  return (n / 1e9).toFixed(2) + "G";
}

/** "3 s", "4 min", "2 h" for a duration in milliseconds. */
export function fmtAge(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) return Math.floor(s / 3600) + " h";
  return Math.floor(s / 86400) + " d";
}

/** Local wall-clock time of an epoch in milliseconds, "14:05:09". */
export function fmtClock(ms) {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((v) => String(v).padStart(2, "0")).join(":");
}

/**
 * Creates an element: el("li", {class: "row", dataset: {id: "x"}}, child, "text").
 * Children are nodes or strings (inserted as text, never parsed).
 */
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "dataset") Object.assign(e.dataset, v);
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** Creates an SVG element with attributes. */
export function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  if (attrs) for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children) if (c) e.append(c instanceof Node ? c : String(c));
  return e;
}

/**
 * Decodes the five entities Python's html.escape produces (PEBA's ticker
 * escapes requestString, peba.md §3.9), so that the text can be shown with
 * textContent without double escaping.
 */
export function unescapeHTML(s) {
  if (typeof s !== "string" || !s.includes("&")) return s ?? "";
  return s.replace(/&(amp|lt|gt|quot|#x27);/g, (_, e) => ({ amp: "&", lt: "<", gt: ">", quot: '"', "#x27": "'" })[e]);
}

/**
 * Colours of honeypot types: stable per type name (a hash into the
 * palette), so a type keeps its colour across charts, the map and reloads.
 */
export const PALETTE = ["#38bdf8", "#f472b6", "#a78bfa", "#34d399", "#fbbf24", "#fb923c", "#60a5fa", "#f87171", "#2dd4bf", "#e879f9", "#a3e635", "#facc15"];

// The usual T-Pot types get distinct colours; others hash into the palette.
const assigned = new Map([
  ["SSH/console(cowrie)", "#38bdf8"],
  ["Network(Dionaea)", "#f472b6"],
  ["Network(honeytrap)", "#a78bfa"],
  ["Webpage", "#34d399"],
  ["Passwords(heralding)", "#fbbf24"],
  ["Network(suricata)", "#fb923c"],
  ["RDP(rdpy)", "#60a5fa"],
  ["Industrial(conpot)", "#f87171"],
  ["Service(ES)", "#2dd4bf"],
  ["VNC(vnclowpot)", "#e879f9"],
  ["E-Mail(mailoney)", "#a3e635"],
  ["Service(adbhoney)", "#facc15"],
]);

export function typeColor(type) {
  if (!type) return "#94a3b8";
  let c = assigned.get(type);
  if (c) return c;
  let h = 2166136261;
  for (let i = 0; i < type.length; i++) h = Math.imul(h ^ type.charCodeAt(i), 16777619);
  c = PALETTE[(h >>> 0) % PALETTE.length];
  assigned.set(type, c);
  return c;
}

// Honeypots whose PEBA type names them obscurely.
const SHORT_ALIASES = { ES: "elasticpot", Medicine: "medpot" };

/** Short label of a PEBA peer type: "SSH/console(cowrie)" -> "cowrie". */
export function shortType(type) {
  if (!type) return "unknown";
  const m = /\(([^)]+)\)\s*$/.exec(type);
  const s = m ? m[1] : type;
  return SHORT_ALIASES[s] || s;
}

/** A promise resolved after ms, or at once when signal aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
