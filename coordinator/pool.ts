// The worker pool: the only module that talks to Piscina. It publishes each weights
// version once into a SharedArrayBuffer (between steps, while no task runs), sends
// every shard as an encoded ShardTask, decodes and checks each ShardResult, and
// re-runs a shard whose worker threw, died, hung or answered nonsense.
//
//   coordinator ── publish(params, version) ──▶ SharedArrayBuffer ◀── read once per version ── worker k
//        │── ShardTask bytes (tokens, states, version) ──────────────────────────────────────▶ │
//        ◀──────────────────────────────── ShardResult bytes (grad, loss, states), transferred ─┘

import { Piscina } from 'piscina';
import type { BackendName } from '../model/backend.js';
import type { ChunkResult } from '../model/chunk.js';
import type { ParamLayout } from '../model/params.js';
import { decodeShardResult, encodeShardTask, ProtocolError } from '../proto/codec.js';
import type { ExecResult, ShardExecutor, ShardTask } from './trainer.js';
import { workerScript } from './paths.js';

export type FailureReason = 'crash' | 'error' | 'timeout' | 'protocol';

export interface PoolEvents {
  /** A shard attempt failed and will be retried (or the step fails after maxAttempts). */
  onFailure?(reason: FailureReason, task: ShardTask, message: string): void;
}

interface Info {
  worker: number;
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

export class PoolExecutor implements ShardExecutor {
  private pool: Piscina;
  private readonly weights: Float32Array;
  private readonly version: Int32Array;
  private readonly stateSizePerStream: number;
  private workerCount: number;
  private readonly task: string;

  constructor(private readonly opts: PoolOptions) {
    const { layout } = opts;
    this.weights = new Float32Array(new SharedArrayBuffer(layout.size * 4));
    this.version = new Int32Array(new SharedArrayBuffer(4));
    this.version[0] = -1;
    const { layers, hidden, cell } = layout.config;
    this.stateSizePerStream = layers * (cell.startsWith('lstm') ? 2 : 1) * hidden;
    this.task = layout.config.task;
    this.workerCount = opts.workers;
    this.pool = this.makePool(opts.workers);
  }

  get workers(): number {
    return this.workerCount;
  }

  private makePool(workers: number): Piscina {
    if (!(Number.isInteger(workers) && workers >= 1)) throw new RangeError(`workers must be an integer ≥ 1, got ${workers}`);
    const { runId, layout, backend } = this.opts;
    return new Piscina({
      filename: workerScript('replica'),
      minThreads: workers,
      maxThreads: workers,
      // Idle threads must stay: each holds its backend and weights.
      idleTimeout: 24 * 3600 * 1000,
      workerData: {
        runId,
        modelConfig: layout.config,
        vocabSize: layout.vocabSize,
        backend,
        weights: this.weights.buffer,
        version: this.version.buffer,
      },
    });
  }

  /** Change the thread count; call between steps. A new pool replaces the old one (Piscina 5 cannot resize). */
  async resize(workers: number): Promise<void> {
    if (workers === this.workerCount) return;
    const next = this.makePool(workers);
    const old = this.pool;
    this.pool = next;
    this.workerCount = workers;
    await old.close();
  }

  /** Write a weights version into shared memory; only between steps, while no task runs. */
  publish(params: Float32Array, version: number): void {
    this.weights.set(params);
    Atomics.store(this.version, 0, version);
  }

  async run(tasks: ShardTask[], params: Float32Array, version: number): Promise<ExecResult> {
    if (Atomics.load(this.version, 0) !== version) this.publish(params, version);
    const infos: Info[] = new Array(tasks.length);
    const results = await Promise.all(tasks.map((t, k) => this.runWithRetry(t, infos, k)));
    let decodeMs = 0;
    for (const i of infos) decodeMs += i.decodeMs;
    return { results, decodeMs, shards: infos.map(({ worker, computeMs, payloadBytes }) => ({ worker, computeMs, payloadBytes })) };
  }

  private async runWithRetry(task: ShardTask, infos: Info[], k: number): Promise<ChunkResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        const { result, info } = await this.attempt(task, attempt);
        infos[k] = info;
        return result;
      } catch (e) {
        const { reason, message } = classify(e);
        this.opts.onFailure?.(reason, task, message);
        if (attempt + 1 >= this.opts.maxAttempts) {
          throw new Error(`shard ${task.shard.index} of step ${task.step} failed ${attempt + 1} times; last: ${message}`);
        }
      }
    }
  }

  private async attempt(task: ShardTask, attempt: number): Promise<{ result: ChunkResult; info: Info }> {
    const { runId, layout } = this.opts;
    const bytes = encodeShardTask({
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
    });
    const signal = AbortSignal.timeout(this.opts.stepTimeoutMs);
    const out = (await this.pool.run(bytes, { signal, transferList: [bytes.buffer as ArrayBuffer] })) as ArrayBuffer;
    const started = performance.now();
    const expect = {
      runId,
      step: task.step,
      shard: task.shard.index,
      version: task.version,
      paramCount: layout.size,
      stateSize: this.stateSizePerStream * task.shard.count,
      tokens: this.task === 'lm' ? task.T * task.shard.count : task.shard.count,
    };
    let result;
    try {
      result = decodeShardResult(new Uint8Array(out), expect);
    } catch (e) {
      // A non-finite loss is a numerical event, not a transport fault: re-running the
      // shard would reproduce it. The step is reported as non-finite and skipped.
      if (!(e instanceof ProtocolError && /^non-finite (loss|penalty)/.test(e.message))) throw e;
      const nan = { loss: NaN, penalty: NaN, tokens: expect.tokens, grad: new Float32Array(layout.size), finalStates: task.states };
      return { result: nan, info: { worker: -1, computeMs: 0, payloadBytes: out.byteLength, decodeMs: performance.now() - started } };
    }
    const info = { worker: result.worker, computeMs: result.computeMs, payloadBytes: out.byteLength, decodeMs: performance.now() - started };
    return {
      result: { loss: result.loss, penalty: result.penalty, tokens: result.tokens, grad: result.grad, finalStates: result.finalStates },
      info,
    };
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

function classify(e: unknown): { reason: FailureReason; message: string } {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof ProtocolError) return { reason: 'protocol', message };
  if (e instanceof Error && (e.name === 'AbortError' || e.name === 'TimeoutError' || /aborted/i.test(message))) {
    return { reason: 'timeout', message: `no result within the step timeout (${message})` };
  }
  if (/worker exited|terminated/i.test(message)) return { reason: 'crash', message };
  return { reason: 'error', message };
}
