// The live attack map: a world drawn once per size into an offscreen
// canvas from world.json (Natural Earth 1:110m, shipped in the binary; no
// tiles), and arcs from attacker to sensor animated on a canvas with
// requestAnimationFrame.
//
// Event rates can exceed what a browser can draw, so arcs are budgeted:
// at most MAX_IN_FLIGHT at once and MAX_SPAWN_PER_FRAME new ones per frame;
// events that wait longer than MAX_WAIT_MS (or overflow the queue) are not
// animated but counted ("sampled out") and still aggregated into the glow
// of their source and the pulse count of their sensor. The page therefore
// never falls behind, whatever the rate, and says how much it skipped.

import { typeColor } from "./util.js";

export const MAX_IN_FLIGHT = 300;
const MAX_SPAWN_PER_FRAME = 12;
const MAX_PENDING = 600;
const MAX_WAIT_MS = 2000;
const FLIGHT_MS = 1800;
const IMPACT_MS = 900;
const HOT_LIFE_MS = 60000;
const MAX_HOT = 400;
const LAT_TOP = 84;
const LAT_BOTTOM = -58;
const RAD = Math.PI / 180;

/** Natural Earth projection (Šavrič et al. 2015), radians in, unit plane out. */
function naturalEarth(lon, lat) {
  const l = lon * RAD;
  const p = lat * RAD;
  const p2 = p * p;
  const p4 = p2 * p2;
  return [
    l * (0.8707 - 0.131979 * p2 + p4 * (-0.013791 + p4 * (0.003971 * p2 - 0.001529 * p4))),
    p * (1.007226 + p2 * (0.015085 + p4 * (-0.044475 + 0.028874 * p2 - 0.005916 * p4))),
  ];
}

/** Decodes world.json (worldgen.go): delta-encoded tenths of a degree. */
function decodeWorld(w) {
  const rings = [];
  for (const c of w.countries) {
    for (const r of c.rings) {
      const out = new Float32Array(r.length);
      let x = 0;
      let y = 0;
      for (let i = 0; i < r.length; i += 2) {
        x += r[i];
        y += r[i + 1];
        out[i] = x / w.scale;
        out[i + 1] = y / w.scale;
      }
      rings.push(out);
    }
  }
  return rings;
}

