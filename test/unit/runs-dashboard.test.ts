// The all-runs dashboard's HTTP API (dashboard/runs-server.ts) over a registry written
// through the real recorder and store (test/helpers/registry-fixture.ts), with fastify
// inject: the runs list with live, finished and killed runs, one run's history (whole,
// since a step, thinned), its samples, checkpoints and failures, the compare data, a
// sweep's ranking, the pages, no write route, the loopback bind and bad `gradpool
// dashboard` input (exit 2).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../coordinator/cli.js';
import { parseDashboardArgs, registryView } from '../../coordinator/registry/dashboard-command.js';
import { stepsAfter } from '../../coordinator/registry/queries.js';
import { openRegistry } from '../../coordinator/registry/store.js';
import type { RegistryRun } from '../../dashboard/registry-view.js';
import { buildRunsServer, MAX_COMPARE_RUNS, startRunsServer } from '../../dashboard/runs-server.js';
import { NOT_SWEPT, rankSweep, sweptKeys } from '../../dashboard/sweeps.js';
import { FIXTURE_IDS, SWEEP_ID, writeRegistryFixture } from '../helpers/registry-fixture.js';

const base = mkdtempSync(join(tmpdir(), 'gradpool-runs-dashboard-'));
const fixture = writeRegistryFixture(base);
const db = openRegistry(fixture.path, { readonly: true });
const app = buildRunsServer({ source: registryView(db), registry: fixture.path });
afterAll(async () => {
  await app.close();
  fixture.close();
  db.close();
  rmSync(base, { recursive: true, force: true });
});

const get = async (url: string) => {
  const res = await app.inject(url);
  return { status: res.statusCode, body: res.json() };
};
const { finished, running, killed, sweep } = FIXTURE_IDS;

describe('GET /api/runs', () => {
  it('lists every run, newest first, with its status as of now: running, finished, failed and killed', async () => {
    const { status, body } = await get('/api/runs');
    expect(status).toBe(200);
    expect(body.registry).toBe(fixture.path);
    const runs = body.runs as RegistryRun[];
    expect(runs.map((r) => r.id)).toEqual([running, killed, ...[...sweep].reverse(), finished]);
    expect(Object.fromEntries(runs.map((r) => [r.id, r.status]))).toEqual({
      [running]: 'running', [killed]: 'killed', [sweep[0]]: 'finished', [sweep[1]]: 'finished', [sweep[2]]: 'failed', [finished]: 'finished',
    });
    const f = runs.find((r) => r.id === finished)!;
    expect(f).toMatchObject({ name: 'baseline', lastStep: 300, stepsTarget: 300, backend: 'wasm', sweepId: null, parameters: 9950 });
    expect(f.config).toMatchObject({ cell: 'lstm', hidden: 32, lr: 0.002 });
    expect(f.endedAt).toBeGreaterThan(f.startedAt);
    expect(runs.find((r) => r.id === killed)).toMatchObject({ lastStep: 80, endedAt: null });
    expect(runs.find((r) => r.id === running)).toMatchObject({ lastStep: 120, stepsTarget: 1000 });
  });

  it('follows a running run: what it flushed is in the next answer', async () => {
    const before = fixture.live.lastStep;
    fixture.live.step(30);
    const { body } = await get('/api/runs');
    expect(body.runs.find((r: RegistryRun) => r.id === running).lastStep).toBe(before + 30);
    const h = await get(`/api/runs/${running}/history?after=${before}&validationsAfter=${before}`);
    expect(h.body.steps.map((s: { step: number }) => s.step)).toEqual(Array.from({ length: 30 }, (_, i) => before + 1 + i));
    expect(h.body.validations.map((v: { step: number }) => v.step)).toEqual([125, 150].filter((s) => s > before && s <= before + 30));
    expect(h.body.run.status).toBe('running');
  });
});

