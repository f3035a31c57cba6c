// A captioner's BLEU-4 and accuracy on the all-runs dashboard in headless chromium (Debian's,
// driven by playwright-core), over a registry written through the real recorder (no training:
// two captioners on shapes and a language model): the runs table's best BLEU-4 column, the
// compare view's BLEU-4 and accuracy charts (only while every run compared is a captioner),
// and a captioner's page with its caption-quality curve (hidden on a language model's page).

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { chromiumTool, launchChromium, watchedPage } from '../helpers/browser.js';
import { afterAll, describe, expect, it } from 'vitest';
import { registryView } from '../../coordinator/registry/dashboard-command.js';
import { RunRecorder } from '../../coordinator/registry/recorder.js';
import { openRegistry } from '../../coordinator/registry/store.js';
import { startRunsServer } from '../../dashboard/runs-server.js';
import type { StepPoint } from '../../dashboard/view.js';

const browserTool = chromiumTool('runs-caption-browser.test.ts');

interface Debug {
  table?: { rows: string[]; total: number };
  compare?: { runs: string[]; charts: Record<string, { series: number; points: number }> };
  run?: { id: string; status: string; caption: boolean; points: Record<string, number>; validations: number };
}
/** The page's debug object (runs.js, compare.js, run.js set it after each redraw); typed here, not on Window (runs-browser.test.ts types it there). */
const debug = (page: Page): Promise<Debug> => page.evaluate(() => (window as unknown as { __gradpoolRuns?: Debug }).__gradpoolRuns ?? {});

let dir: string | undefined;
let browser: Browser | undefined;
let cleanup = async () => {};
afterAll(async () => {
  await browser?.close();
  await cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function stepPoint(step: number, time: number): StepPoint {
  return {
    step, time, loss: 3 - step / 20, bitsPerToken: 4, gradNorm: 1, gradNormClipped: 1, clipped: false, clipThreshold: 5,
    learningRate: 0.001, tokensPerSecond: 900, tokens: 64, workers: 2, skipped: false, stepMs: 10,
    phases: { compute: 1, decode: 1, reduce: 1, apply: 1, publish: 1 }, workerMs: {}, payloadBytes: [], tasks: [1], imbalance: 1, hiddenNorms: [],
  };
}

/** 40 steps, a validation every 10 (a captioner's with BLEU-4 rising to `bleu4` and accuracy to `bleu4 + 0.1`). */
function record(registry: string, id: string, config: Record<string, unknown>, bleu4: number | null): void {
  const runDir = join(dir!, id);
  mkdirSync(runDir, { recursive: true });
  const rec = new RunRecorder({ id, name: id, kind: 'train', dir: runDir, config: { cell: 'lstm', layers: 1, hidden: 64, ...config }, backend: 'wasm', stepsTarget: 40 }, registry, (m) => {
    throw new Error(`the recorder warned: ${m}`);
  });
  const t0 = Date.now() - 60_000;
  for (let s = 1; s <= 40; s++) {
    rec.record({ type: 'step', data: stepPoint(s, t0 + s * 100) });
    if (s % 10 === 0) {
      const caption = bleu4 === null ? {} : { bleu4: (bleu4 * s) / 40, accuracy: Math.min(1, (bleu4 + 0.1) * s / 40) };
      rec.record({ type: 'validation', data: { step: s, time: t0 + s * 100 + 5, loss: 3 - s / 25, bitsPerToken: 4, ...caption } });
    }
  }
  rec.close('finished');
}

describe('a captioner on the all-runs dashboard in chromium', () => {
  it.skipIf(browserTool.skip)('the table shows best BLEU-4, compare overlays BLEU-4 and accuracy, a captioner\'s page shows its caption quality', async () => {
    browserTool.require();
    dir = mkdtempSync(join(tmpdir(), 'gradpool-runs-caption-browser-'));
    const registry = join(dir, 'gradpool.db');
    record(registry, 'capA', { task: 'caption', dataset: 'shapes' }, 0.6);
    record(registry, 'capB', { task: 'caption', dataset: 'shapes' }, 0.8);
    record(registry, 'lm', { task: 'lm' }, null);
    const db = openRegistry(registry, { readonly: true });
    const server = await startRunsServer({ source: registryView(db), registry, port: 0 });
    cleanup = async () => {
      await server.close();
      db.close();
    };

    browser = await launchChromium();
    const { page, pageErrors } = await watchedPage(browser);

    // The table: a best BLEU-4 column (the registry holds captioners), a dash for the language model.
    await page.goto(server.url);
    await expect.poll(async () => (await debug(page)).table?.total ?? 0, { timeout: 15_000 }).toBe(3);
    const bleu4 = await page.evaluate(() => {
      const heads = [...document.querySelectorAll('#runs-head th')].map((th) => th.textContent!.replace(/[▲▼]/g, '').trim());
      const i = heads.indexOf('best BLEU-4');
      return Object.fromEntries([...document.querySelectorAll('#runs-body tr')].map((tr) => [(tr as HTMLElement).dataset.id, i < 0 ? null : tr.children[i].textContent!.trim()]));
    });
    expect(bleu4).toEqual({ capA: '0.6', capB: '0.8', lm: '–' });

    // Compare the two captioners: BLEU-4 and accuracy charts, one curve each; with the language model ticked too, none.
    for (const id of ['capA', 'capB']) await page.getByRole('checkbox', { name: `compare ${id}`, exact: true }).check();
    await expect.poll(async () => (await debug(page)).compare?.charts.bleu4?.series ?? 0, { timeout: 15_000 }).toBe(2);
    let { compare } = await debug(page);
    expect(compare!.charts.bleu4.points).toBe(4);
    expect(compare!.charts.accuracy).toEqual({ series: 2, points: 4 });
    await page.getByRole('checkbox', { name: 'compare lm', exact: true }).check();
    await expect.poll(async () => (await debug(page)).compare?.charts.loss?.series ?? 0, { timeout: 15_000 }).toBe(3);
    ({ compare } = await debug(page));
    expect(Object.keys(compare!.charts)).not.toContain('bleu4');
    expect(Object.keys(compare!.charts)).not.toContain('accuracy');

    // A captioner's page: its caption-quality curve and its best BLEU-4; a language model's page: neither.
    await page.goto(`${server.url}/runs/capB`);
    await expect.poll(async () => (await debug(page)).run?.status, { timeout: 15_000 }).toBe('finished');
    expect((await debug(page)).run).toMatchObject({ caption: true, validations: 4, points: { captionQuality: 4 } });
    expect(await page.locator('#chart-captionQuality').isVisible()).toBe(true);
    expect(await page.locator('#best-bleu4').textContent()).toBe('0.800');
    expect(await page.locator('#val-accuracy').textContent()).toBe('90.0%');
    await page.goto(`${server.url}/runs/lm`);
    await expect.poll(async () => (await debug(page)).run?.status, { timeout: 15_000 }).toBe('finished');
    expect((await debug(page)).run!.caption).toBe(false);
    expect(await page.locator('#chart-captionQuality').isVisible()).toBe(false);
    expect(await page.locator('#bleu4-stat').isVisible()).toBe(false);

    expect(pageErrors).toEqual([]);
  }, 60_000);
});
