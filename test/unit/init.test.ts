// `train --init FILE` (coordinator/init.ts): the model file's options over the requested
// ones and the messages when they disagree; the data encoded with the file's vocabulary;
// and the first step from a PyTorch-written file against PyTorch's loss on the same batch
// (test/golden/make_init_golden.py).

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { resolveTrainConfig, type TrainConfig } from '../../coordinator/config.js';
import { corpusWithVocab, fileOptions, initConfig, initVocab, startFromFile } from '../../coordinator/init.js';
import { Trainer } from '../../coordinator/trainer.js';
import { initBackend } from '../../model/backend.js';
import { resolveModelConfig } from '../../model/config.js';
import { type ModelFile, decodeModelFile, encodeModelFile } from '../../model/modelfile.js';
import { buildLayout, initParams } from '../../model/params.js';
import { UNK, type TokenKind } from '../../model/tokenizer.js';
import { describeBackends } from '../helpers/native-guard.js';

const GOLDEN = fileURLToPath(new URL('../golden/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'gradpool-init-'));
const PATH = 'from/model.safetensors';

/** A model file held in memory: a 2-layer GRU with layer norm over `vocab`. */
function modelFile(vocab: string[], tokens: TokenKind = 'char'): ModelFile {
  const layout = buildLayout(resolveModelConfig({ cell: 'gru', layers: 2, hidden: 12, embed: 6, layerNorm: true, normStabilizer: 0.5 }), vocab.length);
  return decodeModelFile(encodeModelFile(layout, initParams(layout, 3), vocab, tokens), PATH);
}

/** The config `gradpool train --init PATH FLAGS…` asks for, and the keys it sets. */
function requested(flags: Record<string, string | boolean> = {}): { config: TrainConfig; given: Set<string> } {
  const all = { init: PATH, ...flags };
  return { config: resolveTrainConfig(null, all), given: new Set(Object.keys(all)) };
}

const message = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect((e as { kind?: string }).kind, 'an input error').toBe('input');
    return (e as Error).message;
  }
  throw new Error('accepted');
};

const chars = [' ', 'a', 'b', 'c', 'd'];

