// Parity with PyTorch (nn.RNN / nn.LSTM / nn.GRU): loss, logits, final states and every
// gradient of one chunk against float64 values from test/golden/make_golden.py, and
// model files read and written both ways (see that script for how to regenerate).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '../../model/backend.js';
import { trainChunk } from '../../model/bptt.js';
import { evalStream } from '../../model/evaluate.js';
import { type ModelFile, decodeModelFile, toPyTorchStateDict } from '../../model/modelfile.js';
import { GOLDEN_CELLS, gradpoolGoldenFile } from '../golden/make_gradpool_file.js';
import { describeBackends } from '../helpers/native-guard.js';

const GOLDEN = fileURLToPath(new URL('../golden/', import.meta.url));
const RTOL = 1e-4;

interface Golden {
  T: number;
  B: number;
  tokens: number[];
  states: number[];
  loss: number;
  logits: number[];
  finalStates: number[];
  grads: Record<string, number[]>;
  evalLoss: number;
}

/** Elementwise |got − want| ≤ RTOL·|want| + RTOL/10·max|want|: relative, with a floor for values near 0. */
function expectClose(what: string, got: ArrayLike<number> | undefined, want: number[]): void {
  expect(got, what).toBeDefined();
  expect(got!.length, `${what}: length`).toBe(want.length);
  const scale = want.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  for (let i = 0; i < want.length; i++) {
    const tol = RTOL * Math.abs(want[i]) + (RTOL / 10) * scale;
    if (!(Math.abs(got![i] - want[i]) <= tol)) {
      expect.fail(`${what}[${i}]: gradpool ${got![i]}, PyTorch ${want[i]} (difference ${Math.abs(got![i] - want[i]).toExponential(2)} > tolerance ${tol.toExponential(2)})`);
    }
  }
}

const readModel = (name: string): ModelFile => decodeModelFile(readFileSync(GOLDEN + name), name);
const readJson = <T>(name: string): T => JSON.parse(readFileSync(GOLDEN + name, 'utf8')) as T;

/** text.txt as token ids of the model's vocabulary. */
function textIds(model: ModelFile): Int32Array {
  const text = readFileSync(GOLDEN + 'text.txt', 'utf8');
  return Int32Array.from(text, (ch) => {
    const id = model.vocab.indexOf(ch);
    if (id < 0) throw new Error(`text.txt: character ${JSON.stringify(ch)} is not in the vocabulary`);
    return id;
  });
}

// The same fixtures on the pure-JS cpu backend and on the native kernel set.
describeBackends(['cpu', 'native'], 'PyTorch parity', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
    expect(tf.getBackend()).toBe(backend);
  });

  describe.each(GOLDEN_CELLS)('%s', (cell) => {
    it('one chunk: loss, logits, final states and every gradient match PyTorch', () => {
      const model = readModel(`${cell}.safetensors`);
      const golden = readJson<Golden>(`${cell}.json`);
      const { T, B } = golden;
      const result = trainChunk(
        model.layout,
        model.params,
        { tokens: Int32Array.from(golden.tokens), T, B, states: Float32Array.from(golden.states) },
        { logits: true },
      );
      expect(result.tokens).toBe(T * B);
      expectClose('loss', [result.loss], [golden.loss]);
      expectClose('logits', result.logits, golden.logits);
      expectClose('final states', result.finalStates, golden.finalStates);

      expect(result.grad, 'grad').toBeDefined();
      const grads = toPyTorchStateDict(model.layout, result.grad!);
      expect([...grads.keys()].sort()).toEqual(Object.keys(golden.grads).sort());
      const H = model.config.hidden;
      for (const [name, want] of Object.entries(golden.grads)) {
        const m = /^rnn\.bias_hh_l(\d+)$/.exec(name);
        if (!m) {
          expectClose(`grad ${name}`, grads.get(name)!.data, want);
          continue;
        }
        // Our one bias b stands for bias_ih + bias_hh, so PyTorch's bias_hh gradient equals
        // the bias_ih one, except the n block of gru-reset-after, which is our b_hn.
        const ours = grads.get(`rnn.bias_ih_l${m[1]}`)!.data.slice();
        if (cell === 'gru-reset-after') ours.set(grads.get(name)!.data.subarray(2 * H), 2 * H);
        expectClose(`grad ${name}`, ours, want);
      }
    });

    it('the PyTorch-written file evaluates to the eval loss PyTorch recorded', async () => {
      const model = readModel(`${cell}.safetensors`);
      const { evalLoss } = readJson<Golden>(`${cell}.json`);
      const ids = textIds(model);
      const result = await evalStream(model.layout, model.params, ids);
      expect(result.tokens).toBe(ids.length - 1);
      expectClose('evalLoss', [result.loss], [evalLoss]);
    });

    it('the gradpool-written file is still byte-identical and PyTorch evaluates it to the same loss', async () => {
      const committed = new Uint8Array(readFileSync(`${GOLDEN}gradpool-${cell}.safetensors`));
      expect(Buffer.from(gradpoolGoldenFile(cell)).equals(committed), `gradpool-${cell}.safetensors differs from what gradpool writes now`).toBe(true);
      const model = readModel(`gradpool-${cell}.safetensors`);
      const { evalLoss } = readJson<{ evalLoss: number }>(`gradpool-${cell}.json`);
      const ids = textIds(model);
      const result = await evalStream(model.layout, model.params, ids);
      expect(result.tokens).toBe(ids.length - 1);
      expectClose('evalLoss', [result.loss], [evalLoss]);
    });
  });
});
