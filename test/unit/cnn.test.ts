// The captioner's CNN encoder (model/cnn.ts): forward against an independent float64
// reference (test/reference/cnn64.ts), every parameter's gradient against central
// finite differences of it, PyTorch golden values (output and every gradient), shapes
// and PyTorch names, bad shapes, and no tensor leaks.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { initBackend, tf } from '../../model/backend.js';
import {
  encoderBackward, encoderForward, encoderParamShapes, encoderShapeProblem, type EncoderWeights, disposeEncoderTape, pixelRows,
} from '../../model/cnn.js';
import { Rng } from '../../model/rng.js';
import { type Cnn64, cnnForward64 } from '../reference/cnn64.js';
import { gradTolerance } from '../reference/check.js';
import { describeBackends } from '../helpers/native-guard.js';

const SHAPE = { size: 8, channels: [4, 5], embed: 6 };
const N = 3;

function randomModel(seed: number): Cnn64 {
  const rng = new Rng(seed);
  const arr = (n: number, scale: number) => Float64Array.from({ length: n }, () => Math.fround(rng.range(-scale, scale)));
  const shapes = encoderParamShapes(SHAPE);
  const convW: Float64Array[] = [];
  const convB: Float64Array[] = [];
  for (let i = 0; i < SHAPE.channels.length; i++) {
    const [w, b] = [shapes[2 * i], shapes[2 * i + 1]];
    convW.push(arr(w.shape.reduce((a, d) => a * d, 1), 0.5));
    convB.push(arr(b.shape[0], 0.2));
  }
  const proj = shapes[shapes.length - 2].shape;
  return { ...SHAPE, channels: [...SHAPE.channels], convW, convB, projW: arr(proj[0] * proj[1], 0.3), projB: arr(proj[0], 0.1) };
}

function weightsOf(m: Cnn64): EncoderWeights {
  return {
    convs: m.convW.map((w, i) => ({ w: tf.tensor2d(Float32Array.from(w), [m.channels[i], w.length / m.channels[i]]), b: tf.tensor1d(Float32Array.from(m.convB[i])) })),
    projW: tf.tensor2d(Float32Array.from(m.projW), [m.embed, m.projW.length / m.embed]),
    projB: tf.tensor1d(Float32Array.from(m.projB)),
  };
}

const disposeWeights = (w: EncoderWeights) => tf.dispose([...w.convs.flatMap((c) => [c.w, c.b]), w.projW, w.projB]);

function images(seed: number): Uint8Array {
  const rng = new Rng(seed);
  return Uint8Array.from({ length: N * SHAPE.size * SHAPE.size * 3 }, () => rng.int(256));
}

describeBackends(['cpu', 'wasm', 'native'], 'CNN encoder', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  it('names and shapes its parameters as PyTorch does', () => {
    expect(encoderParamShapes({ size: 64, channels: [16, 32, 64], embed: 128 })).toEqual([
      { name: 'encoder.conv0.weight', shape: [16, 3, 3, 3] }, { name: 'encoder.conv0.bias', shape: [16] },
      { name: 'encoder.conv1.weight', shape: [32, 16, 3, 3] }, { name: 'encoder.conv1.bias', shape: [32] },
      { name: 'encoder.conv2.weight', shape: [64, 32, 3, 3] }, { name: 'encoder.conv2.bias', shape: [64] },
      { name: 'encoder.proj.weight', shape: [128, 64 * 8 * 8] }, { name: 'encoder.proj.bias', shape: [128] },
    ]);
    expect(encoderShapeProblem({ size: 64, channels: [16, 32, 64], embed: 8 })).toBeNull();
    expect(encoderShapeProblem({ size: 60, channels: [16, 32, 64], embed: 8 })).toBe('3 pooling blocks need an image side divisible by 8, got 60');
    expect(encoderShapeProblem({ size: 64, channels: [], embed: 8 })).toBe('the CNN needs at least one block');
    expect(encoderShapeProblem({ size: 64, channels: [16, 0], embed: 8 })).toBe('channels 16,0: each an integer from 1 to 4096');
  });

  it('computes the float64 reference forward to float32 precision', () => {
    const m = randomModel(1);
    const rgb = images(2);
    const w = weightsOf(m);
    const x = pixelRows(rgb, N, SHAPE.size);
    const fwd = encoderForward(w, x, N, SHAPE.size);
    const got = fwd.out.dataSync();
    const want = cnnForward64(m, Float64Array.from(rgb, (v) => v / 255 - 0.5), N);
    expect(got.length).toBe(N * SHAPE.embed);
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i]), `out[${i}]`).toBeLessThan(1e-5 * Math.abs(want[i]) + 1e-5);
    disposeEncoderTape(fwd);
    tf.dispose([fwd.out, x]);
    disposeWeights(w);
  });

  it('every parameter gradient matches central finite differences of the reference', () => {
    const m = randomModel(3);
    const rgb = images(4);
    const pixels = Float64Array.from(rgb, (v) => v / 255 - 0.5);
    const rng = new Rng(5);
    const R = Float64Array.from({ length: N * SHAPE.embed }, () => rng.range(-1, 1));
    const loss = (mm: Cnn64) => cnnForward64(mm, pixels, N).reduce((a, v, i) => a + v * R[i], 0);
    const w = weightsOf(m);
    const x = pixelRows(rgb, N, SHAPE.size);
    const fwd = encoderForward(w, x, N, SHAPE.size);
    const before = tf.memory().numTensors;
    const g = encoderBackward(w, fwd, tf.tensor2d(Float32Array.from(R), [N, SHAPE.embed]));
    const analytic: [string, Float64Array, Float32Array][] = [
      ...m.convW.map((a, i) => [`conv${i}.weight`, a, g.convs[i].w.dataSync() as Float32Array] as [string, Float64Array, Float32Array]),
      ...m.convB.map((a, i) => [`conv${i}.bias`, a, g.convs[i].b.dataSync() as Float32Array] as [string, Float64Array, Float32Array]),
      ['proj.weight', m.projW, g.projW.dataSync() as Float32Array],
      ['proj.bias', m.projB, g.projB.dataSync() as Float32Array],
    ];
    let checked = 0;
    const bad: string[] = [];
    for (const [name, param, grad] of analytic) {
      expect(grad.length, name).toBe(param.length);
      for (let i = 0; i < param.length; i += Math.max(1, Math.floor(param.length / 40))) {
        const keep = param[i];
        const h = 1e-5;
        param[i] = keep + h;
        const up = loss(m);
        param[i] = keep - h;
        const down = loss(m);
        param[i] = keep;
        const numeric = (up - down) / (2 * h);
        if (!(Math.abs(grad[i] - numeric) <= gradTolerance(numeric))) bad.push(`${name}[${i}]: ${grad[i]} vs ${numeric}`);
        checked++;
      }
    }
    expect(bad, bad.join('\n')).toEqual([]);
    expect(checked).toBeGreaterThan(150);
    // The gradients are exactly the tensors left; the tape is freed.
    tf.dispose([...g.convs.flatMap((c) => [c.w, c.b]), g.projW, g.projB, fwd.out, x]);
    expect(tf.memory().numTensors).toBeLessThan(before);
    disposeWeights(w);
  });

  it('leaks no tensor across forward + backward', () => {
    const m = randomModel(6);
    const w = weightsOf(m);
    const start = tf.memory().numTensors;
    for (let k = 0; k < 3; k++) {
      const x = pixelRows(images(k), N, SHAPE.size);
      const fwd = encoderForward(w, x, N, SHAPE.size);
      const d = tf.onesLike(fwd.out) as tf.Tensor2D;
      const g = encoderBackward(w, fwd, d);
      tf.dispose([...g.convs.flatMap((c) => [c.w, c.b]), g.projW, g.projB, fwd.out, x, d]);
    }
    expect(tf.memory().numTensors).toBe(start);
    disposeWeights(w);
  });
});

