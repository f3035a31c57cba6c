// The native backend's recycled tensor memory (model/native/arena.ts): an array comes back
// only when the one tensor that held it is disposed; arrays shared by two tensors or by a
// view (the cpu backend's contiguous Slice, tf.split) are never handed out again, so no
// live tensor is ever overwritten.

import * as tf from '@tensorflow/tfjs';
import { beforeAll, beforeEach, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.js';
import { runBlocks } from '../../model/blocks.js';
import { type CellName, isLstm, resolveModelConfig } from '../../model/config.js';
import { arenaStats, clearArena, MIN_POOLED, noteFree, noteWrite, setArenaPoison, take } from '../../model/native/arena.js';
import { Network } from '../../model/network.js';
import { buildLayout, initParams } from '../../model/params.js';
import { describeNative } from '../helpers/native-guard.js';

const N = MIN_POOLED * 2;

beforeEach(() => clearArena());

it('an array written once and freed is handed out again; small arrays are never pooled', () => {
  const a = take(N);
  noteWrite(a);
  noteFree(a);
  expect(take(N)).toBe(a);
  const small = take(MIN_POOLED - 1);
  noteWrite(small);
  noteFree(small);
  expect(take(MIN_POOLED - 1)).not.toBe(small);
});

it('an array held by a second tensor, or shared with a view, is never reused', () => {
  const twice = take(N);
  noteWrite(twice);
  noteWrite(twice);
  noteFree(twice);
  const viewed = take(N);
  noteWrite(viewed);
  noteWrite(viewed.subarray(0, 10));
  noteFree(viewed);
  const fresh = take(N);
  expect(fresh).not.toBe(twice);
  expect(fresh).not.toBe(viewed);
});

it('a view freed, or an array never taken, does not enter the pool', () => {
  const before = arenaStats().returned;
  const a = take(N);
  noteWrite(a);
  noteFree(a.subarray(0, N / 2));
  const foreign = new Float32Array(N);
  noteWrite(foreign);
  noteFree(foreign);
  expect(arenaStats().returned).toBe(before);
});

describeNative('the arena under the native backend', () => {
  beforeAll(() => initBackend('native'));

  it('reuses the memory of disposed products', () => {
    const a = tf.randomNormal([64, 128], 0, 1, 'float32', 1) as tf.Tensor2D;
    const b = tf.randomNormal([128, 96], 0, 1, 'float32', 2) as tf.Tensor2D;
    const before = arenaStats();
    for (let i = 0; i < 5; i++) tf.matMul(a, b).dispose();
    const after = arenaStats();
    // Five products, and b packed once when it is used again (tfjs-backend.ts).
    expect(after.taken - before.taken).toBe(6);
    expect(after.reused - before.reused).toBeGreaterThanOrEqual(4);
    tf.dispose([a, b]);
  });

  it('split halves stay intact after their parent is disposed and the memory is asked for again', () => {
    const a = tf.randomNormal([64, 128], 0, 1, 'float32', 3) as tf.Tensor2D;
    const eye = tf.eye(128) as tf.Tensor2D;
    const parent = tf.matMul(a, eye); // from the arena
    const [top, bottom] = tf.split(parent, 2, 0);
    const expected = [top.dataSync().slice(), bottom.dataSync().slice()];
    parent.dispose();
    const again = [tf.matMul(a, eye), tf.matMul(a, eye)];
    for (const t of again) (t.dataSync() as Float32Array).fill(7); // would show through a shared buffer
    expect(top.dataSync()).toEqual(expected[0]);
    expect(bottom.dataSync()).toEqual(expected[1]);
    tf.dispose([a, eye, top, bottom, ...again]);
  });

  it('a reshaped product (the same data, two tensors) is not reused while either lives', () => {
    const a = tf.randomNormal([64, 128], 0, 1, 'float32', 4) as tf.Tensor2D;
    const eye = tf.eye(128) as tf.Tensor2D;
    const p = tf.matMul(a, eye);
    const flat = p.reshape([64 * 128]);
    const expected = flat.dataSync().slice();
    p.dispose();
    const next = tf.matMul(a, eye);
    (next.dataSync() as Float32Array).fill(-1);
    expect(flat.dataSync()).toEqual(expected);
    tf.dispose([a, eye, flat, next]);
  });

  it('a freed array is poisoned when asked: a late read shows as NaN', () => {
    const was = setArenaPoison(true);
    try {
      const a = take(N).fill(1);
      noteWrite(a);
      noteFree(a);
      expect(Number.isNaN(a[0]) && Number.isNaN(a[N - 1])).toBe(true);
    } finally {
      setArenaPoison(was);
    }
  });

  // Every array a training step gives back is poisoned as it is freed: a result (loss,
  // gradient, final states) that still read memory after its tensor was disposed would
  // differ from the plain run, whatever the free lists held before.
  const cases: { cell: CellName; layers: number; layerNorm: boolean; normStabilizer: number }[] = [
    { cell: 'lstm', layers: 2, layerNorm: true, normStabilizer: 0.5 },
    { cell: 'gru', layers: 1, layerNorm: false, normStabilizer: 0 },
    { cell: 'rnn', layers: 1, layerNorm: true, normStabilizer: 0 },
  ];
  for (const c of cases) {
    it(`a training step reads no memory after it is freed (${c.cell}, ${c.layers} layers${c.layerNorm ? ', layer norm' : ''}), blocks together and one by one`, () => {
      // Sizes above MIN_POOLED, so that the step's large arrays go through the free lists.
      const model = resolveModelConfig({ ...c, hidden: 64, embed: 16 });
      const layout = buildLayout(model, 30);
      const net = new Network(layout);
      net.setParams(initParams(layout, 9));
      const T = 8;
      const B = 16;
      const states = Float32Array.from({ length: model.layers * (isLstm(model.cell) ? 2 : 1) * B * 64 }, (_, i) => Math.sin(i) * 0.3);
      const input = { T, B, states, tokens: Int32Array.from({ length: (T + 1) * B }, (_, i) => (i * 7 + (i >> 4)) % 30) };
      const run = (rowBatch: boolean) => {
        const r = runBlocks(net, input, [4, 4, 4, 4], { training: true, rowBatch });
        return [r.loss, r.penalty, Buffer.from(r.grad!.buffer, r.grad!.byteOffset, r.grad!.byteLength).toString('hex'), Buffer.from(r.finalStates.buffer).toString('hex')];
      };
      const plain = [run(true), run(false)];
      const was = setArenaPoison(true);
      try {
        // Twice each: the second runs draw on the poisoned free lists the first left.
        for (let k = 0; k < 2; k++) expect([run(true), run(false)]).toEqual(plain);
        expect(arenaStats().returned).toBeGreaterThan(0);
      } finally {
        setArenaPoison(was);
        net.dispose();
      }
    });
  }
});
