// End to end with Debian's real Prometheus: a tiny run serves /metrics (every expected metric,
// every series labelled with its run), Prometheus scrapes it every second, the loss, the
// validation loss and the step counter come back through its query API, and every PromQL
// expression of the Grafana board evaluates there. Needs the build (npx tsc -p tsconfig.json).

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAPTION_METRICS, EXPECTED_METRICS, seriesNames } from '../helpers/metric-names.js';
import { systemTool } from '../helpers/system-tool.js';

const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';
const prometheusTool = systemTool('prometheus.test.ts', existsSync(PROMETHEUS) && existsSync(PROMTOOL),
  `${PROMETHEUS} or ${PROMTOOL} not found; apt-get install prometheus`);

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'gradpool.js');
const boardFile = join(root, 'dashboard', 'grafana', 'gradpool.json');
const dir = mkdtempSync(join(tmpdir(), 'gradpool-prometheus-'));
const SCRAPE_SECONDS = 1;
const POLL_TIMEOUT_MS = 60_000;

let run: ChildProcess | undefined;
let runStderr = '';
let runUrl = '';
let runId = '';
let prometheus: ChildProcess | undefined;
let prometheusLog = '';
let prometheusStarted: Promise<string> | undefined;

/** JSON lines of the run's stdout, as they come. */
async function* events(child: ChildProcess): AsyncGenerator<Record<string, unknown>> {
  for await (const line of createInterface({ input: child.stdout! })) if (line.startsWith('{')) yield JSON.parse(line);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = POLL_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` + (lastError ? ` (last error: ${lastError})` : '') +
    `\nrun stderr: ${runStderr.slice(-2000)}\nprometheus log: ${prometheusLog.slice(-3000)}`);
}

async function stop(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

/** Starts Prometheus scraping the run once, for every test that needs it; resolves to its URL. */
function startPrometheus(): Promise<string> {
  prometheusStarted ??= (async () => {
    const port = await freePort();
    const config = join(dir, 'prometheus.yml');
    writeFileSync(config, [
      'global:',
      `  scrape_interval: ${SCRAPE_SECONDS}s`,
      'scrape_configs:',
      '  - job_name: gradpool',
      `    scrape_interval: ${SCRAPE_SECONDS}s`,
      `    scrape_timeout: ${SCRAPE_SECONDS}s`,
      '    metrics_path: /metrics',
      '    static_configs:',
      `      - targets: ['${new URL(runUrl).host}']`,
      '',
    ].join('\n'));
    prometheus = spawn(PROMETHEUS, [
      `--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`, '--web.enable-lifecycle',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    prometheus.stderr!.on('data', (d) => (prometheusLog = (prometheusLog + d).slice(-20_000)));
    const url = `http://127.0.0.1:${port}`;
    await until('Prometheus to be ready', async () => ((await fetch(`${url}/-/ready`)).ok ? true : undefined), 30_000);
    return url;
  })();
  return prometheusStarted;
}

interface Sample { metric: Record<string, string>; value: [number, string] }

/** The run must still be serving: once it ends, Prometheus marks its series stale. */
function expectRunAlive(): void {
  if (run?.exitCode !== null || run?.signalCode !== null) throw new Error(`the run ended (code ${run?.exitCode}) before this test: too slow a machine for --steps 2000?\n${runStderr}`);
}

async function query(expr: string): Promise<{ status: string; error?: string; data?: { resultType: string; result: Sample[] } }> {
  expectRunAlive();
  const url = await startPrometheus();
  const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return response.json() as Promise<{ status: string; error?: string; data?: { resultType: string; result: Sample[] } }>;
}

/** Polls an instant query until it returns a sample that `accept` takes. */
function firstSample(expr: string, accept: (s: Sample) => boolean = () => true): Promise<Sample> {
  return until(`a sample of ${expr}`, async () => {
    const answer = await query(expr);
    if (answer.status !== 'success') throw new Error(`${expr}: ${answer.error}`);
    return answer.data!.result.find(accept);
  });
}

/** /metrics as {type by name, samples: name, labels}. */
function parseExposition(text: string) {
  const types = new Map<string, string>();
  const samples: Array<{ name: string; labels: Record<string, string>; line: string }> = [];
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1], type[2]);
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+( \d+)?$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, line });
  }
  return { types, samples };
}

beforeAll(async () => {
  const data = join(dir, 'text.txt');
  writeFileSync(data, 'the quick brown fox jumps over the lazy dog. '.repeat(300));
  run = spawn(process.execPath, [bin, 'train', '--data', data, '--steps', '100000', '--batch', '8', '--seq-len', '16',
    '--hidden', '32', '--embed', '16', '--eval-every', '10', '--sample-every', '0', '--port', '0', '--json',
    '--backend', 'cpu', '--out', join(dir, 'run')], { stdio: ['ignore', 'pipe', 'pipe'] });
  run.stderr!.on('data', (d) => (runStderr += d));
  // Wait for the start line, then for a validation, so both loss splits have a value.
  const lines = events(run);
  const start = (await lines.next()).value;
  if (start?.event !== 'start') throw new Error(`first line of the run is not its start event: ${JSON.stringify(start)}\n${runStderr}`);
  runUrl = String(start.url);
  runId = String(start.runId);
  // next(), not for-await with break: that would close stdout's reader, and the run must not
  // block on a full pipe while it is being scraped.
  for (let e = await lines.next(); e.value?.event !== 'validation'; e = await lines.next()) {
    if (e.done) throw new Error(`the run ended before its first validation\n${runStderr}`);
  }
  void (async () => { for (let e = await lines.next(); !e.done; e = await lines.next()); })();
}, 120_000);

