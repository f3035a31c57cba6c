// The data-parallel invariant: the shard, not the worker, is the unit of work, so 1,
// 2 and 3 workers (and a pool resized mid-run, and shards computed in any order) give
// bit-identical weights; the same `gradpool train` command with --workers 1, 2, 3 and 5
// and otherwise default options trains the same weights (K comes from the config); and
// the K-shard update equals the single full-batch update up to float summation order.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadCheckpoint } from '../../coordinator/checkpoint.js';
import { main } from '../../coordinator/cli.js';
import { Rng } from '../../model/rng.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../../coordinator/config.js';
import { PoolExecutor } from '../../coordinator/pool.js';
import { type ShardExecutor, Trainer } from '../../coordinator/trainer.js';
import { initBackend } from '../../model/backend.js';
import { modelConfigOf } from '../../coordinator/config.js';
import { buildLayout } from '../../model/params.js';
import { tasksOf } from '../../coordinator/shards.js';
import { SpeedBook } from '../../coordinator/speeds.js';
import { tenLetterCorpus } from '../helpers/corpus.js';

const corpus = tenLetterCorpus;

const base: TrainConfig = {
  ...TRAIN_DEFAULTS,
  cell: 'lstm', layers: 2, hidden: 16, embed: 8, seqLen: 8, batch: 6, blocks: 3, lr: 0.01, clip: 1, backend: 'cpu',
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

type Planner = ConstructorParameters<typeof Trainer>[1] extends infer O ? (O extends { planner?: infer P } ? P : never) : never;

async function train(config: TrainConfig, executor: ShardExecutor | undefined, steps: number, between?: (step: number) => Promise<void>, planner?: Planner) {
  const trainer = new Trainer(config, { corpus: corpus(), executor, planner });
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

  it('shards computed in a random order, by a random worker each step, reduce to the same bits', async () => {
    await initBackend('cpu');
    const inThread = await train(base, undefined, 4);
    const pools = [pool(base, 1), pool(base, 2), pool(base, 3)];
    const rng = new Rng(7);
    // Every shard alone, in a shuffled order, each on a randomly chosen pool.
    const shuffled: ShardExecutor = {
      workers: 3,
      publish: () => {},
      async run(tasks, params, version) {
        const order = tasks.map((_, i) => i);
        for (let i = order.length - 1; i > 0; i--) {
          const j = rng.int(i + 1);
          [order[i], order[j]] = [order[j], order[i]];
        }
        const results = new Array(tasks.length);
        const shards = new Array(tasks.length);
        for (const i of order) {
          const r = await pools[rng.int(pools.length)].run([tasks[i]], params, version);
          results[i] = r.results[0];
          shards[i] = r.shards[0];
        }
        return { results, decodeMs: 0, shards };
      },
      close: async () => {},
    };
    const s = await train(base, shuffled, 4);
    expect(Buffer.from(s.params.buffer).equals(Buffer.from(inThread.params.buffer))).toBe(true);
    expect(Buffer.from(s.states.buffer).equals(Buffer.from(inThread.states.buffer))).toBe(true);
  });

  it('any partition of the blocks into tasks, random every step, gives the same bits — in this thread and on pools of 2 and 3', async () => {
    await initBackend('cpu');
    const config = { ...base, batch: 7, blocks: 6 };
    const plain = await train(config, undefined, 4);
    const rng = new Rng(11);
    const seen = new Set<string>();
    const random: Planner = (blocks) => {
      const ranges: { lo: number; width: number }[] = [];
      const split = (lo: number, width: number) => {
        if (lo >= blocks.length) return;
        if (width === 1 || rng.int(3) === 0) ranges.push({ lo, width });
        else {
          split(lo, width / 2);
          split(lo + width / 2, width / 2);
        }
      };
      split(0, 8);
      seen.add(JSON.stringify(ranges));
      return tasksOf(blocks, ranges);
    };
    for (const executor of [undefined, pool(config, 2), pool(config, 3)]) {
      const s = await train(config, executor, 4, undefined, random);
      expect(Buffer.from(s.params.buffer).equals(Buffer.from(plain.params.buffer)), `params, ${executor ? `W=${executor.workers}` : 'in-thread'}`).toBe(true);
      expect(Buffer.from(s.states.buffer).equals(Buffer.from(plain.states.buffer)), `states, ${executor ? `W=${executor.workers}` : 'in-thread'}`).toBe(true);
    }
    expect(seen.size, 'the partitions did vary').toBeGreaterThan(5);
    // The same blocks summed one after another (the math of runs from before the tree) give other bits: the test can tell.
    const trainer = new Trainer(config, { corpus: corpus() });
    open.push(trainer.executor);
    trainer.reduction = 'sequential';
    for (let i = 0; i < 4; i++) await trainer.step();
    expect(Buffer.from(trainer.state.params.buffer).equals(Buffer.from(plain.params.buffer))).toBe(false);
  });

  it('a slower worker gets fewer blocks (the partition follows measured speeds), and the bits stay the same', async () => {
    await initBackend('cpu');
    const config = { ...base, batch: 8, blocks: 8 };
    const plain = await train(config, undefined, 6);
    // A pool of 2 whose threads report as two workers, 'fast' (1 ms a block) and 'slow' (3 ms a block).
    const inner = pool(config, 2);
    const ids = new Map<number | string, string>();
    const speeds = new SpeedBook();
    const partitions: number[][] = [];
    const uneven: ShardExecutor = {
      get workers() {
        return inner.workers;
      },
      speeds,
      slotKeys: () => ['fast', 'slow'],
      publish: (p, v) => inner.publish(p, v),
      run: async (tasks, params, version) => {
        partitions.push(tasks.map((t) => t.shard.blocks?.length ?? 1));
        const out = await inner.run(tasks, params, version);
        // Thread ids name the workers in order of first appearance; the second is slow.
        const shards = out.shards.map((sh, k) => {
          if (!ids.has(sh.worker)) ids.set(sh.worker, ids.size === 0 ? 'fast' : 'slow');
          const id = ids.get(sh.worker)!;
          return { ...sh, worker: `${id}/0`, computeMs: (id === 'slow' ? 3 : 1) * (tasks[k].shard.blocks?.length ?? 1) };
        });
        return { ...out, shards };
      },
      close: async () => {},
    };
    const s = await train(config, uneven, 6);
    expect(partitions[0], 'the first step: nothing measured, the even partition').toEqual([4, 4]);
    expect(ids.size, 'both threads took tasks').toBe(2);
    expect([speeds.get('fast'), speeds.get('slow')]).toEqual([1, 3]);
    // Tasks of 2, 2 and 4 blocks: the 4 to the fast worker first, a 2 to the slow one, the other 2 to whichever is free first (docs/PARALLEL.md).
    expect(partitions.slice(1)).toEqual(new Array(5).fill([2, 2, 4]));
    expect(Buffer.from(s.params.buffer).equals(Buffer.from(plain.params.buffer))).toBe(true);
    expect(Buffer.from(s.states.buffer).equals(Buffer.from(plain.states.buffer))).toBe(true);
  });

  it('the wasm backend in workers agrees with itself across W too', async () => {
    const config = { ...base, backend: 'wasm' as const, cell: 'gru-reset-after' as const };
    const one = await train(config, pool(config, 1), 3);
    const two = await train(config, pool(config, 2), 3);
    expect(Buffer.from(two.params.buffer).equals(Buffer.from(one.params.buffer))).toBe(true);
  });
});

