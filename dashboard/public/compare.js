// The compare view: the curves of the runs picked, overlaid one colour per run, against the
// step or against the time since each run started. Loads them from /api/compare, then
// follows the running ones with /api/runs/:id/history?after=… (the caller hands it each new
// runs list). Used by the runs page (runs.js) and the sweep page (sweep.js).

import { $, axis, chartCard, dots, duration, el, fetchJSON, fmt, line, logAxis, PALETTE, resizeWith, runLabel } from './common.js';

const MAX_POINTS = 4000; // per run and curve; past this the older half keeps every other point

const CHARTS = [
  { id: 'loss', title: 'Training loss (nats/token)', from: 'steps', key: 'loss' },
  { id: 'valLoss', title: 'Validation loss (nats/token)', from: 'vals', key: 'loss', points: true },
  { id: 'bits', title: 'Training bits per token', from: 'steps', key: 'bitsPerToken' },
  { id: 'valBits', title: 'Validation bits per token', from: 'vals', key: 'bitsPerToken', points: true },
  { id: 'gradNorm', title: 'Gradient norm before clipping (log)', from: 'steps', key: 'gradNorm', log: true },
  { id: 'gradNormClipped', title: 'Gradient norm after clipping (log)', from: 'steps', key: 'gradNormClipped', log: true },
  { id: 'tps', title: 'Tokens per second', from: 'steps', key: 'tokensPerSecond' },
  { id: 'lr', title: 'Learning rate', from: 'steps', key: 'learningRate' },
  // Only when every run shown is a captioner (accuracy: every one on shapes, the only dataset whose captions can be checked).
  { id: 'bleu4', title: 'Validation BLEU-4', from: 'vals', key: 'bleu4', points: true, when: (r) => r.config.task === 'caption' },
  { id: 'accuracy', title: 'Validation caption accuracy', from: 'vals', key: 'accuracy', points: true, when: (r) => r.config.task === 'caption' && r.config.dataset === 'shapes' },
];

/** Once past MAX_POINTS, the older half keeps every other point. */
function capped(list) {
  if (list.length <= MAX_POINTS) return list;
  const half = list.length >> 1;
  return list.slice(0, half).filter((_, i) => i % 2 === 0).concat(list.slice(half));
}

export class Compare {
  /** `ids` of the section's parts: charts (grid), legend, empty (message), and the x-axis radios' name. */
  constructor({ charts = 'compare-charts', legend = 'compare-legend', empty = 'compare-empty', xName = 'x', x = 'step', onChange } = {}) {
    this.grid = $(charts);
    this.legend = $(legend);
    this.empty = $(empty);
    this.onChange = onChange || (() => {});
    this.x = x;
    this.ids = [];
    this.data = new Map(); // id → { run, steps, vals, error }
    this.colors = new Map(); // id → palette index, kept while the run stays picked
    this.charts = [];
    this.resize = null;
    this.renderPending = false;
    this.xName = xName;
    for (const radio of document.querySelectorAll(`input[name="${xName}"]`)) {
      radio.checked = radio.value === x;
      radio.addEventListener('change', () => { if (radio.checked) { this.x = radio.value; this.build(); this.onChange(); } });
    }
  }

  color(id) {
    if (!this.colors.has(id)) {
      const used = new Set(this.colors.values());
      let i = 0;
      while (used.has(i) && i < PALETTE.length) i++;
      this.colors.set(id, i < PALETTE.length ? i : this.colors.size);
    }
    return PALETTE[this.colors.get(id) % PALETTE.length];
  }

  /** Shows these runs (in this order); loads the ones not loaded yet. */
  async select(ids) {
    this.ids = ids.slice();
    for (const id of [...this.data.keys()]) if (!ids.includes(id)) { this.data.delete(id); this.colors.delete(id); }
    for (const id of ids) this.color(id);
    const missing = ids.filter((id) => !this.data.has(id));
    if (missing.length > 0) {
      for (const id of missing) this.data.set(id, { run: null, steps: [], vals: [], error: null });
      try {
        const loaded = await fetchJSON(`/api/compare?runs=${missing.map(encodeURIComponent).join(',')}`);
        for (const [i, entry] of loaded.entries()) this.data.set(missing[i], { run: entry.run, steps: entry.steps, vals: entry.validations, error: null });
      } catch {
        // One of them is gone (a bookmarked comparison, a removed run): load them one by one.
        await Promise.all(missing.map(async (id) => {
          try {
            const h = await fetchJSON(`/api/runs/${encodeURIComponent(id)}/history`);
            this.data.set(id, { run: h.run, steps: h.steps, vals: h.validations, error: null });
          } catch (e) {
            this.data.get(id).error = e.message;
          }
        }));
      }
    }
    if (ids.join() === this.ids.join()) this.build();
  }

