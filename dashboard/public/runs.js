// The runs page: every run of the registry in a table sorted by any column (click its head),
// filtered by text, read again every 2 s; ticking runs overlays their curves below
// (compare.js). The page's state (picked runs, sort, filter, x axis) lives in its URL.

import { $, badge, dateTime, el, fetchJSON, fmt, modelShort, modelSummary, poll, runDuration, setConnected } from './common.js';
import { Compare } from './compare.js';

const STATUS_ORDER = { running: 0, killed: 1, failed: 2, stopped: 3, finished: 4 };

/** value: what the column sorts by (null sorts last either way); first: the direction of a first click. */
const COLUMNS = [
  { key: 'pick', title: 'compare', sortable: false },
  { key: 'id', title: 'id', value: (r) => r.id, cell: (r) => el('a', { href: `/runs/${encodeURIComponent(r.id)}` }, el('code', {}, r.id)) },
  { key: 'name', title: 'name', value: (r) => r.name, cell: (r) => r.name || '' },
  { key: 'status', title: 'status', value: (r) => STATUS_ORDER[r.status] ?? 9, cell: (r, now) => statusCell(r, now) },
  { key: 'model', title: 'cell and size', value: (r) => modelShort(r.config), cell: (r) => el('span', { title: modelSummary(r.config) }, modelShort(r.config)) },
  { key: 'steps', title: 'steps', numeric: true, first: 'desc', value: (r) => r.lastStep, cell: (r) => `${(r.lastStep ?? 0).toLocaleString()} / ${r.stepsTarget == null ? '?' : r.stepsTarget.toLocaleString()}` },
  { key: 'bestValLoss', title: 'best val loss', numeric: true, value: (r) => r.bestValLoss, cell: (r) => fmt(r.bestValLoss, 4) },
  // Shown while the registry holds a captioner (gradpool train --task caption).
  { key: 'bestBleu4', title: 'best BLEU-4', numeric: true, first: 'desc', caption: true, value: (r) => r.bestBleu4, cell: (r) => fmt(r.bestBleu4, 3) },
  { key: 'lastLoss', title: 'train loss', numeric: true, value: (r) => r.lastLoss, cell: (r) => fmt(r.lastLoss, 4) },
  { key: 'tokensPerSecond', title: 'tokens/s', numeric: true, first: 'desc', value: (r) => r.tokensPerSecond, cell: (r) => fmt(r.tokensPerSecond) },
  { key: 'startedAt', title: 'started', first: 'desc', value: (r) => r.startedAt, cell: (r) => dateTime(r.startedAt) },
  { key: 'duration', title: 'duration', numeric: true, first: 'desc', value: (r, now) => runDuration(r, now), cell: (r, now) => durationText(runDuration(r, now)) },
  { key: 'sweep', title: 'sweep', value: (r) => r.sweepId, cell: (r) => (r.sweepId ? el('a', { href: `/sweeps/${encodeURIComponent(r.sweepId)}` }, r.sweepId) : '') },
];

/** The columns shown: a captioner's only while the registry holds a captioner. */
const columns = () => COLUMNS.filter((c) => !c.caption || state.captions);
const isCaptioner = (r) => !!(r.config && r.config.task === 'caption');

const params = new URLSearchParams(location.search);
const state = {
  runs: [], now: Date.now(), registry: '', captions: false,
  sort: { key: COLUMNS.some((c) => c.key === params.get('sort')) ? params.get('sort') : 'startedAt', dir: params.get('dir') === 'asc' ? 'asc' : 'desc' },
  filter: params.get('q') || '',
  picked: (params.get('compare') || '').split(',').filter(Boolean),
};

const compare = new Compare({ x: params.get('x') === 'time' ? 'time' : 'step', onChange: saveUrl });

