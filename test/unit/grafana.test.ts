// Static checks of the Grafana board (dashboard/grafana/gradpool.json) and its provisioning:
// layout, datasources, and that every PromQL expression names only metrics a run serves
// (test/helpers/metric-names.ts), filtered to the selected run, with counters and histograms under
// rate()/increase() over $__rate_interval. Each check is also shown failing on a broken board.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BOARD_DEFAULT_METRICS, CAPTION_METRICS, GRADPOOL_METRICS, type MetricSpec, PROM_CLIENT_DEFAULTS, seriesNames } from '../helpers/metric-names.js';

const grafanaDir = join(import.meta.dirname, '..', '..', 'dashboard', 'grafana');
const boardText = readFileSync(join(grafanaDir, 'gradpool.json'), 'utf8');

interface Target { expr?: string; legendFormat?: string; format?: string; refId?: string; datasource?: { type?: string; uid?: string } }
interface Panel {
  id?: number; type?: string; title?: string;
  gridPos?: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string } | null;
  targets?: Target[];
  panels?: Panel[];
}
interface Board {
  schemaVersion?: number; uid?: string; title?: string; panels?: Panel[];
  templating?: { list?: Array<Record<string, any>> };
  annotations?: { list?: Array<Record<string, any>> };
}

const GRID_COLUMNS = 24;
const PANEL_TYPES = new Set(['timeseries', 'stat', 'gauge', 'heatmap', 'bargauge', 'table', 'text']);
/** Range functions and the Grafana ranges each may use: rate() over $__interval loses
 *  samples at short ranges, the mistake $__rate_interval exists to prevent. */
const RANGE_FUNCTIONS: Record<string, string[]> = {
  rate: ['$__rate_interval', '$__range'], irate: ['$__rate_interval', '$__range'], increase: ['$__rate_interval', '$__range'],
  changes: ['$__rate_interval', '$__range', '$__interval'],
};
const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);

const boardSpecs: MetricSpec[] = [...GRADPOOL_METRICS, ...CAPTION_METRICS, ...PROM_CLIENT_DEFAULTS.filter((m) => BOARD_DEFAULT_METRICS.includes(m.name))];
/** Sample name → its metric, for every name an expression may use. */
const seriesOwner = new Map<string, MetricSpec>(boardSpecs.flatMap((m) => seriesNames(m).map((s) => [s, m] as [string, MetricSpec])));

function load(): Board {
  return JSON.parse(boardText) as Board;
}

function contentPanels(board: Board): Panel[] {
  return (board.panels ?? []).flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));
}

/** Every PromQL expression of the board, with where it is. */
function expressions(board: Board): Array<{ where: string; expr: string; legendFormat: string }> {
  const out: Array<{ where: string; expr: string; legendFormat: string }> = [];
  for (const p of contentPanels(board)) {
    for (const t of p.targets ?? []) out.push({ where: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr ?? '', legendFormat: t.legendFormat ?? '' });
  }
  for (const a of board.annotations?.list ?? []) {
    if (a.expr !== undefined) out.push({ where: `annotation "${a.name}"`, expr: a.expr, legendFormat: a.titleFormat ?? '' });
  }
  return out;
}

/** The metric names an expression selects: identifiers outside strings, label matchers,
 *  ranges and grouping lists that are neither functions nor keywords. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names: string[] = [];
  for (const m of bare.matchAll(/(?<![\w:$.])[a-zA-Z_:][\w:]*(?![\w:])/g)) {
    const rest = bare.slice(m.index! + m[0].length);
    if (/^\s*\(/.test(rest) || PROMQL_KEYWORDS.has(m[0].toLowerCase())) continue;
    names.push(m[0]);
  }
  return names;
}

/** Occurrences of a metric selector in an expression: its name, label matchers, and the range
 *  function and range around it, if any. */
function selectors(expr: string, name: string): Array<{ matchers: string | undefined; fn: string | undefined; range: string | undefined }> {
  const re = new RegExp(`(?:\\b(\\w+)\\(\\s*)?(?<![\\w:])${name}(?![\\w:])\\s*(\\{[^}]*\\})?\\s*(?:\\[([^\\]]*)\\]\\s*\\))?`, 'g');
  return [...expr.matchAll(re)].map((m) => ({ fn: m[3] !== undefined ? m[1] : undefined, matchers: m[2], range: m[3] }));
}

