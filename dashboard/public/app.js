// The gradpool dashboard: loads the run's history, then follows /api/events (SSE) and
// redraws the uPlot charts at most once per animation frame. Plain ES2020, no build step.
'use strict';

const MAX_POINTS = 5000; // chart points kept; past this the older half keeps every other point
const MAX_SAMPLES = 12;
const MAX_FAILURES = 50;
const MIN_FRAME_MS = 200; // at most ~5 redraws a second however fast steps arrive
const TOKEN_KEY = 'gradpool.token';
const PALETTE = ['#2563eb', '#ea580c', '#16a34a', '#9333ea', '#db2777', '#0891b2', '#ca8a04', '#64748b'];

const $ = (id) => document.getElementById(id);

const state = {
  info: null, checkpoint: null, failureTotal: 0, workerIds: [],
  rows: [], // one per step: { step, time, loss, bpt, gn, gnc, clip, lr, tps, workers, fails, wms }
  vals: [], // { step, loss, bpt }
  samples: [], failures: [], // newest last
  loading: true, buffered: [], // events that arrive while (re)loading wait here
  lists: 1, listsShown: 0, // bumped when samples, failures or config change: their DOM is rebuilt only then
  remote: null, remoteVersion: 1, remoteShown: 0, // the latest remote-worker snapshot (runs with --nats)
  // A captioning run's gallery: { images: [{ index, name, url }], latest: { step, time, captions } | null }, null for a language model.
  gallery: null, galleryVersion: 1, galleryShown: 0, galleryImages: null, // galleryImages: the images the DOM was built for
};

// ---- formatting ----

function fmt(v, digits = 3) {
  if (v == null || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9) return +(v / 1e9).toPrecision(digits) + 'G';
  if (a >= 1e6) return +(v / 1e6).toPrecision(digits) + 'M';
  if (a >= 1e4) return +(v / 1e3).toPrecision(digits) + 'k';
  return String(+v.toPrecision(digits));
}

/** Scores from 0 to 1: a smoothed BLEU of 1e-155 reads 0.000, not in exponent notation. */
const fixed = (v, digits) => (v == null || !Number.isFinite(v) ? '–' : v.toFixed(digits));
const percent = (v) => (v == null || !Number.isFinite(v) ? '–' : `${(100 * v).toFixed(1)}%`);

function duration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  const s = Math.round(ms / 1000), pad = (n) => String(n).padStart(2, '0');
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m ${pad(s % 60)}s` : `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
}

const clock = (t) => new Date(t).toLocaleTimeString();

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

// ---- state updates ----

/** Bound a list: once past MAX_POINTS, the older half keeps every other point. */
function capped(list) {
  if (list.length <= MAX_POINTS) return list;
  const half = list.length >> 1;
  return list.slice(0, half).filter((_, i) => i % 2 === 0).concat(list.slice(half));
}

function addStep(p, fails) {
  const last = state.rows[state.rows.length - 1];
  if (last && p.step <= last.step) return; // already had it (history and stream overlap)
  const wms = p.workerMs || {};
  for (const id of Object.keys(wms)) if (!state.workerIds.includes(id)) state.workerIds.push(id);
  state.rows.push({
    step: p.step, time: p.time, loss: p.skipped ? null : p.loss, bpt: p.skipped ? null : p.bitsPerToken,
    gn: p.gradNorm, gnc: p.gradNormClipped, clip: p.clipThreshold > 0 ? p.clipThreshold : null,
    lr: p.learningRate, tps: p.tokensPerSecond, workers: p.workers, fails, wms, tasks: p.tasks || null, imbalance: p.imbalance,
  });
  state.rows = capped(state.rows);
}

function addValidation(v) {
  const last = state.vals[state.vals.length - 1];
  if (last && v.step <= last.step) return;
  state.vals.push({ step: v.step, loss: v.loss, bpt: v.bitsPerToken, bleu4: v.bleu4 ?? null, accuracy: v.accuracy ?? null });
  state.vals = capped(state.vals);
}

function addSample(s) {
  if (state.samples.some((o) => o.step === s.step && o.time === s.time)) return;
  state.samples.push(s);
  if (state.samples.length > MAX_SAMPLES) state.samples.shift();
  state.lists++;
}