interface CnnGolden {
  size: number;
  channels: number[];
  embed: number;
  n: number;
  rgb: number[];
  R: number[];
  out: number[];
  params: Record<string, { shape: number[]; value: number[]; grad: number[] }>;
}

const golden = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'golden', 'cnn.json'), 'utf8')) as CnnGolden;

describeBackends(['cpu', 'wasm', 'native'], 'CNN encoder against PyTorch (test/golden/make_cnn_golden.py)', (backend) => {
  it('output and every parameter gradient agree', async () => {
    await initBackend(backend);
    const shape = { size: golden.size, channels: golden.channels, embed: golden.embed };
    const names = encoderParamShapes(shape);
    expect(names.map((p) => [p.name, p.shape])).toEqual(Object.entries(golden.params).map(([k, v]) => [k, v.shape]));
    const t = (name: string) => {
      const p = golden.params[name];
      return p.shape.length === 1 ? tf.tensor1d(p.value) : tf.tensor2d(p.value, [p.shape[0], p.value.length / p.shape[0]]);
    };
    const w: EncoderWeights = {
      convs: golden.channels.map((_, i) => ({ w: t(`encoder.conv${i}.weight`) as tf.Tensor2D, b: t(`encoder.conv${i}.bias`) as tf.Tensor1D })),
      projW: t('encoder.proj.weight') as tf.Tensor2D,
      projB: t('encoder.proj.bias') as tf.Tensor1D,
    };
    const x = pixelRows(Uint8Array.from(golden.rgb), golden.n, golden.size);
    const fwd = encoderForward(w, x, golden.n, golden.size);
    const out = fwd.out.dataSync();
    golden.out.forEach((v, i) => expect(Math.abs(out[i] - v), `out[${i}]`).toBeLessThan(1e-5 * Math.abs(v) + 1e-5));
    const g = encoderBackward(w, fwd, tf.tensor2d(golden.R, [golden.n, golden.embed]));
    const grads: Record<string, tf.Tensor> = { 'encoder.proj.weight': g.projW, 'encoder.proj.bias': g.projB };
    g.convs.forEach((c, i) => Object.assign(grads, { [`encoder.conv${i}.weight`]: c.w, [`encoder.conv${i}.bias`]: c.b }));
    for (const [name, p] of Object.entries(golden.params)) {
      const got = grads[name].dataSync();
      expect(got.length, name).toBe(p.grad.length);
      p.grad.forEach((v, i) => expect(Math.abs(got[i] - v), `${name}[${i}]`).toBeLessThan(1e-4 * Math.abs(v) + 1e-5));
    }
    tf.dispose([...Object.values(grads), fwd.out, x]);
    disposeWeights(w);
  });
});
