// gradpool model files: round trips for every cell, the PyTorch state-dict conversion
// (docs/MODEL.md "Model files"), and one test per validation message.

import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CELLS, type CellName, MODEL_DEFAULTS, resolveModelConfig } from '../../model/config.js';
import {
  ModelFileError,
  type StateDict,
  decodeModelFile,
  encodeModelFile,
  fromPyTorchStateDict,
  loadModelFile,
  saveModelFile,
  stateDictShapes,
  toPyTorchStateDict,
} from '../../model/modelfile.js';
import { buildLayout, initParams, view } from '../../model/params.js';
import { encodeSafetensors } from '../../model/safetensors.js';

const VOCAB = ['a', 'b', 'c', ' ', '.'];

function model(cell: CellName, layerNorm = false, layers = 2) {
  const layout = buildLayout(resolveModelConfig({ cell, layers, hidden: 3, embed: 2, layerNorm }), VOCAB.length);
  // Random values everywhere (not just the init), so that no conversion can hide behind zeros or ones.
  const params = initParams(layout, 11).map((_, i) => Math.sin(i * 12.9898) * 0.9);
  return { layout, params };
}

/** Metadata of a valid file for `layout`, to be spoiled one key at a time. */
function meta(cell: CellName, overrides: Record<string, string> = {}) {
  return {
    'gradpool.config': JSON.stringify({ cell, layers: 2, hidden: 3, embed: 2 }),
    'gradpool.vocab': JSON.stringify(VOCAB),
    'gradpool.tokens': 'char',
    ...overrides,
  };
}

