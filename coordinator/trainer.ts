// The training step: cut the global batch into shards, have an executor run
// truncated BPTT on each, reduce by the block tree, clip, update once.
//
//   batch(step) ─▶ tasks: aligned ranges of the K blocks ─▶ executor (worker pool, or this thread)
//        ▲                                                      │ results of the tasks that covered the step
//        │                                                      │ (a straggler's task may run as its halves)
//        └─ publish(params) ◀─ optimizer ◀─ clip ◀─ Σ by the block tree / tokens

import type { StepPhase } from '../dashboard/view.js';
import { stateSize } from '../model/chunk.js';
import type { ChunkResult } from '../model/chunk.js';
import { isLstm } from '../model/config.js';
import { evalStreams } from '../model/evaluate.js';
import { runBlocks } from '../model/blocks.js';
import { Network } from '../model/network.js';
import { type ParamLayout, buildLayout, initParams } from '../model/params.js';
import { Rng } from '../model/rng.js';
import { sampleIds } from '../model/sample.js';
import { decode, encode, type Vocab } from '../model/tokenizer.js';
import { type TrainConfig, effectiveShards, gateInitOf, modelConfigOf } from './config.js';
import { type Corpus, StreamBatcher, resolveCorpus } from './data.js';
import { type DataSource, shardBatch } from './source.js';
import type { ModelConfig } from '../model/config.js';
import { type ClipResult, type OptimizerState, applyUpdate, clipGlobalNorm, learningRate, newOptimizerState } from './optim.js';
import { planBySpeed, type SpeedBook } from './speeds.js';
import { type Reduced, type Reduction, type ShardSpec, halvesOf, planShards, planTasks, putStates, reduceShards, reduceTree, sliceStates } from './shards.js';

/** The run cannot go on (e.g. repeated numerical blow-ups): reported without a stack trace, exit code 1. */
export class TrainingError extends Error {
  override name = 'TrainingError';
  /** Read by coordinator/exit.ts. */
  readonly kind = 'failure';
}

/** A step given up before its update (a stop request while it waited for workers): nothing of it was applied. */
export class StepAbandoned extends Error {
  override name = 'StepAbandoned';
  readonly kind = 'failure';
}

export interface ShardTask {
  step: number;
  version: number;
  shard: ShardSpec;
  /** lm: the shard's (T+1)·b tokens; task models: inputs and labels or values instead; captioners: tokens and images. */
  tokens?: Int32Array;
  images?: Uint8Array;
  inputs?: Float32Array;
  labels?: Int32Array;
  values?: Float32Array;
  T: number;
  states: Float32Array;
}

/** A task model's trainer: its model config and where its sequences come from. */
export interface TaskSpec {
  model: ModelConfig;
  source: DataSource;
  /** A captioner's word vocabulary (its size is the output size). */
  vocab?: Vocab;
}

/**
 * The two halves of a task (aligned ranges of its blocks, with the given indices), or null
 * for a task of one block: what an executor may run instead of a straggler's whole task.
 */
export type TaskSplitter = (task: ShardTask, indices: [number, number]) => [ShardTask, ShardTask] | null;

export interface ExecResult {
  /** In task order (of `partition` when given). */
  results: ChunkResult[];
  /** The tasks the results are of, when the executor split some (absent: the tasks it was given). */
  partition?: ShardSpec[];
  /** Attempts still running when their task's halves covered it: how long they had run (a lower bound of their time). */
  overdue?: { worker: string; local: boolean; blocks: number; elapsedMs: number }[];
  /** Coordinator time spent decoding results. */
  decodeMs: number;
  /** Per shard: the worker that ran it and its forward + backward time. */
  shards: { worker: number | string; computeMs: number; payloadBytes: number }[];
}

