// The evaluator thread: validation loss and text samples on a copy of the weights,
// off the training loop's path. A long-lived worker_thread exposed with comlink;
// the coordinator side is coordinator/evaluator.ts. Jobs run one at a time here
// (each is synchronous once started), so one Network serves both kinds.

import { type MessagePort, parentPort } from 'node:worker_threads';
import { type Endpoint, expose } from 'comlink';
// comlink ships node-adapter.mjs without a .d.mts, which TypeScript (NodeNext) needs to
// type an .mjs import; the signature below is the one in its node-adapter.d.ts.
// @ts-expect-error TS7016: no declaration file for the .mjs
import nodeAdapter from 'comlink/dist/esm/node-adapter.mjs';
import { BACKENDS, type BackendName, initBackend, isBackendName } from '../model/backend.js';
import type { ModelConfig } from '../model/config.js';
import { evalStreams } from '../model/evaluate.js';
import { Network } from '../model/network.js';
import { type ParamLayout, buildLayout } from '../model/params.js';
import { sampleIds } from '../model/sample.js';
import { decode, encode, isTokenKind, TOKEN_KINDS, type Vocab } from '../model/tokenizer.js';

const nodeEndpoint = nodeAdapter as (port: MessagePort) => Endpoint;

export interface EvaluatorInit {
  modelConfig: ModelConfig;
  vocab: Vocab;
  /** Held-out token ids; only the first maxValTokens are kept. */
  valIds: Int32Array;
  backend: BackendName;
  maxValTokens: number;
  /** Validation streams run side by side (see evalStreams). */
  streams: number;
}

export interface ValidationResult {
  step: number;
  /** Mean nats per predicted token. */
  loss: number;
  bitsPerToken: number;
  perplexity: number;
  tokens: number;
  ms: number;
}

export interface SampleRequest {
  /** Tokens to generate (the prompt not included). */
  length: number;
  temperature: number;
  seed: number;
  /** Text to condition on; default '\n' when the vocabulary has it, else token 0. */
  prompt?: string;
}

export interface SampleResult {
  step: number;
  text: string;
  ms: number;
}

/** What the thread exposes; every call is async on the coordinator side. */
export interface EvaluatorApi {
  init(opts: EvaluatorInit): Promise<void>;
  validate(params: Float32Array, step: number): Promise<ValidationResult>;
  sample(params: Float32Array, step: number, opts: SampleRequest): Promise<SampleResult>;
  close(): Promise<void>;
}

interface Loaded {
  layout: ParamLayout;
  vocab: Vocab;
  valIds: Int32Array;
  streams: number;
  net: Network;
}

let loaded: Loaded | null = null;

function ready(): Loaded {
  if (!loaded) throw new Error('evaluator: init() has not completed (or close() was called)');
  return loaded;
}

const positiveInt = (name: string, v: unknown) => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new RangeError(`evaluator: ${name} must be a positive integer, got ${JSON.stringify(v)}`);
};

const api: EvaluatorApi = {
  async init(opts) {
    if (loaded) throw new Error('evaluator: init() called twice');
    if (!isBackendName(opts.backend)) {
      throw new RangeError(`evaluator: backend must be one of ${BACKENDS.join(', ')}, got ${JSON.stringify(opts.backend)}`);
    }
    if (!isTokenKind(opts.vocab.kind)) {
      throw new RangeError(`evaluator: vocab.kind must be one of ${TOKEN_KINDS.join(', ')}, got ${JSON.stringify(opts.vocab.kind)}`);
    }
    positiveInt('maxValTokens', opts.maxValTokens);
    positiveInt('streams', opts.streams);
    const valIds = opts.valIds.subarray(0, Math.min(opts.valIds.length, opts.maxValTokens));
    if (valIds.length < 2 * opts.streams) {
      throw new RangeError(`evaluator: ${valIds.length} validation tokens cannot fill ${opts.streams} streams of at least 2 tokens`);
    }
    const V = opts.vocab.tokens.length;
    const bad = valIds.findIndex((id) => id < 0 || id >= V);
    if (bad >= 0) throw new RangeError(`evaluator: validation token ${bad} has id ${valIds[bad]}, outside the vocabulary (ids 0..${V - 1})`);
    await initBackend(opts.backend);
    const layout = buildLayout(opts.modelConfig, V);
    loaded = { layout, vocab: { kind: opts.vocab.kind, tokens: opts.vocab.tokens }, valIds, streams: opts.streams, net: new Network(layout) };
  },

  async validate(params, step) {
    const { layout, valIds, streams, net } = ready();
    const started = performance.now();
    net.setParams(params);
    const r = evalStreams(layout, params, valIds, streams, net);
    return { step, ...r, ms: performance.now() - started };
  },

  async sample(params, step, opts) {
    const { layout, vocab, net } = ready();
    positiveInt('sample length', opts.length);
    const started = performance.now();
    // The default prompt is one token id, not text to encode: a word vocabulary's
    // token 0 is "<unk>", which would tokenize as three tokens.
    const newline = vocab.tokens.indexOf('\n');
    const prompt = opts.prompt !== undefined ? encode(vocab, opts.prompt) : Int32Array.of(Math.max(newline, 0));
    net.setParams(params);
    const ids = sampleIds(layout, params, { prompt, length: opts.length, temperature: opts.temperature, greedy: false, seed: opts.seed }, net);
    return { step, text: decode(vocab, ids), ms: performance.now() - started };
  },

  async close() {
    loaded?.net.dispose();
    loaded = null;
  },
};

if (!parentPort) throw new Error('worker/evaluator.js is a worker_threads entry point; start it with coordinator/evaluator.ts');
expose(api, nodeEndpoint(parentPort));
