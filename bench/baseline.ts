// The tfjs-layers baseline the issue measures us against: embedding → lstm (or gru)
// with returnSequences → dense softmax, trained with trainOnBatch on the same backend.
//
// Two adjustments so it runs at all here, neither changing its per-step work:
// the wasm backend lacks UnsortedSegmentSum (the embedding gradient), so a plain JS
// kernel is registered for it; and the recurrent initializer is glorotUniform, since
// the default orthogonal initializer takes minutes for H=256.

import * as tf from '@tensorflow/tfjs';

let registered = false;

interface WasmLike {
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array;
}

function registerSegmentSumForWasm(): void {
  if (registered) return;
  registered = true;
  tf.registerKernel({
    kernelName: 'UnsortedSegmentSum',
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const be = backend as unknown as WasmLike;
      const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
      const numSegments = (attrs as unknown as { numSegments: number }).numSegments;
      const inner = x.shape.slice(1).reduce((a, b) => a * b, 1);
      const out = be.makeOutput([numSegments, ...x.shape.slice(1)], 'float32');
      const xv = be.typedArrayFromHeap(x);
      const ids = be.typedArrayFromHeap(segmentIds);
      const ov = be.typedArrayFromHeap(out);
      ov.fill(0);
      for (let r = 0; r < ids.length; r++) {
        const o = ids[r] * inner;
        for (let j = 0; j < inner; j++) ov[o + j] += xv[r * inner + j];
      }
      return out;
    },
  });
}

export interface BaselineResult {
  tokensPerSecond: number;
  msPerStep: number;
}

/** Tokens/s of tfjs-layers training on random char data, V classes, B×T tokens a step. */
export async function layersBaseline(opts: {
  cell: 'lstm' | 'gru';
  V: number;
  E: number;
  H: number;
  T: number;
  B: number;
  warmup: number;
  steps: number;
}): Promise<BaselineResult> {
  registerSegmentSumForWasm();
  const { V, E, H, T, B } = opts;
  const model = tf.sequential();
  model.add(tf.layers.embedding({ inputDim: V, outputDim: E, inputLength: T }));
  const rnnArgs = { units: H, returnSequences: true, recurrentInitializer: 'glorotUniform' as const };
  model.add(opts.cell === 'lstm' ? tf.layers.lstm(rnnArgs) : tf.layers.gru(rnnArgs));
  model.add(tf.layers.dense({ units: V, activation: 'softmax' }));
  model.compile({ optimizer: tf.train.adam(2e-3), loss: 'categoricalCrossentropy' });
  const xs: number[] = [];
  const ys: number[] = [];
  let seed = 12345;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % V;
  for (let i = 0; i < B * T; i++) {
    xs.push(next());
    ys.push(next());
  }
  const x = tf.tensor2d(xs, [B, T], 'float32');
  const y = tf.oneHot(tf.tensor2d(ys, [B, T], 'int32'), V).toFloat();
  for (let i = 0; i < opts.warmup; i++) await model.trainOnBatch(x, y);
  const started = performance.now();
  for (let i = 0; i < opts.steps; i++) await model.trainOnBatch(x, y);
  const ms = (performance.now() - started) / opts.steps;
  tf.dispose([x, y]);
  model.dispose();
  return { tokensPerSecond: (B * T * 1000) / ms, msPerStep: ms };
}
