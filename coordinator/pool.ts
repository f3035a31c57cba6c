// The local worker pool as a ShardExecutor: every shard goes as an encoded ShardTask to
// a replica thread (worker/pool.ts holds the threads and the shared weights); each
// ShardResult is decoded and checked, and a shard whose thread threw, died, hung or
// answered nonsense is re-run (coordinator/scheduler.ts counts the attempts).
//
//   coordinator ── publish(params, version) ──▶ SharedArrayBuffer ◀── read once per version ── worker k
//        │── ShardTask bytes (tokens, states, version) + a gradient slot, via the thread's mailbox ─▶ │
//        │   gradient slot (SharedArrayBuffer) ◀──────────────── the gradient, written in place ─┤
//        ◀──────────────────────────── ShardResult bytes (loss, states), via the mailbox ─┘
//
// A gradient slot is lent to one attempt. It holds its step's gradient until a task of
// another step takes it again: a result's grad is valid while its step is being reduced,
// not after the next step's tasks started. A slot whose attempt failed is dropped, never
// lent again (its thread may be terminated in the middle of writing it).

import type { BackendName } from '../model/backend.js';
import type { ChunkResult } from '../model/chunk.js';
import { captionTargetCount } from '../model/caption.js';
import type { ParamLayout } from '../model/params.js';
import { decodeShardResult, encodeShardTask, ProtocolError, type ShardTaskMsg } from '../proto/codec.js';
import { type GradSlot, ReplicaError, ReplicaPool } from '../worker/pool.js';
import { type Attempt, FailureCause, type FailureReason, Scheduler, type SchedulerEvents, type ShardInfo } from './scheduler.js';
import { SpeedBook } from './speeds.js';
import type { ExecResult, ShardExecutor, ShardTask, TaskSplitter } from './trainer.js';

export type { FailureReason, ShardInfo };

export type PoolEvents = Pick<SchedulerEvents, 'onFailure' | 'onSplit'>;

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
    images: task.images,
    states: task.states,
    attempt,
    blocks: task.shard.blocks,
  };
}

/**
 * Decode and check a worker's ShardResult for `task`. A non-finite loss is a numerical
 * event, not a transport fault: re-running the shard would reproduce it, so it comes
 * back as a NaN result (the step is reported as non-finite and skipped).
 */
export function decodeResultFor(bytes: Uint8Array, runId: string, layout: ParamLayout, task: ShardTask, gradSlot?: Float32Array): { result: ChunkResult; info: ShardInfo } {
  const started = performance.now();
  const { layers, hidden, cell } = layout.config;
  const expect = {
    runId,
    step: task.step,
    shard: task.shard.index,
    version: task.version,
    paramCount: layout.size,
    stateSize: layers * (cell.startsWith('lstm') ? 2 : 1) * hidden * task.shard.count,
    tokens: layout.config.task === 'lm' ? task.T * task.shard.count : layout.config.task === 'caption' ? captionTargetCount(task.tokens!, task.shard.count) : task.shard.count,
    gradSlot,
  };
  let r;
  try {
    r = decodeShardResult(bytes, expect);
  } catch (e) {
    if (!(e instanceof ProtocolError && e.code === 'nonfinite')) throw e;
    const nan = { loss: NaN, penalty: NaN, tokens: expect.tokens, grad: new Float32Array(layout.size), finalStates: task.states };
    return { result: nan, info: { worker: -1, computeMs: 0, payloadBytes: bytes.byteLength, decodeMs: performance.now() - started } };
  }
  return {
    result: { loss: r.loss, penalty: r.penalty, tokens: r.tokens, grad: r.grad, finalStates: r.finalStates },
    info: { worker: r.worker, computeMs: r.computeMs, payloadBytes: bytes.byteLength, decodeMs: performance.now() - started },
  };
}

/** Shared gradient memory for the local replicas, lent per attempt and recycled by step (see above). */
export class GradSlots {
  /** Each slot with the step whose gradient it holds (−1: none). */
  private readonly slots: (GradSlot & { step: number; lent: boolean })[] = [];
  private nextId = 0;

  constructor(
    private readonly paramCount: number,
    /** Told when a slot is dropped (the threads forget it). */
    private readonly onDrop: (id: number) => void = () => {},
  ) {}

  /** A slot for an attempt of `step`: one no attempt holds and no result of `step` uses, else a new one. */
  take(step: number): GradSlot & { step: number; lent: boolean } {
    let slot = this.slots.find((s) => !s.lent && s.step !== step);
    if (!slot) {
      slot = { id: this.nextId++, buffer: new SharedArrayBuffer(this.paramCount * 4), step: -1, lent: false };
      this.slots.push(slot);
    }
    slot.lent = true;
    slot.step = step;
    return slot;
  }

