// Charts drawn with DOM and SVG elements (no library, no inline styles:
// sizes are set through the CSSOM, which the page's CSP allows).

import { el, fmtCompact, fmtInt, shortType, svg, typeColor } from "./util.js";

/**
 * Renders a ranked list with proportional bars into an <ol>.
 * items: [{key, label, sub, count, color}]. Each <li> carries data-key and
 * data-count (the browser test reads them).
 */
export function renderBars(ol, items, empty = "No data yet") {
  ol.replaceChildren();
  ol.dataset.total = String(items.reduce((s, i) => s + i.count, 0));
  if (!items.length) {
    ol.append(el("li", { class: "empty" }, empty));
    return;
  }
  const max = Math.max(...items.map((i) => i.count), 1);
  for (const it of items) {
    const bar = el("span", { class: "bar" });
    bar.style.width = ((100 * it.count) / max).toFixed(1) + "%";
    if (it.color) bar.style.background = it.color;
    ol.append(
      el(
        "li",
        { dataset: { key: it.key, count: String(it.count) }, title: `${it.title || it.label}: ${fmtInt(it.count)}` },
        bar,
        el("span", { class: "label" }, it.badge ? el("span", { class: "badge" }, it.badge) : null, el("span", { class: "text" }, it.label)),
        el("span", { class: "value" }, fmtCompact(it.count)),
      ),
    );
  }
}

const DAY = 86400000;

/** UTC day key "YYYY-MM-DD" of an epoch in ms. */
function dayKey(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * Renders attacks per day by honeypot type as stacked columns.
 * perDay: {"YYYY-MM-DD 00:00:00": {type: count}} (datasetAlertTypesPerMonth),
 * days: how many UTC days to show, ending today. Types beyond the top 7 are
 * summed as "other".
 */
export function renderStacked(box, legend, perDay, days) {
  const today = Date.parse(new Date().toISOString().slice(0, 10) + "T00:00:00Z");
  const keys = [];
  for (let i = days - 1; i >= 0; i--) keys.push(dayKey(today - i * DAY));
  const byDay = new Map(keys.map((k) => [k, {}]));
  const totals = new Map();
  for (const [k, types] of Object.entries(perDay || {})) {
    const d = byDay.get(k.slice(0, 10));
    if (!d) continue;
    for (const [t, n] of Object.entries(types)) {
      d[t] = (d[t] || 0) + n;
      totals.set(t, (totals.get(t) || 0) + n);
    }
  }
  const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const top = ranked.slice(0, 7).map(([t]) => t);
  const series = ranked.length > top.length ? [...top, "other"] : top;
  const color = (t) => (t === "other" ? "#475569" : typeColor(t));
  const cols = keys.map((k) => {
    const d = byDay.get(k);
    const v = {};
    let sum = 0;
    for (const [t, n] of Object.entries(d)) {
      const s = top.includes(t) ? t : "other";
      v[s] = (v[s] || 0) + n;
      sum += n;
    }
    return { k, v, sum };
  });
  const total = cols.reduce((s, c) => s + c.sum, 0);
  box.dataset.total = String(total);
  box.dataset.types = JSON.stringify(Object.fromEntries(ranked));

  const W = Math.max(280, Math.round(box.clientWidth || 600));
  const H = Math.max(160, Math.round(box.clientHeight || 220));
  const padL = 44;
  const padR = 8;
  const padT = 10;
  const padB = 24;
  const max = niceMax(Math.max(1, ...cols.map((c) => c.sum)));
  const cw = (W - padL - padR) / cols.length;
  const y = (v) => padT + (H - padT - padB) * (1 - v / max);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": "Attacks per day by honeypot type" });
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    root.append(svg("line", { x1: padL, x2: W - padR, y1: y(v), y2: y(v), class: "grid" }));
    root.append(svg("text", { x: padL - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, fmtCompact(v)));
  }
  const every = Math.ceil(cols.length / Math.max(2, Math.floor((W - padL) / 64)));
  cols.forEach((c, i) => {
    const x = padL + i * cw + cw * 0.16;
    const bw = cw * 0.68;
    let acc = 0;
    for (const s of series) {
      const n = c.v[s] || 0;
      if (!n) continue;
      const r = svg("rect", { x, y: y(acc + n), width: bw, height: Math.max(0.5, y(acc) - y(acc + n)), fill: color(s), rx: 1.5 });
      r.append(svg("title", null, `${c.k} · ${s}: ${fmtInt(n)}`));
      root.append(r);
      acc += n;
    }
    if ((cols.length - 1 - i) % every === 0) {
      const d = new Date(c.k + "T00:00:00Z");
      const label = d.toLocaleDateString("en-GB", { day: "numeric", month: "short", timeZone: "UTC" });
      root.append(svg("text", { x: x + bw / 2, y: H - 6, class: "axis", "text-anchor": "middle" }, label));
    }
  });
  box.replaceChildren(root);
  if (!total) box.append(el("div", { class: "chart-empty" }, "No attacks in the last " + days + " days"));

  legend.replaceChildren(
    ...series.map((s) => {
      const n = s === "other" ? ranked.slice(top.length).reduce((a, [, v]) => a + v, 0) : totals.get(s);
      const sw = el("span", { class: "swatch" });
      sw.style.background = color(s);
      return el("li", { title: s, dataset: { key: s, count: String(n) } }, sw, el("span", { class: "text" }, s === "other" ? "other" : shortType(s)), el("span", { class: "value" }, fmtCompact(n)));
    }),
  );
}

/** A round upper bound for an axis: 1, 2, 2.5 or 5 times a power of ten. */
function niceMax(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
