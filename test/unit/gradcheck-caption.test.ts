// Gradient checks of the captioner (model/network.ts, task "caption") against the float64
// reference (test/reference/caption64.ts): the loss and its target count, and every
// parameter tensor's gradient — the CNN encoder's, the embedding's, the recurrent
// layers' and the output layer's — against central finite differences, for every cell.
// Also: padding changes no bit, <pad> and <end> inputs get an exact zero gradient, and
// the flat layout puts the encoder first.

import { beforeAll, expect, it } from 'vitest';
import { initBackend, tf } from '../../model/backend.js';
import { trainChunk } from '../../model/bptt.js';
import { END, PAD, START } from '../../model/caption.js';
import { CELLS, type ModelConfig, resolveModelConfig } from '../../model/config.js';
import { buildLayout, initParams, view } from '../../model/params.js';
import { Rng } from '../../model/rng.js';
import { Network } from '../../model/network.js';
import { captionFiniteDifferences, refCaptionLoss } from '../reference/caption64.js';
import { closeRel, describeIndex, expectGradMatches, gradMismatches } from '../reference/check.js';
import { sampleParamIndices } from '../reference/ref64.js';
import { describeBackends } from '../helpers/native-guard.js';

const V = 9; // 4 special tokens and 5 words
const T = 4;
const B = 3;
const SIDE = 8;
/** Captions of 3, 1 and 2 words: one fills T, the others end early and are padded. */
const CAPTIONS = [[4, 5, 6], [7], [8, 4]];

function tokensOf(captions: number[][], steps: number): Int32Array {
  const tokens = new Int32Array((steps + 1) * captions.length).fill(PAD);
  captions.forEach((words, b) => {
    [START, ...words, END].forEach((id, t) => (tokens[t * captions.length + b] = id));
  });
  return tokens;
}

function captionCase(model: Partial<ModelConfig>, seed = 3) {
  const config = resolveModelConfig({ task: 'caption', imageSize: SIDE, cnn: [3, 4], embed: 4, hidden: 5, ...model });
  const layout = buildLayout(config, V);
  const rng = new Rng(seed, 0xca9);
  const params32 = initParams(layout, seed);
  for (let i = 0; i < params32.length; i++) params32[i] += rng.range(-0.2, 0.2);
  const images = Uint8Array.from({ length: B * SIDE * SIDE * 3 }, () => rng.int(256));
  const S = config.cell.startsWith('lstm') ? 2 : 1;
  const states = new Float32Array(config.layers * S * B * config.hidden); // captions start from zero states
  const input = { tokens: tokensOf(CAPTIONS, T), images, T, B, states };
  return { layout, params32, params64: Float64Array.from(params32), input };
}

