// The thread pool of replicas: the only module that talks to Piscina. It holds one
// weights version at a time in a SharedArrayBuffer (written between steps, while no
// task of that version runs), runs encoded ShardTasks on the replica threads
// (worker/replica.ts) and hands back their encoded ShardResults. The coordinator's
// PoolExecutor and the remote worker process (worker/host.ts) both sit on it.
//
// Piscina keeps the threads (start, replace a dead one, terminate); each thread runs one
// long Piscina task, its serve loop, and takes its tasks through a mailbox in shared
// memory (worker/mailbox.ts) rather than one Piscina message each:
//
//   run(task) ─▶ queue ─▶ a lane whose thread is free: post into its mailbox, notify ─▶ thread computes
//        ◀──────────────── the result copied out of the mailbox ◀──── done / fail, notify ◀─┘
//   timeout: the lane's serve task is aborted (Piscina terminates the thread); a lane whose
//   thread died or was terminated fails its task and is replaced by a new lane.

import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { BackendName } from '../model/backend.js';
import type { ModelConfig } from '../model/config.js';
import { workerScript } from './paths.js';
import { DONE, Mailbox } from './mailbox.js';
import type { ServeJob, SlotNotice } from './replica.js';

/**
 * How a task failed: 'timeout', its signal fired (the thread was terminated);
 * 'crash', its thread died; 'error', the task threw.
 */
export type ReplicaFailure = 'timeout' | 'crash' | 'error';

/** The shared version word while a publish is writing the weights. */
export const WRITING = -2;

/**
 * The shared weights as a sequence lock: `publishShared` marks the version word WRITING,
 * writes the values, then stores the version; `loadShared` (a replica thread) checks the
 * word before and after its copy, so a copy that overlapped a write is never used.
 */
export function publishShared(word: Int32Array, weights: Float32Array, params: Float32Array, version: number): void {
  if (params.length !== weights.length) throw new RangeError(`weights version ${version} has ${params.length} values, expected ${weights.length}`);
  if (!(Number.isInteger(version) && version >= 0)) throw new RangeError(`a weights version is an integer ≥ 0, got ${version}`);
  Atomics.store(word, 0, WRITING);
  weights.set(params);
  Atomics.store(word, 0, version);
}