function durationText(ms) {
  const s = Math.round(ms / 1000);
  return !Number.isFinite(s) || s < 0 ? '–' : s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function statusCell(r, now) {
  const b = badge(r.status);
  if (r.status === 'running') b.title = `last heartbeat ${Math.max(0, Math.round((now - r.heartbeatAt) / 1000))} s ago`;
  if (r.status === 'killed') b.title = 'it stopped sending heartbeats without saying how it ended';
  return b;
}

function saveUrl() {
  const p = new URLSearchParams();
  if (state.picked.length) p.set('compare', state.picked.join(','));
  if (state.sort.key !== 'startedAt' || state.sort.dir !== 'desc') { p.set('sort', state.sort.key); p.set('dir', state.sort.dir); }
  if (state.filter) p.set('q', state.filter);
  if (compare.x !== 'step') p.set('x', compare.x);
  const query = p.toString();
  history.replaceState(null, '', query ? `?${query}` : location.pathname);
}

function sorted(runs) {
  const col = COLUMNS.find((c) => c.key === state.sort.key);
  const sign = state.sort.dir === 'asc' ? 1 : -1;
  const value = (r) => col.value(r, state.now);
  return runs.slice().sort((a, b) => {
    const va = value(a), vb = value(b);
    const na = va == null || va === '' || (typeof va === 'number' && !Number.isFinite(va));
    const nb = vb == null || vb === '' || (typeof vb === 'number' && !Number.isFinite(vb));
    if (na || nb) return na === nb ? b.startedAt - a.startedAt : na ? 1 : -1; // no value: last, either way
    const c = typeof va === 'number' && typeof vb === 'number' ? va - vb : String(va).localeCompare(String(vb));
    return sign * c || b.startedAt - a.startedAt || a.id.localeCompare(b.id);
  });
}

function matches(r, q) {
  if (!q) return true;
  const text = [r.id, r.name, r.status, modelShort(r.config), r.sweepId, r.backend, r.kind].filter(Boolean).join(' ').toLowerCase();
  return q.toLowerCase().split(/\s+/).filter(Boolean).every((word) => text.includes(word));
}

function renderHead() {
  $('runs-head').replaceChildren(...columns().map((c) => {
    if (c.sortable === false) return el('th', { scope: 'col', class: 'pick' }, c.title);
    const active = state.sort.key === c.key;
    const th = el('th', { scope: 'col', class: c.numeric ? 'num' : null, 'aria-sort': active ? (state.sort.dir === 'asc' ? 'ascending' : 'descending') : 'none' });
    const button = el('button', { type: 'button', class: 'sort', 'data-key': c.key }, c.title, el('span', { class: 'arrow', 'aria-hidden': 'true' }, active ? (state.sort.dir === 'asc' ? '▲' : '▼') : ''));
    button.addEventListener('click', () => {
      state.sort = active ? { key: c.key, dir: state.sort.dir === 'asc' ? 'desc' : 'asc' } : { key: c.key, dir: c.first || 'asc' };
      saveUrl();
      renderHead();
      renderRows();
    });
    th.append(button);
    return th;
  }));
}

function renderRows() {
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.pick : undefined;
  const rows = sorted(state.runs.filter((r) => matches(r, state.filter)));
  const body = $('runs-body');
  if (rows.length === 0) {
    body.replaceChildren(el('tr', {}, el('td', { class: 'empty', colspan: String(columns().length) }, state.runs.length ? 'No run matches the filter.' : `No runs in ${state.registry} yet.`)));
  } else {
    body.replaceChildren(...rows.map((r) => {
      const picked = state.picked.includes(r.id);
      const box = el('input', { type: 'checkbox', 'data-pick': r.id, 'aria-label': `compare ${r.name || r.id}`, checked: picked });
      box.addEventListener('change', () => pick(r.id, box.checked));
      const swatch = el('span', { class: 'swatch', style: picked ? `background:${compare.color(r.id)}` : null, hidden: !picked });
      const tr = el('tr', { 'data-id': r.id, class: picked ? 'picked' : null }, el('td', { class: 'pick' }, el('label', {}, box, swatch)));
      for (const c of columns().slice(1)) tr.append(el('td', { class: c.numeric ? 'num' : null }, c.cell(r, state.now)));
      return tr;
    }));
  }
  if (focused) body.querySelector(`input[data-pick="${CSS.escape(focused)}"]`)?.focus();
  window.__gradpoolRuns = { ...(window.__gradpoolRuns || {}), table: { rows: rows.map((r) => r.id), sort: { ...state.sort }, total: state.runs.length } };
}

function renderStats() {
  const count = (s) => state.runs.filter((r) => r.status === s).length;
  $('count-all').textContent = String(state.runs.length);
  for (const s of ['running', 'finished', 'stopped', 'failed', 'killed']) $(`count-${s}`).textContent = String(count(s));
  const best = state.runs.filter((r) => r.bestValLoss != null).sort((a, b) => a.bestValLoss - b.bestValLoss)[0];
  $('best').textContent = best ? `${fmt(best.bestValLoss, 4)} (${best.name || best.id})` : '–';
  $('registry').textContent = state.registry;
}

function pick(id, on) {
  state.picked = on ? [...state.picked.filter((p) => p !== id), id] : state.picked.filter((p) => p !== id);
  saveUrl();
  void compare.select(state.picked).then(renderRows);
  renderRows();
}

async function tick() {
  try {
    const list = await fetchJSON('/api/runs');
    const captions = list.runs.some(isCaptioner);
    if (captions !== state.captions) { state.captions = captions; renderHead(); }
    Object.assign(state, { runs: list.runs, now: list.now, registry: list.registry });
    setConnected(true, `live · ${new Date(list.now).toLocaleTimeString()}`);
    $('message').textContent = '';
  } catch (e) {
    setConnected(false);
    $('message').textContent = `Could not read the registry: ${e.message}`;
    return;
  }
  renderStats();
  renderRows();
  await compare.update(state.runs);
}

$('filter').value = state.filter;
$('filter').addEventListener('input', () => { state.filter = $('filter').value.trim(); saveUrl(); renderRows(); });
renderHead();
void compare.select(state.picked).then(renderRows);
poll(tick);