function checkLayout(board: Board): string[] {
  const problems: string[] = [];
  const all = (board.panels ?? []).flatMap((p) => [p, ...(p.type === 'row' ? (p.panels ?? []) : [])]);
  const seen = new Set<number>();
  for (const p of all) {
    if (!Number.isInteger(p.id)) problems.push(`panel "${p.title}" has no integer id`);
    else if (seen.has(p.id!)) problems.push(`duplicate panel id ${p.id}`);
    else seen.add(p.id!);
    const g = p.gridPos;
    if (g === undefined || ![g.x, g.y, g.w, g.h].every(Number.isInteger)) { problems.push(`panel ${p.id} has no integer gridPos`); continue; }
    if (g.x < 0 || g.y < 0 || g.w < 1 || g.h < 1 || g.x + g.w > GRID_COLUMNS) problems.push(`panel ${p.id} gridPos ${JSON.stringify(g)} is outside the 24-column grid`);
    if (p.type === 'row' && (g.w !== GRID_COLUMNS || g.h !== 1)) problems.push(`row ${p.id} is not 24×1`);
  }
  const placed = all.filter((p) => p.gridPos !== undefined);
  for (let i = 0; i < placed.length; i++) {
    for (let j = i + 1; j < placed.length; j++) {
      const a = placed[i].gridPos!;
      const b = placed[j].gridPos!;
      if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) problems.push(`panels ${placed[i].id} and ${placed[j].id} overlap`);
    }
  }
  return problems;
}

function checkPanels(board: Board): string[] {
  const problems: string[] = [];
  const variables = new Set((board.templating?.list ?? []).map((v) => v.name));
  for (const p of board.panels ?? []) {
    if (p.type === 'row' && (p.targets?.length ?? 0) > 0) problems.push(`row ${p.id} has targets`);
  }
  for (const p of contentPanels(board)) {
    if (!PANEL_TYPES.has(p.type ?? '')) problems.push(`panel ${p.id} has unknown type ${p.type}`);
    const ds = p.datasource;
    const uidVariable = /^\$\{?(\w+)\}?$/.exec(ds?.uid ?? '')?.[1];
    if (ds?.type !== 'prometheus' || uidVariable === undefined || !variables.has(uidVariable)) {
      problems.push(`panel ${p.id} "${p.title}" datasource ${JSON.stringify(ds)} is not the prometheus datasource variable`);
    }
    if (!Array.isArray(p.targets) || p.targets.length === 0) problems.push(`panel ${p.id} "${p.title}" has no targets`);
    const refIds = new Set<string>();
    for (const t of p.targets ?? []) {
      if (!t.refId || refIds.has(t.refId)) problems.push(`panel ${p.id} has a missing or repeated refId ${t.refId}`);
      refIds.add(t.refId ?? '');
      if (!t.expr?.trim()) problems.push(`panel ${p.id} target ${t.refId} has no expr`);
      if (t.datasource !== undefined && JSON.stringify(t.datasource) !== JSON.stringify(ds)) problems.push(`panel ${p.id} target ${t.refId} has another datasource`);
    }
  }
  return problems;
}

