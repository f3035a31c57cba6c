// The scheduler's contract, types only (and the failure causes' constructors): what a
// shard and an attempt are, where an attempt can run (Place), what a transport provides
// (Dispatcher), the clock, and the events a step reports. coordinator/scheduler.ts
// implements the step; coordinator/pool.ts and coordinator/remote.ts are its transports.

import type { ChunkResult } from '../model/chunk.js';
import type { FailureReason, SplitKind } from '../dashboard/view.js';
import type { ShardTask } from './trainer.js';

export type { FailureReason, SplitKind };

export interface ShardInfo {
  worker: number | string;
  computeMs: number;
  payloadBytes: number;
  decodeMs: number;
}

/** Milliseconds and timers: performance.now() and setTimeout in a run, a fake in tests. */
export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(timer: unknown): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

/** Why an attempt ended without a result; built by the constructors of FailureCause below. */
export interface FailureCause {
  reason: FailureReason;
  /** Against the shard's attempts: maxAttempts of them fail the step. */
  counts: boolean;
  /** Reported through onFailure (not when no worker was ever there to fail). */
  report: boolean;
}

export const FailureCause = {
  /** The shard ran and failed: it threw, its thread died, its result was bad, it missed its deadline. */
  failed: (reason: FailureReason): FailureCause => ({ reason, counts: true, report: true }),
  /** The task did not reach a worker, or its answer cannot come back (no acknowledgement, a refusal, a reconnect). */
  unreachable: (): FailureCause => ({ reason: 'unavailable', counts: false, report: true }),
  /** The worker that held the shard is gone (silent, no responders on its subject): not the shard's fault. */
  workerGone: (): FailureCause => ({ reason: 'crash', counts: false, report: true }),
  /** Nobody in the queue group: the run waits for workers; not a failure of anything. */
  nobodyThere: (): FailureCause => ({ reason: 'unavailable', counts: false, report: false }),
};

/** Where an attempt runs: a local thread, one known remote worker, or whoever of the queue group takes it. */
export type Place = { kind: 'local' } | { kind: 'worker'; id: string } | { kind: 'group' };

/** A running task gets backups (its halves) once it has run this many times its predicted time… */
export const STRAGGLER_FACTOR = 2;
/** …and at least this long (ms): the jitter of short tasks on a busy machine never triggers backups. */
export const STRAGGLER_FLOOR_MS = 500;

/** One open shard of the current step: one of its tasks, or a half of one. */
export interface Shard {
  readonly task: ShardTask;
  readonly index: number;
  /** The shard this one is a half of (absent: one of the step's tasks). */
  readonly parent?: Shard;
  /** Its two halves, once split; then its range is covered by its own result or by both of theirs. */
  halves?: [Shard, Shard];
  /** Its own result, when it covered its range itself. */
  result?: { result: ChunkResult; info: ShardInfo };
  /** Attempts issued so far (the next attempt's number). */
  issued: number;
  /** Attempts that ended in a failure that counts. */
  failures: number;
  readonly live: Set<Attempt>;
  queued: boolean;
  /** Since when it waits for a worker (reset when a worker had it). */
  waitingSince: number;
  done: boolean;
}

export interface Attempt {
  readonly shard: Shard;
  readonly number: number;
  /** Worker id ('local' for a local thread), or null while a queue-group request is unacknowledged. */
  worker: string | null;
  readonly local: boolean;
  /** When it was started (the clock's ms). */
  readonly startedAt: number;
  timer?: unknown;
}

/** The transport side: where shards can go, and how an attempt starts and frees its slot. */
export interface Dispatcher {
  /** Where the next queued shard can run now; null when nowhere yet. */
  place(): Place | null;
  /** Send an attempt on its way; its end comes back through accept() or failed(). */
  start(a: Attempt): void;
  /** The attempt is no longer tracked: its slot is free. */
  release(a: Attempt): void;
  /** When nowhere is free: ms until place() may find room with no event in between (a blocked queue group). */
  retryInMs?(): number;
  /** The end of the message of a step whose shard no worker took for waitMs. */
  noWorkerReason?(): string;
  /** A step is over (result or failure): drop what was kept for it. */
  stepEnded?(step: number): void;
  /** Attempts that could start now without waiting (idle threads); absent: 0, so no task is ever split. */
  idle?(): number;
  /** The predicted compute time of the attempt's task where it runs (from measured speeds); undefined: unknown. */
  expectedMs?(a: Attempt): number | undefined;
}

export interface SchedulerEvents {
  /** A shard attempt failed and will be retried (or the step fails after maxAttempts). */
  onFailure?(reason: FailureReason, task: ShardTask, message: string): void;
  /** A result arrived for a shard that already had one, or for a finished step. */
  onDuplicate?(step: number, shard: number): void;
  /** A step found no worker at all; it keeps trying. */
  onWaiting?(step: number): void;
  /** A task was split into `into` (aligned ranges that cover it), issued as shards of their own. */
  onSplit?(kind: SplitKind, task: ShardTask, into: ShardTask[]): void;
}

export interface SchedulerOptions extends SchedulerEvents {
  dispatcher: Dispatcher;
  clock?: Clock;
  /** Failures that count (see FailureCause) before the step fails. */
  maxAttempts: number;
  /** Deadline of one attempt that is not local (local threads enforce their own). */
  attemptDeadlineMs: number;
  /** A shard that no worker takes for this long fails the step (Infinity: never). */
  waitMs: number;
}