  /** A fresh runs list: follows the picked runs that wrote since (a resumed run, seen by its new pid, reloads). */
  async update(runs) {
    const byId = new Map(runs.map((r) => [r.id, r]));
    let changed = false;
    await Promise.all(this.ids.map(async (id) => {
      const d = this.data.get(id);
      const now = byId.get(id);
      if (d && d.run && !now) {
        Object.assign(d, { run: null, steps: [], vals: [], error: `run ${id} is no longer in the registry` });
        changed = true;
      }
      if (!d || !now) return;
      const last = d.steps.length ? d.steps[d.steps.length - 1].step : 0;
      const lastVal = d.vals.length ? d.vals[d.vals.length - 1].step : 0;
      // Not loaded yet (a failed read), or resumed by another process: (re)load it whole.
      const resumed = !d.run || now.pid !== d.run.pid;
      // A run that was running may have flushed its last validation with its end: read once more.
      if (!resumed && now.status !== 'running' && d.run.status !== 'running' && (now.lastStep ?? 0) <= last) return;
      const after = resumed ? 0 : last, validationsAfter = resumed ? 0 : lastVal;
      try {
        const h = await fetchJSON(`/api/runs/${encodeURIComponent(id)}/history?after=${after}&validationsAfter=${validationsAfter}`);
        if (resumed) { d.steps = []; d.vals = []; }
        d.steps = capped(d.steps.concat(h.steps.filter((p) => p.step > after)));
        d.vals = capped(d.vals.concat(h.validations.filter((p) => p.step > validationsAfter)));
        d.run = h.run;
        d.error = null;
        changed = true;
      } catch (e) {
        d.error = e.message;
      }
    }));
    if (changed) this.render();
  }

  /** x of a point: its step, or seconds since its run started. */
  xOf(run) {
    return this.x === 'time' ? (p) => (p.time - run.startedAt) / 1000 : (p) => p.step;
  }

  dataOf(spec) {
    const shown = this.ids.map((id) => this.data.get(id)).filter((d) => d && d.run);
    if (shown.length === 0) return [[]];
    const tables = shown.map((d) => {
      const points = d[spec.from], x = this.xOf(d.run);
      // A log scale cannot show 0 or less: such a value leaves a gap.
      return [points.map(x), points.map((p) => (spec.log && !(p[spec.key] > 0) ? null : p[spec.key]))];
    });
    return uPlot.join(tables);
  }

  /** The charts for the runs shown: a chart with a `when` only if every one of them passes it. */
  specs() {
    const runs = this.ids.map((id) => this.data.get(id)?.run).filter(Boolean);
    return CHARTS.filter((spec) => !spec.when || (runs.length > 0 && runs.every(spec.when)));
  }

  /** Rebuilds the charts for the runs shown (series change with the runs and the x axis). */
  build() {
    for (const c of this.charts) c.u.destroy();
    this.charts = [];
    this.grid.replaceChildren();
    this.resize?.disconnect();
    const shown = this.ids.filter((id) => this.data.get(id)?.run);
    this.empty.hidden = this.ids.length > 0;
    this.renderLegend();
    if (shown.length === 0) return this.publish();
    const time = this.x === 'time';
    const xAxis = axis({ label: time ? 'time since start' : 'step', labelSize: 14, size: 36, values: (u, ticks) => ticks.map((v) => (time ? duration(v * 1000) : fmt(v))) });
    for (const spec of this.specs()) {
      const { body } = chartCard(this.grid, `cmp-${spec.id}`, spec.title);
      const series = shown.map((id) => line(runLabel(this.data.get(id).run), this.color(id), {
        width: spec.points ? 2 : 1.5, points: spec.points ? dots : { show: false },
      }));
      const u = new uPlot({
        width: Math.max(200, body.clientWidth), height: 200,
        scales: { x: { time: false }, ...(spec.log ? { y: { distr: 3 } } : {}) },
        axes: [xAxis, spec.log ? logAxis() : axis()],
        series: [{ label: time ? 'time' : 'step', value: (u, v) => (v == null ? '–' : time ? duration(v * 1000) : String(v)) }, ...series],
        cursor: { drag: { x: true, y: false }, sync: { key: 'gradpool-compare' } },
        legend: { live: true },
      }, this.dataOf(spec), body);
      this.charts.push({ spec, u, body });
    }
    this.resize = resizeWith(this.charts);
    this.publish();
  }

  /** Redraws with the latest data, at most once per animation frame. */
  render() {
    if (this.renderPending) return;
    this.renderPending = true;
    requestAnimationFrame(() => {
      this.renderPending = false;
      if (this.charts.map((c) => c.spec.id).join() !== this.specs().map((s) => s.id).join() || this.charts[0].u.series.length - 1 !== this.ids.filter((id) => this.data.get(id)?.run).length) return this.build();
      for (const { spec, u } of this.charts) u.setData(this.dataOf(spec));
      this.renderLegend();
      this.publish();
    });
  }

  renderLegend() {
    this.legend.replaceChildren(...this.ids.map((id) => {
      const d = this.data.get(id);
      const label = d && d.run ? runLabel(d.run) : id;
      const status = d && d.run ? d.run.status : d && d.error ? 'missing' : 'loading';
      return el('a', { class: 'chip', href: `/runs/${encodeURIComponent(id)}`, title: d && d.error ? d.error : `${id}: ${status}` },
        el('span', { class: 'swatch', style: `background:${this.color(id)}` }), label, el('span', { class: `badge ${status}` }, status));
    }));
  }

  /** What the browser test reads: the runs shown and the points of each chart. */
  publish() {
    const charts = {};
    for (const { spec, u } of this.charts) charts[spec.id] = { series: u.series.length - 1, points: u.data[0].length };
    window.__gradpoolRuns = { ...(window.__gradpoolRuns || {}), compare: { runs: this.ids.slice(), x: this.x, charts, colors: this.ids.map((id) => this.color(id)) } };
  }
}
