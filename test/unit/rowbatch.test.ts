// A task's blocks run together (model/rowbatch.ts) against the same blocks run one after
// another and tree-summed (runBlocks with rowBatch: false, the definition): loss, penalty,
// tokens, gradient and final states bit for bit, for every cell, ± layer norm, ± the
// norm-stabilizer, 1–2 layers, the folded and unfolded embedding paths, the vector-input
// heads, and tasks of 2–5 blocks of unequal sizes (b = 1 included).

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.js';
import { runBlocks } from '../../model/blocks.js';
import type { ChunkInput, ChunkResult } from '../../model/chunk.js';
import { type CellName, type ModelConfig, isLstm, resolveModelConfig } from '../../model/config.js';
import { Network } from '../../model/network.js';
import { buildLayout, initParams } from '../../model/params.js';
import { rowBatchable } from '../../model/rowbatch.js';
import { nativeAddon } from '../../model/native/addon.js';
import { describeBackends } from '../helpers/native-guard.js';
import { onPath } from '../helpers/native-bits.js';

const T = 5;
const hex = (a: Float32Array | undefined) => (a ? Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex') : 'none');
/** Tasks of 2, 3, 4 and 5 blocks; T·b < V = 7 for b = 1 (that block's own run does not fold), ≥ V otherwise. */
const PARTITIONS = [[2, 2], [3, 3, 2], [1, 2, 1, 3], [2, 1, 2, 2, 1]];
const CELLS: CellName[] = ['rnn', 'lstm', 'lstm-1997', 'lstm-peephole', 'gru', 'gru-reset-after'];

interface Case {
  name: string;
  model: Partial<ModelConfig>;
  /** Vocabulary (lm): 7 folds blocks of b ≥ 2 (T·b ≥ V), 40 folds none. */
  V?: number;
}

const CASES: Case[] = [
  ...CELLS.flatMap((cell): Case[] => [
    { name: `${cell}, 1 layer`, model: { cell, layers: 1 } },
    { name: `${cell}, 2 layers, layer norm, norm-stabilizer`, model: { cell, layers: 2, layerNorm: true, normStabilizer: 0.5 } },
  ]),
  { name: 'lstm-peephole, 2 layers, no block folds (V = 40)', model: { cell: 'lstm-peephole', layers: 2, normStabilizer: 0.5 }, V: 40 },
  { name: 'gru-reset-after, layer norm, no block folds (V = 40)', model: { cell: 'gru-reset-after', layerNorm: true }, V: 40 },
  { name: 'classify (vector inputs), lstm, 2 layers, norm-stabilizer', model: { cell: 'lstm', layers: 2, task: 'classify', inputSize: 3, outputs: 4, normStabilizer: 0.5 } },
  { name: 'regress (vector inputs), gru, layer norm', model: { cell: 'gru', task: 'regress', inputSize: 3, outputs: 2, layerNorm: true } },
];

function setup(c: Case) {
  const model = resolveModelConfig({ hidden: 6, embed: 4, ...c.model });
  const layout = buildLayout(model, c.V ?? 7);
  const net = new Network(layout);
  net.setParams(initParams(layout, 5));
  return { model, layout, net };
}

function chunk(model: ModelConfig, V: number, B: number): ChunkInput {
  const groups = model.layers * (isLstm(model.cell) ? 2 : 1);
  const states = Float32Array.from({ length: groups * B * model.hidden }, (_, i) => Math.sin(i * 0.7) * 0.5);
  if (model.task === 'lm') return { T, B, states, tokens: Int32Array.from({ length: (T + 1) * B }, (_, i) => (i * 5 + (i >> 3)) % V) };
  const inputs = Float32Array.from({ length: T * B * model.inputSize }, (_, i) => Math.cos(i * 1.3));
  if (model.task === 'classify') return { T, B, states, inputs, labels: Int32Array.from({ length: B }, (_, b) => (b * 3) % model.outputs) };
  return { T, B, states, inputs, values: Float32Array.from({ length: B * model.outputs }, (_, i) => Math.sin(i)) };
}

function expectSame(got: ChunkResult, want: ChunkResult, label: string): void {
  expect(got.loss, `${label}: loss`).toBe(want.loss);
  expect(got.penalty, `${label}: penalty`).toBe(want.penalty);
  expect(got.tokens, `${label}: tokens`).toBe(want.tokens);
  expect(hex(got.grad), `${label}: gradient`).toBe(hex(want.grad));
  expect(hex(got.finalStates), `${label}: final states`).toBe(hex(want.finalStates));
}

describeBackends(['native', 'cpu', 'wasm'], 'a task runs its blocks together', (backend) => {
  beforeAll(() => initBackend(backend));

  it('the default on this backend for lm, classify and regress; never for a captioner', () => {
    expect(rowBatchable(resolveModelConfig({}))).toBe(true);
    expect(rowBatchable(resolveModelConfig({ task: 'classify', inputSize: 2, outputs: 2 }))).toBe(true);
    expect(rowBatchable({ ...resolveModelConfig({}), task: 'caption' })).toBe(false);
  });

  // cpu and wasm (slower) skip the 1-layer cases, which native covers.
  for (const c of CASES.filter((k) => backend === 'native' || !k.name.endsWith(', 1 layer'))) {
    it(`${c.name}: tasks of 2–5 blocks, training and evaluation, bit-identical to the blocks one by one`, () => {
      const { model, net } = setup(c);
      for (const blocks of PARTITIONS) {
        const B = blocks.reduce((a, b) => a + b, 0);
        const input = chunk(model, c.V ?? 7, B);
        for (const training of [true, false]) {
          const label = `blocks [${blocks}], ${training ? 'training' : 'evaluation'}`;
          const want = runBlocks(net, input, blocks, { training, rowBatch: false });
          expectSame(runBlocks(net, input, blocks, { training, rowBatch: true }), want, label);
        }
      }
    });
  }

  if (backend === 'native') {
    it('on every native kernel path (AVX-512, AVX2, generic: those this CPU runs)', () => {
      const g = nativeAddon()!;
      for (const path of g.info().paths) {
        for (const c of CASES.filter((k) => k.name.startsWith('lstm-peephole'))) {
          const { model, net } = setup(c);
          const input = chunk(model, c.V ?? 7, 8);
          onPath(g, path, () => expectSame(runBlocks(net, input, [3, 1, 4], { training: true }), runBlocks(net, input, [3, 1, 4], { training: true, rowBatch: false }), `${path}, ${c.name}`));
        }
      }
    });
  }

  it('leaves no tensor behind', () => {
    const c = CASES.find((k) => k.name.startsWith('gru, 2 layers'))!;
    const { model, net } = setup(c);
    const input = chunk(model, 7, 8);
    runBlocks(net, input, [3, 3, 2], { training: true });
    const before = tf.memory().numTensors;
    runBlocks(net, input, [3, 3, 2], { training: true });
    runBlocks(net, input, [1, 2, 1, 3, 1], { training: false });
    expect(tf.memory().numTensors).toBe(before);
  });

  describe('the comparison can fail', () => {
    const c = CASES.find((k) => k.name === 'lstm-peephole, 2 layers, no block folds (V = 40)')!;

    it('one reduction over the whole task (the blocks as one) gives other gradient bits than the tree of blocks', () => {
      const { model, layout, net } = setup(c);
      const input = chunk(model, 40, 8);
      const tree = runBlocks(net, input, [3, 3, 2], { training: true, rowBatch: false });
      // The task's rows reduced together: what the row-batched run would give with whole-task sums.
      const whole = net.runTogether(input, [input], true, [new Float32Array(layout.size)]).results[0];
      expect(hex(whole.grad)).not.toBe(hex(tree.grad));
      expect(hex(runBlocks(net, input, [3, 3, 2], { training: true }).grad)).toBe(hex(tree.grad));
    });
  });
});
