// The local worker pool as a ShardExecutor: every shard goes as an encoded ShardTask to
// a replica thread (worker/pool.ts holds the threads and the shared weights); each
// ShardResult is decoded and checked, and a shard whose thread threw, died, hung or
// answered nonsense is re-run.
//
//   coordinator ── publish(params, version) ──▶ SharedArrayBuffer ◀── read once per version ── worker k
//        │── ShardTask bytes (tokens, states, version) ──────────────────────────────────────▶ │
//        ◀──────────────────────────────── ShardResult bytes (grad, loss, states), transferred ─┘

import type { BackendName } from '../model/backend.js';
import type { ChunkResult } from '../model/chunk.js';
import type { ParamLayout } from '../model/params.js';
import { decodeShardResult, encodeShardTask, ProtocolError, type ShardTaskMsg } from '../proto/codec.js';
import { ReplicaPool } from '../worker/pool.js';
import { type ExecResult, type ShardExecutor, type ShardTask, TrainingError } from './trainer.js';

import type { FailureReason } from '../dashboard/view.js';

export type { FailureReason };

export interface PoolEvents {
  /** A shard attempt failed and will be retried (or the step fails after maxAttempts). */
  onFailure?(reason: FailureReason, task: ShardTask, message: string): void;
}

export interface ShardInfo {
  worker: number | string;
  computeMs: number;
  payloadBytes: number;
  decodeMs: number;
}

export interface PoolOptions extends PoolEvents {
  runId: string;
  layout: ParamLayout;
  backend: BackendName;
  workers: number;
  /** Abort a shard attempt after this long (its thread is terminated and replaced). */
  stepTimeoutMs: number;
  maxAttempts: number;
}

/** The ShardTask message of a task's attempt. */
export function shardTaskMsg(runId: string, task: ShardTask, attempt: number): ShardTaskMsg {
  return {
    runId,
    step: task.step,
    shard: task.shard.index,
    version: task.version,
    seqLen: task.T,
    streams: task.shard.count,
    tokens: task.tokens ?? new Int32Array(0),
    inputs: task.inputs,
    labels: task.labels,
    values: task.values,
    states: task.states,
    attempt,
  };
}

/**
 * Decode and check a worker's ShardResult for `task`. A non-finite loss is a numerical
 * event, not a transport fault: re-running the shard would reproduce it, so it comes
 * back as a NaN result (the step is reported as non-finite and skipped).
 */
export function decodeResultFor(bytes: Uint8Array, runId: string, layout: ParamLayout, task: ShardTask): { result: ChunkResult; info: ShardInfo } {
  const started = performance.now();
  const { layers, hidden, cell } = layout.config;
  const expect = {
    runId,
    step: task.step,
    shard: task.shard.index,
    version: task.version,
    paramCount: layout.size,
    stateSize: layers * (cell.startsWith('lstm') ? 2 : 1) * hidden * task.shard.count,
    tokens: layout.config.task === 'lm' ? task.T * task.shard.count : task.shard.count,
  };
  let r;
  try {
    r = decodeShardResult(bytes, expect);
  } catch (e) {
    if (!(e instanceof ProtocolError && /^non-finite (loss|penalty)/.test(e.message))) throw e;
    const nan = { loss: NaN, penalty: NaN, tokens: expect.tokens, grad: new Float32Array(layout.size), finalStates: task.states };
    return { result: nan, info: { worker: -1, computeMs: 0, payloadBytes: bytes.byteLength, decodeMs: performance.now() - started } };
  }
  return {
    result: { loss: r.loss, penalty: r.penalty, tokens: r.tokens, grad: r.grad, finalStates: r.finalStates },
    info: { worker: r.worker, computeMs: r.computeMs, payloadBytes: bytes.byteLength, decodeMs: performance.now() - started },
  };
}

export class PoolExecutor implements ShardExecutor {
  private readonly pool: ReplicaPool;

  constructor(private readonly opts: PoolOptions) {
    const { layout } = opts;
    this.pool = new ReplicaPool({
      runId: opts.runId,
      modelConfig: layout.config,
      vocabSize: layout.vocabSize,
      paramCount: layout.size,
      backend: opts.backend,
      threads: opts.workers,
    });
  }

  get workers(): number {
    return this.pool.threads;
  }

  /** Shards running or queued. */
  get busy(): number {
    return this.pool.busy;
  }

  /** Change the thread count; call between steps. */
  async resize(workers: number): Promise<void> {
    await this.pool.resize(workers);
  }

  /** Write a weights version into shared memory; only between steps, while no task runs. */
  publish(params: Float32Array, version: number): void {
    this.pool.publish(params, version);
  }

  async run(tasks: ShardTask[], params: Float32Array, version: number): Promise<ExecResult> {
    if (this.pool.publishedVersion !== version) this.publish(params, version);
    const done = await Promise.all(tasks.map((t) => this.runShard(t)));
    let decodeMs = 0;
    for (const d of done) decodeMs += d.info.decodeMs;
    return {
      results: done.map((d) => d.result),
      decodeMs,
      shards: done.map(({ info: { worker, computeMs, payloadBytes } }) => ({ worker, computeMs, payloadBytes })),
    };
  }

  /** One shard, re-run on failure up to maxAttempts times. The weights of task.version must be published. */
  async runShard(task: ShardTask): Promise<{ result: ChunkResult; info: ShardInfo }> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.attempt(task, attempt);
      } catch (e) {
        const { reason, message } = classify(e);
        this.opts.onFailure?.(reason, task, message);
        if (attempt + 1 >= this.opts.maxAttempts) {
          throw new TrainingError(`shard ${task.shard.index} of step ${task.step + 1} failed ${attempt + 1} times; last: ${message}`);
        }
      }
    }
  }

  private async attempt(task: ShardTask, attempt: number): Promise<{ result: ChunkResult; info: ShardInfo }> {
    const { runId, layout } = this.opts;
    const bytes = encodeShardTask(shardTaskMsg(runId, task, attempt));
    const out = await this.pool.run(bytes, AbortSignal.timeout(this.opts.stepTimeoutMs));
    return decodeResultFor(new Uint8Array(out), runId, layout, task);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

export function classify(e: unknown): { reason: FailureReason; message: string } {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof ProtocolError) return { reason: 'protocol', message };
  if (e instanceof Error && (e.name === 'AbortError' || e.name === 'TimeoutError' || /aborted/i.test(message))) {
    return { reason: 'timeout', message: `no result within the step timeout (${message})` };
  }
  if (/worker exited|terminated/i.test(message)) return { reason: 'crash', message };
  return { reason: 'error', message };
}