afterAll(async () => {
  await stop(run, 'SIGINT');
  await stop(prometheus, 'SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("a run's /metrics", () => {
  it('exposes every expected metric with its type', async () => {
    expect(EXPECTED_METRICS.length, 'metrics checked').toBeGreaterThan(20);
    const { types } = parseExposition(await (await fetch(`${runUrl}/metrics`)).text());
    const wrong = EXPECTED_METRICS.filter((m) => types.get(m.name) !== m.type).map((m) => `${m.name}: ${types.get(m.name) ?? 'absent'}, expected ${m.type}`);
    expect(wrong).toEqual([]);
    // A language model is not a captioner: no caption series.
    expect(CAPTION_METRICS.filter((m) => types.has(m.name)).map((m) => m.name)).toEqual([]);
  });

  it(`serves samples for every expected metric and every enumerated label value`, async () => {
    const { samples } = parseExposition(await (await fetch(`${runUrl}/metrics`)).text());
    const missing: string[] = [];
    for (const spec of EXPECTED_METRICS) {
      for (const name of seriesNames(spec)) {
        const own = samples.filter((s) => s.name === name);
        if (own.length === 0) missing.push(name);
        for (const [label, values] of Object.entries(spec.labels)) {
          const seen = new Set(own.map((s) => s.labels[label]));
          if (seen.has(undefined as unknown as string)) missing.push(`${name} without label ${label}`);
          for (const v of values) if (!seen.has(v)) missing.push(`${name}{${label}="${v}"}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('labels every series with the run id', async () => {
    const { samples } = parseExposition(await (await fetch(`${runUrl}/metrics`)).text());
    expect(samples.length).toBeGreaterThan(50);
    expect(samples.filter((s) => s.labels.run !== runId).map((s) => s.line)).toEqual([]);
  });
});

describe('the run through a real Prometheus', () => {
  it.skipIf(prometheusTool.skip)('the example config passes promtool check config', () => {
    prometheusTool.require();
    const r = spawnSync(PROMTOOL, ['check', 'config', join(root, 'dashboard', 'grafana', 'prometheus.yml')], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  it.skipIf(prometheusTool.skip)('scrapes the train and validation loss of the run', async () => {
    prometheusTool.require();
    const train = await firstSample(`gradpool_loss{run="${runId}",split="train"}`);
    expect(train.metric).toMatchObject({ run: runId, split: 'train', job: 'gradpool' });
    expect(Number(train.value[1])).toBeGreaterThan(0);
    const val = await firstSample(`gradpool_loss{run="${runId}",split="val"}`);
    expect(Number(val.value[1])).toBeGreaterThan(0);
    expect(Number.isFinite(Number(val.value[1]))).toBe(true);
  }, 120_000);

  it.skipIf(prometheusTool.skip)('sees gradpool_steps_total increase', async () => {
    prometheusTool.require();
    const expr = `gradpool_steps_total{run="${runId}"}`;
    const first = Number((await firstSample(expr, (s) => Number(s.value[1]) > 0)).value[1]);
    const later = await firstSample(expr, (s) => Number(s.value[1]) > first);
    expect(Number(later.value[1])).toBeGreaterThan(first);
  }, 120_000);

  it.skipIf(prometheusTool.skip)('finds the run label on every scraped series', async () => {
    prometheusTool.require();
    await firstSample(`gradpool_steps_total{run="${runId}"}`);
    // Prometheus's own per-target series (up, scrape_*) are the only ones without it.
    const answer = await query('{job="gradpool", run="", __name__!~"up|scrape_.*"}');
    expect(answer.status).toBe('success');
    expect(answer.data!.result.map((s) => s.metric.__name__)).toEqual([]);
  }, 120_000);

  it.skipIf(prometheusTool.skip)("evaluates every expression of the Grafana board, each panel's with data", async () => {
    prometheusTool.require();
    const board = JSON.parse(readFileSync(boardFile, 'utf8'));
    // Wait until rate() over the window has two scrapes of a step counter that moved.
    await firstSample(`rate(gradpool_steps_total{run="${runId}"}[10s]) > 0`);
    const exprs: Array<{ where: string; expr: string; mayBeEmpty: boolean }> = [];
    for (const p of board.panels) {
      // A language-model run (this one) has no caption series: those panels are empty here, but must still evaluate.
      for (const t of p.targets ?? []) exprs.push({ where: `${p.title} ${t.refId}`, expr: t.expr, mayBeEmpty: /\)\s*>\s*0\s*$/.test(t.expr) || /\bgradpool_caption_/.test(t.expr) });
    }
    for (const a of board.annotations.list) if (a.expr) exprs.push({ where: `annotation ${a.name}`, expr: a.expr, mayBeEmpty: true });
    // What Grafana substitutes for a 1 s scrape interval and a recent time range.
    const grafana = (expr: string) => expr.replaceAll('$run', runId).replaceAll('$__rate_interval', '10s')
      .replaceAll('$__range', '5m').replaceAll('$__interval', '2s');
    const problems: string[] = [];
    for (const { where, expr, mayBeEmpty } of exprs) {
      const answer = await query(grafana(expr));
      if (answer.status !== 'success') problems.push(`${where}: ${answer.error}`);
      else if (!mayBeEmpty && answer.data!.result.length === 0) problems.push(`${where}: no data for ${grafana(expr)}`);
    }
    expect(problems).toEqual([]);
  }, 120_000);
});