function checkExpressions(board: Board): string[] {
  const problems: string[] = [];
  for (const { where, expr, legendFormat } of expressions(board)) {
    const names = metricNames(expr);
    if (names.length === 0) problems.push(`${where}: no metric in ${expr}`);
    const labels = new Set(['run', 'job', 'instance']);
    for (const name of new Set(names)) {
      const spec = seriesOwner.get(name);
      if (spec === undefined) { problems.push(`${where}: unknown metric ${name}`); continue; }
      for (const l of Object.keys(spec.labels)) labels.add(l);
      if (name.endsWith('_bucket')) labels.add('le');
      const isCounterLike = spec.type === 'counter' || spec.type === 'histogram';
      for (const s of selectors(expr, name)) {
        if (!s.matchers?.includes('run="$run"')) problems.push(`${where}: ${name} is not filtered by run="$run"`);
        if (isCounterLike && s.fn === undefined) problems.push(`${where}: ${spec.type} ${name} is not inside rate()/increase()`);
        if (s.fn !== undefined) {
          const ranges = RANGE_FUNCTIONS[s.fn];
          if (ranges === undefined) problems.push(`${where}: ${name} under unexpected range function ${s.fn}()`);
          else if (!ranges.includes(s.range ?? '')) problems.push(`${where}: ${s.fn}(${name}[${s.range}]) should use ${ranges[0]}`);
          if (!isCounterLike && s.fn !== 'changes') problems.push(`${where}: ${s.fn}() of gauge ${name}`);
        }
      }
    }
    if (/_bucket\b/.test(expr) && !/\bby\s*\([^)]*\ble\b[^)]*\)/.test(expr)) problems.push(`${where}: buckets summed without keeping le`);
    // A legend may only name labels the expression keeps.
    const groupings = [...expr.matchAll(/\b(?:sum|avg|min|max|count)\s*(?:by\s*\(([^)]*)\))?\s*\(/g)].map((m) => m[1]);
    for (const ref of legendFormat.matchAll(/\{\{\s*(\w+)\s*\}\}/g)) {
      const label = ref[1];
      const kept = groupings.every((g) => g !== undefined && g.split(',').map((s) => s.trim()).includes(label));
      if (!labels.has(label) || !kept) problems.push(`${where}: legend {{${label}}} is not a label of the result`);
    }
  }
  return problems;
}

function checkTemplating(board: Board): string[] {
  const problems: string[] = [];
  const list = board.templating?.list ?? [];
  const ds = list.find((v) => v.name === 'datasource');
  if (ds?.type !== 'datasource' || ds.query !== 'prometheus') problems.push('no datasource variable of type prometheus');
  const run = list.find((v) => v.name === 'run');
  const runQuery = typeof run?.query === 'string' ? run.query : run?.query?.query;
  if (run?.type !== 'query' || runQuery !== 'label_values(gradpool_steps_total, run)') problems.push(`run variable query is ${runQuery}`);
  if (run?.datasource?.uid !== '${datasource}') problems.push('run variable does not use the datasource variable');
  if (run?.multi || run?.includeAll) problems.push('run variable is multi-valued, but expressions match run="$run"');
  return problems;
}