/** Copy weights `version` out of shared memory with `copy`; throws when the buffer holds another version or changed during the copy. */
export function loadShared(word: Int32Array, version: number, copy: () => void): void {
  const name = (v: number) => (v === WRITING ? 'a version being written' : `version ${v}`);
  const before = Atomics.load(word, 0);
  if (before !== version) throw new Error(`weights buffer holds ${name(before)}, task wants ${version}`);
  copy();
  const after = Atomics.load(word, 0);
  if (after !== version) throw new Error(`the weights buffer changed (to ${name(after)}) while version ${version} was being loaded`);
}

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
function failureOf(e: unknown, signal?: AbortSignal): ReplicaError {
  const err = e instanceof Error ? e : new Error(String(e));
  // Piscina's AbortError (name 'AbortError'): the signal fired, or the pool closed under the task.
  if (signal?.aborted || err.name === 'AbortError') return new ReplicaError('timeout', err.message, { cause: e });
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

/** A gradient slot lent to a task: shared memory of paramCount float32, known to the threads by its id. */
export interface GradSlot {
  id: number;
  buffer: SharedArrayBuffer;
}

interface Job {
  bytes: Uint8Array;
  signal: AbortSignal;
  slot?: GradSlot;
  resolve(result: ArrayBuffer): void;
  reject(e: ReplicaError): void;
  /** The lane running it (none while queued). */
  lane?: Lane;
  onAbort(): void;
}

/** One thread's serve task with its mailbox. */
interface Lane {
  box: Mailbox;
  /** Gradient slots are announced to the thread here before the first task that uses them. */
  port: MessagePort;
  known: Set<number>;
  stop: AbortController;
  pool: Piscina;
  job: Job | null;
  /** Its thread is being terminated: it takes no more tasks. */
  stopping: boolean;
}

export class ReplicaPool {
  private pool: Piscina;
  private readonly weights: Float32Array;
  private readonly version: Int32Array;
  private threadCount: number;
  private lanes: Lane[] = [];
  private readonly queue: Job[] = [];
  private running = 0;
  private closing = false;
  /** A pump is queued as a microtask (pumpSoon). */
  private pumpQueued = false;
  /** The bell every lane's thread waits on (worker/mailbox.ts): a pump posts its tasks, then rings once. */
  private readonly bell = new SharedArrayBuffer(4);

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

  /** The weights version the shared buffer holds (−1 before the first). */
  get publishedVersion(): number {
    return Atomics.load(this.version, 0);
  }

  private makePool(threads: number): Piscina {
    if (!(Number.isInteger(threads) && threads >= 1)) throw new RangeError(`workers must be an integer ≥ 1, got ${threads}`);
    const { runId, modelConfig, vocabSize, backend } = this.opts;
    const pool = new Piscina({
      filename: workerScript('replica'),
      minThreads: threads,
      maxThreads: threads,
      // Idle threads must stay: each holds its backend and weights.
      idleTimeout: 24 * 3600 * 1000,
      workerData: { runId, modelConfig, vocabSize, backend, weights: this.weights.buffer, version: this.version.buffer },
    });
    for (let i = 0; i < threads; i++) this.openLane(pool);
    return pool;
  }

  /** Start a serve task on `pool` (it takes a free thread, or waits for one Piscina is starting). */
  private openLane(pool: Piscina): void {
    const { port1, port2 } = new MessageChannel();
    const lane: Lane = { box: Mailbox.create(this.bell), port: port1, known: new Set(), stop: new AbortController(), pool, job: null, stopping: false };
    this.lanes.push(lane);
    const job: ServeJob = { mailbox: lane.box.buffers, port: port2 };
    pool.run(job, { signal: lane.stop.signal, transferList: [port2] }).then(
      () => this.closeLane(lane, null),
      (e: unknown) => this.closeLane(lane, e),
    );
    this.pump();
  }

  /** The lane's serve task ended: its task (if any) fails, and a lane of the current pool is replaced. */
  private closeLane(lane: Lane, error: unknown): void {
    if (!this.lanes.includes(lane)) return; // retired: its end was asked for
    this.retireLane(lane, failureOf(error ?? new Error('the replica thread left its loop'), lane.job?.signal));
    if (!this.closing && lane.pool === this.pool) this.openLane(this.pool);
  }

  /** Change the thread count; call between steps. A new pool replaces the old one (Piscina 5 cannot resize). */
  async resize(threads: number): Promise<void> {
    if (threads === this.threadCount) return;
    const old = this.pool;
    const oldLanes = this.lanes.filter((l) => l.pool === old);
    this.pool = this.makePool(threads);
    this.threadCount = threads;
    for (const lane of oldLanes) this.retireLane(lane, new ReplicaError('timeout', 'the replica pool was resized under the task'));
    await old.close();
  }

  /** Take a lane out of service: its thread leaves its loop, and its task (if any) fails with `error`. */
  private retireLane(lane: Lane, error: ReplicaError): void {
    const i = this.lanes.indexOf(lane);
    if (i >= 0) this.lanes.splice(i, 1);
    const job = lane.job;
    lane.job = null;
    lane.box.retire();
    lane.port.close();
    if (job) this.settle(job, () => job.reject(error));
  }

  /** Write a weights version into shared memory (publishShared); only while no task of the version it replaces still matters. */
  publish(params: Float32Array, version: number): void {
    publishShared(this.version, this.weights, params, version);
  }

  /**
   * Run one encoded ShardTask; resolves to the encoded ShardResult (a buffer of its own).
   * `bytes` is copied, never taken. With a `gradSlot` (shared memory of paramCount float32)
   * the replica writes the gradient there and the result carries only its length.
   * A failure is a ReplicaError; `signal` aborting fails the task as a 'timeout' (its
   * thread, if it had started the task, is terminated and replaced).
   */
  run(bytes: Uint8Array, signal: AbortSignal, gradSlot?: GradSlot): Promise<ArrayBuffer> {
    return new Promise<ArrayBuffer>((resolve, reject) => {
      if (this.closing) return reject(new ReplicaError('timeout', 'the replica pool is closed'));
      const job: Job = { bytes, signal, slot: gradSlot, resolve, reject, onAbort: () => this.abort(job) };
      if (signal.aborted) return reject(failureOf(signal.reason ?? new Error('aborted'), signal));
      signal.addEventListener('abort', job.onAbort, { once: true });
      this.running += 1;
      this.queue.push(job);
      this.pumpSoon();
    });
  }

  /**
   * Post the queue once the caller's synchronous work is done (a microtask): a step's tasks,
   * run one after another, are all encoded first, then posted together and their threads
   * woken by one ring (pump), so that they start together.
   */
  private pumpSoon(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    queueMicrotask(this.queuedPump);
  }

  /** pumpSoon's microtask, made once (not a closure a step). */
  private readonly queuedPump = (): void => {
    this.pumpQueued = false;
    this.pump();
  };

  /** Forget a gradient slot (the threads drop their view of it at their next task). */
  forgetSlot(id: number): void {
    for (const lane of this.lanes) {
      if (lane.known.delete(id)) lane.port.postMessage({ forget: id } satisfies SlotNotice);
    }
  }

  /** Post queued tasks to free lanes, oldest first, then wake their threads at once. */
  private pump(): void {
    let posted: Lane | null = null;
    for (const lane of this.lanes) {
      if (this.queue.length === 0) break;
      if (lane.job || lane.stopping || lane.pool !== this.pool) continue;
      this.start(lane, this.queue.shift()!);
      posted = lane;
    }
    posted?.box.ring();
  }

  private start(lane: Lane, job: Job): void {
    lane.job = job;
    job.lane = lane;
    const slot = job.slot;
    if (slot && !lane.known.has(slot.id)) {
      lane.port.postMessage({ id: slot.id, buffer: slot.buffer } satisfies SlotNotice);
      lane.known.add(slot.id);
    }
    lane.box.post(job.bytes, slot ? slot.id : -1, false);
    void lane.box.answered().then(() => {
      if (lane.job !== job) return; // failed, timed out or retired meanwhile
      const state = lane.box.state;
      const answer = lane.box.take();
      lane.job = null;
      this.settle(job, () =>
        state === DONE ? job.resolve(answer) : job.reject(new ReplicaError('error', new TextDecoder().decode(answer))),
      );
      this.pump();
    });
  }

  /** The task's signal fired: a queued task leaves the queue; a running one takes its thread down. */
  private abort(job: Job): void {
    const lane = job.lane;
    if (!lane) {
      const i = this.queue.indexOf(job);
      if (i >= 0) this.queue.splice(i, 1);
      this.settle(job, () => job.reject(failureOf(job.signal.reason, job.signal)));
      return;
    }
    if (lane.job !== job) return;
    lane.job = null;
    lane.stopping = true;
    this.settle(job, () => job.reject(failureOf(job.signal.reason, job.signal)));
    lane.stop.abort(); // Piscina terminates the thread; closeLane replaces the lane
  }

  private settle(job: Job, outcome: () => void): void {
    job.signal.removeEventListener('abort', job.onAbort);
    job.lane = undefined;
    this.running -= 1;
    outcome();
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const job of this.queue.splice(0)) this.settle(job, () => job.reject(new ReplicaError('timeout', 'the replica pool closed')));
    for (const lane of [...this.lanes]) this.retireLane(lane, new ReplicaError('timeout', 'the replica pool closed'));
    await this.pool.destroy();
  }
}
