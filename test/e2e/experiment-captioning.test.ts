// `gradpool experiment captioning`, shortened by --steps, end to end through the real
// coordinator and worker threads: learning curves, the test and compositional
// evaluations greedy and with a beam, and the report's files (markdown, SVG, PNG, JSON).

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { expect, it, vi } from 'vitest';
import { main } from '../../coordinator/cli.js';

it('a 20-step quick run learns, evaluates greedy and beam on both splits, and writes its report', async () => {
  const out = mkdtempSync(join(tmpdir(), 'gradpool-exp-caption-'));
  const lines: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...a) => void lines.push(a.join(' ')));
  let code: number;
  try {
    code = await main(['experiment', 'captioning', '--quick', '--steps', '20', '--out', out, '--workers', '2', '--backend', 'native']);
  } finally {
    spy.mockRestore();
  }
  const log = lines.join('\n');
  expect(code, log).toBe(0);
  expect(log).toMatch(/^captioning step 20: training loss [\d.]+, validation loss [\d.]+ nats\/token/m);
  expect(log).toMatch(/^captioning compositional, beam 3: BLEU-4 [\d.]+, accuracy [\d.]+% over 8 images/m);
  const data = JSON.parse(readFileSync(join(out, 'captioning-quick.json'), 'utf8'));
  expect(data.curve.map((p: { step: number }) => p.step)).toEqual([5, 10, 15, 20]);
  // From ln(vocabulary) ≈ 3 nats towards the captions' grammar: 20 steps are enough to see it fall.
  expect(data.curve[3].trainLoss).toBeLessThan(data.curve[0].trainLoss - 0.2);
  expect(data.curve[3].valLoss).toBeLessThan(data.curve[0].valLoss - 0.2);
  expect(data.results.map((r: { split: string; decoding: string; images: number }) => `${r.split} ${r.decoding} ${r.images}`)).toEqual([
    'test greedy 32', 'test greedy 8', 'test beam 3 8', 'compositional greedy 32', 'compositional greedy 8', 'compositional beam 3 8',
  ]);
  expect(data.errors.heldOutObjects).toBeGreaterThanOrEqual(32);
  expect(data.gallery).toHaveLength(12);
  const md = readFileSync(join(out, 'captioning-quick.md'), 'utf8');
  expect(md).toMatch(/^# Captioning \(quick mode\)/);
  expect(md).toContain('## Greedy against beam 3');
  for (const svg of ['captioning-quick-loss.svg', 'captioning-quick-quality.svg']) expect(readFileSync(join(out, svg), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>$/);
  // 12 tiles of 128 pixels in 4 columns, 8 pixels apart: 4·136 + 8 wide.
  const png = await sharp(join(out, 'captioning-quick-gallery.png')).metadata();
  expect([png.format, png.width]).toEqual(['png', 552]);
  expect(png.height).toBeGreaterThan(3 * 128);
}, 90_000);