/** Runs a step's shard tasks. */
export interface ShardExecutor {
  readonly workers: number;
  publish(params: Float32Array, version: number): void;
  /** With `split`, a task may be run as halves (ExecResult.partition then says which tasks covered the step). */
  run(tasks: ShardTask[], params: Float32Array, version: number, split?: TaskSplitter): Promise<ExecResult>;
  resize?(workers: number): Promise<void>;
  /** Makes the step in flight, if any, reject with `reason` now (results that come later are discarded). */
  abandon?(reason: Error): void;
  /** How fast its workers have been (the trainer feeds it each step's task times); the executor places tasks by it. */
  readonly speeds?: SpeedBook;
  /** One speed key per worker thread that can take a task now ('local', or a remote worker's id). */
  slotKeys?(): string[];
  close(): Promise<void>;
}

/** Runs shards one after another on this thread (tests, benchmarks, --workers-free use). */
class InProcessExecutor implements ShardExecutor {
  readonly workers = 1;
  private net: Network;
  private version = -1;
  constructor(layout: ParamLayout) {
    this.net = new Network(layout);
  }
  publish(params: Float32Array, version: number): void {
    this.net.setParams(params);
    this.version = version;
  }
  async run(tasks: ShardTask[], params: Float32Array, version: number): Promise<ExecResult> {
    if (version !== this.version) this.publish(params, version);
    const shards: ExecResult['shards'] = [];
    const results = tasks.map((t) => {
      const started = performance.now();
      const chunk = { tokens: t.tokens, inputs: t.inputs, labels: t.labels, values: t.values, images: t.images, T: t.T, B: t.shard.count, states: t.states };
      const r = runBlocks(this.net, chunk, t.shard.blocks, { training: true });
      shards.push({ worker: 0, computeMs: performance.now() - started, payloadBytes: 0 });
      return r;
    });
    return { results, decodeMs: 0, shards };
  }
  async close(): Promise<void> {
    this.net.dispose();
  }
}

/** Milliseconds per step phase (the names are the dashboard's `phase` label). */
export type StepPhases = Record<StepPhase, number>;

export interface StepReport {
  step: number;
  /** Mean cross-entropy per token, nats. */
  loss: number;
  bitsPerToken: number;
  penalty: number;
  clip: ClipResult;
  learningRate: number;
  tokens: number;
  /** True when the loss or gradient was not finite: nothing was applied. */
  skipped: boolean;
  stepMs: number;
  tokensPerSecond: number;
  /** Milliseconds per phase; compute is the wall time of the whole shard fan-out. */
  phases: StepPhases;
  shards: ExecResult['shards'];
  /** The step's partition: how many blocks each task covered (in task order, as `shards`). */
  partition: number[];
  /** Mean ‖h_T‖ per layer over the batch's streams. */
  hiddenNorms: number[];
}

export interface TrainState {
  step: number;
  params: Float32Array;
  optimizer: OptimizerState;
  /** Stream states (L, S, B, H) carried between chunks. */
  states: Float32Array;
  tokensSeen: number;
  sampleRng: Rng;
  /** Consecutive skipped (non-finite) steps. */
  nonfiniteRun: number;
}

export class Trainer {
  readonly layout: ParamLayout;
  /** Language models only. */
  readonly corpus?: Corpus;
  /** Language models only: the token streams. */
  readonly batcher?: StreamBatcher;
  readonly source: DataSource;
  /** A captioner's vocabulary. */
  private readonly taskVocab?: Vocab;
  /** The step's blocks (K, fixed for the run): the unit of its math. */
  readonly shards: ShardSpec[];
  /**
   * How task results are summed: 'tree' for runs of this version; a run resumed from a
   * checkpoint of an earlier one keeps its 'sequential' math (set by restoreInto).
   */
  reduction: Reduction = 'tree';
  /** Each step's partition of the blocks into tasks (tests give their own; any partition gives the same bits). */
  private readonly planner: (blocks: readonly ShardSpec[], parallelism: number, reduction: Reduction, step: number) => ShardSpec[];
  /** The reduced gradient's memory, reused every step (it is dead once the update is applied). */
  private gradBuffer: Float32Array | null = null;
  /** The tree reduction's memory for inner sums, reused every step. */
  private readonly reduceScratch: Float32Array[] = [];
  readonly state: TrainState;
  readonly executor: ShardExecutor;
  private readonly LS: number;