function addFailure(f) {
  if (state.failures.some((o) => o.time === f.time && o.step === f.step && o.shard === f.shard)) return false;
  state.failures.push(f);
  if (state.failures.length > MAX_FAILURES) state.failures.shift();
  state.failureTotal++;
  state.lists++;
  return true;
}

function apply(type, data) {
  const info = state.info;
  if (type === 'step') {
    addStep(data, state.failureTotal);
    if (info) Object.assign(info, { step: Math.max(info.step || 0, data.step), workers: data.workers });
  } else if (type === 'validation') addValidation(data);
  else if (type === 'sample') addSample(data);
  else if (type === 'failure') {
    if (addFailure(data) && info) info.failures = { ...info.failures, [data.reason]: ((info.failures || {})[data.reason] || 0) + 1 };
  } else if (type === 'checkpoint') {
    state.checkpoint = { step: data.step, path: data.path, time: Date.now(), seconds: data.seconds };
    state.lists++;
  } else if (type === 'remote') setRemote(data);
  else if (type === 'gallery') setGallery(data);
  else if (type === 'run') {
    state.info = { ...info, ...data };
    if (data.remote) setRemote(data.remote);
    if (data.lastCheckpoint && (!state.checkpoint || data.lastCheckpoint.step >= state.checkpoint.step)) state.checkpoint = data.lastCheckpoint;
    state.lists++;
  }
  scheduleRender();
}

/** New captions for the gallery's images (ignored while the images are unknown, and when they are older). */
function setGallery(latest) {
  const g = state.gallery;
  if (!g || (g.latest && latest.step < g.latest.step)) return;
  g.latest = latest;
  state.galleryVersion++;
}

/** A captioning run (its config says so): the page shows BLEU-4, accuracy and the gallery. */
const isCaption = () => !!(state.info && state.info.config && state.info.config.task === 'caption');

function setRemote(r) {
  state.remote = r;
  state.remoteVersion++;
}

/** A step's partition: "2 × 2 blocks · imbalance 1.04" (blocks per task, and the slowest task over the mean). */
function partitionText(tasks, imbalance) {
  const sizes = [...new Set(tasks)];
  const blocks = sizes.length === 1 ? `${tasks.length} × ${sizes[0]} block${sizes[0] === 1 ? '' : 's'}` : `${tasks.join(' + ')} blocks`;
  return tasks.length > 1 && Number.isFinite(imbalance) ? `${blocks} · imbalance ${imbalance.toFixed(2)}` : blocks;
}

/** Threads of the live remote workers (0 without any). */
const remoteThreads = () => (state.remote ? state.remote.workers.reduce((n, w) => n + w.threads, 0) : 0);

async function getJSON(path, fallback) {
  const res = await fetch(path, { headers: { accept: 'application/json' }, cache: 'no-store' });
  if (res.status === 404 && fallback !== undefined) return fallback;
  if (!res.ok) throw new Error(`${path}: ${res.status} ${res.statusText}`);
  return res.json();
}

