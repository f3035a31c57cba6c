// A run keeps its math across a resume: runs of this version sum a step's blocks by the
// binary tree (checkpoint format 3 says "tree"); a checkpoint written before the tree
// (formats 1 and 2, no reduction field) resumes with the sequential block-order sum it
// was trained with, bit for bit, and its next checkpoint says so.

import { afterEach, describe, expect, it } from 'vitest';
import { TRAIN_DEFAULTS, type TrainConfig } from '../../coordinator/config.js';
import { checkpointOf, restoreInto } from '../../coordinator/resume.js';
import { Trainer } from '../../coordinator/trainer.js';
import { initBackend } from '../../model/backend.js';
import { decodeCheckpoint, encodeCheckpoint } from '../../proto/codec.js';
import { tenLetterCorpus } from '../helpers/corpus.js';

const config: TrainConfig = { ...TRAIN_DEFAULTS, cell: 'gru', hidden: 12, embed: 6, seqLen: 6, batch: 8, blocks: 8, lr: 0.01, backend: 'cpu' };
const trainers: Trainer[] = [];
afterEach(async () => {
  while (trainers.length) await trainers.pop()!.close();
});

function trainer(): Trainer {
  const t = new Trainer(config, { corpus: tenLetterCorpus() });
  trainers.push(t);
  return t;
}

async function steps(t: Trainer, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await t.step();
}

const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('resuming keeps the run\'s reduction', () => {
  it('a tree run: format 3 "tree", resumed bit for bit', async () => {
    await initBackend('cpu');
    const straight = trainer();
    await steps(straight, 4);
    const first = trainer();
    await steps(first, 2);
    const saved = decodeCheckpoint(encodeCheckpoint(checkpointOf(first, 'r')));
    expect([saved.format, saved.reduction]).toEqual([3, 'tree']);
    const resumed = trainer();
    restoreInto(resumed, saved, 'dir');
    expect(resumed.reduction).toBe('tree');
    await steps(resumed, 2);
    expect(same(resumed.state.params, straight.state.params)).toBe(true);
  });

  it('a format 2 checkpoint (before the tree) resumes with the sequential sum, bit for bit, and says so in its next checkpoint', async () => {
    await initBackend('cpu');
    // The old version's math: one block per task, summed in block order.
    const oldStraight = trainer();
    oldStraight.reduction = 'sequential';
    await steps(oldStraight, 4);
    const old = trainer();
    old.reduction = 'sequential';
    await steps(old, 2);
    const msg = checkpointOf(old, 'r');
    const format2 = decodeCheckpoint(encodeCheckpoint({ ...msg, format: 2, reduction: '' }));
    expect(format2.reduction).toBe('sequential');
    const resumed = trainer();
    restoreInto(resumed, format2, 'dir');
    expect(resumed.reduction).toBe('sequential');
    await steps(resumed, 2);
    expect(same(resumed.state.params, oldStraight.state.params), 'the old math, continued').toBe(true);
    const tree = trainer();
    await steps(tree, 4);
    expect(same(tree.state.params, oldStraight.state.params), 'K = 8: the tree gives other bits, so the check above can fail').toBe(false);
    const next = decodeCheckpoint(encodeCheckpoint(checkpointOf(resumed, 'r')));
    expect([next.format, next.reduction]).toEqual([3, 'sequential']);
  });
});