  constructor(
    readonly config: TrainConfig,
    opts: { executor?: ShardExecutor; corpus?: Corpus; shards?: number; task?: TaskSpec; planner?: Trainer['planner'] } = {},
  ) {
    this.planner = opts.planner ?? ((blocks, parallelism, reduction) => this.plan(blocks, parallelism, reduction));
    let model: ModelConfig;
    if (opts.task) {
      model = opts.task.model;
      this.layout = buildLayout(model, opts.task.vocab?.tokens.length ?? model.outputs);
      this.source = opts.task.source;
      this.taskVocab = opts.task.vocab;
      if (this.source.B !== config.batch || this.source.T !== config.seqLen) {
        throw new Error(`task source yields T=${this.source.T}, B=${this.source.B}; the config says T=${config.seqLen}, B=${config.batch}`);
      }
    } else {
      this.corpus = opts.corpus ?? resolveCorpus({ data: config.data ?? undefined, tokens: config.tokens, vocabCap: config.vocabCap });
      model = modelConfigOf(config);
      this.layout = buildLayout(model, this.corpus.vocab.tokens.length);
      this.batcher = new StreamBatcher(this.corpus.train, config.batch, config.seqLen);
      this.source = this.batcher;
    }
    this.shards = planShards(config.batch, opts.shards ?? effectiveShards(config));
    this.LS = model.layers * (isLstm(model.cell) ? 2 : 1);
    this.executor = opts.executor ?? new InProcessExecutor(this.layout);
    this.state = {
      step: 0,
      params: initParams(this.layout, config.seed, gateInitOf(config)),
      optimizer: newOptimizerState(config, this.layout.size),
      states: new Float32Array(stateSize(model.layers, isLstm(model.cell), config.batch, model.hidden)),
      tokensSeen: 0,
      sampleRng: new Rng(config.seed, 0x5a3),
      nonfiniteRun: 0,
    };
  }

  get vocab(): Vocab {
    if (this.taskVocab) return this.taskVocab;
    if (!this.corpus) throw new Error('a task model has no vocabulary');
    return this.corpus.vocab;
  }

  /** The even partition, or, when the executor's workers have run at unequal speeds, one that follows them. */
  private plan(blocks: readonly ShardSpec[], parallelism: number, reduction: Reduction): ShardSpec[] {
    const { speeds, slotKeys } = this.executor;
    const times = reduction === 'tree' && speeds && slotKeys ? speeds.slotTimes(slotKeys.call(this.executor)) : null;
    return times ? planBySpeed(blocks, times) : planTasks(blocks, parallelism, reduction);
  }

  /** The current step's shards, run and reduced: the mean-loss gradient, nothing applied. */
  async gradient(): Promise<{ exec: ExecResult; partition: ShardSpec[]; reduced: Reduced; reduceMs: number }> {
    const { config, state, layout } = this;
    const H = layout.config.hidden;
    const B = config.batch;
    const batch = this.source.batch(state.step);
    if (batch.resetStates) state.states.fill(0);
    const planned = this.planner(this.shards, this.executor.workers, this.reduction, state.step);
    const taskOf = (s: ShardSpec): ShardTask => ({
      step: state.step,
      version: state.step,
      shard: s,
      ...shardBatch(batch, config.seqLen, B, s.first, s.count),
      T: config.seqLen,
      states: sliceStates(state.states, this.LS, B, H, s.first, s.count),
    });
    // A straggler's task may be run as its halves (the tree's subtrees: the same bits); an old run's sequential sum cannot.
    const split: TaskSplitter | undefined =
      this.reduction === 'tree'
        ? (task, indices) => {
            const halves = halvesOf(this.shards, task.shard, indices);
            return halves && [taskOf(halves[0]), taskOf(halves[1])];
          }
        : undefined;
    const exec = await this.executor.run(planned.map(taskOf), state.params, state.step, split);
    // What the step was reduced over: the tasks that completed, a finer partition when some were split.
    const partition = exec.partition ?? planned;
    if (partition.length !== exec.results.length) throw new Error(`the executor returned ${exec.results.length} results for ${partition.length} tasks`);
    this.executor.speeds?.observeStep(exec.shards, partition.map((p) => p.blocks?.length ?? 1));
    // A remote straggler's time so far, so that the partition by speed gives it less next time
    // (local threads share one speed: one stuck thread must not slow the estimate of all).
    for (const o of exec.overdue ?? []) if (!o.local) this.executor.speeds?.observe(o.worker, o.blocks, o.elapsedMs);
    const started = performance.now();
    this.gradBuffer ??= new Float32Array(layout.size);
    const reduced =
      this.reduction === 'tree'
        ? reduceTree(partition, exec.results, this.shards.length, layout.size, this.gradBuffer, this.reduceScratch)
        : reduceShards(exec.results, layout.size, this.gradBuffer);
    return { exec, partition, reduced, reduceMs: performance.now() - started };
  }