/** (Re)load everything; events arriving meanwhile are buffered, then applied (duplicates skipped). */
let loadGeneration = 0;
async function load() {
  const generation = ++loadGeneration;
  state.loading = true;
  try {
    const [info, history, samples, failures] = await Promise.all([
      getJSON('/api/run'), getJSON('/api/history'), getJSON('/api/samples', []), getJSON('/api/failures', null),
    ]);
    // Only a captioning run has a gallery (404 for one without validation images).
    const gallery = info.config && info.config.task === 'caption' ? await getJSON('/api/gallery', null) : null;
    if (generation !== loadGeneration) return;
    Object.assign(state, { info, rows: [], vals: [], samples: [], failures: [], checkpoint: info.lastCheckpoint || null });
    setRemote(info.remote || null);
    state.gallery = gallery; // null: no gallery
    state.galleryVersion++;
    const workerChart = charts.find((c) => c.spec.id === 'workerMs').u; // a new run has new worker ids
    for (let i = workerChart.series.length - 1; i > 0; i--) workerChart.delSeries(i);
    state.workerIds = [];
    // Cumulative failures per step: exact when /api/failures lists them all, else known from here on.
    const total = Object.values(info.failures || {}).reduce((a, b) => a + b, 0);
    const list = (failures || []).slice().sort((a, b) => a.step - b.step);
    state.failureTotal = failures ? Math.max(0, total - list.length) : total;
    let f = 0;
    for (const p of history.steps || []) {
      while (f < list.length && list[f].step <= p.step) addFailure(list[f++]);
      addStep(p, failures ? state.failureTotal : null);
    }
    while (f < list.length) addFailure(list[f++]);
    state.failureTotal = Math.max(state.failureTotal, total);
    const last = state.rows[state.rows.length - 1];
    if (last && last.fails == null) last.fails = state.failureTotal;
    for (const v of history.validations || []) addValidation(v);
    for (const s of samples) addSample(s);
    if ($('message').textContent.startsWith('Could not load')) say('');
  } catch (e) {
    say(`Could not load the run: ${e.message}`, true);
  } finally {
    if (generation === loadGeneration) {
      state.loading = false;
      for (const [type, data] of state.buffered.splice(0)) apply(type, data);
      state.lists++;
      scheduleRender();
    }
  }
}

// ---- live updates ----

function connect() {
  const source = new EventSource('/api/events');
  let loadedOnce = false;
  // Load on every (re)connection: the stream is already subscribed, so nothing falls in between.
  source.onopen = () => { setConnected(true); loadedOnce = true; load(); };
  source.onerror = () => {
    // A run that was stopping or done has gone away for good: stop retrying.
    if (state.info && ['stopping', 'stopped', 'done', 'failed'].includes(state.info.status)) {
      source.close();
      if (state.info.status === 'stopping') state.info.status = 'stopped';
      scheduleRender();
      return setConnected(false, 'run ended');
    }
    setConnected(false);
  };
  for (const type of ['step', 'validation', 'sample', 'failure', 'checkpoint', 'run', 'remote', 'gallery']) {
    source.addEventListener(type, (e) => {
      let data;
      try { data = JSON.parse(e.data); } catch { return; }
      if (state.loading) state.buffered.push([type, data]);
      else apply(type, data);
    });
  }
  // Without an event stream the page still shows a snapshot.
  setTimeout(() => { if (!loadedOnce) load(); }, 3000);
}

function setConnected(ok, text) {
  Object.assign($('conn'), { textContent: text || (ok ? 'live' : 'reconnecting…'), className: ok ? 'conn live' : 'conn down' });
}

// ---- charts ----

const axis = (extra) => ({
  stroke: '#475569', grid: { stroke: '#eef2f6', width: 1 }, ticks: { stroke: '#cbd5e1', width: 1 },
  values: (u, ticks) => ticks.map((v) => (v == null ? '' : fmt(v))), size: 52, ...extra, // null: an unlabelled log tick
});
/** The legend shows the hovered point, or the latest value when the cursor is elsewhere. */
function latest(u, sidx) {
  const d = u.data[sidx] || [];
  for (let i = d.length - 1; i >= 0; i--) if (d[i] != null) return d[i];
  return null;
}
const line = (label, color, extra) => ({ label, stroke: color, width: 1.5, value: (u, v, s, idx) => fmt(idx == null ? latest(u, s) : v, 4), ...extra });
const wholeTicks = { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] };
/** Log-axis ticks at 1, 2 and 5 per decade (uPlot's default draws every 1..9). */
function logSplits(u, axisIdx, min, max) {
  const out = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) if (m * 10 ** e >= min && m * 10 ** e <= max) out.push(+(m * 10 ** e).toPrecision(1));
  }
  return out;
}
const dots = { show: true, size: 6 };
const column = (key) => state.rows.map((r) => r[key]);
const valColumn = (key) => state.vals.map((v) => v[key]);

/** Steps of train rows and validation points merged into one x axis (uPlot wants aligned data). */
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