describe('one run', () => {
  it('GET /api/runs/:id: by id or unique prefix; an unknown id is 404 naming the registry, an ambiguous prefix 400', async () => {
    expect((await get(`/api/runs/${finished}`)).body.id).toBe(finished);
    expect((await get('/api/runs/f1n1')).body.id).toBe(finished);
    expect(await get('/api/runs/nope')).toEqual({ status: 404, body: { error: 'not_found', message: `no run "nope" in ${fixture.path}` } });
    expect(await get('/api/runs/sw')).toEqual({ status: 400, body: { error: 'bad_request', message: 'run id prefix "sw" matches several runs; give more of the id' } });
  });

  it('GET /api/runs/:id/history: every step and validation; ?after= and ?validationsAfter= give what came since', async () => {
    const whole = (await get(`/api/runs/${finished}/history`)).body;
    expect(whole.run.id).toBe(finished);
    expect(whole.steps).toHaveLength(300);
    expect(whole.steps[0]).toEqual({
      step: 1, time: expect.any(Number), loss: expect.any(Number), bitsPerToken: expect.any(Number), gradNorm: expect.any(Number),
      gradNormClipped: expect.any(Number), learningRate: 0.002, tokensPerSecond: expect.any(Number), workers: 2,
    });
    expect(whole.steps[0].bitsPerToken).toBeCloseTo(whole.steps[0].loss / Math.LN2, 12);
    expect(whole.validations.map((v: { step: number }) => v.step)).toEqual(Array.from({ length: 12 }, (_, i) => 25 * (i + 1)));
    const since = (await get(`/api/runs/${finished}/history?after=250&validationsAfter=200`)).body;
    expect(since.steps.map((s: { step: number }) => s.step)).toEqual(Array.from({ length: 50 }, (_, i) => 251 + i));
    expect(since.validations.map((v: { step: number }) => v.step)).toEqual([225, 250, 275, 300]);
    expect((await get(`/api/runs/${finished}/history?after=300`)).body).toMatchObject({ steps: [], validations: [] });
    expect(await get(`/api/runs/${finished}/history?after=-1`)).toEqual({
      status: 400, body: { error: 'bad_request', message: 'query parameter after is "-1"; allowed: an integer from 0 to 9007199254740991' },
    });
  });

  it('a long history is thinned evenly, keeping its first and last step', () => {
    const steps = stepsAfter(db, finished, 0, 7).map((s) => s.step);
    expect(steps).toEqual([1, 51, 101, 151, 201, 251, 300]);
    expect(stepsAfter(db, finished, 0, 300)).toHaveLength(300);
    expect(stepsAfter(db, finished, 0, 299).length).toBeLessThanOrEqual(299);
    expect(stepsAfter(db, finished, 0, 299).at(-1)!.step).toBe(300);
    expect(() => stepsAfter(db, finished, 0, 1)).toThrow('maxPoints must be an integer ≥ 2, got 1');
  });

  it('samples (latest first ones last), checkpoints and failures', async () => {
    expect((await get(`/api/runs/${finished}/samples`)).body.map((s: { step: number; text: string }) => [s.step, s.text])).toEqual([
      [100, 'the sample of step 100'], [200, 'the sample of step 200'], [300, 'the sample of step 300'],
    ]);
    expect((await get(`/api/runs/${finished}/samples?limit=2`)).body.map((s: { step: number }) => s.step)).toEqual([200, 300]);
    expect((await get(`/api/runs/${finished}/samples?limit=100000`)).status).toBe(400);
    const checkpoints = (await get(`/api/runs/${finished}/checkpoints`)).body;
    expect(checkpoints.map((c: { step: number }) => c.step)).toEqual([100, 200, 300]);
    expect(checkpoints[0]).toEqual({ step: 100, time: expect.any(Number), path: join(base, finished, 'checkpoint.pb'), seconds: 0.05 });
    expect((await get(`/api/runs/${finished}/failures`)).body).toEqual({
      total: 1, byReason: { crash: 1 }, latest: [{ step: 120, shard: 1, time: expect.any(Number), reason: 'crash', message: 'worker exited with code 1' }],
    });
    expect((await get(`/api/runs/${killed}/failures`)).body).toEqual({ total: 0, byReason: {}, latest: [] });
    expect((await get(`/api/runs/${killed}/history`)).body.steps).toHaveLength(80);
  });
});

describe('GET /api/compare', () => {
  it('gives each run picked with its curves, in the order asked', async () => {
    const { status, body } = await get(`/api/compare?runs=${killed},${finished}`);
    expect(status).toBe(200);
    expect(body.map((e: { run: RegistryRun }) => [e.run.id, e.run.status])).toEqual([[killed, 'killed'], [finished, 'finished']]);
    expect(body.map((e: { steps: unknown[]; validations: unknown[] }) => [e.steps.length, e.validations.length])).toEqual([[80, 3], [300, 12]]);
  });

  it('refuses no run, an unknown run and too many runs, naming the problem', async () => {
    expect((await get('/api/compare')).body.message).toMatch(/^query parameter runs is missing/);
    expect(await get(`/api/compare?runs=${finished},nope`)).toEqual({ status: 404, body: { error: 'not_found', message: `no run "nope" in ${fixture.path}` } });
    const many = Array.from({ length: MAX_COMPARE_RUNS + 1 }, (_, i) => `r${i}`).join(',');
    expect(await get(`/api/compare?runs=${many}`)).toEqual({
      status: 400, body: { error: 'bad_request', message: `query parameter runs names ${MAX_COMPARE_RUNS + 1} runs; at most ${MAX_COMPARE_RUNS} can be compared at once` },
    });
  });
});

