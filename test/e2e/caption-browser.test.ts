// A captioning run's dashboard in a real headless browser (Debian's chromium driven by
// playwright-core) against a real tiny captioner: the validation gallery shows the split's
// first 12 images (each fetched once) with the captions the run printed, their references and
// a verdict, refreshed at the next validation; BLEU-4, accuracy and their curve are shown.
// Leaves a full-page screenshot in docs/dashboard-caption.png. (browser.test.ts checks that a
// language-model run's page has none of this.)

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Browser, Page } from 'playwright-core';
import { chromiumTool, launchChromium, watchedPage } from '../helpers/browser.js';
import { afterAll, describe, expect, it } from 'vitest';

const browserTool = chromiumTool('caption-browser.test.ts');
const root = join(import.meta.dirname, '..', '..');
const screenshot = join(root, 'docs', 'dashboard-caption.png');
const EVAL_EVERY = 3;

/** The page's debug object (app.js), the parts this test reads (browser.test.ts declares Window.__gradpool's type). */
interface CaptionDebug { points: Record<string, number>; validations: number; gallery: { images: number; step: number | null } | null }
/** The window as app.js leaves it (functions run in the page, so each casts for itself). */
type PageWindow = { __gradpool?: CaptionDebug };
const debug = (page: Page) => page.evaluate(() => (window as unknown as PageWindow).__gradpool ?? null);

let dir: string | undefined;
let child: ChildProcess | undefined;
let browser: Browser | undefined;

afterAll(async () => {
  await browser?.close();
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a captioning run in chromium', () => {
  it.skipIf(browserTool.skip)('shows the validation gallery, refreshed at each validation, with BLEU-4 and accuracy', async () => {
    browserTool.require();
    dir = mkdtempSync(join(tmpdir(), 'gradpool-caption-browser-'));
    // More steps than the test needs: it stops the run itself. Of 200 shapes images, 160…179 are the validation split.
    const args = ['train', '--task', 'caption', '--dataset', 'shapes', '--shapes-count', '200', '--cnn', '4,8', '--hidden', '32', '--embed', '16',
      '--batch', '16', '--blocks', '1', '--workers', '1', '--steps', '4000', '--eval-every', String(EVAL_EVERY), '--backend', 'wasm',
      '--port', '0', '--json', '--registry', 'none', '--out', join(dir, 'run')];
    const proc = spawn(process.execPath, [join(root, 'bin', 'gradpool.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let stderr = '';
    proc.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    const lines: Record<string, unknown>[] = [];
    const started = new Promise<{ url: string; runId: string }>((resolve, reject) => {
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        if (!line.startsWith('{')) return;
        const event = JSON.parse(line);
        lines.push(event);
        if (event.event === 'start') resolve(event);
      });
      exited.then((code) => reject(new Error(`gradpool exited with ${code} before starting: ${stderr}`)));
    });
    const { url, runId } = await started;

    browser = await launchChromium();
    const { page, pageErrors } = await watchedPage(browser);
    const failedRequests: string[] = [];
    const imageRequests: string[] = [];
    page.on('request', (r) => {
      if (/^\/api\/gallery\/\d+\.png$/.test(new URL(r.url()).pathname)) imageRequests.push(new URL(r.url()).pathname);
    });
    page.on('response', (r) => {
      if (r.status() >= 400) failedRequests.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
    });
    await page.goto(url);
    await expect.poll(() => page.locator('#run-id').textContent(), { timeout: 30_000 }).toBe(runId);

    // The first validation's captions under the 12 images.
    await page.waitForFunction(() => ((window as unknown as PageWindow).__gradpool?.gallery?.step ?? null) !== null, null, { timeout: 60_000 });
    const first = (await debug(page))!.gallery!;
    expect(first.images).toBe(12);
    expect(first.step! % EVAL_EVERY).toBe(0);
    await expect(page.locator('#gallery-card').isVisible()).resolves.toBe(true);
    const shots = page.locator('#gallery figure.shot');
    expect(await shots.count()).toBe(12);
    // Every image loaded: 64×64 PNGs, named after the validation split's first images.
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('#gallery img')].every((img) => img.complete && img.naturalWidth > 0));
    const loaded = await page.$$eval('#gallery img', (imgs) => imgs.map((img) => [(img as HTMLImageElement).naturalWidth, (img as HTMLImageElement).naturalHeight, img.getAttribute('alt')]));
    expect(loaded).toEqual(Array.from({ length: 12 }, (_, i) => [64, 64, `shapes_${String(160 + i).padStart(6, '0')}.png`]));
    // Each: a generated caption with a verdict (shapes can say), and its references.
    expect(await page.locator('#gallery .verdict').count()).toBe(12);
    for (let i = 0; i < 12; i++) expect(await shots.nth(i).locator('.references li').count()).toBeGreaterThanOrEqual(1);

    // A later validation replaces the captions under the same images (not fetched again).
    await page.waitForFunction((step) => (window as unknown as PageWindow).__gradpool!.gallery!.step! > step, first.step!, { timeout: 60_000 });
    // One read of the page (a redraw replaces the heading, the captions and the header together).
    const view = await page.evaluate(() => ({
      heading: document.getElementById('gallery-step')!.textContent!,
      shown: [...document.querySelectorAll('#gallery figure.shot')].map((f) => [f.querySelector('img')!.getAttribute('alt'), f.querySelector('.generated')!.textContent!.replace(/^[✓✗] /, '')]),
      header: ['val-loss', 'bleu4', 'accuracy'].map((id) => document.getElementById(id)!.textContent!),
    }));
    const step = Number(/at step ([\d,]+)/.exec(view.heading)![1].replaceAll(',', ''));
    expect(step).toBeGreaterThan(first.step!);
    // The page's captions are the run's: the sample it printed at that step starts with the same images.
    const printedAt = (event: string, at: number) => expect.poll(() => lines.find((l) => l.event === event && l.step === at), { timeout: 10_000 }).toBeDefined();
    await printedAt('sample', step);
    const sample = lines.find((l) => l.event === 'sample' && l.step === step) as { text: string };
    const printed = sample.text.split('\n').map((l) => /^(\S+): (.*?)  \(reference: /.exec(l)!.slice(1));
    expect(printed.length).toBe(4);
    expect(view.shown.slice(0, 4)).toEqual(printed.map(([name, caption]) => [name, caption === '' ? '(empty)' : caption]));
    // The header's figures are those of the validation it names, as the run printed them.
    const atStep = Number(/@(\d+)$/.exec(view.header[0])![1]);
    await printedAt('validation', atStep);
    const validation = lines.find((l) => l.event === 'validation' && l.step === atStep) as { bleu4: number; accuracy: number };
    expect(view.header.slice(1)).toEqual([validation.bleu4.toFixed(3), `${(100 * validation.accuracy).toFixed(1)}%`]);
    expect(await page.locator('#chart-captionQuality').isVisible()).toBe(true);
    expect((await debug(page))!.points.captionQuality).toBeGreaterThanOrEqual(2);

    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });

    proc.kill('SIGINT'); // stops after the current step, with a checkpoint
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
    expect(imageRequests.sort()).toEqual(Array.from({ length: 12 }, (_, i) => `/api/gallery/${i}.png`).sort());
    expect(pageErrors).toEqual([]);
    expect(failedRequests).toEqual([]);
  }, 120_000);
});