  /** The attempt is done and its result (if any) reads the slot until another step takes it. */
  settle(slot: { lent: boolean }): void {
    slot.lent = false;
  }

  /** A failed attempt's slot: forgotten, so that nothing reads or lends it again. */
  drop(slot: GradSlot): void {
    const i = this.slots.indexOf(slot as (typeof this.slots)[number]);
    if (i >= 0) this.slots.splice(i, 1);
    this.onDrop(slot.id);
  }

  get count(): number {
    return this.slots.length;
  }
}

export class PoolExecutor implements ShardExecutor {
  /** The threads' speed (one key, 'local': they share this machine's cores alike). */
  readonly speeds = new SpeedBook();
  private readonly pool: ReplicaPool;
  private readonly scheduler: Scheduler;
  private readonly slots: GradSlots;
  /** Attempts on this pool's threads not yet settled (some may be of a step already over). */
  private inFlight = 0;

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
    this.slots = new GradSlots(layout.size, (id) => this.pool.forgetSlot(id));
    this.scheduler = new Scheduler({
      maxAttempts: opts.maxAttempts,
      // The threads keep the step timeout themselves (each task's AbortSignal), and a
      // local shard always finds a thread in the end.
      attemptDeadlineMs: Infinity,
      waitMs: Infinity,
      onFailure: (reason, task, message) => this.opts.onFailure?.(reason, task, message),
      onSplit: (kind, task, into) => this.opts.onSplit?.(kind, task, into),
      dispatcher: {
        // One attempt per idle thread: a task waits in the scheduler's queue, not Piscina's, so
        // an attempt's start is when it starts computing (what a straggler is measured from).
        place: () => (this.idleThreads > 0 ? { kind: 'local' } : null),
        start: (a) => this.startAttempt(a, this.scheduler),
        release: () => {},
        idle: () => this.idleThreads,
        expectedMs: (a) => this.speeds.expectedMs('local', a.shard.task.shard.blocks?.length ?? 1),
      },
    });
  }

  get workers(): number {
    return this.pool.threads;
  }

  slotKeys(): string[] {
    return new Array<string>(this.workers).fill('local');
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

  async run(tasks: ShardTask[], params: Float32Array, version: number, split?: TaskSplitter): Promise<ExecResult> {
    if (this.pool.publishedVersion !== version) this.publish(params, version);
    return this.scheduler.run(tasks, version, split);
  }

  /** Threads with no attempt on them (an attempt whose range was covered by others still holds its thread until it ends). */
  get idleThreads(): number {
    return Math.max(0, this.workers - this.inFlight);
  }

  /**
   * Run attempt `a` on a thread and tell `scheduler` (this pool's, or a RemoteExecutor's
   * that mixes local threads with remote workers) how it ended. `settled` runs first.
   * The weights of the task's version must be published.
   */
  startAttempt(a: Attempt, scheduler: Scheduler, settled?: () => void): void {
    this.inFlight += 1;
    this.attempt(a.shard.task, a.number).then(
      ({ result, info }) => {
        this.inFlight -= 1;
        settled?.();
        scheduler.accept(a.shard, result, info);
      },
      (e: unknown) => {
        this.inFlight -= 1;
        settled?.();
        const { reason, message } = classify(e);
        scheduler.failed(a, FailureCause.failed(reason), message);
      },
    );
  }

  /** Shared gradient slots allocated so far (they are recycled step after step). */
  get gradSlots(): number {
    return this.slots.count;
  }

  private async attempt(task: ShardTask, attempt: number): Promise<{ result: ChunkResult; info: ShardInfo }> {
    const { runId, layout } = this.opts;
    const bytes = encodeShardTask(shardTaskMsg(runId, task, attempt));
    const slot = this.slots.take(task.step);
    try {
      const out = await this.pool.run(bytes, AbortSignal.timeout(this.opts.stepTimeoutMs), slot);
      const done = decodeResultFor(new Uint8Array(out), runId, layout, task, new Float32Array(slot.buffer));
      this.slots.settle(slot);
      return done;
    } catch (e) {
      this.slots.drop(slot);
      throw e;
    }
  }

  abandon(reason: Error): void {
    this.scheduler.fail(reason);
  }

  async close(): Promise<void> {
    this.scheduler.close();
    await this.pool.close();
  }
}

/** A failed local attempt's reason, by the error's class and code. */
export function classify(e: unknown): { reason: FailureReason; message: string } {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof ProtocolError) return { reason: 'protocol', message };
  if (e instanceof ReplicaError) {
    if (e.code === 'timeout') return { reason: 'timeout', message: `no result within the step timeout (${message})` };
    return { reason: e.code, message };
  }
  return { reason: 'error', message };
}
