// The thread pool of replicas: the only module that talks to Piscina. It holds one
// weights version at a time in a SharedArrayBuffer (written between steps, while no
// task of that version runs), runs encoded ShardTasks on the replica threads
// (worker/replica.ts) and hands back their encoded ShardResults. The coordinator's
// PoolExecutor and the remote worker process (worker/host.ts) both sit on it.

import { Piscina } from 'piscina';
import type { BackendName } from '../model/backend.js';
import type { ModelConfig } from '../model/config.js';
import { ownBytes } from '../proto/codec.js';
import { workerScript } from './paths.js';
import type { ReplicaJob } from './replica.js';

/**
 * How a task failed: 'timeout', its signal fired (the thread was terminated);
 * 'crash', its thread died; 'error', the task threw.
 */
export type ReplicaFailure = 'timeout' | 'crash' | 'error';

/** A failed task, with the message Piscina or the task gave and what kind of failure it was. */
export class ReplicaError extends Error {
  constructor(
    readonly code: ReplicaFailure,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ReplicaError';
  }
}

/**
 * A thread that died under its task. Node marks a thread killed for its memory with a
 * code (ERR_WORKER_OUT_OF_MEMORY); Piscina 5 rejects the tasks of a thread that exited
 * with a plain Error that carries none ("worker exited with code: N", from its exit
 * handler): there the text is the only mark, so it is checked here and nowhere else.
 */
function threadDied(e: Error): boolean {
  return (e as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY' || e.message.startsWith('worker exited with code');
}

/** The kind of a task's failure, from the signal it ran under and the error Piscina gave. */
function failureOf(e: unknown, signal: AbortSignal): ReplicaError {
  const err = e instanceof Error ? e : new Error(String(e));
  // Piscina's AbortError (name 'AbortError'): the signal fired, or the pool closed under the task.
  if (signal.aborted || err.name === 'AbortError') return new ReplicaError('timeout', err.message, { cause: e });
  return new ReplicaError(threadDied(err) ? 'crash' : 'error', err.message, { cause: e });
}

export interface ReplicaPoolOptions {
  runId: string;
  modelConfig: ModelConfig;
  vocabSize: number;
  /** Parameters in the flat layout. */
  paramCount: number;
  backend: BackendName;
  threads: number;
}

export class ReplicaPool {
  private pool: Piscina;
  private readonly weights: Float32Array;
  private readonly version: Int32Array;
  private threadCount: number;

  constructor(private readonly opts: ReplicaPoolOptions) {
    this.weights = new Float32Array(new SharedArrayBuffer(opts.paramCount * 4));
    this.version = new Int32Array(new SharedArrayBuffer(4));
    this.version[0] = -1;
    this.threadCount = opts.threads;
    this.pool = this.makePool(opts.threads);
  }

  get paramCount(): number {
    return this.weights.length;
  }

  get threads(): number {
    return this.threadCount;
  }

  /** Tasks running or queued. */
  get busy(): number {
    return this.running;
  }

  private running = 0;

  /** The weights version the shared buffer holds (−1 before the first). */
  get publishedVersion(): number {
    return Atomics.load(this.version, 0);
  }

  private makePool(threads: number): Piscina {
    if (!(Number.isInteger(threads) && threads >= 1)) throw new RangeError(`workers must be an integer ≥ 1, got ${threads}`);
    const { runId, modelConfig, vocabSize, backend } = this.opts;
    return new Piscina({
      filename: workerScript('replica'),
      minThreads: threads,
      maxThreads: threads,
      // Idle threads must stay: each holds its backend and weights.
      idleTimeout: 24 * 3600 * 1000,
      workerData: { runId, modelConfig, vocabSize, backend, weights: this.weights.buffer, version: this.version.buffer },
    });
  }

  /** Change the thread count; call between steps. A new pool replaces the old one (Piscina 5 cannot resize). */
  async resize(threads: number): Promise<void> {
    if (threads === this.threadCount) return;
    const next = this.makePool(threads);
    const old = this.pool;
    this.pool = next;
    this.threadCount = threads;
    await old.close();
  }

  /** Write a weights version into shared memory; only while no task of the version it replaces still matters. */
  publish(params: Float32Array, version: number): void {
    if (params.length !== this.weights.length) throw new RangeError(`weights version ${version} has ${params.length} values, expected ${this.weights.length}`);
    this.weights.set(params);
    Atomics.store(this.version, 0, version);
  }

  /**
   * Run one encoded ShardTask; resolves to the encoded ShardResult. A `bytes` that spans
   * its whole buffer is transferred (the caller gives it up); a view into a larger
   * buffer (a NATS read, a protobuf field) is copied first, never transferred, or the
   * rest of that buffer would be detached under its owner. With a `gradSlot` (shared
   * memory of paramCount float32) the replica writes the gradient there and the result
   * carries only its length. A failure is a ReplicaError.
   */
  async run(bytes: Uint8Array, signal: AbortSignal, gradSlot?: SharedArrayBuffer): Promise<ArrayBuffer> {
    const own = ownBytes(bytes);
    const job: ReplicaJob = { task: own, gradSlot };
    this.running += 1;
    try {
      return (await this.pool.run(job, { signal, transferList: [own.buffer as ArrayBuffer] })) as ArrayBuffer;
    } catch (e) {
      throw failureOf(e, signal);
    } finally {
      this.running -= 1;
    }
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