describe('the config of an --init run', () => {
  it("takes every model option from the file, and the vocabulary's size as vocabCap", () => {
    const { config, given } = requested();
    const c = initConfig(config, given, modelFile(chars));
    expect(c).toMatchObject({ cell: 'gru', layers: 2, hidden: 12, embed: 6, layerNorm: true, normStabilizer: 0.5, tokens: 'char', vocabCap: 5, init: PATH });
    expect(fileOptions(modelFile(chars, 'word'))).toMatchObject({ tokens: 'word', vocabCap: 5 });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('leaves the options that do not change the model as requested', () => {
    const flags = { lr: '0.5', batch: '7', seqLen: '9', steps: '11', optimizer: 'sgd', seed: '42', clip: '0', warmup: '3', data: 'x.txt', workers: '1' };
    const { config, given } = requested(flags);
    expect(initConfig(config, given, modelFile(chars))).toMatchObject({ lr: 0.5, batch: 7, seqLen: 9, steps: 11, optimizer: 'sgd', seed: 42, clip: 0, warmup: 3, data: 'x.txt', workers: 1 });
  });

  it('accepts a model option given with the file’s value', () => {
    const { config, given } = requested({ cell: 'gru', hidden: '12', layerNorm: true, tokens: 'char', vocabCap: '5' });
    expect(initConfig(config, given, modelFile(chars)).hidden).toBe(12);
  });

  it.each([
    ['cell', { cell: 'lstm' }, '"lstm"', '"gru"'],
    ['layers', { layers: '1' }, '1', '2'],
    ['hidden', { hidden: '32' }, '32', '12'],
    ['embed', { embed: '64' }, '64', '6'],
    ['layerNorm', { layerNorm: false }, 'false', 'true'],
    ['normStabilizer', { normStabilizer: '0' }, '0', '0.5'],
    ['tokens', { tokens: 'word' }, '"word"', '"char"'],
    ['vocabCap', { vocabCap: '100' }, '100', 'a vocabulary of 5 tokens'],
  ] as const)('refuses a different "%s", naming the key and both values', (key, flags, ours, theirs) => {
    const { config, given } = requested(flags);
    expect(message(() => initConfig(config, given, modelFile(chars)))).toBe(
      `--init ${PATH}: "${key}" is ${ours} but the model file has ${theirs}; ` +
        `a run started from a model file keeps its model and vocabulary (leave "${key}" out to take the file's)`,
    );
  });

  it('refuses a different model option set in a --config file too (given counts keys from both)', () => {
    const config = resolveTrainConfig({ init: PATH, hidden: 32 }, {});
    expect(message(() => initConfig(config, new Set(['init', 'hidden']), modelFile(chars)))).toMatch(/^--init from\/model\.safetensors: "hidden" is 32 but the model file has 12;/);
  });

  it.each([
    ['chronoInit', { chronoInit: '50' }],
    ['updateBias', { cell: 'gru', updateBias: '-1' }],
  ] as const)('refuses "%s": the initial weights come from the file', (key, flags) => {
    const { config, given } = requested(flags);
    expect(message(() => initConfig(config, given, modelFile(chars)))).toBe(`--init ${PATH}: "${key}" sets initial weights, but they come from the model file; leave it out`);
  });

  it('refuses --resume, before reading the file', async () => {
    const { config, given } = requested({ resume: 'runs/old' });
    await expect(startFromFile(config, given)).rejects.toThrow(`--init ${PATH} and --resume runs/old exclude each other: a resumed run takes its weights from its checkpoint`);
  });

  it('names the file that is missing or is not a model file', async () => {
    const missing = join(dir, 'missing.safetensors');
    await expect(startFromFile(resolveTrainConfig(null, { init: missing }), new Set(['init']))).rejects.toThrow(`model file not found: ${missing}`);
    const text = join(dir, 'text.safetensors');
    writeFileSync(text, 'not a model at all, just some text that is long enough');
    const e = await startFromFile(resolveTrainConfig(null, { init: text }), new Set(['init'])).catch((x: Error) => x);
    expect((e as Error).message.startsWith(`${text}: `), (e as Error).message).toBe(true);
    expect((e as { kind?: string }).kind).toBe('input');
  });
});

describe('the data of an --init run', () => {
  const data = (name: string, text: string) => (writeFileSync(join(dir, name), text), join(dir, name));
  const fixed = (model: ModelFile) => initVocab(requested().config, model, null)!;

  it("is encoded with the file's vocabulary, not one built from the data", () => {
    const model = modelFile(['d', 'c', 'b', 'a', ' ']); // not the data's code-point order
    const corpus = corpusWithVocab({ data: data('abc.txt', 'abc cab '.repeat(20)) }, fixed(model));
    expect(corpus.vocab.tokens).toEqual(['d', 'c', 'b', 'a', ' ']);
    expect([...corpus.ids.subarray(0, 8)]).toEqual([3, 2, 1, 4, 1, 3, 2, 4]);
    expect(corpus.train.length + corpus.val.length).toBe(160);
  });

  it('refuses a character outside a char vocabulary without <unk>, naming it, where it is and the file', () => {
    const path = data('z.txt', 'abc abc\nz');
    expect(message(() => corpusWithVocab({ data: path }, fixed(modelFile(['\n', ...chars]))))).toBe(
      `${path} does not fit the vocabulary of --init ${PATH}: character "z" (U+007A) at line 2, column 1 is not in the 6-token vocabulary, and the vocabulary has no ${UNK} to map it to`,
    );
  });

  it('maps characters outside a char vocabulary with <unk> (a capped one) to <unk>', () => {
    const corpus = corpusWithVocab({ data: data('unk.txt', 'azbz'.repeat(20)) }, fixed(modelFile([UNK, 'a', 'b'])));
    expect([...corpus.ids.subarray(0, 4)]).toEqual([1, 0, 2, 0]);
  });

  it('maps words outside a word vocabulary to <unk>', () => {
    const corpus = corpusWithVocab({ data: data('words.txt', 'the cat sat on the mat\n'.repeat(10)) }, fixed(modelFile([UNK, 'the', 'cat', '\n'], 'word')));
    expect([...corpus.ids.subarray(0, 7)]).toEqual([1, 2, 0, 0, 1, 0, 3]);
  });

  it('resumed, comes from the checkpoint (the file is not read again)', () => {
    const config = { ...requested().config, resume: 'runs/r' };
    const checkpoint = { vocab: ['x', 'y'], tokenKind: 'word' } as unknown as Parameters<typeof initVocab>[2];
    expect(initVocab(config, null, checkpoint)).toEqual({ vocab: { kind: 'word', tokens: ['x', 'y'] }, source: `the checkpoint in runs/r (from --init ${PATH})` });
    expect(initVocab({ ...config, init: null }, null, checkpoint)).toBeNull();
  });
});

interface InitGolden {
  file: string;
  data: string;
  T: number;
  B: number;
  tokens: number[];
  loss: number;
}

describeBackends(['cpu', 'native'], 'the first step from a PyTorch-written model file', (backend) => {
  it("has PyTorch's loss on the same batch (make_init_golden.py), to 1e-5", async () => {
    const golden = JSON.parse(readFileSync(join(GOLDEN, 'init-first-step.json'), 'utf8')) as InitGolden;
    await initBackend(backend);
    const path = join(GOLDEN, golden.file);
    const flags = { init: path, data: join(GOLDEN, golden.data), seqLen: String(golden.T), batch: String(golden.B), backend };
    const { config, model } = await startFromFile(resolveTrainConfig(null, flags), new Set(Object.keys(flags)));
    expect(config).toMatchObject({ cell: 'lstm', layers: 2, hidden: 6, embed: 5 });
    const trainer = new Trainer(config, { corpus: corpusWithVocab(config, initVocab(config, model, null)!) });
    try {
      trainer.state.params.set(model.params); // as coordinator/run.ts does
      // The batch is the one the script cut: same vocabulary, split and stream layout.
      expect([...trainer.batcher!.batch(0).tokens]).toEqual(golden.tokens);
      const r = await trainer.step();
      expect(Math.abs(r.loss - golden.loss), `gradpool ${r.loss}, PyTorch ${golden.loss}`).toBeLessThanOrEqual(1e-5);
    } finally {
      await trainer.close();
    }
  });
});