describe('sweeps', () => {
  it('GET /api/sweeps/:id ranks the runs by best validation loss, the swept keys as columns', async () => {
    const { status, body } = await get(`/api/sweeps/${SWEEP_ID}`);
    expect(status).toBe(200);
    expect(body.sweepId).toBe(SWEEP_ID);
    expect(body.keys).toEqual(['hidden', 'lr']); // not out or name, which differ too
    expect(body.runs.map((r: { rank: number; run: RegistryRun; values: unknown }) => [r.rank, r.run.id, r.values])).toEqual([
      [1, sweep[1], { hidden: 64, lr: 0.003 }],
      [2, sweep[0], { hidden: 32, lr: 0.01 }],
      [3, sweep[2], { hidden: 64, lr: 0.001 }], // no validation: last
    ]);
    expect(body.runs[0].run.bestValLoss).toBeLessThan(body.runs[1].run.bestValLoss);
    expect(await get('/api/sweeps/nope')).toEqual({ status: 404, body: { error: 'not_found', message: `no run of sweep "nope" in ${fixture.path}` } });
  });

  it('swept keys: differing values (a missing key counts as null), object values key by key, bookkeeping keys left out', () => {
    expect(sweptKeys([
      { lr: 1, cell: 'lstm', out: 'a', name: 'x', sweep: { seed: 1, fixed: 2 } },
      { lr: 2, cell: 'lstm', out: 'b', name: 'y', sweep: { seed: 2, fixed: 2 }, layerNorm: true },
    ])).toEqual(['lr', 'sweep.seed', 'layerNorm']);
    expect(sweptKeys([{ lr: [1, 2] }, { lr: [1, 2] }])).toEqual([]);
    expect([...NOT_SWEPT]).toEqual(expect.arrayContaining(['out', 'name', 'port']));
    expect(rankSweep([], 'x')).toBeNull();
  });
});

describe('pages and routes', () => {
  it('serves the runs page, a run page and a sweep page, their scripts and uPlot', async () => {
    for (const [url, script] of [['/', 'runs.js'], [`/runs/${finished}`, 'run.js'], [`/sweeps/${SWEEP_ID}`, 'sweep.js']]) {
      const res = await app.inject(url);
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.body).toContain(`src="/static/${script}"`);
    }
    for (const file of ['/static/runs.js', '/static/run.js', '/static/sweep.js', '/static/compare.js', '/static/common.js', '/static/runs.css', '/static/style.css', '/vendor/uplot/uPlot.iife.min.js']) {
      expect((await app.inject(file)).statusCode, file).toBe(200);
    }
    expect((await app.inject('/healthz')).json()).toEqual({ ok: true });
  });

  it('is read-only: no route writes, and the run rows are unchanged', async () => {
    const before = (await get('/api/runs')).body.runs.map((r: RegistryRun) => [r.id, r.status]);
    for (const [method, url] of [['POST', '/api/stop'], ['POST', '/api/scale'], ['DELETE', `/api/runs/${finished}`], ['POST', `/api/runs/${finished}`], ['PUT', '/api/runs']] as const) {
      expect((await app.inject({ method, url })).statusCode, `${method} ${url}`).toBe(404);
    }
    expect((await get('/api/runs')).body.runs.map((r: RegistryRun) => [r.id, r.status])).toEqual(before);
  });

  it('binds 127.0.0.1 unless told otherwise', async () => {
    const server = await startRunsServer({ source: registryView(db), registry: fixture.path, port: 0 });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((server.app.server.address() as { address: string }).address).toBe('127.0.0.1');
      expect((await (await fetch(`${server.url}/api/runs`)).json()).runs).toHaveLength(6);
    } finally {
      await server.close();
    }
  });
});

describe('gradpool dashboard: bad input exits with 2 and names the problem', () => {
  const corrupt = join(base, 'corrupt.db');
  writeFileSync(corrupt, Buffer.alloc(8192, 7));
  const cases: [string, string[], RegExp][] = [
    ['a missing registry', ['--registry', join(base, 'none.db')], /^gradpool: registry .*none\.db does not exist \(runs create it; --registry FILE names another\)$/],
    ['a corrupt registry', ['--registry', corrupt], /^gradpool: registry .*corrupt\.db: .*(not a database|malformed)/],
    ['a bad port', ['--registry', fixture.path, '--port', '70000'], /^gradpool: --port is "70000"; allowed: an integer from 0 to 65535$/],
    ['an unknown option', ['--registry', fixture.path, '--token', 'x'], /^gradpool: Unknown option '--token'.*; see gradpool dashboard --help$/],
    ['an empty host', ['--registry', fixture.path, '--host', ''], /^gradpool: --host is ""/],
  ];
  for (const [name, args, message] of cases) {
    it(name, async () => {
      const error = vi.spyOn(console, 'error').mockImplementation(() => {});
      try {
        expect(await main(['dashboard', ...args])).toBe(2);
        expect(error).toHaveBeenCalledTimes(1);
        expect(String(error.mock.calls[0][0])).toMatch(message);
      } finally {
        error.mockRestore();
      }
    });
  }

  it('defaults: the registry runs/gradpool.db, 127.0.0.1, port 8090', () => {
    expect(parseDashboardArgs([])).toEqual({ registry: 'runs/gradpool.db', host: '127.0.0.1', port: 8090 });
    expect(parseDashboardArgs(['--help'])).toBe('help');
  });
});