export class AttackMap {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {string} worldURL hashed URL of world.json
   */
  constructor(canvas, worldURL) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.rings = null;
    this.base = document.createElement("canvas");
    this.arcs = [];
    this.live = [];
    this.replay = [];
    this.hot = new Map(); // "lat,lon" -> {lat, lon, heat, n, t}
    this.sensors = new Map(); // "lat,lon" -> {lat, lon, n, t}
    this.stats = { received: 0, drawn: 0, skipped: 0, noLocation: 0 };
    this.running = false;
    this.last = 0;
    this.dpr = 1;
    this.onStats = null;
    this.frame = this.frame.bind(this);
    this.sprite = this.makeSprite();
    new ResizeObserver(() => this.resize()).observe(canvas);
    this.ready = fetch(worldURL)
      .then((r) => {
        if (!r.ok) throw new Error("world map: HTTP " + r.status);
        return r.json();
      })
      .then((w) => {
        this.rings = decodeWorld(w);
        this.resize();
      });
  }

  /** A soft radial glow, drawn once and stamped for every hot spot. */
  makeSprite() {
    const s = document.createElement("canvas");
    s.width = s.height = 64;
    const g = s.getContext("2d");
    const grad = g.createRadialGradient(32, 32, 0, 32, 32, 32);
    grad.addColorStop(0, "rgba(255,140,90,0.95)");
    grad.addColorStop(0.25, "rgba(251,113,133,0.55)");
    grad.addColorStop(1, "rgba(251,113,133,0)");
    g.fillStyle = grad;
    g.fillRect(0, 0, 64, 64);
    return s;
  }

  resize() {
    const r = this.canvas.getBoundingClientRect();
    if (r.width < 2 || r.height < 2) return;
    this.dpr = Math.min(window.devicePixelRatio || 1, 2);
    const w = Math.round(r.width * this.dpr);
    const h = Math.round(r.height * this.dpr);
    this.canvas.width = this.base.width = w;
    this.canvas.height = this.base.height = h;
    const [x0] = naturalEarth(-180, 0);
    const [x1] = naturalEarth(180, 0);
    const [, yTop] = naturalEarth(0, LAT_TOP);
    const [, yBot] = naturalEarth(0, LAT_BOTTOM);
    const pad = 6 * this.dpr;
    const k = Math.min((w - 2 * pad) / (x1 - x0), (h - 2 * pad) / (yTop - yBot));
    const ox = w / 2;
    const oy = h / 2 + ((yTop + yBot) / 2) * k;
    this.project = (lon, lat) => {
      const [x, y] = naturalEarth(lon, Math.max(LAT_BOTTOM, Math.min(LAT_TOP, lat)));
      return [ox + x * k, oy - y * k];
    };
    this.drawBase();
    this.draw(performance.now());
  }

  /** The world, graticule and outline, into this.base. */
  drawBase() {
    const g = this.base.getContext("2d");
    const P = this.project;
    g.clearRect(0, 0, this.base.width, this.base.height);
    const outline = new Path2D();
    let p = P(-180, LAT_TOP);
    outline.moveTo(p[0], p[1]);
    p = P(180, LAT_TOP);
    outline.lineTo(p[0], p[1]);
    for (let lat = LAT_TOP; lat >= LAT_BOTTOM; lat -= 2) outline.lineTo(...P(180, lat));
    outline.lineTo(...P(-180, LAT_BOTTOM));
    for (let lat = LAT_BOTTOM; lat <= LAT_TOP; lat += 2) outline.lineTo(...P(-180, lat));
    outline.closePath();
    const h = this.base.height;
    const ocean = g.createLinearGradient(0, 0, 0, h);
    ocean.addColorStop(0, "#0c1529");
    ocean.addColorStop(1, "#08101f");
    g.fillStyle = ocean;
    g.fill(outline);
    g.save();
    g.clip(outline);
    g.strokeStyle = "rgba(148,163,184,0.07)";
    g.lineWidth = this.dpr;
    g.beginPath();
    for (let lon = -180; lon <= 180; lon += 30) {
      g.moveTo(...P(lon, LAT_BOTTOM));
      for (let lat = LAT_BOTTOM; lat <= LAT_TOP; lat += 4) g.lineTo(...P(lon, lat));
    }
    for (let lat = -30; lat <= 60; lat += 30) {
      g.moveTo(...P(-180, lat));
      g.lineTo(...P(180, lat));
    }
    g.stroke();
    if (this.rings) {
      const land = new Path2D();
      for (const r of this.rings) {
        let q = P(r[0], r[1]);
        land.moveTo(q[0], q[1]);
        for (let i = 2; i < r.length; i += 2) {
          q = P(r[i], r[i + 1]);
          land.lineTo(q[0], q[1]);
        }
        land.closePath();
      }
      g.fillStyle = "#18253f";
      g.fill(land, "evenodd");
      g.strokeStyle = "rgba(100,130,180,0.45)";
      g.lineWidth = 0.6 * this.dpr;
      g.stroke(land);
    }
    g.restore();
    g.strokeStyle = "rgba(100,130,180,0.25)";
    g.lineWidth = this.dpr;
    g.stroke(outline);
  }

  /**
   * Adds one attack. a: {sLat, sLon, dLat, dLon, type}; replayDelay (ms)
   * schedules a replayed event instead of drawing it now.
   */
  add(a, replayDelay) {
    this.stats.received++;
    const now = performance.now();
    const hasSrc = Number.isFinite(a.sLat) && Number.isFinite(a.sLon) && !(a.sLat === 0 && a.sLon === 0);
    const hasDst = Number.isFinite(a.dLat) && Number.isFinite(a.dLon) && !(a.dLat === 0 && a.dLon === 0);
    if (hasSrc) this.heat(a.sLat, a.sLon, now);
    if (hasDst) this.hit(a.dLat, a.dLon, now);
    if (!hasSrc || !hasDst) {
      this.stats.noLocation++;
      this.kick();
      return;
    }
    const item = { ...a, at: now + (replayDelay || 0) };
    const q = replayDelay !== undefined ? this.replay : this.live;
    // Bounded here too, not only per frame: a hidden tab gets no frames
    // but keeps receiving events.
    if (q.length >= MAX_PENDING) {
      q.shift();
      this.stats.skipped++;
    }
    q.push(item);
    this.kick();
  }

  heat(lat, lon, now) {
    const key = lat.toFixed(1) + "," + lon.toFixed(1);
    let h = this.hot.get(key);
    if (!h) {
      if (this.hot.size >= MAX_HOT) {
        // Forget the coldest spot.
        let coldKey = null;
        let cold = Infinity;
        for (const [k, v] of this.hot) if (v.t < cold) [cold, coldKey] = [v.t, k];
        this.hot.delete(coldKey);
      }
      h = { lat, lon, n: 0, t: now };
      this.hot.set(key, h);
    }
    h.n++;
    h.t = now;
  }

  hit(lat, lon, now) {
    const key = lat.toFixed(1) + "," + lon.toFixed(1);
    let s = this.sensors.get(key);
    if (!s) {
      s = { lat, lon, n: 0, t: 0 };
      this.sensors.set(key, s);
    }
    s.n++;
    s.t = now;
  }

  /** Forgets everything drawn (after switching the data shown). */
  clear() {
    this.arcs = [];
    this.live = [];
    this.replay = [];
    this.hot.clear();
    this.sensors.clear();
    this.stats = { received: 0, drawn: 0, skipped: 0, noLocation: 0 };
    this.kick();
  }

  kick() {
    if (this.running) return;
    this.running = true;
    requestAnimationFrame(this.frame);
  }

  frame(now) {
    this.schedule(now);
    this.draw(now);
    const more = this.arcs.length || this.live.length || this.replay.length || this.hot.size;
    this.onStats?.(this.stats, this.arcs.length, !more);
    if (more) {
      requestAnimationFrame(this.frame);
    } else {
      this.running = false;
    }
  }

  /** Drops what waited too long, then spawns arcs within the budgets. */
  schedule(now) {
    let drop = 0;
    while (drop < this.live.length && (this.live.length - drop > MAX_PENDING || now - this.live[drop].at > MAX_WAIT_MS)) drop++;
    if (drop) {
      this.live.splice(0, drop);
      this.stats.skipped += drop;
    }
    let n = Math.min(MAX_SPAWN_PER_FRAME, MAX_IN_FLIGHT - this.arcs.length);
    while (n > 0 && this.live.length) {
      this.spawn(this.live.shift(), now);
      n--;
    }
    while (n > 0 && this.replay.length && this.replay[0].at <= now) {
      this.spawn(this.replay.shift(), now);
      n--;
    }
    // Replayed events that could not start within MAX_WAIT_MS of their slot.
    while (this.replay.length && now - this.replay[0].at > MAX_WAIT_MS) {
      this.replay.shift();
      this.stats.skipped++;
    }
  }

  spawn(a, now) {
    if (!this.project) return;
    const [sx, sy] = this.project(a.sLon, a.sLat);
    const [dx, dy] = this.project(a.dLon, a.dLat);
    const len = Math.hypot(dx - sx, dy - sy);
    // Control point: above the chord's midpoint, higher for longer arcs.
    const lift = Math.min(len * 0.35, 160 * this.dpr);
    const cx = (sx + dx) / 2;
    const cy = (sy + dy) / 2 - lift;
    this.arcs.push({ sx, sy, dx, dy, cx, cy, t0: now, dur: FLIGHT_MS * (0.75 + Math.min(len / (600 * this.dpr), 0.6)), color: typeColor(a.type) });
    this.stats.drawn++;
  }

  draw(now) {
    const g = this.ctx;
    const w = this.canvas.width;
    const h = this.canvas.height;
    g.clearRect(0, 0, w, h);
    g.drawImage(this.base, 0, 0);
    if (!this.project) return;
    const dpr = this.dpr;
    g.save();
    g.globalCompositeOperation = "lighter";

    // Sources: glow by recency and volume.
    for (const [k, s] of this.hot) {
      const age = now - s.t;
      if (age > HOT_LIFE_MS) {
        this.hot.delete(k);
        continue;
      }
      const [x, y] = this.project(s.lon, s.lat);
      const r = (7 + 5 * Math.min(1, Math.log10(1 + s.n) / 2)) * dpr;
      g.globalAlpha = 0.85 * (1 - age / HOT_LIFE_MS);
      g.drawImage(this.sprite, x - r, y - r, 2 * r, 2 * r);
    }
    g.globalAlpha = 1;

    // Arcs: a fading tail behind a bright head, then a ripple at the sensor.
    const keep = [];
    for (const a of this.arcs) {
      const p = (now - a.t0) / a.dur;
      if (p < 1) {
        const head = 1 - (1 - p) * (1 - p); // ease out
        const tail = Math.max(0, head - 0.4);
        const grad = g.createLinearGradient(...bez(a, tail), ...bez(a, head));
        grad.addColorStop(0, "rgba(0,0,0,0)");
        grad.addColorStop(1, a.color);
        g.strokeStyle = grad;
        g.lineWidth = 1.6 * dpr;
        g.beginPath();
        const steps = 18;
        for (let i = 0; i <= steps; i++) {
          const [x, y] = bez(a, tail + ((head - tail) * i) / steps);
          if (i === 0) g.moveTo(x, y);
          else g.lineTo(x, y);
        }
        g.stroke();
        const [hx, hy] = bez(a, head);
        g.fillStyle = "#fff";
        g.beginPath();
        g.arc(hx, hy, 1.8 * dpr, 0, 2 * Math.PI);
        g.fill();
        keep.push(a);
      } else {
        const q = ((p - 1) * a.dur) / IMPACT_MS;
        if (q < 1) {
          g.strokeStyle = a.color;
          g.globalAlpha = 1 - q;
          g.lineWidth = 1.5 * dpr;
          g.beginPath();
          g.arc(a.dx, a.dy, (3 + 14 * q) * dpr, 0, 2 * Math.PI);
          g.stroke();
          g.globalAlpha = 1;
          keep.push(a);
        }
      }
    }
    this.arcs = keep;

    // Sensors: a steady dot, brighter right after a hit.
    g.globalCompositeOperation = "source-over";
    for (const s of this.sensors.values()) {
      const [x, y] = this.project(s.lon, s.lat);
      const fresh = Math.max(0, 1 - (now - s.t) / 3000);
      g.fillStyle = `rgba(56,189,248,${0.35 + 0.4 * fresh})`;
      g.beginPath();
      g.arc(x, y, (4 + 3 * fresh) * dpr, 0, 2 * Math.PI);
      g.fill();
      g.fillStyle = "#e0f2fe";
      g.beginPath();
      g.arc(x, y, 1.8 * dpr, 0, 2 * Math.PI);
      g.fill();
    }
    g.restore();
  }
}

/** Point at t of the arc's quadratic Bézier curve. */
function bez(a, t) {
  const u = 1 - t;
  return [u * u * a.sx + 2 * u * t * a.cx + t * t * a.dx, u * u * a.sy + 2 * u * t * a.cy + t * t * a.dy];
}