const CHARTS = [
  { id: 'loss', title: 'Loss (nats/token)', series: [line('train', PALETTE[0]), line('validation', PALETTE[1], { spanGaps: true, points: dots, width: 2 })],
    data: () => merged('loss', 'loss') },
  { id: 'bits', title: 'Bits per token', series: [line('train', PALETTE[0]), line('validation', PALETTE[1], { spanGaps: true, points: dots, width: 2 })],
    data: () => merged('bpt', 'bpt') },
  { id: 'gradNorm', title: 'Gradient norm (log scale)', scales: { y: { distr: 3 } }, axes: [axis({ splits: logSplits, filter: (u, splits) => splits })], series: [line('before clip', PALETTE[3], { width: 3 }), line('after clip', PALETTE[2], { width: 1.25 }),
    line('clip threshold', '#dc2626', { dash: [6, 4], width: 1, spanGaps: true })],
    data: () => [column('step'), column('gn'), column('gnc'), column('clip')] },
  { id: 'lr', title: 'Learning rate', series: [line('learning rate', PALETTE[5])], data: () => [column('step'), column('lr')] },
  { id: 'tps', title: 'Tokens per second', series: [line('tokens/s', PALETTE[2])], data: () => [column('step'), column('tps')] },
  { id: 'workerMs', title: 'Step time per worker (ms)', series: [],
    data: () => [column('step'), ...state.workerIds.map((id) => state.rows.map((r) => r.wms[id] ?? null))] },
  { id: 'workers', title: 'Workers and failures', scales: { w: { range: (u, min, max) => [0, Math.max(2, max + 1)] }, f: { range: (u, min, max) => [0, Math.max(1, max)] } },
    axes: [axis({ scale: 'w', label: 'workers', labelSize: 14, ...wholeTicks }), axis({ scale: 'f', side: 1, grid: { show: false }, label: 'failures', labelSize: 14, ...wholeTicks })],
    series: [line('workers', PALETTE[0], { scale: 'w', width: 2, paths: uPlot.paths.stepped({ align: 1 }) }),
      line('failures (cumulative)', '#dc2626', { scale: 'f', spanGaps: true, paths: uPlot.paths.stepped({ align: 1 }) })],
    data: () => [column('step'), column('workers'), column('fails')] },
  // Captioning runs only (the card is hidden otherwise): the validation's caption quality, both from 0 to 1.
  { id: 'captionQuality', title: 'Caption quality (validation)', caption: true, scales: { y: { range: [0, 1] } },
    series: [line('BLEU-4', PALETTE[3], { points: dots, width: 2, spanGaps: true, value: (u, v, s, idx) => fixed(idx == null ? latest(u, s) : v, 3) }),
      line('accuracy', PALETTE[2], { points: dots, width: 2, spanGaps: true, value: (u, v, s, idx) => percent(idx == null ? latest(u, s) : v) })],
    data: () => [valColumn('step'), valColumn('bleu4'), valColumn('accuracy')] },
];

const charts = [];

function makeCharts() {
  const grid = $('charts');
  for (const spec of CHARTS) {
    const body = el('div', { class: 'chart' });
    const titleId = `chart-${spec.id}-title`;
    const card = el('figure', { class: 'card chart-card', id: `chart-${spec.id}`, 'aria-labelledby': titleId }, el('h2', { id: titleId }, spec.title), body);
    if (spec.caption) card.hidden = true;
    grid.insertBefore(card, $('gallery-card'));
    const u = new uPlot({
      width: Math.max(200, body.clientWidth), height: 200,
      scales: { x: { time: false }, ...spec.scales },
      axes: [axis({ label: 'step', labelSize: 14, size: 36 }), ...(spec.axes || [axis()])],
      series: [{ label: 'step', value: (u, v, s, idx) => String((idx == null ? latest(u, 0) : v) ?? '–') }, ...spec.series],
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      hooks: { setSelect: [(u) => { if (u.select.width > 2) u.zoomed = true; }] },
    }, spec.data(), body);
    u.over.addEventListener('dblclick', () => { u.zoomed = false; });
    charts.push({ spec, u, body });
  }
  const resize = new ResizeObserver(() => { for (const c of charts) c.u.setSize({ width: Math.max(200, c.body.clientWidth), height: 200 }); });
  for (const c of charts) resize.observe(c.body);
}

