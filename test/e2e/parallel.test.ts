// The data-parallel invariant: the shard, not the worker, is the unit of work, so 1,
// 2 and 3 workers (and a pool resized mid-run) give bit-identical weights; and the
// K-shard update equals the single full-batch update up to float summation order.

import { afterEach, describe, expect, it } from 'vitest';
import { TRAIN_DEFAULTS, type TrainConfig } from '../../coordinator/config.js';
import { PoolExecutor } from '../../coordinator/pool.js';
import { type ShardExecutor, Trainer } from '../../coordinator/trainer.js';
import { initBackend } from '../../model/backend.js';
import { modelConfigOf } from '../../coordinator/config.js';
import { buildLayout } from '../../model/params.js';
import { tenLetterCorpus } from '../helpers/corpus.js';

const corpus = tenLetterCorpus;

const base: TrainConfig = {
  ...TRAIN_DEFAULTS,
  cell: 'lstm', layers: 2, hidden: 16, embed: 8, seqLen: 8, batch: 6, shards: 3, lr: 0.01, clip: 1, backend: 'cpu',
};

const open: ShardExecutor[] = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

function pool(config: TrainConfig, workers: number): PoolExecutor {
  const layout = buildLayout(modelConfigOf(config), 10);
  const p = new PoolExecutor({ runId: 'test', layout, backend: config.backend, workers, stepTimeoutMs: 60_000, maxAttempts: 3 });
  open.push(p);
  return p;
}

async function train(config: TrainConfig, executor: ShardExecutor | undefined, steps: number, between?: (step: number) => Promise<void>) {
  const trainer = new Trainer(config, { corpus: corpus(), executor });
  if (!executor) open.push(trainer.executor);
  for (let s = 0; s < steps; s++) {
    await between?.(s);
    await trainer.step();
  }
  return trainer.state;
}

describe('workers do not change the math', () => {
  it('W = 1, 2 and 3 give bit-identical weights, states and optimizer state (and equal the in-thread run)', async () => {
    await initBackend('cpu');
    const inThread = await train(base, undefined, 5);
    for (const W of [1, 2, 3]) {
      const s = await train(base, pool(base, W), 5);
      expect(Buffer.from(s.params.buffer).equals(Buffer.from(inThread.params.buffer)), `params, W=${W}`).toBe(true);
      expect(Buffer.from(s.states.buffer).equals(Buffer.from(inThread.states.buffer)), `states, W=${W}`).toBe(true);
      expect(Buffer.from(s.optimizer.v.buffer).equals(Buffer.from(inThread.optimizer.v.buffer)), `adam v, W=${W}`).toBe(true);
    }
  });

  it('a run scaled 2 → 1 → 3 between steps ends bit-identical to an unscaled run', async () => {
    const straight = await train(base, pool(base, 2), 6);
    const p = pool(base, 2);
    const scaled = await train(base, p, 6, async (step) => {
      if (step === 2) await p.resize(1);
      if (step === 4) await p.resize(3);
    });
    expect(p.workers).toBe(3);
    expect(Buffer.from(scaled.params.buffer).equals(Buffer.from(straight.params.buffer))).toBe(true);
  });

  it('the wasm backend in workers agrees with itself across W too', async () => {
    const config = { ...base, backend: 'wasm' as const, cell: 'gru-reset-after' as const };
    const one = await train(config, pool(config, 1), 3);
    const two = await train(config, pool(config, 2), 3);
    expect(Buffer.from(two.params.buffer).equals(Buffer.from(one.params.buffer))).toBe(true);
  });
});

describe('the K-shard update equals the full-batch update', () => {
  for (const cell of ['lstm', 'gru', 'rnn'] as const) {
    it(`${cell}: K = 2, 3, 6 shards give the K = 1 gradient to 1e-6 relative`, async () => {
      await initBackend('cpu');
      const gradient = async (K: number) => {
        const trainer = new Trainer({ ...base, cell, shards: K }, { corpus: corpus() });
        open.push(trainer.executor);
        await trainer.step(); // a second step, so carried states are non-zero
        return (await trainer.gradient()).reduced;
      };
      const full = await gradient(1);
      const norm = Math.hypot(...full.grad);
      expect(norm).toBeGreaterThan(0);
      for (const K of [2, 3, 6]) {
        const r = await gradient(K);
        const diff = Math.hypot(...r.grad.map((x, i) => x - full.grad[i]));
        expect(diff / norm, `K=${K}`).toBeLessThan(1e-6);
        expect(Math.abs(r.loss - full.loss) / full.loss).toBeLessThan(1e-6);
        expect(r.tokens).toBe(full.tokens);
      }
    });
  }
});
