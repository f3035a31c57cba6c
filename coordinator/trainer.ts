// The training loop: cut each global batch into shards, run truncated BPTT on each,
// reduce in shard order, clip, update once, repeat.
//
//   batch(step) ─▶ shards 0..K−1 ─▶ executor (in-process or worker pool) ─▶ results
//        ▲                                                                   │
//        └──── params, stream states ◀── optimizer ◀── clip ◀── Σ/tokens ◀───┘

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ChunkResult } from '../model/chunk.js';
import { stateSize } from '../model/chunk.js';
import { isLstm } from '../model/config.js';
import { evalStreams } from '../model/evaluate.js';
import { saveModelFile } from '../model/modelfile.js';
import { Network } from '../model/network.js';
import { type ParamLayout, buildLayout, initParams } from '../model/params.js';
import { sampleIds } from '../model/sample.js';
import { decode, encode, type Vocab } from '../model/tokenizer.js';
import { type TrainConfig, modelConfigOf } from './config.js';
import { type Corpus, StreamBatcher, resolveCorpus, shard } from './data.js';
import { type ClipResult, type OptimizerState, applyUpdate, clipGlobalNorm, learningRate, newOptimizerState } from './optim.js';
import { type ShardSpec, planShards, putStates, reduceShards, sliceStates } from './shards.js';

export interface ShardTask {
  step: number;
  version: number;
  shard: ShardSpec;
  tokens: Int32Array;
  T: number;
  states: Float32Array;
}

/** Runs a step's shard tasks; results come back in shard order. */
export interface ShardExecutor {
  run(tasks: ShardTask[], params: Float32Array, version: number): Promise<ChunkResult[]>;
  close(): Promise<void>;
}

/** Runs shards one after another on this thread. */
export class InProcessExecutor implements ShardExecutor {
  private net: Network;
  private version = -1;
  constructor(layout: ParamLayout) {
    this.net = new Network(layout);
  }
  async run(tasks: ShardTask[], params: Float32Array, version: number): Promise<ChunkResult[]> {
    if (version !== this.version) {
      this.net.setParams(params);
      this.version = version;
    }
    return tasks.map((t) => this.net.run({ tokens: t.tokens, T: t.T, B: t.shard.count, states: t.states }, { training: true }));
  }
  async close(): Promise<void> {
    this.net.dispose();
  }
}

export interface StepReport {
  step: number;
  /** Mean cross-entropy per token, nats. */
  loss: number;
  bitsPerToken: number;
  penalty: number;
  clip: ClipResult;
  learningRate: number;
  tokens: number;
  stepMs: number;
  tokensPerSecond: number;
}

export interface TrainState {
  step: number;
  params: Float32Array;
  optimizer: OptimizerState;
  /** Stream states (L, S, B, H) carried between chunks. */
  states: Float32Array;
}

export class Trainer {
  readonly layout: ParamLayout;
  readonly corpus: Corpus;
  readonly batcher: StreamBatcher;
  readonly shards: ShardSpec[];
  readonly state: TrainState;
  private readonly LS: number;

  constructor(readonly config: TrainConfig, readonly executor: ShardExecutor | null = null, corpus?: Corpus) {
    this.corpus = corpus ?? resolveCorpus({ data: config.data ?? undefined, tokens: config.tokens, vocabCap: config.vocabCap });
    const model = modelConfigOf(config);
    this.layout = buildLayout(model, this.corpus.vocab.tokens.length);
    this.batcher = new StreamBatcher(this.corpus.train, config.batch, config.seqLen);
    this.shards = planShards(config.batch, config.shards > 0 ? config.shards : 1);
    this.LS = model.layers * (isLstm(model.cell) ? 2 : 1);
    this.executor = executor ?? new InProcessExecutor(this.layout);
    this.state = {
      step: 0,
      params: initParams(this.layout, config.seed),
      optimizer: newOptimizerState(config, this.layout.size),
      states: new Float32Array(stateSize(model.layers, isLstm(model.cell), config.batch, model.hidden)),
    };
  }

  get vocab(): Vocab {
    return this.corpus.vocab;
  }

  /** One synchronous data-parallel step. */
  async step(): Promise<StepReport> {
    const started = performance.now();
    const { config, state, layout } = this;
    const H = layout.config.hidden;
    const B = config.batch;
    const batch = this.batcher.batch(state.step);
    if (batch.resetStates) state.states.fill(0);
    const tasks: ShardTask[] = this.shards.map((s) => ({
      step: state.step,
      version: state.step,
      shard: s,
      tokens: shard(batch.tokens, B, s.first, s.count),
      T: config.seqLen,
      states: sliceStates(state.states, this.LS, B, H, s.first, s.count),
    }));
    const results = await this.executor!.run(tasks, state.params, state.step);
    const reduced = reduceShards(results, layout.size);
    results.forEach((r, k) => putStates(state.states, r.finalStates, this.LS, B, H, this.shards[k].first, this.shards[k].count));
    const clip = clipGlobalNorm(reduced.grad, config.clip);
    const lr = learningRate(config, state.step);
    applyUpdate(config, state.optimizer, state.params, reduced.grad, lr);
    state.step += 1;
    const stepMs = performance.now() - started;
    const loss = reduced.loss / reduced.tokens;
    return {
      step: state.step,
      loss,
      bitsPerToken: loss / Math.LN2,
      penalty: reduced.penalty / reduced.tokens,
      clip,
      learningRate: lr,
      tokens: reduced.tokens,
      stepMs,
      tokensPerSecond: (reduced.tokens / stepMs) * 1000,
    };
  }

  /** Validation loss on (up to maxTokens of) the held-out split, 32 streams side by side. */
  validate(maxTokens = 65_536) {
    const ids = this.corpus.val.subarray(0, Math.min(this.corpus.val.length, maxTokens));
    return evalStreams(this.layout, this.state.params, ids, Math.min(32, Math.max(1, Math.floor(ids.length / 64))));
  }

  sample(length = 200, seed = this.config.seed): string {
    const prompt = encode(this.vocab, this.vocab.tokens.includes('\n') ? '\n' : this.vocab.tokens[0]);
    const ids = sampleIds(this.layout, this.state.params, { prompt, length, temperature: 0.8, greedy: false, seed });
    return decode(this.vocab, ids);
  }

  async saveModel(dir: string): Promise<string> {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'model.safetensors');
    await saveModelFile(path, this.layout, this.state.params, this.vocab.tokens, this.vocab.kind, {
      'gradpool.run': JSON.stringify(this.config),
      'gradpool.step': String(this.state.step),
    });
    return path;
  }

  async close(): Promise<void> {
    await this.executor?.close();
  }
}