  /** One synchronous data-parallel step. */
  async step(): Promise<StepReport> {
    const started = performance.now();
    const { config, state } = this;
    const H = this.layout.config.hidden;
    const B = config.batch;
    const { exec, partition, reduced, reduceMs } = await this.gradient();
    const t2 = performance.now();
    const t1 = t2 - reduceMs - exec.decodeMs;
    const loss = reduced.loss / reduced.tokens;
    const clip = clipGlobalNorm(reduced.grad, config.clip);
    const lr = learningRate(config, state.step);
    const skipped = !Number.isFinite(loss) || !Number.isFinite(reduced.penalty) || !Number.isFinite(clip.normBefore);
    if (skipped) {
      // A numerical blow-up: keep the weights and the carried states as they were.
      state.nonfiniteRun += 1;
    } else {
      state.nonfiniteRun = 0;
      exec.results.forEach((r, k) => putStates(state.states, r.finalStates, this.LS, B, H, partition[k].first, partition[k].count));
      applyUpdate(config, state.optimizer, state.params, reduced.grad, lr);
    }
    state.step += 1;
    state.tokensSeen += reduced.tokens;
    const t3 = performance.now();
    if (!skipped) this.executor.publish(state.params, state.step);
    const t4 = performance.now();
    const stepMs = t4 - started;
    return {
      step: state.step,
      loss,
      bitsPerToken: loss / Math.LN2,
      penalty: reduced.penalty / reduced.tokens,
      clip,
      learningRate: lr,
      tokens: reduced.tokens,
      skipped,
      stepMs,
      tokensPerSecond: (reduced.tokens / stepMs) * 1000,
      phases: { compute: t1 - started, decode: exec.decodeMs, reduce: reduceMs, apply: t3 - t2, publish: t4 - t3 },
      shards: exec.shards,
      partition: partition.map((p) => p.blocks?.length ?? 1),
      hiddenNorms: this.hiddenNorms(),
    };
  }

  /** Mean ‖h‖ per layer over the carried states. */
  hiddenNorms(): number[] {
    const { layers, hidden: H } = this.layout.config;
    const B = this.config.batch;
    const S = this.LS / layers;
    const norms: number[] = [];
    for (let l = 0; l < layers; l++) {
      let total = 0;
      for (let b = 0; b < B; b++) {
        let s = 0;
        const o = (l * S * B + b) * H;
        for (let j = 0; j < H; j++) s += this.state.states[o + j] ** 2;
        total += Math.sqrt(s);
      }
      norms.push(total / B);
    }
    return norms;
  }

  /** Validation loss on (up to maxTokens of) the held-out split, streams side by side, on this thread. */
  validate(maxTokens = 65_536) {
    if (!this.corpus) throw new Error('validate() is for language models');
    const ids = this.corpus.val.subarray(0, Math.min(this.corpus.val.length, maxTokens));
    return evalStreams(this.layout, this.state.params, ids, Math.min(32, Math.max(1, Math.floor(ids.length / 64))));
  }

  /** A generated sample on this thread (the run uses the evaluator thread instead). */
  sample(length = 200, seed = this.state.sampleRng.nextU32()): string {
    const prompt = encode(this.vocab, this.vocab.tokens.includes('\n') ? '\n' : this.vocab.tokens[0]);
    const ids = sampleIds(this.layout, this.state.params, { prompt, length, temperature: 0.8, greedy: false, seed });
    return decode(this.vocab, ids);
  }

  async close(): Promise<void> {
    await this.executor.close();
  }
}