describeBackends(['cpu', 'native'], 'captioner vs float64 reference', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  for (const cell of CELLS) {
    for (const { layers, layerNorm } of [{ layers: 1, layerNorm: false }, { layers: 2, layerNorm: true }]) {
      const label = `${cell} L=${layers}${layerNorm ? ' +LN' : ''} (${backend})`;
      it(`${label}: loss and every tensor's gradient, the encoder's included`, () => {
        const c = captionCase({ cell, layers, layerNorm });
        const result = trainChunk(c.layout, c.params32, c.input);
        const ref = refCaptionLoss(c.layout, c.params64, c.input);
        expect(result.tokens).toBe(3 + 1 + 2 + 3); // the words and one <end> each, no <pad>
        expect(ref.tokens).toBe(result.tokens);
        expect(closeRel(result.loss, ref.loss), `loss ${result.loss} vs reference ${ref.loss}`).toBe(true);
        const indices = sampleParamIndices(c.layout, 12, 7);
        const numeric = captionFiniteDifferences(c.layout, c.params64, c.input, indices);
        expectGradMatches(label, { c, result, indices, numeric });
        // The encoder receives a gradient (through x₋₁), not zeros.
        const enc = c.layout.encoder!;
        for (const spec of [enc.convs[0].W, enc.projW]) expect(view(result.grad!, spec).some((g) => g !== 0), spec.name).toBe(true);
      });
    }
  }

  it('padding to a longer T changes no bit of the loss or gradient', () => {
    const c = captionCase({ cell: 'lstm', layers: 2 });
    const short = trainChunk(c.layout, c.params32, c.input);
    const longer = trainChunk(c.layout, c.params32, { ...c.input, T: T + 3, tokens: tokensOf(CAPTIONS, T + 3) });
    expect(longer.loss).toBe(short.loss);
    expect(longer.tokens).toBe(short.tokens);
    expect(Buffer.from(longer.grad!.buffer).equals(Buffer.from(short.grad!.buffer))).toBe(true);
  });

  it('<pad> and <end>, fed only after a caption ends, get exactly zero gradient', () => {
    const c = captionCase({ cell: 'gru', layers: 1 });
    const g = trainChunk(c.layout, c.params32, c.input).grad!;
    const E = c.layout.config.embed;
    const emb = view(g, c.layout.embedding!);
    for (const id of [PAD, END]) expect([...emb.subarray(id * E, (id + 1) * E)], `embedding row ${id}`).toEqual(new Array(E).fill(0));
    expect(emb.subarray(START * E, (START + 1) * E).some((x) => x !== 0)).toBe(true);
  });

  it('leaks no tensor across runs', () => {
    const c = captionCase({ cell: 'lstm', layers: 1 });
    const net = new Network(c.layout);
    net.setParams(c.params32);
    net.run(c.input, { training: true });
    const before = tf.memory().numTensors;
    for (let k = 0; k < 3; k++) net.run(c.input, { training: k !== 1, logits: k === 2 });
    expect(tf.memory().numTensors).toBe(before);
    net.dispose();
  });
});

it('the flat layout puts the encoder first, in PyTorch shapes, then the language model', () => {
  const layout = buildLayout(resolveModelConfig({ task: 'caption', imageSize: 64, cnn: [16, 32, 64], embed: 32, hidden: 48 }), 20);
  expect(layout.specs.slice(0, 10).map((s) => [s.name, s.shape])).toEqual([
    ['encoder.conv0.W', [16, 27]], ['encoder.conv0.b', [16]], ['encoder.conv1.W', [32, 144]], ['encoder.conv1.b', [32]],
    ['encoder.conv2.W', [64, 288]], ['encoder.conv2.b', [64]], ['encoder.proj.W', [32, 64 * 8 * 8]], ['encoder.proj.b', [32]],
    ['encoder.norm.gamma', [32]], ['encoder.norm.beta', [32]],
  ]);
  expect(layout.specs[10].name).toBe('embedding.W');
  expect(layout.specs[10].offset).toBe(layout.encoder!.norm.beta.offset + 32);
  expect(layout.vocabSize).toBe(20);
});

it('the check catches an encoder gradient that is wrong by a flipped sign', async () => {
  await initBackend('cpu');
  const c = captionCase({ cell: 'lstm', layers: 1 });
  const result = trainChunk(c.layout, c.params32, c.input);
  const indices = sampleParamIndices(c.layout, 12, 7);
  const numeric = captionFiniteDifferences(c.layout, c.params64, c.input, indices);
  const conv = c.layout.encoder!.convs[0].W;
  const k = indices.findIndex((i, n) => i >= conv.offset && i < conv.offset + conv.size && Math.abs(numeric[n]) > 1e-4);
  expect(k).toBeGreaterThanOrEqual(0);
  const wrong = Float32Array.from(result.grad!);
  wrong[indices[k]] = -wrong[indices[k]];
  expect(gradMismatches(c.layout, wrong, indices, numeric).map((m) => m.where)).toEqual([describeIndex(c.layout, indices[k])]);
});
