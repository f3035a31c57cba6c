// The native backend in worker threads: each thread loads the addon and runs the C
// kernels; 1, 2 and 3 workers give the in-thread run's bits, and whole training runs on
// every kernel path (forced in this thread) end with the same weights, bit for bit;
// without the kernels, --backend native is refused up front (exit 2, one line).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { TRAIN_DEFAULTS, type TrainConfig, modelConfigOf } from '../../coordinator/config.js';
import { PoolExecutor } from '../../coordinator/pool.js';
import { type ShardExecutor, Trainer } from '../../coordinator/trainer.js';
import { initBackend } from '../../model/backend.js';
import { nativeAddon } from '../../model/native/addon.js';
import { buildLayout } from '../../model/params.js';
import { tenLetterCorpus } from '../helpers/corpus.js';
import { describeNative } from '../helpers/native-guard.js';

const base: TrainConfig = {
  ...TRAIN_DEFAULTS,
  cell: 'lstm', layers: 2, hidden: 24, embed: 8, seqLen: 8, batch: 6, blocks: 3, lr: 0.01, clip: 1, backend: 'native',
};

const open: ShardExecutor[] = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

async function train(config: TrainConfig, workers: number | null, steps: number) {
  const layout = buildLayout(modelConfigOf(config), 10);
  const executor = workers === null ? undefined : new PoolExecutor({ runId: 'test', layout, backend: config.backend, workers, stepTimeoutMs: 60_000, maxAttempts: 3 });
  const trainer = new Trainer(config, { corpus: tenLetterCorpus(), executor });
  open.push(trainer.executor);
  for (let s = 0; s < steps; s++) await trainer.step();
  return trainer.state;
}

describeNative('native backend in worker threads', () => {
  it('W = 1, 2 and 3 give the in-thread bits', async () => {
    await initBackend('native');
    const inThread = await train(base, null, 4);
    for (const W of [1, 2, 3]) {
      const s = await train(base, W, 4);
      expect(Buffer.from(s.params.buffer).equals(Buffer.from(inThread.params.buffer)), `params, W=${W}`).toBe(true);
      expect(Buffer.from(s.states.buffer).equals(Buffer.from(inThread.states.buffer)), `states, W=${W}`).toBe(true);
    }
  });

  it('every kernel path gives the same weights (the path is forced in this thread)', async () => {
    await initBackend('native');
    const g = nativeAddon()!;
    const before = g.info().isa;
    const results = [];
    try {
      for (const path of g.info().paths) {
        g.setIsa(path);
        results.push({ path, s: await train({ ...base, cell: 'lstm-peephole' }, null, 3) });
      }
    } finally {
      g.setIsa(before);
    }
    for (const r of results.slice(1)) {
      expect(Buffer.from(r.s.params.buffer).equals(Buffer.from(results[0].s.params.buffer)), `${r.path} vs ${results[0].path}`).toBe(true);
    }
  });
});

describe('without the native kernels', () => {
  it('train and eval exit 2 with one line saying why, before starting any worker', () => {
    const bin = fileURLToPath(new URL('../../bin/gradpool.js', import.meta.url));
    for (const args of [['train', '--backend', 'native', '--steps', '1', '--out', '/nonexistent/run'], ['eval', '--backend', 'native', '--model', 'm', '--data', 'd']]) {
      const r = spawnSync(process.execPath, [bin, ...args], { env: { ...process.env, GRADPOOL_NATIVE_ADDON: '/nonexistent/gradpool.node' }, encoding: 'utf8', timeout: 60_000 });
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toEqual([
        'gradpool: backend "native" unavailable: native kernels not built (/nonexistent/gradpool.node missing; run `npm install` or `node scripts/build-native.mjs`); use --backend wasm',
      ]);
    }
  });

  it('without --backend a run falls back to wasm, says why in one line, and trains', () => {
    const bin = fileURLToPath(new URL('../../bin/gradpool.js', import.meta.url));
    const dir = mkdtempSync(join(tmpdir(), 'gradpool-fallback-'));
    const data = join(dir, 'text.txt');
    writeFileSync(data, 'to be or not to be, that is the question. '.repeat(100));
    const env = { ...process.env, GRADPOOL_NATIVE_ADDON: '/nonexistent/gradpool.node' };
    const info = spawnSync(process.execPath, [bin, 'info', '--json'], { env, encoding: 'utf8', timeout: 60_000 });
    expect(JSON.parse(info.stdout).defaultBackend).toBe('wasm');
    const args = ['train', '--data', data, '--steps', '2', '--batch', '4', '--seq-len', '8', '--hidden', '8', '--embed', '4', '--workers', '1',
      '--eval-every', '0', '--sample-every', '0', '--port', '0', '--registry', 'none', '--out', join(dir, 'run')];
    const r = spawnSync(process.execPath, [bin, ...args], { env, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = `${r.stdout}\n${r.stderr}`;
    expect(out).toMatch(/backend wasm; run directory/);
    expect(out.split('\n').filter((l) => l.includes('native kernels are unavailable'))).toEqual([
      'backend wasm: the native kernels are unavailable (native kernels not built (/nonexistent/gradpool.node missing; run `npm install` or `node scripts/build-native.mjs`))',
    ]);
  }, 150_000);
});
