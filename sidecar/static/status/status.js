// kong-canary status page: polls GET /v1/status with a read token kept in sessionStorage
// only. DOM is built with textContent (no HTML from data); no inline scripts or styles
// (the CSP forbids them). History is merged across answers: under gunicorn each worker
// keeps its own, and every point is a timestamped fact.
"use strict";

const TOKEN_KEY = "kong-canary-token";
const POLL_MS = 2000;
const HOUR = 3600;
const VARIANTS = ["stable", "baseline", "canary"];
const history = new Map(); // upstream -> Map(at -> split)
const series = new Map(); // upstream -> Map(at -> {variant: stats})
let latest = null;
let clockSkew = 0; // server time - browser time, seconds

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function now() { return Date.now() / 1000 + clockSkew; }

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m ${String(r).padStart(2, "0")}s`;
  return `${r}s`;
}

function splitText(split) {
  if (!split) return "no targets";
  return VARIANTS.map((v) => `${split[v]}`).join(" / ");
}

function splitBar(split) {
  const bar = el("div", { class: "split-bar", role: "img", "aria-label": `split ${splitText(split)}` });
  for (const v of VARIANTS) {
    const share = split ? split[v] : 0;
    if (share <= 0) continue;
    const part = el("div", { class: v, title: `${v} ${share}%` }, share >= 6 ? `${v} ${share}%` : "");
    part.style.width = `${share}%`;
    bar.append(part);
  }
  return bar;
}

// The charts' time axis: the last hour, or since the first point when the page (or the
// sidecar) has less, but at least `minimum` seconds, so a fresh ramp fills the chart.
function timeWindow(points, minimum = 60) {
  const t1 = now();
  const first = points.length ? points[0].at : t1;
  const t0 = Math.max(t1 - HOUR, Math.min(first, t1 - minimum));
  return { t0, span: t1 - t0 };
}

function splitChart(points) {
  // stacked step chart: stable at the bottom, then baseline, then canary
  const w = 420, h = 90, { t0, span } = timeWindow(points);
  const box = svg("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": "split over time" });
  const x = (t) => ((Math.max(t, t0) - t0) / span) * w;
  const usable = points.filter((p) => p.split);
  if (!usable.length) return box;
  let floor = usable.map(() => 0);
  for (const v of VARIANTS) {
    const top = usable.map((p, i) => floor[i] + p.split[v]);
    let d = "";
    usable.forEach((p, i) => {
      const x0 = x(p.at), x1 = i + 1 < usable.length ? x(usable[i + 1].at) : w;
      const y = h - (top[i] / 100) * h;
      d += `${i ? "L" : "M"}${x0.toFixed(1)},${y.toFixed(1)} L${x1.toFixed(1)},${y.toFixed(1)} `;
    });
    for (let i = usable.length - 1; i >= 0; i--) {
      const x0 = x(usable[i].at), x1 = i + 1 < usable.length ? x(usable[i + 1].at) : w;
      const y = h - (floor[i] / 100) * h;
      d += `L${x1.toFixed(1)},${y.toFixed(1)} L${x0.toFixed(1)},${y.toFixed(1)} `;
    }
    box.append(svg("path", { d: d + "Z", class: v }));
    floor = top;
  }
  return box;
}

function sparkline(values, label) {
  const w = 130, h = 26;
  const box = svg("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": label });
  const known = values.filter((p) => p.v !== null && p.v !== undefined);
  if (known.length < 2) return box;
  const max = Math.max(...known.map((p) => p.v)) || 1;
  const { t0, span } = timeWindow(known, 10);
  const pts = known.map((p) => `${(((p.at - t0) / span) * w).toFixed(1)},${(h - 2 - (p.v / max) * (h - 4)).toFixed(1)}`);
  box.append(svg("polyline", { points: pts.join(" "), fill: "none", stroke: "#333", "stroke-width": 1.2 }));
  return box;
}

function merge(store, upstream, items, key, value) {
  if (!store.has(upstream)) store.set(upstream, new Map());
  const points = store.get(upstream);
  for (const item of items) points.set(item[key], item[value]);
  const cut = now() - HOUR;
  for (const at of [...points.keys()]) if (at < cut) points.delete(at);
  return [...points.entries()].sort((a, b) => a[0] - b[0]);
}

function rampBlock(u) {
  const ramp = u.ramp;
  if (!ramp) return el("p", { class: "muted" }, "no ramp running");
  if (!ramp.id) return el("p", { class: "muted" }, `ramp ${ramp.fingerprint}: ${ramp.message}`);
  const bar = el("div", { class: "progress", role: "progressbar", "aria-valuenow": ramp.progress, "aria-valuemin": 0, "aria-valuemax": 100 });
  const fill = el("div", {});
  fill.style.width = `${ramp.progress}%`;
  bar.append(fill);
  const dl = el("dl", { class: "kv" });
  const eta = ramp.status === "RUNNING" ? duration(ramp.ends_at - now()) : "–";
  const next = ramp.next_step_at ? duration(ramp.next_step_at - now()) : "–";
  for (const [k, v] of [["ramp", `${ramp.status} ${ramp.progress}% (${ramp.steps} steps)`], ["target", splitText(ramp.target)], ["next step in", next], ["ends in", eta], ["", ramp.message]]) {
    dl.append(el("dt", {}, k), el("dd", { class: k === "ramp" ? "ramp-status" : "" }, v));
  }
  return el("div", { class: "ramp" }, bar, dl);
}

function metricsBlock(u) {
  const m = u.metrics;
  if (!m.available) return el("p", { class: "muted metrics-off" }, m.message);
  const points = merge(series, u.upstream, m.series, "at", "variants");
  const grid = el("div", { class: "spark" });
  grid.append(el("b", {}, "variant"), el("b", {}, "5xx ratio"), el("b", {}, "now"), el("b", {}, "P99 ms"), el("b", {}, "now"));
  for (const v of VARIANTS) {
    const cur = m.now[v] || {};
    const err = points.map(([at, s]) => ({ at, v: s[v] ? s[v].error_ratio : null }));
    const p99 = points.map(([at, s]) => ({ at, v: s[v] ? s[v].p99_ms : null }));
    grid.append(
      el("span", {}, `${v} ${cur.rps !== undefined ? cur.rps.toFixed(1) + " req/s" : ""}`),
      sparkline(err, `${v} 5xx ratio`),
      el("span", {}, cur.error_ratio === null || cur.error_ratio === undefined ? "–" : `${(cur.error_ratio * 100).toFixed(2)}%`),
      sparkline(p99, `${v} P99`),
      el("span", {}, cur.p99_ms === null || cur.p99_ms === undefined ? "–" : `${cur.p99_ms} ms`),
    );
  }
  return el("div", {}, grid, el("p", { class: "muted" }, m.message));
}

function upstreamCard(u) {
  const points = merge(history, u.upstream, u.history, "at", "split").map(([at, split]) => ({ at, split }));
  const lease = u.lease ? duration(u.lease.epoch - now()) : null;
  const card = el("article", { class: "card", "data-upstream": u.upstream });
  card.append(el("h2", {}, u.upstream, el("span", { class: "muted" }, `  ${u.algorithm}`)));
  card.append(splitBar(u.split));
  card.append(el("p", { class: "legend" }, ...VARIANTS.map((v) => el("span", {}, el("i", { class: v }), `${v} ${u.split ? u.split[v] : 0}%`)),
    el("span", { class: "lease" }, lease ? `lease returns it to stable in ${lease}` : "no lease (stable only)")));
  const since = new Date(timeWindow(points).t0 * 1000).toLocaleTimeString();
  const chart = el("div", {}, el("div", { class: "muted" }, `split since ${since} (up to 1 h)`), splitChart(points));
  card.append(el("div", { class: "row" }, chart, el("div", { class: "grow" }, rampBlock(u))));
  card.append(metricsBlock(u));
  const targets = el("table", { class: "targets" }, el("thead", {}, el("tr", {}, el("th", {}, "target"), el("th", {}, "variant"), el("th", {}, "weight"), el("th", {}, "health"))));
  const body = el("tbody", {});
  for (const t of u.targets) body.append(el("tr", {}, el("td", {}, t.target), el("td", {}, t.variant || "?"), el("td", {}, t.weight), el("td", {}, t.health || "–")));
  targets.append(body);
  card.append(targets);
  for (const w of u.warnings) card.append(el("p", { class: "warn" }, `⚠ ${w}`));
  return card;
}

function render(data) {
  latest = data;
  clockSkew = data.generated_at - Date.now() / 1000;
  const list = $("upstreams");
  list.replaceChildren(...data.upstreams.map(upstreamCard));
  if (!data.upstreams.length) list.append(el("p", { class: "muted" }, "No managed upstreams yet: they appear after the sidecar first changes one (or open /?upstream=NAME)."));
  const problems = $("problems");
  problems.hidden = !data.problems.length;
  problems.replaceChildren(...data.problems.map((p) => el("p", {}, `${p.upstream}: ${p.error.message}`)));
  const rows = [...data.events].reverse().map((e) => el("tr", {},
    el("td", {}, new Date(e.at * 1000).toLocaleTimeString()), el("td", {}, e.event), el("td", {}, e.upstream || "–"),
    el("td", {}, e.token || "–"), el("td", {}, e.result || e.status || ""), el("td", {}, e.after ? splitText(e.after) : "")));
  $("events").tBodies[0].replaceChildren(...rows);
  $("events-section").hidden = !rows.length;
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()} · history kept ${data.history.seconds / 60} min`;
}

function showLogin(message) {
  $("login").hidden = false;
  $("forget").hidden = true;
  $("login-error").textContent = message || "";
  $("updated").textContent = "not connected";
}

async function poll() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) { showLogin(); return; }
  const only = new URLSearchParams(location.search).get("upstream");
  const url = "/v1/status" + (only ? `?upstream=${encodeURIComponent(only)}` : "");
  try {
    const res = await fetch(url, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store", credentials: "omit" });
    const body = await res.json();
    if (res.status === 401 || res.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(`The sidecar refused the token: ${body.error.message}`);
      return;
    }
    if (!res.ok) { $("updated").textContent = `sidecar answered ${res.status}: ${body.error.message}`; return; }
    $("login").hidden = true;
    $("forget").hidden = false;
    render(body);
  } catch (err) {
    $("updated").textContent = `cannot reach the sidecar (${err.message}); retrying`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    poll();
  });
  $("forget").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(); });
  poll();
  setInterval(poll, POLL_MS);
  setInterval(() => { if (latest) render(latest); }, 1000); // countdowns tick between polls
});