// ---- rendering (coalesced: at most one redraw per animation frame, and per MIN_FRAME_MS) ----

let renderPending = false;
let lastRender = 0;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  const wait = Math.max(0, lastRender + MIN_FRAME_MS - performance.now());
  setTimeout(() => requestAnimationFrame(render), wait);
}

function render() {
  renderPending = false;
  lastRender = performance.now();
  const points = {};
  for (const { spec, u } of charts) {
    if (spec.id === 'workerMs') {
      for (let i = u.series.length - 1; i < state.workerIds.length; i++) {
        // Off the chart, a worker's legend shows its time in the latest step ('–' once it is gone).
        // Local threads have numeric ids; a remote thread's id ("<worker id>/<thread>") names itself.
        const id = state.workerIds[i];
        u.addSeries(line(/^\d+$/.test(id) ? `worker ${id}` : id, PALETTE[i % PALETTE.length], { value: (u, v, s, idx) => fmt(idx == null ? u.data[s][u.data[s].length - 1] : v, 4) }), i + 1);
      }
    }
    if (spec.caption) u.root.closest('.card').hidden = !isCaption();
    const data = spec.data();
    u.setData(data, !u.zoomed);
    points[spec.id] = data[0].length;
  }
  renderHeader();
  if (state.listsShown !== state.lists) { state.listsShown = state.lists; renderSamples(); renderFailures(); renderConfig(); }
  if (state.remoteShown !== state.remoteVersion) { state.remoteShown = state.remoteVersion; renderRemote(); }
  if (state.galleryShown !== state.galleryVersion) { state.galleryShown = state.galleryVersion; renderGallery(); }
  const g = state.gallery;
  const info = state.info || {};
  window.__gradpool = {
    points, renders: (window.__gradpool?.renders || 0) + 1, samples: state.samples.length, validations: state.vals.length,
    workers: info.workers, status: info.status, step: info.step, workerIds: state.workerIds.slice(), loading: state.loading,
    remoteWorkers: state.remote ? state.remote.workers.map((w) => w.id) : [],
    gallery: g ? { images: g.images.length, step: g.latest ? g.latest.step : null } : null,
  };
}

function renderHeader() {
  const info = state.info;
  if (!info) return;
  const last = state.rows[state.rows.length - 1];
  const step = Math.max(info.step || 0, last ? last.step : 0);
  const pct = info.steps > 0 ? Math.min(100, (100 * step) / info.steps) : 0;
  document.title = `${info.status === 'running' ? Math.floor(pct) + '% · ' : ''}gradpool ${info.runId}`;
  $('run-id').textContent = info.runId;
  Object.assign($('status'), { textContent: info.status, className: `badge ${info.status}` });
  $('model').textContent = modelSummary(info.config || {});
  $('progress-bar').style.width = `${pct}%`;
  $('progress').setAttribute('aria-valuenow', pct.toFixed(1));
  $('step-text').textContent = `step ${step.toLocaleString()} / ${(info.steps || 0).toLocaleString()}`;
  const remote = remoteThreads();
  $('workers').textContent = info.workers == null ? '–' : remote > 0 ? `${info.workers} (${remote} remote)` : String(info.workers);
  $('shards').textContent = info.shards ?? '–';
  $('tasks').textContent = last && last.tasks ? partitionText(last.tasks, last.imbalance) : '–';
  $('tps').textContent = fmt(last ? last.tps : info.tokensPerSecond);
  $('eta').textContent = info.status === 'running' ? eta(step, info.steps) : '–';
  $('loss').textContent = fmt(last ? last.loss : info.loss, 4);
  const lastVal = state.vals[state.vals.length - 1];
  $('val-loss').textContent = lastVal ? `${fmt(lastVal.loss, 4)} @${lastVal.step}` : '–';
  const caption = isCaption();
  $('bleu4-stat').hidden = !caption;
  $('accuracy-stat').hidden = !caption || info.config.dataset !== 'shapes'; // only shapes captions can be checked
  $('bleu4').textContent = fixed(lastVal ? lastVal.bleu4 : null, 3);
  $('accuracy').textContent = percent(lastVal ? lastVal.accuracy : null);
  $('params').textContent = info.parameters ? fmt(info.parameters) : '–';
  $('backend').textContent = info.backend || '–';
  const total = Object.values(info.failures || {}).reduce((a, b) => a + b, 0);
  $('failure-count').textContent = String(total);
  const input = $('workers-input');
  // Scaling sets the local threads; remote workers come and go by themselves.
  if (!input.value && document.activeElement !== input && info.workers) input.value = info.workers - remote;
}