describe('Grafana board', () => {
  it('parses as a dashboard with a uid, a title and schemaVersion 36–41', () => {
    const board = load();
    expect(board.uid).toBe('gradpool');
    expect(board.title).toBe('gradpool training');
    expect(board.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(board.schemaVersion).toBeLessThanOrEqual(41);
    expect(contentPanels(board).length).toBeGreaterThan(10);
  });

  it('has unique panel ids and non-overlapping gridPos inside 24 columns', () => {
    expect(checkLayout(load())).toEqual([]);
  });

  it('gives every panel the prometheus datasource variable and targets with expressions', () => {
    expect(checkPanels(load())).toEqual([]);
  });

  it('has a datasource variable and a run variable from label_values(gradpool_steps_total, run)', () => {
    expect(checkTemplating(load())).toEqual([]);
  });

  it('uses only served metrics, filtered by run, counters and histograms under rate over $__rate_interval', () => {
    expect(expressions(load()).length, 'expressions checked').toBeGreaterThan(10);
    expect(checkExpressions(load())).toEqual([]);
  });

  it('plots every gradpool metric, the captioning ones included', () => {
    const used = new Set(expressions(load()).flatMap((e) => metricNames(e.expr)).map((n) => seriesOwner.get(n)?.name));
    expect([...GRADPOOL_METRICS, ...CAPTION_METRICS].map((m) => m.name).filter((n) => !used.has(n))).toEqual([]);
  });
});

describe('Grafana board checks catch a broken board', () => {
  const panelOf = (board: Board, title: string) => contentPanels(board).find((p) => p.title === title)!;

  it('metricNames ignores functions, labels, ranges, groupings and numbers', () => {
    expect(metricNames('histogram_quantile(0.9, sum by (le, phase) (rate(gradpool_step_duration_seconds_bucket{run="$run", phase="x"}[$__rate_interval])))'))
      .toEqual(['gradpool_step_duration_seconds_bucket']);
    expect(metricNames('gradpool_step{run="$run"} / on (run) gradpool_steps_target{run="$run"} > 1e-9')).toEqual(['gradpool_step', 'gradpool_steps_target']);
  });

  it('a duplicate id and an overlap', () => {
    const board = load();
    const [a, b] = contentPanels(board);
    b.id = a.id;
    b.gridPos = { ...a.gridPos!, x: a.gridPos!.x + 1 };
    const problems = checkLayout(board);
    expect(problems).toContain(`duplicate panel id ${a.id}`);
    expect(problems).toContainEqual(expect.stringContaining('overlap'));
  });

  it('a panel without datasource or targets', () => {
    const board = load();
    const p = panelOf(board, 'Learning rate');
    delete p.datasource;
    p.targets = [];
    const problems = checkPanels(board);
    expect(problems).toContainEqual(expect.stringContaining('"Learning rate" datasource'));
    expect(problems).toContainEqual(expect.stringContaining('"Learning rate" has no targets'));
  });

  it('an unknown metric, a bare counter, rate over $__interval, a missing run filter, rate of a gauge, a lost legend label', () => {
    const board = load();
    const t = panelOf(board, 'Learning rate').targets!;
    t.push({ refId: 'B', expr: 'gradpool_loss_total{run="$run"}' });
    t.push({ refId: 'C', expr: 'gradpool_steps_total{run="$run"}' });
    t.push({ refId: 'D', expr: 'rate(gradpool_tokens_total{run="$run"}[$__interval])' });
    t.push({ refId: 'E', expr: 'gradpool_learning_rate' });
    t.push({ refId: 'F', expr: 'rate(gradpool_workers{run="$run"}[$__rate_interval])' });
    t.push({ refId: 'G', expr: 'sum(gradpool_hidden_state_norm{run="$run"})', legendFormat: 'layer {{layer}}' });
    t.push({ refId: 'H', expr: 'sum by (phase) (rate(gradpool_step_duration_seconds_bucket{run="$run"}[$__rate_interval]))' });
    const problems = checkExpressions(board).join('\n');
    expect(problems).toContain('unknown metric gradpool_loss_total');
    expect(problems).toContain('counter gradpool_steps_total is not inside rate()/increase()');
    expect(problems).toContain('rate(gradpool_tokens_total[$__interval]) should use $__rate_interval');
    expect(problems).toContain('gradpool_learning_rate is not filtered by run="$run"');
    expect(problems).toContain('rate() of gauge gradpool_workers');
    expect(problems).toContain('legend {{layer}} is not a label of the result');
    expect(problems).toContain('buckets summed without keeping le');
  });

  it('a missing run variable', () => {
    const board = load();
    board.templating!.list = board.templating!.list!.filter((v) => v.name !== 'run');
    expect(checkTemplating(board)).toContain('run variable query is undefined');
  });
});

describe('Grafana provisioning and the example Prometheus config', () => {
  const read = (...p: string[]) => readFileSync(join(grafanaDir, ...p), 'utf8');

  it('provisions a file dashboards provider and a Prometheus datasource at 127.0.0.1:9090', () => {
    const dashboards = read('provisioning', 'dashboards', 'gradpool.yaml');
    expect(dashboards).toMatch(/^apiVersion: 1$/m);
    expect(dashboards).toMatch(/^\s+type: file$/m);
    expect(dashboards).toMatch(/^\s+path: \S+$/m);
    const datasources = read('provisioning', 'datasources', 'prometheus.yaml');
    expect(datasources).toMatch(/^apiVersion: 1$/m);
    expect(datasources).toMatch(/^\s+type: prometheus$/m);
    expect(datasources).toMatch(/^\s+url: http:\/\/127\.0\.0\.1:9090$/m);
  });

  it('scrapes job gradpool at 127.0.0.1:8080/metrics every 5s', () => {
    const config = read('prometheus.yml');
    expect(config).toMatch(/job_name: gradpool$/m);
    expect(config).toMatch(/^\s+scrape_interval: 5s$/m);
    expect(config).toMatch(/^\s+metrics_path: \/metrics$/m);
    expect(config).toContain("targets: ['127.0.0.1:8080']");
  });
});
