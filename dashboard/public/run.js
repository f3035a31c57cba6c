// One run's page in the all-runs dashboard: the run page's charts and cards (app.js), read
// from the registry instead of the run's process, so it works for finished and killed runs
// too; while the run runs, what it wrote since is read every 2 s. Read-only: no controls.

import { $, axis, chartCard, clock, dateTime, dots, duration, el, fetchJSON, fmt, latest, line, logAxis, modelSummary, PALETTE, poll, resizeWith, runDuration } from './common.js';

const MAX_POINTS = 5000; // chart points kept; past this the older half keeps every other point
const MAX_SAMPLES = 12;
const id = decodeURIComponent(location.pathname.replace(/^\/runs\//, '').replace(/\/$/, ''));
const api = `/api/runs/${encodeURIComponent(id)}`;

const state = {
  run: null, now: Date.now(), loaded: false,
  rows: [], vals: [], // { step, time, loss, bpt, gn, gnc, lr, tps, workers, fails }, { step, loss, bpt, bleu4, accuracy }
  samples: [], failures: { total: 0, byReason: {}, latest: [] }, checkpoints: [],
};

function capped(list) {
  if (list.length <= MAX_POINTS) return list;
  const half = list.length >> 1;
  return list.slice(0, half).filter((_, i) => i % 2 === 0).concat(list.slice(half));
}

const rowOf = (p) => ({ step: p.step, time: p.time, loss: p.loss, bpt: p.bitsPerToken, gn: p.gradNorm, gnc: p.gradNormClipped, lr: p.learningRate, tps: p.tokensPerSecond, workers: p.workers });

function addHistory(h) {
  const last = state.rows.length ? state.rows[state.rows.length - 1].step : 0;
  const lastVal = state.vals.length ? state.vals[state.vals.length - 1].step : 0;
  state.rows = capped(state.rows.concat(h.steps.filter((p) => p.step > last).map(rowOf)));
  state.vals = capped(state.vals.concat(h.validations.filter((v) => v.step > lastVal).map((v) => ({ step: v.step, loss: v.loss, bpt: v.bitsPerToken, bleu4: v.bleu4, accuracy: v.accuracy }))));
}

/** Cumulative failures at each step: the failures listed, plus the older ones the list left out. */
function countFailures() {
  const list = state.failures.latest;
  let n = state.failures.total - list.length, f = 0;
  for (const r of state.rows) {
    while (f < list.length && list[f].step <= r.step) { n++; f++; }
    r.fails = n;
  }
}

async function loadDetails() {
  const [samples, failures, checkpoints] = await Promise.all([
    fetchJSON(`${api}/samples?limit=${MAX_SAMPLES}`), fetchJSON(`${api}/failures`), fetchJSON(`${api}/checkpoints`),
  ]);
  Object.assign(state, { samples, failures, checkpoints });
}

async function tick() {
  try {
    const wasRunning = state.run && state.run.status === 'running';
    const last = state.rows.length ? state.rows[state.rows.length - 1].step : 0;
    const lastVal = state.vals.length ? state.vals[state.vals.length - 1].step : 0;
    const h = await fetchJSON(state.loaded ? `${api}/history?after=${last}&validationsAfter=${lastVal}` : `${api}/history`);
    // Resumed by another process: its history after the checkpoint was rewritten; read it whole.
    if (state.loaded && h.run.pid !== state.run.pid) {
      Object.assign(state, { loaded: false, rows: [], vals: [] });
      return tick();
    }
    addHistory(h);
    const grew = h.steps.length > 0 || h.validations.length > 0;
    state.run = h.run;
    state.now = Date.now();
    if (!state.loaded || grew || wasRunning || h.run.status === 'running') await loadDetails();
    state.loaded = true;
    countFailures();
    setConn();
    $('message').textContent = '';
  } catch (e) {
    Object.assign($('conn'), { textContent: 'registry unreachable', className: 'conn down' });
    Object.assign($('message'), { textContent: e.status === 404 ? `${e.message}.` : `Could not read the run: ${e.message}`, className: 'message page-message error' });
    if (e.status === 404) Object.assign($('status'), { textContent: 'not found', className: 'badge failed' });
    return;
  }
  render();
}

function setConn() {
  const r = state.run;
  const text = r.status === 'running' ? 'live'
    : r.status === 'killed' ? `no heartbeat since ${clock(r.heartbeatAt)}`
    : `ended ${r.endedAt ? clock(r.endedAt) : ''}`.trim();
  Object.assign($('conn'), { textContent: text, className: r.status === 'running' ? 'conn live' : 'conn' });
}

// ---- charts (as on the run page, from what the registry holds) ----

const column = (key) => state.rows.map((r) => r[key]);
const valColumn = (key) => state.vals.map((v) => v[key]);
/** A captioning run (its config says so): its validations carry BLEU-4 and accuracy. */
const isCaption = () => !!(state.run && state.run.config.task === 'caption');
/** Only shapes captions can be checked: a directory dataset's run has no accuracy. */
const hasAccuracy = () => isCaption() && state.run.config.dataset === 'shapes';
const fixed = (v, digits) => (v == null || !Number.isFinite(v) ? '–' : v.toFixed(digits));
const percent = (v) => (v == null || !Number.isFinite(v) ? '–' : `${(100 * v).toFixed(1)}%`);
/** Train rows and validation points on one step axis. */
function merged(trainKey, valKey) {
  const x = [], a = [], b = [], R = state.rows, V = state.vals;
  let i = 0, j = 0;
  while (i < R.length || j < V.length) {
    const rs = i < R.length ? R[i].step : Infinity, vs = j < V.length ? V[j].step : Infinity;
    x.push(Math.min(rs, vs));
    a.push(rs <= vs ? R[i++][trainKey] : null);
    b.push(vs <= rs ? V[j++][valKey] : null);
  }
  return [x, a, b];
}
const clipThreshold = () => {
  const clip = state.run && Number(state.run.config.clip);
  return clip > 0 ? clip : null;
};
const positive = (values) => values.map((v) => (v > 0 ? v : null)); // a log scale cannot show 0
const wholeTicks = { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] };

const CHARTS = [
  { id: 'loss', title: 'Loss (nats/token)', series: [line('train', PALETTE[0]), line('validation', PALETTE[1], { spanGaps: true, points: dots, width: 2 })],
    data: () => merged('loss', 'loss') },
  { id: 'bits', title: 'Bits per token', series: [line('train', PALETTE[0]), line('validation', PALETTE[1], { spanGaps: true, points: dots, width: 2 })],
    data: () => merged('bpt', 'bpt') },
  { id: 'gradNorm', title: 'Gradient norm (log scale)', scales: { y: { distr: 3 } }, axes: [logAxis()],
    series: [line('before clip', PALETTE[3], { width: 3 }), line('after clip', PALETTE[2], { width: 1.25 }), line('clip threshold', '#dc2626', { dash: [6, 4], width: 1 })],
    data: () => [column('step'), positive(column('gn')), positive(column('gnc')), state.rows.map(clipThreshold)] },
  { id: 'lr', title: 'Learning rate', series: [line('learning rate', PALETTE[5])], data: () => [column('step'), column('lr')] },
  { id: 'tps', title: 'Tokens per second', series: [line('tokens/s', PALETTE[2])], data: () => [column('step'), column('tps')] },
  { id: 'workers', title: 'Workers and failures', scales: { w: { range: (u, min, max) => [0, Math.max(2, max + 1)] }, f: { range: (u, min, max) => [0, Math.max(1, max)] } },
    axes: [axis({ scale: 'w', label: 'workers', labelSize: 14, ...wholeTicks }), axis({ scale: 'f', side: 1, grid: { show: false }, label: 'failures', labelSize: 14, ...wholeTicks })],
    series: [line('workers', PALETTE[0], { scale: 'w', width: 2, paths: uPlot.paths.stepped({ align: 1 }) }),
      line('failures (cumulative)', '#dc2626', { scale: 'f', spanGaps: true, paths: uPlot.paths.stepped({ align: 1 }) })],
    data: () => [column('step'), column('workers'), column('fails')] },
  // Captioning runs only (the card is hidden otherwise), as on the run's own page: both from 0 to 1.
  { id: 'captionQuality', title: 'Caption quality (validation)', caption: true, scales: { y: { range: [0, 1] } },
    series: [line('BLEU-4', PALETTE[3], { points: dots, width: 2, spanGaps: true, value: (u, v, s, idx) => fixed(idx == null ? latest(u, s) : v, 3) }),
      line('accuracy', PALETTE[2], { points: dots, width: 2, spanGaps: true, value: (u, v, s, idx) => percent(idx == null ? latest(u, s) : v) })],
    data: () => [valColumn('step'), valColumn('bleu4'), valColumn('accuracy')] },
];

const charts = [];
function makeCharts() {
  for (const spec of CHARTS) {
    const { card, body } = chartCard($('charts'), spec.id, spec.title, $('samples-card'));
    if (spec.caption) card.hidden = true;
    const u = new uPlot({
      width: Math.max(200, body.clientWidth), height: 200,
      scales: { x: { time: false }, ...spec.scales },
      axes: [axis({ label: 'step', labelSize: 14, size: 36 }), ...(spec.axes || [axis()])],
      series: [{ label: 'step', value: (u, v) => String(v ?? '–') }, ...spec.series],
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      hooks: { setSelect: [(u) => { if (u.select.width > 2) u.zoomed = true; }] },
    }, spec.data(), body);
    u.over.addEventListener('dblclick', () => { u.zoomed = false; });
    charts.push({ spec, u, body, card });
  }
  resizeWith(charts);
}

// ---- rendering ----

function render() {
  const points = {};
  for (const { spec, u, card } of charts) {
    if (spec.caption) card.hidden = !isCaption();
    const data = spec.data();
    u.setData(data, !u.zoomed);
    points[spec.id] = data[0].length;
  }
  renderHeader();
  renderSamples();
  renderFailures();
  renderFacts();
  const r = state.run;
  window.__gradpoolRuns = { ...(window.__gradpoolRuns || {}), run: {
    id: r.id, status: r.status, points, caption: isCaption(), validations: state.vals.length, samples: state.samples.length,
    checkpoints: state.checkpoints.length, failures: state.failures.total, lastStep: state.rows.length ? state.rows[state.rows.length - 1].step : 0,
  } };
}

function renderHeader() {
  const r = state.run;
  const last = state.rows[state.rows.length - 1];
  const step = Math.max(r.lastStep || 0, last ? last.step : 0);
  const pct = r.stepsTarget > 0 ? Math.min(100, (100 * step) / r.stepsTarget) : 0;
  document.title = `${r.status === 'running' ? Math.floor(pct) + '% · ' : ''}${r.name || r.id} · gradpool`;
  $('run-name').textContent = r.name || 'gradpool';
  $('run-id').textContent = r.id;
  Object.assign($('status'), { textContent: r.status, className: `badge ${r.status}` });
  $('model').textContent = modelSummary(r.config);
  $('progress-bar').style.width = `${pct}%`;
  $('progress').setAttribute('aria-valuenow', pct.toFixed(1));
  $('step-text').textContent = `step ${step.toLocaleString()} / ${r.stepsTarget == null ? '?' : r.stepsTarget.toLocaleString()}`;
  $('tps').textContent = fmt(last ? last.tps : r.tokensPerSecond);
  $('loss').textContent = fmt(last ? last.loss : r.lastLoss, 4);
  const lastVal = state.vals[state.vals.length - 1];
  $('val-loss').textContent = lastVal ? `${fmt(lastVal.loss, 4)} @${lastVal.step}` : '–';
  $('best-val').textContent = fmt(r.bestValLoss, 4);
  $('bleu4-stat').hidden = !isCaption();
  $('best-bleu4').textContent = fixed(r.bestBleu4, 3);
  $('accuracy-stat').hidden = !hasAccuracy();
  $('val-accuracy').textContent = percent(lastVal ? lastVal.accuracy : null);
  $('params').textContent = r.parameters ? fmt(r.parameters) : '–';
  $('backend').textContent = r.backend || '–';
  $('failure-count').textContent = String(state.failures.total);
  $('started').textContent = sameDay(r.startedAt, state.now) ? clock(r.startedAt) : dateTime(r.startedAt).slice(5);
  $('duration').textContent = duration(runDuration(r, state.now));
}

function renderSamples() {
  const box = $('samples');
  if (state.samples.length === 0) return box.replaceChildren(el('p', { class: 'empty' }, 'No sample recorded.'));
  box.replaceChildren(...state.samples.slice().reverse().map((s) =>
    el('figure', { class: 'sample' }, el('figcaption', {}, `step ${s.step.toLocaleString()} · ${clock(s.time)}`), el('pre', {}, s.text))));
}

function renderFailures() {
  const f = state.failures;
  $('failure-summary').textContent = f.total ? Object.entries(f.byReason).map(([r, n]) => `${r}: ${n}`).join(', ') : 'None.';
  $('failures').replaceChildren(...f.latest.slice().reverse().map((x) =>
    el('li', {}, el('span', { class: `tag ${x.reason}` }, x.reason), ` step ${x.step}, shard ${x.shard} · ${clock(x.time)} — `, el('span', { class: 'muted' }, x.message))));
  const cps = state.checkpoints;
  $('checkpoint-summary').textContent = cps.length ? `${cps.length} written, the last at step ${cps[cps.length - 1].step.toLocaleString()}` : 'None recorded.';
  $('checkpoints').replaceChildren(...cps.slice().reverse().map((c) =>
    el('li', {}, `step ${c.step.toLocaleString()} · ${clock(c.time)}${c.seconds != null ? ` (${fmt(c.seconds)} s)` : ''}`, el('br'), el('code', {}, c.path))));
}

const sameDay = (a, b) => new Date(a).toDateString() === new Date(b).toDateString();

const row = (k, v) => el('tr', { role: 'row' }, el('th', { scope: 'row', role: 'rowheader' }, k),
  el('td', { role: 'cell' }, v == null ? '—' : typeof v === 'string' || v instanceof Node ? v : JSON.stringify(v)));

function renderFacts() {
  const r = state.run;
  $('facts').replaceChildren(
    row('id', r.id), row('name', r.name), row('kind', r.kind), row('directory', r.dir), row('host', `${r.host} (pid ${r.pid})`),
    row('sweep', r.sweepId ? el('a', { href: `/sweeps/${encodeURIComponent(r.sweepId)}` }, r.sweepId) : null),
    row('started', new Date(r.startedAt).toLocaleString()), row('last heartbeat', new Date(r.heartbeatAt).toLocaleString()),
    row('ended', r.endedAt ? new Date(r.endedAt).toLocaleString() : null),
  );
  $('config').replaceChildren(...Object.entries(r.config).map(([k, v]) => row(k, v)));
}

makeCharts();
poll(tick);