/** Remaining time from the recent step rate (the last ~50 points). */
function eta(step, steps) {
  const R = state.rows;
  if (R.length < 2 || !(steps > step)) return '–';
  const a = R[Math.max(0, R.length - 50)], b = R[R.length - 1];
  return duration(((b.time - a.time) / (b.step - a.step)) * (steps - step));
}

function modelSummary(c) {
  if (!c.cell) return '';
  const parts = [`${String(c.cell).toUpperCase()} ${c.layers ?? 1}×${c.hidden}`, `E=${c.embed}`, `${c.tokens || 'char'} tokens`,
    `T=${c.seqLen} B=${c.batch}`, c.optimizer, c.layerNorm && 'layer norm', c.normStabilizer && `stabilizer β=${c.normStabilizer}`];
  return parts.filter(Boolean).join(' · ');
}

function renderSamples() {
  const box = $('samples');
  if (state.samples.length === 0) return box.replaceChildren(el('p', { class: 'empty' }, 'No sample yet.'));
  box.replaceChildren(...state.samples.slice().reverse().map((s) =>
    el('figure', { class: 'sample' }, el('figcaption', {}, `step ${s.step.toLocaleString()} · ${clock(s.time)}`), el('pre', {}, s.text))));
}

/**
 * The gallery: its images' figures are built once per load (each image is fetched once);
 * an evaluation only replaces the captions under them.
 */
function renderGallery() {
  const g = state.gallery;
  $('gallery-card').hidden = !g || g.images.length === 0;
  if (!g || g.images.length === 0) return;
  const box = $('gallery');
  if (state.galleryImages !== g.images) {
    state.galleryImages = g.images;
    box.replaceChildren(...g.images.map((image) => el('figure', { class: 'shot' },
      el('img', { src: image.url, alt: image.name, title: image.name, width: '128', height: '128' }),
      el('figcaption', {}, el('p', { class: 'empty' }, 'No caption yet.')))));
  }
  const latest = g.latest;
  $('gallery-step').textContent = latest ? `(greedy captions at step ${latest.step.toLocaleString()} · ${clock(latest.time)})` : '(first captions at the first validation)';
  if (!latest) return;
  box.querySelectorAll('figure.shot').forEach((figure, i) => {
    const c = latest.captions[i];
    if (!c) return;
    const verdict = c.correct == null ? [] : [el('span', { class: `verdict ${c.correct ? 'right' : 'wrong'}`, title: c.correct ? 'correct' : 'incorrect' }, c.correct ? '✓' : '✗'), ' '];
    figure.classList.toggle('right', c.correct === true);
    figure.classList.toggle('wrong', c.correct === false);
    figure.querySelector('figcaption').replaceChildren(
      el('p', { class: 'generated' }, ...verdict, c.caption || '(empty)'),
      el('ul', { class: 'references', 'aria-label': 'reference captions' }, ...c.references.map((r) => el('li', {}, r))));
  });
}

function renderFailures() {
  const info = state.info || {};
  const byReason = Object.entries(info.failures || {}).filter(([, n]) => n > 0);
  const extra = [info.retries ? `${info.retries} retries` : '', info.nonfiniteSteps ? `${info.nonfiniteSteps} non-finite steps skipped` : ''];
  const summary = [byReason.map(([r, n]) => `${r}: ${n}`).join(', '), ...extra].filter(Boolean).join(' · ');
  $('failure-summary').textContent = summary || 'None.';
  $('failures').replaceChildren(...state.failures.slice().reverse().map((f) =>
    el('li', {}, el('span', { class: `tag ${f.reason}` }, f.reason), ` step ${f.step}, shard ${f.shard} · ${clock(f.time)} — `, el('span', { class: 'muted' }, f.message))));
  const cp = state.checkpoint;
  $('checkpoint-info').replaceChildren(...(cp
    ? [`step ${cp.step.toLocaleString()} at ${clock(cp.time)}${cp.seconds != null ? ` (${fmt(cp.seconds)} s)` : ''}`, el('br'), el('code', {}, cp.path)]
    : ['None yet.']));
}

