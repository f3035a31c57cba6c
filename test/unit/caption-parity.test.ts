// Parity of a whole captioner with PyTorch: a block of images and padded captions through
// the CNN encoder, the image vector's layer norm and the decoder (every cell, with and
// without layer norm; and a captioner over precomputed features, whose encoder is linear), against float64 values from test/golden/make_caption_golden.py
// (see it for how to regenerate): the summed loss, its target count, the logits and the
// gradient of every tensor of the model file. Then the same comparison must reject
// weights with the kind of mistake it exists to catch.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '../../model/backend.js';
import { trainChunk } from '../../model/bptt.js';
import { isLstm } from '../../model/config.js';
import { type ModelFile, decodeModelFile, toPyTorchStateDict } from '../../model/modelfile.js';
import { view } from '../../model/params.js';
import { describeBackends } from '../helpers/native-guard.js';

const GOLDEN = fileURLToPath(new URL('../golden/', import.meta.url));
/** As test/unit/pytorch-parity.test.ts (the language models). */
const RTOL = 1e-4;
/** Every case make_caption_golden.py writes. */
const CASES = ['rnn', 'lstm', 'gru-reset-after', 'gru', 'rnn-ln', 'lstm-ln', 'gru-ln', 'gru-reset-after-ln', 'lstm-features'];

interface Golden {
  cell: string;
  layerNorm: boolean;
  T: number;
  B: number;
  /** S·S·3 bytes per image, or (a features captioner) D values per image. */
  images?: number[];
  features?: number[];
  tokens: number[];
  targets: number;
  loss: number;
  logits: number[];
  grads: Record<string, number[]>;
}

/** Elementwise |got − want| ≤ RTOL·|want| + RTOL/10·max|want|, or what is off (null: all close). */
function closeProblem(what: string, got: ArrayLike<number> | undefined, want: number[]): string | null {
  if (!got) return `${what}: missing`;
  if (got.length !== want.length) return `${what}: ${got.length} values, PyTorch has ${want.length}`;
  const scale = want.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  for (let i = 0; i < want.length; i++) {
    const tol = RTOL * Math.abs(want[i]) + (RTOL / 10) * scale;
    if (!(Math.abs(got[i] - want[i]) <= tol)) {
      return `${what}[${i}]: gradpool ${got[i]}, PyTorch ${want[i]} (difference ${Math.abs(got[i] - want[i]).toExponential(2)} > tolerance ${tol.toExponential(2)})`;
    }
  }
  return null;
}

const load = (c: string) => ({
  model: decodeModelFile(readFileSync(`${GOLDEN}caption-${c}.safetensors`), `caption-${c}.safetensors`),
  golden: JSON.parse(readFileSync(`${GOLDEN}caption-${c}.json`, 'utf8')) as Golden,
});

/** Every disagreement of gradpool's forward/backward with `params` and the golden values. */
function problems(model: ModelFile, golden: Golden, params: Float32Array): string[] {
  const { T, B } = golden;
  const { layers, hidden: H, cell } = model.config;
  const states = new Float32Array(layers * (isLstm(cell) ? 2 : 1) * B * H); // captions start from zero states
  // A features captioner's image is its D float32 values as bytes (model/features.ts).
  const images = golden.features ? new Uint8Array(Float32Array.from(golden.features).buffer) : Uint8Array.from(golden.images!);
  const input = { tokens: Int32Array.from(golden.tokens), images, T, B, states };
  const result = trainChunk(model.layout, params, input, { logits: true });
  const found = [
    result.tokens === golden.targets ? null : `target count: gradpool ${result.tokens}, PyTorch ${golden.targets}`,
    closeProblem('loss', [result.loss], [golden.loss]),
    closeProblem('logits', result.logits, golden.logits),
  ];
  const grads = toPyTorchStateDict(model.layout, result.grad!);
  const names = [...grads.keys()].sort();
  if (names.join() !== Object.keys(golden.grads).sort().join()) found.push(`gradient names: gradpool ${names}, PyTorch ${Object.keys(golden.grads).sort()}`);
  for (const [name, want] of Object.entries(golden.grads)) {
    const m = /^rnn\.bias_hh_l(\d+)$/.exec(name);
    let ours = grads.get(name)?.data;
    if (m) {
      // Our one bias b stands for bias_ih + bias_hh, so PyTorch's bias_hh gradient equals the
      // bias_ih one, except the n block of gru-reset-after, which is our b_hn.
      ours = grads.get(`rnn.bias_ih_l${m[1]}`)!.data.slice();
      if (cell === 'gru-reset-after') ours.set(grads.get(name)!.data.subarray(2 * H), 2 * H);
    }
    found.push(closeProblem(`grad ${name}`, ours, want));
  }
  return found.filter((p): p is string => p !== null);
}

describeBackends(['cpu', 'native'], 'captioner parity with PyTorch', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
    expect(tf.getBackend()).toBe(backend);
  });

  it.each(CASES)('%s: loss, target count, logits and every gradient match PyTorch', (c) => {
    const { model, golden } = load(c);
    expect([model.config.cell, model.config.layerNorm]).toEqual([golden.cell, golden.layerNorm]);
    expect(problems(model, golden, model.params)).toEqual([]);
  });
});

describe('the parity check catches', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  /** The problems found with the lstm-ln captioner's weights changed by `mutate`. */
  function mutated(mutate: (model: ModelFile, params: Float32Array) => void): string[] {
    const { model, golden } = load('lstm-ln');
    const params = model.params.slice();
    mutate(model, params);
    return problems(model, golden, params);
  }

  it('nothing when the weights are unchanged', () => {
    expect(mutated(() => {})).toEqual([]);
  });

  it('a transposed convolution kernel', () => {
    const found = mutated((model, params) => {
      const W = view(params, model.layout.encoder!.convs[0].W); // (out, in·9): each 3×3 kernel row-major
      for (let k = 0; k < W.length; k += 9) {
        const kernel = W.slice(k, k + 9);
        for (let y = 0; y < 3; y++) for (let x = 0; x < 3; x++) W[k + y * 3 + x] = kernel[x * 3 + y];
      }
    });
    expect(found.length).toBeGreaterThan(0);
    expect(found[0]).toMatch(/^loss/);
  });

  it('a missing projection bias', () => {
    expect(mutated((model, params) => view(params, model.layout.encoder!.projB).fill(0))[0]).toMatch(/^loss/);
  });

  it("the image norm's gain and shift swapped", () => {
    const found = mutated((model, params) => {
      const { gamma, beta } = model.layout.encoder!.norm;
      const g = view(params, gamma).slice();
      view(params, gamma).set(view(params, beta));
      view(params, beta).set(g);
    });
    expect(found[0]).toMatch(/^loss/);
  });

  it("a decoder layer norm's shift dropped", () => {
    expect(mutated((model, params) => view(params, model.layout.layers[1].lnH!.beta).fill(0))[0]).toMatch(/^loss/);
  });
});
