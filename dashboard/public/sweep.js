// One sweep's page: its runs ranked by best validation loss, the swept values (config keys
// that differ between its runs) as columns, read again every 2 s; below, the curves of its
// best-ranked runs overlaid (compare.js).

import { $, badge, duration, el, fetchJSON, fmt, poll, runDuration, setConnected } from './common.js';
import { Compare } from './compare.js';

const MAX_CURVES = 20; // the server's limit for one compare request
const sweepId = decodeURIComponent(location.pathname.replace(/^\/sweeps\//, '').replace(/\/$/, ''));
const compare = new Compare({});
let shown = '';

const cellText = (v) => (v == null ? '—' : typeof v === 'string' ? v : JSON.stringify(v));

function render(table, now) {
  const head = [['rank', true], ['run'], ['status'], ['best val loss', true], ...table.keys.map((k) => [k]), ['steps', true], ['train loss', true], ['tokens/s', true], ['duration', true]];
  $('ranking-head').replaceChildren(...head.map(([title, num]) => el('th', { scope: 'col', class: num ? 'num' : null }, title)));
  $('ranking-body').replaceChildren(...table.runs.map(({ rank, run, values }) => el('tr', { 'data-id': run.id },
    el('td', { class: 'num' }, String(rank)),
    el('td', {}, el('a', { href: `/runs/${encodeURIComponent(run.id)}` }, el('code', {}, run.id)), run.name ? ` ${run.name}` : ''),
    el('td', {}, badge(run.status)),
    el('td', { class: 'num' }, fmt(run.bestValLoss, 4)),
    ...table.keys.map((k) => el('td', { class: 'value' }, cellText(values[k]))),
    el('td', { class: 'num' }, `${(run.lastStep ?? 0).toLocaleString()} / ${run.stepsTarget ?? '?'}`),
    el('td', { class: 'num' }, fmt(run.lastLoss, 4)),
    el('td', { class: 'num' }, fmt(run.tokensPerSecond)),
    el('td', { class: 'num' }, duration(runDuration(run, now))),
  )));
  const counts = {};
  for (const { run } of table.runs) counts[run.status] = (counts[run.status] || 0) + 1;
  $('sweep-id').textContent = table.sweepId;
  $('summary').textContent = `${table.runs.length} run${table.runs.length === 1 ? '' : 's'}: ${Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(', ')}`;
  $('swept-note').textContent = table.keys.length
    ? `Swept: ${table.keys.join(', ')} (the config keys whose values differ between the sweep's runs).`
    : 'No config key differs between these runs.';
  const ids = table.runs.slice(0, MAX_CURVES).map((r) => r.run.id);
  $('compare-link').href = `/?compare=${ids.map(encodeURIComponent).join(',')}`;
  document.title = `sweep ${table.sweepId} · gradpool`;
  window.__gradpoolRuns = { ...(window.__gradpoolRuns || {}), sweep: { id: table.sweepId, keys: table.keys.slice(), rows: table.runs.map((r) => r.run.id) } };
  return ids;
}

async function tick() {
  let table;
  const now = Date.now();
  try {
    table = await fetchJSON(`/api/sweeps/${encodeURIComponent(sweepId)}`);
    setConnected(true, `live · ${new Date(now).toLocaleTimeString()}`);
    $('message').textContent = '';
  } catch (e) {
    setConnected(false);
    Object.assign($('message'), { textContent: e.message, className: 'message error' });
    return;
  }
  const ids = render(table, now);
  // The curves follow the ranking's runs; a new run joining the sweep is added.
  if (ids.join() !== shown) {
    shown = ids.join();
    await compare.select(ids);
  }
  await compare.update(table.runs.map((r) => r.run));
}

poll(tick);