/** The remote workers card: shown once the run has used NATS (workers, or bytes either way). */
function renderRemote() {
  const r = state.remote;
  const used = r != null && (r.workers.length > 0 || r.bytesIn > 0 || r.bytesOut > 0 || r.duplicates > 0);
  $('remote-card').hidden = !used;
  if (!used) return;
  const n = r.workers.length, threads = remoteThreads();
  $('remote-summary').textContent = n > 0
    ? `${n} worker process${n === 1 ? '' : 'es'}, ${threads} thread${threads === 1 ? '' : 's'}`
    : 'No remote worker connected.';
  $('remote-traffic').textContent =
    `NATS: ${fmt(r.bytesIn)}B in · ${fmt(r.bytesOut)}B out · ${r.duplicates} duplicate result${r.duplicates === 1 ? '' : 's'} discarded`;
  $('remote-workers').replaceChildren(...r.workers.map((w) => el('tr', {},
    el('td', { title: `${w.host}, pid ${w.pid}` }, el('code', {}, w.id)), el('td', {}, String(w.threads)), el('td', {}, String(w.inFlight)))));
  $('remote-table').hidden = n === 0;
}

function renderConfig() {
  const config = (state.info && state.info.config) || {};
  $('config').replaceChildren(...Object.entries(config).map(([k, v]) =>
    el('tr', { role: 'row' }, el('th', { scope: 'row', role: 'rowheader' }, k), el('td', { role: 'cell' }, v == null ? '—' : typeof v === 'string' ? v : JSON.stringify(v)))));
}

// ---- controls ----

function say(text, isError = false) {
  Object.assign($('message'), { textContent: text, className: isError ? 'message error' : 'message' });
}

async function post(path, body) {
  const token = $('token').value.trim();
  if (!token) {
    say('Enter the run token first (printed at start, also in the run directory\'s "token" file).', true);
    $('token').focus();
    return null;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  try {
    const res = await fetch(path, { method: 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(json.message || `${res.status} ${res.statusText}`);
    return json;
  } catch (e) {
    say(`${path}: ${e.message}`, true);
    return null;
  }
}

function bindControls() {
  const token = $('token');
  token.value = sessionStorage.getItem(TOKEN_KEY) || '';
  token.addEventListener('change', () => sessionStorage.setItem(TOKEN_KEY, token.value.trim()));
  const busy = async (button, action) => { button.disabled = true; try { await action(); } finally { button.disabled = false; } };
  $('scale').addEventListener('click', (e) => busy(e.currentTarget, async () => {
    const workers = Number($('workers-input').value);
    // 0 is for a run with remote workers (--nats); the server refuses it otherwise, with its reason.
    if (!Number.isInteger(workers) || workers < 0) return say(`Workers must be a whole number ≥ 0, got "${$('workers-input').value}".`, true);
    say(`Scaling to ${workers} worker${workers === 1 ? '' : 's'}…`);
    const r = await post('/api/scale', { workers });
    if (r) say(`Now ${r.workers} worker${r.workers === 1 ? '' : 's'}.`);
  }));
  $('checkpoint').addEventListener('click', (e) => busy(e.currentTarget, async () => {
    say('Writing a checkpoint…');
    const r = await post('/api/checkpoint');
    if (r) say(`Checkpoint at step ${r.step}: ${r.path}`);
  }));
  $('stop').addEventListener('click', (e) => busy(e.currentTarget, async () => {
    if (!confirm('Stop the run? It saves a checkpoint after the current step.')) return;
    const r = await post('/api/stop');
    if (r) say('Stopping after the current step…');
  }));
}

makeCharts();
bindControls();
connect();
