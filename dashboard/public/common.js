// Shared parts of the all-runs dashboard's pages (runs.js, run.js, sweep.js): formatting,
// DOM helpers, the JSON fetch, polling and the uPlot chart options of the run page (app.js).
// Plain ES2020 module, no build step; uPlot is the global the page loads first.

/** How often the pages read the registry again (running runs write it once a second). */
export const POLL_MS = 2000;
export const PALETTE = ['#2563eb', '#ea580c', '#16a34a', '#9333ea', '#db2777', '#0891b2', '#ca8a04', '#64748b', '#dc2626', '#4f46e5'];

export const $ = (id) => document.getElementById(id);

export function fmt(v, digits = 3) {
  if (v == null || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9) return +(v / 1e9).toPrecision(digits) + 'G';
  if (a >= 1e6) return +(v / 1e6).toPrecision(digits) + 'M';
  if (a >= 1e4) return +(v / 1e3).toPrecision(digits) + 'k';
  return String(+v.toPrecision(digits));
}

export function duration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  const s = Math.round(ms / 1000), pad = (n) => String(n).padStart(2, '0');
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m ${pad(s % 60)}s` : `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
}

export const clock = (t) => new Date(t).toLocaleTimeString();
/** "2026-12-01 14:05" in local time. */
export function dateTime(t) {
  const d = new Date(t), pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v != null && v !== false) node.setAttribute(k, v === true ? '' : v);
  for (const c of children) if (c != null) node.append(c);
  return node;
}

/** GET a JSON route; a failure throws with the server's message. */
export async function fetchJSON(path) {
  const res = await fetch(path, { headers: { accept: 'application/json' } });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(json.message || `${res.status} ${res.statusText}`), { status: res.status });
  return json;
}

/** Calls `tick` now and every POLL_MS after the previous call ends; paused while the tab is hidden.
 *  `tick` shows its own errors (a failed read is retried at the next tick). */
export function poll(tick) {
  let timer = null;
  const run = async () => {
    timer = null;
    try { await tick(); } catch { /* shown by tick */ } finally { if (!document.hidden) timer = setTimeout(run, POLL_MS); }
  };
  document.addEventListener('visibilitychange', () => { if (!document.hidden && timer === null) run(); });
  run();
}

export function setConnected(ok, text) {
  Object.assign($('conn'), { textContent: text || (ok ? 'live' : 'registry unreachable'), className: ok ? 'conn live' : 'conn down' });
}

/** How long a run has gone: to its end, to now while it runs, to its last heartbeat once killed. */
export function runDuration(r, now) {
  const end = r.endedAt ?? (r.status === 'running' ? now : r.heartbeatAt);
  return end - r.startedAt;
}

export const modelShort = (c) => (c && c.cell ? `${c.cell} ${c.layers ?? 1}×${c.hidden ?? '?'}` : '–');

export function modelSummary(c) {
  if (!c || !c.cell) return '';
  const parts = [`${String(c.cell).toUpperCase()} ${c.layers ?? 1}×${c.hidden}`, `E=${c.embed}`, `${c.tokens || 'char'} tokens`,
    `T=${c.seqLen} B=${c.batch}`, c.optimizer, c.lr != null && `lr ${c.lr}`, c.layerNorm && 'layer norm', c.normStabilizer && `stabilizer β=${c.normStabilizer}`];
  return parts.filter(Boolean).join(' · ');
}

export const runLabel = (r) => r.name || r.id;
export const badge = (status) => el('span', { class: `badge ${status}` }, status);

// ---- uPlot options, as on the run page (app.js) ----

/** A y axis wide enough for its longest tick label (e.g. 0.0075). */
function labelWidth(u, values) {
  const longest = (values || []).reduce((n, v) => Math.max(n, String(v ?? '').length), 0);
  return Math.max(40, Math.ceil(longest * 7 + 18));
}
export const axis = (extra) => ({
  stroke: '#475569', grid: { stroke: '#eef2f6', width: 1 }, ticks: { stroke: '#cbd5e1', width: 1 },
  values: (u, ticks) => ticks.map((v) => (v == null ? '' : fmt(v))), size: labelWidth, ...extra,
});
/** The legend shows the hovered point, or the latest value when the cursor is elsewhere. */
export function latest(u, sidx) {
  const d = u.data[sidx] || [];
  for (let i = d.length - 1; i >= 0; i--) if (d[i] != null) return d[i];
  return null;
}
export const line = (label, color, extra) => ({ label, stroke: color, width: 1.5, value: (u, v, s, idx) => fmt(idx == null ? latest(u, s) : v, 4), ...extra });
/** Log-axis ticks at 1, 2 and 5 per decade. */
export function logSplits(u, axisIdx, min, max) {
  const out = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) if (m * 10 ** e >= min && m * 10 ** e <= max) out.push(+(m * 10 ** e).toPrecision(1));
  }
  return out;
}
export const logAxis = () => axis({ splits: logSplits, filter: (u, splits) => splits });
export const dots = { show: true, size: 6 };

/** A chart card (figure > h2 + div.chart) appended to `grid` (or inserted before `before`). */
export function chartCard(grid, id, title, before) {
  const body = el('div', { class: 'chart' });
  const titleId = `chart-${id}-title`;
  const card = el('figure', { class: 'card chart-card', id: `chart-${id}`, 'aria-labelledby': titleId }, el('h2', { id: titleId }, title), body);
  grid.insertBefore(card, before || null);
  return { card, body };
}

/** Keeps every chart as wide as its card. */
export function resizeWith(charts) {
  const resize = new ResizeObserver(() => { for (const c of charts) c.u.setSize({ width: Math.max(200, c.body.clientWidth), height: 200 }); });
  for (const c of charts) resize.observe(c.body);
  return resize;
}