describe('the same command on any number of workers', () => {
  it('gradpool train with --workers 1, 2, 3 and 5 and default options (K = ⌈B/16⌉ = 3) ends with the same bits', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gradpool-workers-'));
    const data = join(dir, 'text.txt');
    writeFileSync(data, 'to be or not to be, that is the question. '.repeat(200));
    // Only the size of the model and the run are set: shards, backend, optimizer and the rest are the defaults.
    const args = ['--data', data, '--batch', '48', '--seq-len', '8', '--hidden', '16', '--embed', '8', '--steps', '4',
      '--eval-every', '0', '--sample-every', '0', '--port', '0', '--quiet', '--registry', 'none'];
    const spy = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const ends = [];
      for (const W of [1, 2, 3, 5]) {
        const out = join(dir, `w${W}`);
        expect(await main(['train', ...args, '--workers', String(W), '--out', out]), `exit code, W=${W}`).toBe(0);
        ends.push({ W, c: await loadCheckpoint(out) });
      }
      const [first, ...rest] = ends;
      expect(first.c.shards).toBe(3);
      for (const { W, c } of rest) {
        expect(c.shards, `shards, W=${W}`).toBe(3);
        expect(Buffer.from(c.params.buffer).equals(Buffer.from(first.c.params.buffer)), `params, W=${W}`).toBe(true);
        expect(Buffer.from(c.optimizer.v.buffer).equals(Buffer.from(first.c.optimizer.v.buffer)), `adam v, W=${W}`).toBe(true);
        expect(Buffer.from(c.streamStates.buffer).equals(Buffer.from(first.c.streamStates.buffer)), `states, W=${W}`).toBe(true);
      }
    } finally {
      spy.mockRestore();
    }
  }, 240_000);
});

describe('the K-shard update equals the full-batch update', () => {
  for (const cell of ['lstm', 'gru', 'rnn'] as const) {
    it(`${cell}: K = 2, 3, 6 shards give the K = 1 gradient to 1e-6 relative`, async () => {
      await initBackend('cpu');
      const gradient = async (K: number) => {
        const trainer = new Trainer({ ...base, cell, blocks: K }, { corpus: corpus() });
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
