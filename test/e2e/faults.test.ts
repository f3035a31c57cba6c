// Worker failures: a shard whose worker throws, dies, hangs or answers nonsense is
// re-run on a fresh worker, the step completes, the failure is counted, and the
// weights end up exactly as in a run without faults.

import { afterEach, describe, expect, it } from 'vitest';
import { TRAIN_DEFAULTS, type TrainConfig, modelConfigOf } from '../../coordinator/config.js';
import { type FailureReason, PoolExecutor } from '../../coordinator/pool.js';
import { Trainer } from '../../coordinator/trainer.js';
import { buildLayout } from '../../model/params.js';
import { tenLetterCorpus } from '../helpers/corpus.js';

const config: TrainConfig = { ...TRAIN_DEFAULTS, cell: 'gru', hidden: 12, embed: 6, seqLen: 6, batch: 4, blocks: 2, backend: 'cpu' };

const trainers: Trainer[] = [];
afterEach(async () => {
  delete process.env.GRADPOOL_FAULT;
  while (trainers.length) await trainers.pop()!.close();
});

async function run(fault: string | undefined, steps: number, stepTimeoutMs = 60_000) {
  if (fault) process.env.GRADPOOL_FAULT = fault;
  else delete process.env.GRADPOOL_FAULT;
  const failures: { reason: FailureReason; step: number; shard: number; message: string }[] = [];
  const layout = buildLayout(modelConfigOf(config), 10);
  const executor = new PoolExecutor({
    runId: 'faults', layout, backend: 'cpu', workers: 2, stepTimeoutMs, maxAttempts: 3,
    onFailure: (reason, task, message) => failures.push({ reason, step: task.step, shard: task.shard.index, message }),
  });
  const trainer = new Trainer(config, { corpus: tenLetterCorpus(), executor });
  trainers.push(trainer);
  const initial = trainer.state.params.slice();
  const reports = [];
  for (let i = 0; i < steps; i++) reports.push(await trainer.step());
  return { initial, params: trainer.state.params, failures, reports, trainer, executor };
}

const sameBits = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('a failed shard is re-run and the step completes unchanged', () => {
  const cases: [string, FailureReason, RegExp][] = [
    ['crash:step=2,shard=1', 'crash', /exited/],
    ['throw:step=1,shard=0', 'error', /injected fault at step 1 shard 0/],
    ['malformed:step=2,shard=0', 'protocol', /invalid|truncat|index out of range|malformed/i],
    ['short:step=1,shard=1', 'protocol', /grad/],
  ];
  // The weights after 4 clean steps, computed once, by whichever test asks first.
  let clean: Promise<Float32Array> | undefined;
  const cleanParams = () => (clean ??= run(undefined, 4).then((r) => r.params.slice()));

  it('reference run without faults: 4 applied steps, no failure, weights moved and finite', async () => {
    const r = await run(undefined, 4);
    expect(r.failures).toEqual([]);
    expect(r.reports.map((x) => [x.step, x.skipped, x.tokens])).toEqual([1, 2, 3, 4].map((step) => [step, false, config.batch * config.seqLen]));
    for (const x of r.reports) expect(x.loss, `loss of step ${x.step}`).toBeGreaterThan(0);
    expect(r.params.every(Number.isFinite)).toBe(true);
    expect(sameBits(r.params, r.initial), 'the steps changed the weights').toBe(false);
    // The gradients came through shared slots, one per shard, recycled step after step.
    expect(r.executor.gradSlots).toBe(config.blocks);
    // Another clean run gives the same bits: the comparisons below can only fail through the fault.
    expect(sameBits(r.params, await cleanParams())).toBe(true);
  });
  for (const [fault, reason, message] of cases) {
    it(fault, async () => {
      const r = await run(fault, 4);
      expect(r.failures).toHaveLength(1);
      expect(r.failures[0].reason).toBe(reason);
      expect(r.failures[0].message).toMatch(message);
      const [, step, shard] = /step=(\d+),shard=(\d+)/.exec(fault)!.map(Number);
      expect([r.failures[0].step, r.failures[0].shard]).toEqual([step, shard]);
      expect(sameBits(r.params, await cleanParams()), 'weights as without the fault').toBe(true);
      // The failed attempt's slot was dropped and replaced, not kept beside a new one.
      expect(r.executor.gradSlots).toBe(config.blocks);
    });
  }
  it('a hung worker is aborted after the step timeout, replaced, and its shard re-run', async () => {
    // The retry's timeout includes starting the replacement worker (tfjs, wasm): slow on a loaded machine.
    const r = await run('hang:step=1,shard=0', 3, 10_000);
    expect(r.failures.map((f) => f.reason)).toEqual(['timeout']);
    const ref = (await run(undefined, 3)).params;
    expect(sameBits(r.params, ref), 'weights as without the hang').toBe(true);
  });
  it('a non-finite loss skips the step instead of retrying it', async () => {
    const r = await run('nan:step=1,shard=1', 3);
    expect(r.failures).toHaveLength(0);
    expect(r.reports.map((x) => x.skipped)).toEqual([false, true, false]);
    expect(r.reports[1].loss, 'the skipped step reports its non-finite loss').toBeNaN();
    expect(r.trainer.state.nonfiniteRun).toBe(0);
  });
});