describe('round trips', () => {
  for (const cell of CELLS) {
    for (const layerNorm of [false, true]) {
      it(`${cell}${layerNorm ? ' + layerNorm' : ''}: encode → decode and state dict → flat are exact`, () => {
        const { layout, params } = model(cell, layerNorm);
        const decoded = decodeModelFile(encodeModelFile(layout, params, VOCAB, 'word', { step: '42' }), 'x.safetensors');
        expect(decoded.params).toEqual(params);
        expect(decoded.config).toEqual(layout.config);
        expect(decoded.layout.specs).toEqual(layout.specs);
        expect(decoded.vocab).toEqual(VOCAB);
        expect(decoded.tokens).toBe('word');
        expect(decoded.metadata.step).toBe('42');
        expect(fromPyTorchStateDict(layout, toPyTorchStateDict(layout, params))).toEqual(params);
        expect([...toPyTorchStateDict(layout, params).keys()]).toEqual([...stateDictShapes(layout).keys()]);
      });
    }
  }

  it('encoding is deterministic', () => {
    const { layout, params } = model('lstm');
    expect(encodeModelFile(layout, params, VOCAB, 'char')).toEqual(encodeModelFile(layout, params, VOCAB, 'char'));
  });

  it('a config holding only cell, layers, hidden and embed loads with defaults', () => {
    const { layout, params } = model('gru');
    const decoded = decodeModelFile(encodeSafetensors(toPyTorchStateDict(layout, params), meta('gru')));
    expect(decoded.config).toEqual({ ...MODEL_DEFAULTS, cell: 'gru', layers: 2, hidden: 3, embed: 2 });
    expect(decoded.params).toEqual(params);
  });

  it('saveModelFile writes atomically (no temp file left) and loadModelFile reads it back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gradpool-modelfile-'));
    try {
      const path = join(dir, 'model.safetensors');
      await writeFile(path, 'old contents');
      const { layout, params } = model('lstm-peephole', true);
      await saveModelFile(path, layout, params, VOCAB, 'char');
      expect(await readdir(dir)).toEqual(['model.safetensors']);
      expect(new Uint8Array(await readFile(path))).toEqual(encodeModelFile(layout, params, VOCAB, 'char'));
      expect((await loadModelFile(path)).params).toEqual(params);
      await expect(loadModelFile(join(dir, 'absent.safetensors'))).rejects.toThrow(/model file not found: .*absent\.safetensors/);
      await expect(loadModelFile(join(dir, 'model.safetensors', 'x'))).rejects.toThrow(/model file cannot be read/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('PyTorch state-dict conversion', () => {
  it('transposes W into weight_ih / weight_hh and decoder.W into decoder.weight', () => {
    const { layout, params } = model('lstm', false, 1);
    const sd = toPyTorchStateDict(layout, params);
    const W = view(params, layout.layers[0].W); // (In+H, 4H) = (5, 12)
    const wIh = sd.get('rnn.weight_ih_l0')!; // (12, 2)
    const wHh = sd.get('rnn.weight_hh_l0')!; // (12, 3)
    expect(wIh.shape).toEqual([12, 2]);
    expect(wIh.data[7 * 2 + 1]).toBe(W[1 * 12 + 7]);
    expect(wHh.data[7 * 3 + 2]).toBe(W[(2 + 2) * 12 + 7]);
    expect(sd.get('rnn.bias_ih_l0')!.data).toEqual(view(params, layout.layers[0].b));
    expect(sd.get('rnn.bias_hh_l0')!.data).toEqual(new Float32Array(12));
    const dW = view(params, layout.decoderW); // (H, V) = (3, 5)
    expect(sd.get('decoder.weight')!.shape).toEqual([5, 3]);
    expect(sd.get('decoder.weight')!.data[4 * 3 + 1]).toBe(dW[1 * 5 + 4]);
  });

  it('GRU: negates the z block (rows H..2H) of weights and biases; reset-after puts b_hn in bias_hh', () => {
    const { layout, params } = model('gru-reset-after', true, 1);
    const sd = toPyTorchStateDict(layout, params);
    const H = 3;
    const W = view(params, layout.layers[0].W); // (5, 9)
    const b = view(params, layout.layers[0].b);
    const wIh = sd.get('rnn.weight_ih_l0')!.data; // (9, 2)
    for (const [row, sign] of [[0, 1], [H + 1, -1], [2 * H + 2, 1]]) {
      expect(wIh[row * 2 + 1]).toBe(sign * W[1 * 9 + row]);
      expect(sd.get('rnn.weight_hh_l0')!.data[row * 3]).toBe(sign * W[2 * 9 + row]);
      expect(sd.get('rnn.bias_ih_l0')!.data[row]).toBe(sign * b[row]);
    }
    expect(sd.get('rnn.bias_hh_l0')!.data).toEqual(new Float32Array([0, 0, 0, 0, 0, 0, ...view(params, layout.layers[0].b_hn!)]));
    // Layer-norm parameters stay in our gate order and sign.
    expect(sd.get('rnn.ln_ih_weight_l0')!.data).toEqual(view(params, layout.layers[0].lnX!.gamma));
    expect(sd.get('rnn.ln_hh_bias_l0')!.data).toEqual(view(params, layout.layers[0].lnH!.beta));
    expect(sd.has('rnn.ln_cell_weight_l0')).toBe(false);
  });

  it('import sums bias_ih and bias_hh, except the n block of gru-reset-after which becomes b_hn', () => {
    for (const cell of ['lstm', 'gru', 'gru-reset-after'] as const) {
      const { layout, params } = model(cell, false, 1);
      const sd = toPyTorchStateDict(layout, params);
      const GH = layout.layers[0].b.size;
      const bIh = sd.get('rnn.bias_ih_l0')!.data;
      const bHh = sd.get('rnn.bias_hh_l0')!.data;
      bIh.set(Array.from({ length: GH }, (_, i) => i / 8));
      bHh.set(Array.from({ length: GH }, (_, i) => 1 + i / 4));
      const back = fromPyTorchStateDict(layout, sd);
      const b = view(back, layout.layers[0].b);
      const sign = (c: number) => (cell !== 'lstm' && c >= 3 && c < 6 ? -1 : 1);
      for (let c = 0; c < GH; c++) {
        const expected = cell === 'gru-reset-after' && c >= 6 ? bIh[c] : bIh[c] + bHh[c];
        expect(b[c]).toBe(Math.fround(sign(c) * expected));
      }
      if (cell === 'gru-reset-after') expect(view(back, layout.layers[0].b_hn!)).toEqual(bHh.subarray(6, 9));
    }
  });

  it('lstm-peephole writes rnn.peephole_l{k} (3, H); LN-LSTMs write ln_cell', () => {
    const { layout, params } = model('lstm-peephole', true);
    const shapes = stateDictShapes(layout);
    expect(shapes.get('rnn.peephole_l1')).toEqual([3, 3]);
    expect(shapes.get('rnn.ln_cell_bias_l1')).toEqual([3]);
    expect(shapes.get('rnn.ln_ih_weight_l1')).toEqual([12]);
    expect(toPyTorchStateDict(layout, params).get('rnn.peephole_l0')!.data).toEqual(view(params, layout.layers[0].peep!));
  });
});

describe('decodeModelFile rejects bad files with a precise message', () => {
  const { layout, params } = model('lstm');
  const file = (sd: StateDict, m: Record<string, string> = meta('lstm')) => () => decodeModelFile(encodeSafetensors(sd, m), 'bad.safetensors');
  const fresh = () => toPyTorchStateDict(layout, params);

  it('missing tensor', () => {
    const sd = fresh();
    sd.delete('rnn.weight_hh_l1');
    expect(file(sd)).toThrow(ModelFileError);
    expect(file(sd)).toThrow(/bad\.safetensors: missing tensor "rnn\.weight_hh_l1" \(shape \[12,3\]\) for a 2-layer lstm model/);
  });

  it('unexpected tensor', () => {
    const sd = fresh();
    sd.set('rnn.weight_ih_l2', { shape: [1], data: new Float32Array(1) });
    expect(file(sd)).toThrow(/unexpected tensor "rnn\.weight_ih_l2" for a 2-layer lstm model/);
  });

  it('wrong shape, expected vs got', () => {
    const sd = fresh();
    sd.set('decoder.weight', { shape: [3, 5], data: sd.get('decoder.weight')!.data });
    expect(file(sd)).toThrow(/tensor "decoder\.weight" has the wrong shape: expected \[5,3\], got \[3,5\]/);
  });

  it('NaN or Inf weights, naming the tensor', () => {
    const sd = fresh();
    sd.get('rnn.bias_hh_l0')!.data[2] = NaN;
    expect(file(sd)).toThrow(/tensor "rnn\.bias_hh_l0" holds a non-finite weight \(NaN\) at index 2/);
    sd.get('rnn.bias_hh_l0')!.data[2] = 0;
    sd.get('embedding.weight')!.data[0] = -Infinity;
    expect(file(sd)).toThrow(/tensor "embedding\.weight" holds a non-finite weight \(-Infinity\)/);
  });

  it('vocab not an array of strings, duplicated, or not matching the embedding', () => {
    expect(file(fresh(), meta('lstm', { 'gradpool.vocab': '{"a":0}' }))).toThrow(/gradpool\.vocab must be an array of strings, got \{"a":0\}/);
    expect(file(fresh(), meta('lstm', { 'gradpool.vocab': '["a","b",3,"d","e"]' }))).toThrow(/gradpool\.vocab must be an array of strings; entry 2 is 3/);
    expect(file(fresh(), meta('lstm', { 'gradpool.vocab': '["a","b","a","d","e"]' }))).toThrow(/gradpool\.vocab lists token "a" twice, at 0 and 2/);
    expect(file(fresh(), meta('lstm', { 'gradpool.vocab': '[]' }))).toThrow(/gradpool\.vocab is empty/);
    expect(file(fresh(), meta('lstm', { 'gradpool.vocab': '["a","b"]' }))).toThrow(/gradpool\.vocab has 2 tokens but embedding\.weight has 5 rows/);
    expect(file(fresh(), meta('lstm', { 'gradpool.vocab': '["a",' }))).toThrow(/metadata "gradpool\.vocab" is not valid JSON/);
  });

  it('tokens not char or word', () => {
    expect(file(fresh(), meta('lstm', { 'gradpool.tokens': 'byte' }))).toThrow(/metadata "gradpool\.tokens" is "byte"; allowed: char, word/);
    const { 'gradpool.tokens': _, ...noTokens } = meta('lstm');
    expect(file(fresh(), noTokens)).toThrow(/missing metadata "gradpool\.tokens"/);
  });

  it('missing or invalid config', () => {
    const { 'gradpool.config': _, ...noConfig } = meta('lstm');
    expect(file(fresh(), noConfig)).toThrow(/missing metadata "gradpool\.config" \(not a gradpool model file\?\)/);
    expect(file(fresh(), meta('lstm', { 'gradpool.config': '{"cell":"lstm","hiden":3}' }))).toThrow(/gradpool\.config: unknown key "hiden"/);
    expect(file(fresh(), meta('lstm', { 'gradpool.config': '{"cell":"transformer"}' }))).toThrow(/"cell" is "transformer"/);
    expect(file(fresh(), meta('lstm', { 'gradpool.config': '[1]' }))).toThrow(ModelFileError);
  });

  it('a config that disagrees with the tensors is a shape or missing-tensor error', () => {
    const bigger = meta('lstm', { 'gradpool.config': JSON.stringify({ cell: 'lstm', layers: 2, hidden: 4, embed: 2 }) });
    expect(file(fresh(), bigger)).toThrow(/tensor "rnn\.weight_ih_l0" has the wrong shape: expected \[16,2\], got \[12,2\]/);
    const gru = meta('lstm', { 'gradpool.config': JSON.stringify({ cell: 'gru', layers: 2, hidden: 3, embed: 2 }) });
    expect(file(fresh(), gru)).toThrow(/expected \[9,2\], got \[12,2\]/);
  });

  it('a broken container is a SafetensorsError naming the file', () => {
    const bytes = encodeModelFile(layout, params, VOCAB, 'char');
    expect(() => decodeModelFile(bytes.subarray(0, bytes.length - 1), 'cut.safetensors')).toThrow(/cut\.safetensors: tensor ".*": data_offsets .* out of range/);
  });
});

describe('encodeModelFile validates its inputs', () => {
  const { layout, params } = model('rnn');
  it('rejects non-finite weights, a wrong size, a bad vocabulary, tokens or extra metadata', () => {
    const nan = params.slice();
    nan[layout.decoderB.offset + 1] = NaN;
    expect(() => encodeModelFile(layout, nan, VOCAB, 'char')).toThrow(/parameter "decoder\.b" holds a non-finite weight \(NaN\) at index 1; refusing to save/);
    expect(() => encodeModelFile(layout, params.subarray(1), VOCAB, 'char')).toThrow(/parameters have \d+ values, the layout needs \d+/);
    expect(() => encodeModelFile(layout, params, VOCAB.slice(1), 'char')).toThrow(/vocabulary has 4 tokens, the layout has 5/);
    expect(() => encodeModelFile(layout, params, VOCAB, 'bytes' as 'char')).toThrow(/tokens is "bytes"; allowed: char, word/);
    expect(() => encodeModelFile(layout, params, VOCAB, 'char', { 'gradpool.vocab': '[]' })).toThrow(/extra metadata may not set "gradpool\.vocab"/);
  });
});
