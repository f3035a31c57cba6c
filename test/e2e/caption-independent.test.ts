// The captioner trained by the default command captions images it has never seen from a
// renderer it has never seen: scenes drawn, rendered, noised and PNG-encoded by an
// independent Python implementation of the spec (test/helpers/render_shapes.py, Python's
// own random numbers and zlib, no gradpool code), captioned by `gradpool caption` with
// the committed model file, and judged by the grammar against the Python scenes.
//
// The model file test/golden/captioner-shapes.safetensors is the default run's model
// (test/golden/make_captioner_fixture.sh shows the command and what it measured).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';
import { main } from '../../coordinator/cli.js';
import { isCorrect } from '../../coordinator/caption/grammar.js';
import type { Scene } from '../../coordinator/caption/shapes.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-caption-independent-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const MODEL = join(import.meta.dirname, '..', 'golden', 'captioner-shapes.safetensors');
const COUNT = 200;

it('captions scenes from an independent renderer of the spec (≥ 90% correct)', async () => {
  const py = spawnSync('python3', [join(import.meta.dirname, '..', 'helpers', 'render_shapes.py'), '--sample', String(COUNT), '--seed', '2026', '--out', dir], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  expect(py.status, py.stderr).toBe(0);
  const scenes = JSON.parse(py.stdout) as Scene[];
  expect(scenes).toHaveLength(COUNT);
  expect(scenes.filter((s) => s.length === 2).length, 'both one- and two-object scenes').toBeGreaterThan(COUNT / 2);

  const out: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
  let code: number;
  try {
    code = await main(['caption', '--model', MODEL, '--image', ...scenes.map((_, i) => join(dir, `${i}.png`)), '--json']);
  } finally {
    spy.mockRestore();
  }
  expect(code).toBe(0);
  const captions = out.map((l) => JSON.parse(l) as { image: string; caption: string });
  expect(captions).toHaveLength(COUNT);
  const wrong = captions.filter((c, i) => !isCorrect(c.caption, scenes[i]));
  const accuracy = 1 - wrong.length / COUNT;
  console.log(`independent renderer: ${(accuracy * 100).toFixed(1)}% of ${COUNT} captions correct`);
  expect(accuracy, `wrong: ${wrong.slice(0, 5).map((c) => `${c.image}: ${c.caption}`).join('; ')}`).toBeGreaterThanOrEqual(0.9);
  // The judge can fail: the captions of other images are mostly wrong for these scenes.
  const shifted = captions.filter((c, i) => isCorrect(c.caption, scenes[(i + 1) % COUNT])).length / COUNT;
  expect(shifted).toBeLessThan(0.2);
});
