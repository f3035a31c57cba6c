// The evaluator thread: its validation loss and samples equal the same computation on
// this thread, requests are non-blocking (one of each kind in flight, on a copy of
// the weights), thread errors reach onError, and close() ends the thread.
// Runs the compiled dist/worker/evaluator.js: build first (npm test does).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Evaluator, type EvaluatorInit, type SampleResult, type ValidationResult } from '../../coordinator/evaluator.js';
import { initBackend } from '../../model/backend.js';
import { resolveModelConfig } from '../../model/config.js';
import { evalStreams } from '../../model/evaluate.js';
import { buildLayout, initParams } from '../../model/params.js';
import { sampleIds } from '../../model/sample.js';
import { buildVocab, decode, encode } from '../../model/tokenizer.js';

const text = 'the cat sat on the mat.\nthe dog ate the log.\n'.repeat(20);
const vocab = buildVocab(text, 'char');
const modelConfig = resolveModelConfig({ cell: 'lstm', hidden: 8, embed: 4 });
const layout = buildLayout(modelConfig, vocab.tokens.length);
const valIds = encode(vocab, text);
const opts: EvaluatorInit = { modelConfig, vocab, valIds, backend: 'cpu', maxValTokens: 600, streams: 4 };

/** The next value one of the evaluator's callbacks delivers. */
function next<T>(subscribe: (cb: (v: T) => void) => () => void): Promise<T> {
  return new Promise((resolve) => {
    const off = subscribe((v) => {
      off();
      resolve(v);
    });
  });
}

describe('Evaluator', () => {
  let evaluator: Evaluator;
  const errors: Error[] = [];
  beforeAll(async () => {
    await initBackend('cpu');
    evaluator = await Evaluator.start(opts);
    evaluator.onError((e) => errors.push(e));
  });
  afterAll(async () => {
    await evaluator?.close();
  });

  it('validates a copy of the weights, with the loss evalStreams gives on this thread', async () => {
    const params = initParams(layout, 7);
    const expected = evalStreams(layout, params, valIds.subarray(0, opts.maxValTokens), opts.streams);
    const result = next<ValidationResult>((cb) => evaluator.onValidation(cb));
    expect(evaluator.requestValidation(params, 12)).toBe(true);
    // One validation in flight: the second request is refused, not queued.
    expect(evaluator.requestValidation(params, 13)).toBe(false);
    // The caller keeps training: later changes to its buffer must not reach the job.
    params.fill(0.5);
    const r = await result;
    expect(r.step).toBe(12);
    expect(r.tokens).toBe(expected.tokens);
    expect(Math.abs(r.loss - expected.loss)).toBeLessThanOrEqual(1e-12 * Math.abs(expected.loss));
    expect(r.bitsPerToken).toBeCloseTo(expected.bitsPerToken, 12);
    expect(r.perplexity).toBeCloseTo(expected.perplexity, 10);
    expect(r.ms).toBeGreaterThan(0);
    // The slot is free again once the result is out.
    await evaluator.drain();
    expect(evaluator.requestValidation(params, 14)).toBe(true);
    await evaluator.drain();
  });

  it('samples the requested number of tokens, the same for the same seed, as sampleIds does', async () => {
    const params = initParams(layout, 3);
    const want = { length: 40, temperature: 0.8, seed: 5 };
    const ask = async (seed: number) => {
      const result = next<SampleResult>((cb) => evaluator.onSample(cb));
      expect(evaluator.requestSample(params, 1, { ...want, seed })).toBe(true);
      expect(evaluator.requestSample(params, 2, { ...want, seed })).toBe(false);
      return result;
    };
    const a = await ask(5);
    const b = await ask(5);
    expect(a.step).toBe(1);
    expect(a.text).toBe(b.text);
    expect([...a.text].length).toBe(want.length);
    const ids = sampleIds(layout, params, { ...want, prompt: encode(vocab, '\n'), greedy: false });
    expect(a.text).toBe(decode(vocab, ids));
  });

  it('runs a validation and a sample side by side, and drain() waits for both', async () => {
    const params = initParams(layout, 4);
    const seen: string[] = [];
    const offV = evaluator.onValidation(() => seen.push('validation'));
    const offS = evaluator.onSample(() => seen.push('sample'));
    expect(evaluator.requestValidation(params, 1)).toBe(true);
    expect(evaluator.requestSample(params, 1, { length: 5, temperature: 1, seed: 1 })).toBe(true);
    await evaluator.drain();
    offV();
    offS();
    expect(seen.sort()).toEqual(['sample', 'validation']);
  });

  it('reports a job that fails in the thread to onError and stays usable', async () => {
    const before = errors.length;
    expect(evaluator.requestSample(initParams(layout, 1), 1, { length: 5, temperature: 1, seed: 1, prompt: 'xyz' })).toBe(true);
    expect(evaluator.requestValidation(new Float32Array(3), 1)).toBe(true);
    await evaluator.drain();
    const messages = errors.slice(before).map((e) => e.message);
    expect(messages).toHaveLength(2);
    expect(messages).toContainEqual(expect.stringContaining('character "x" (U+0078) at line 1, column 1 is not in the'));
    expect(messages).toContainEqual(expect.stringContaining(`parameter buffer has 3 values, the model needs ${layout.size}`));
    const result = next<ValidationResult>((cb) => evaluator.onValidation(cb));
    expect(evaluator.requestValidation(initParams(layout, 1), 2)).toBe(true);
    expect((await result).step).toBe(2);
  });
});

describe('Evaluator lifecycle', () => {
  it('rejects bad options at start with the offending value, and ends that thread', async () => {
    await expect(Evaluator.start({ ...opts, streams: 0 })).rejects.toThrow('evaluator: streams must be a positive integer, got 0');
    await expect(Evaluator.start({ ...opts, maxValTokens: 7 })).rejects.toThrow('7 validation tokens cannot fill 4 streams');
  });

  it('close() ends the thread, also with a job in flight, and later requests are refused', async () => {
    const evaluator = await Evaluator.start(opts);
    const errors: Error[] = [];
    evaluator.onError((e) => errors.push(e));
    expect(evaluator.requestValidation(initParams(layout, 1), 1)).toBe(true);
    await evaluator.close();
    expect(evaluator.running).toBe(false);
    await evaluator.drain(); // the abandoned job settles instead of hanging
    expect(evaluator.requestValidation(initParams(layout, 1), 2)).toBe(false);
    expect(errors).toEqual([]);
  });
});
