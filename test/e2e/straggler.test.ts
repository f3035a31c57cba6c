// A straggler does not hold the step: a local thread that hangs on a task of two blocks
// (GRADPOOL_FAULT, worker/faults.ts) while the other threads are idle gets its task's
// halves run beside it as backups; the step ends long before the step timeout, the step's
// partition is the finer one, and the run is bit-identical to an in-thread run.

import { afterEach, describe, expect, it } from 'vitest';
import { TRAIN_DEFAULTS, type TrainConfig, modelConfigOf } from '../../coordinator/config.js';
import { PoolExecutor } from '../../coordinator/pool.js';
import { STRAGGLER_FLOOR_MS, type SplitKind } from '../../coordinator/scheduler.js';
import { Trainer } from '../../coordinator/trainer.js';
import { initBackend } from '../../model/backend.js';
import { buildLayout } from '../../model/params.js';
import { tenLetterCorpus } from '../helpers/corpus.js';

// K = 4 blocks on 3 threads: tasks of 1, 1 and 2 blocks (task 2 is blocks [2, 4)).
const config: TrainConfig = { ...TRAIN_DEFAULTS, cell: 'lstm', layers: 1, hidden: 16, embed: 8, seqLen: 8, batch: 8, blocks: 4, lr: 0.01, clip: 1, backend: 'cpu' };
const STEP_TIMEOUT_MS = 20_000;

const trainers: Trainer[] = [];
afterEach(async () => {
  delete process.env.GRADPOOL_FAULT;
  while (trainers.length) await trainers.pop()!.close();
});

const sameBits = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe("a straggler's task is split across the idle threads", () => {
  it('a thread hanging on a 2-block task: its halves run as backups, the step ends long before the timeout, bit-identical to an in-thread run', async () => {
    await initBackend('cpu');
    const steps = 4;
    const plain = new Trainer(config, { corpus: tenLetterCorpus() });
    trainers.push(plain);
    for (let i = 0; i < steps; i++) await plain.step();

    // The third step's task 2 hangs on its first attempt (the thread never answers until the pool is closed).
    process.env.GRADPOOL_FAULT = 'hang:step=2,shard=2';
    const splits: { kind: SplitKind; step: number; shard: number; into: number[] }[] = [];
    const failures: string[] = [];
    const executor = new PoolExecutor({
      runId: 'straggler', layout: buildLayout(modelConfigOf(config), 10), backend: 'cpu', workers: 3, stepTimeoutMs: STEP_TIMEOUT_MS, maxAttempts: 3,
      onFailure: (reason, _task, message) => failures.push(`${reason}: ${message}`),
      onSplit: (kind, task, into) => splits.push({ kind, step: task.step, shard: task.shard.index, into: into.map((t) => t.shard.blocks!.length) }),
    });
    const trainer = new Trainer(config, { corpus: tenLetterCorpus(), executor });
    trainers.push(trainer);
    const reports = [];
    for (let i = 0; i < steps; i++) reports.push(await trainer.step());

    // The third step was reduced over the tasks that covered it: blocks 0 and 1, and the halves of [2, 4).
    // (Other steps are left unasserted: on a loaded machine a task may stall past the floor and be backed up too.)
    expect(reports[2].partition).toEqual([1, 1, 1, 1]);
    expect(splits.filter((s) => s.step === 2)).toEqual([{ kind: 'speculative', step: 2, shard: 2, into: [1, 1] }]);
    expect(reports[0].partition).toEqual([1, 1, 2]);
    expect(failures, 'the hung attempt is left alone, not aborted').toEqual([]);
    // Backed up after the floor (the task's predicted time is a few ms), done well before the step timeout.
    expect(reports[2].stepMs).toBeGreaterThanOrEqual(STRAGGLER_FLOOR_MS);
    expect(reports[2].stepMs).toBeLessThan(STEP_TIMEOUT_MS / 4);
    // The hung thread still holds its attempt (nothing terminated it): two threads took the last step.
    expect(executor.idleThreads).toBe(2);
    expect(sameBits(trainer.state.params, plain.state.params), 'params as in-thread').toBe(true);
    expect(sameBits(trainer.state.states, plain.state.states), 'carried states as in-thread').toBe(true);
    expect(sameBits(trainer.state.optimizer.v, plain.state.optimizer.v), 'Adam v as in-thread').toBe(true);
  });
});
