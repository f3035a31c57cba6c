// One step's shards over attempts, with no transport in it: which shard goes next, to
// where (the dispatcher decides), its re-issue after a failure, the first result wins,
// the per-attempt deadline, the deadline for a shard that no worker takes, and the
// attempt accounting that fails a step. Time comes from an injected Clock.
//
//   run(tasks) ─▶ queue ─ pump: dispatcher.place() ─▶ attempt ─ dispatcher.start(a)
//                   ▲                                       │
//                   └── requeue ◀── failed(a, cause) ◀───────┤ (a cause that counts: p.failures += 1,
//                        (or its halves, when places        │  maxAttempts of them fail the step)
//                         are idle: split on re-issue)      │
//                       accept(shard, result) ◀─────────────┘ first one wins; later ones are duplicates
//
// A task of several blocks can be split into its two aligned halves, each a shard of its
// own (a new index after the step's tasks): when it is re-issued and more than one place is
// idle, and — as backups, beside the attempt still running — when it runs far longer than
// predicted while places are idle and nothing waits (a straggler). A shard's range is
// covered by its own result or by both halves' ranges; the first cover wins and anything
// later for the range is discarded. The step resolves with the tasks that covered it
// (ExecResult.partition): any aligned partition reduces to the same bits (shards.ts).

import type { ChunkResult } from '../model/chunk.js';
import {
  type Attempt, type Clock, FailureCause, type Place, type SchedulerOptions, type Shard, type ShardInfo, type SplitKind,
  STRAGGLER_FACTOR, STRAGGLER_FLOOR_MS, systemClock,
} from './dispatch.js';
import type { ShardSpec } from './shards.js';
import { type ExecResult, type ShardTask, type TaskSplitter, TrainingError } from './trainer.js';

// The contract's names, for the transports and tests that import them from here.
export * from './dispatch.js';

interface StepRun {
  step: number;
  version: number;
  /** Every shard by index: the step's tasks first, then halves in the order they were made. */
  shards: Shard[];
  /** The step's tasks (shards[0..n)). */
  roots: Shard[];
  queue: Shard[];
  /** Makes a task's halves (absent: tasks are never split). */
  split?: TaskSplitter;
  /** Tasks whose range is not covered yet. */
  left: number;
  /** Attempts still running when their range was covered by its halves (stragglers). */
  overdue: NonNullable<ExecResult['overdue']>;
  resolve(r: ExecResult): void;
  reject(e: Error): void;
  /** onWaiting was called for this step. */
  waitingReported: boolean;
}

/** The blocks a task covers. */
function blocksOf(task: ShardTask): number {
  return task.shard.blocks?.length ?? 1;
}

/** How often the wait deadline is checked and queued shards offered again. */
export const SWEEP_MS = 200;

export class Scheduler {
  private readonly clock: Clock;
  private current: StepRun | null = null;
  private pumpTimer: unknown = null;
  private sweepTimer: unknown = null;
  private stragglerTimer: unknown = null;
  private closed = false;
  /** Results discarded as duplicates or late. */
  duplicates = 0;

  constructor(private readonly opts: SchedulerOptions) {
    this.clock = opts.clock ?? systemClock;
  }

  /**
   * The results of the tasks that covered the step (in block order, with that partition),
   * or a TrainingError when a shard failed too often or found no worker. With `split`
   * a task of several blocks may be split (see the top of this file).
   */
  run(tasks: ShardTask[], version: number, split?: TaskSplitter): Promise<ExecResult> {
    return new Promise<ExecResult>((resolve, reject) => {
      if (this.closed) return reject(new Error('the executor was closed'));
      const now = this.clock.now();
      const shards: Shard[] = tasks.map((task, index) => ({ task, index, issued: 0, failures: 0, live: new Set(), queued: true, waitingSince: now, done: false }));
      const s: StepRun = {
        step: tasks[0]?.step ?? -1,
        version,
        shards,
        roots: [...shards],
        // Largest first: with tasks of unequal size the big ones start at once (speeds.ts).
        queue: [...shards].sort((a, b) => blocksOf(b.task) - blocksOf(a.task)),
        split,
        left: tasks.length,
        overdue: [],
        resolve,
        reject,
        waitingReported: false,
      };
      this.current = s;
      if (tasks.length === 0) return this.finish(s);
      if (Number.isFinite(this.opts.waitMs)) this.armSweep();
      this.pump();
    });
  }

  /** Hand queued shards to wherever the dispatcher finds room. */
  pump(): void {
    const s = this.current;
    if (!s || this.closed) return;
    while (s.queue.length > 0 && s === this.current) {
      const place = this.opts.dispatcher.place();
      if (!place) break;
      const p = s.queue.shift()!;
      p.queued = false;
      this.issue(p, place);
    }
    if (s === this.current) this.watchStragglers(s);
    if (s === this.current && s.queue.length > 0 && this.pumpTimer === null) {
      this.pumpTimer = this.clock.setTimer(() => {
        this.pumpTimer = null;
        this.pump();
      }, Math.max(20, this.opts.dispatcher.retryInMs?.() ?? 0));
    }
  }

  private issue(p: Shard, place: Place): void {
    const a: Attempt = {
      shard: p,
      number: p.issued++,
      worker: place.kind === 'local' ? 'local' : place.kind === 'worker' ? place.id : null,
      local: place.kind === 'local',
      startedAt: this.clock.now(),
    };
    p.live.add(a);
    const ms = this.opts.attemptDeadlineMs;
    if (!a.local && Number.isFinite(ms)) {
      a.timer = this.clock.setTimer(
        () => this.failed(a, FailureCause.failed('timeout'), `no result from ${a.worker ?? 'the queue group'} within the step timeout (${ms / 1000} s)`),
        ms,
      );
    }
    this.opts.dispatcher.start(a);
  }

  /** The attempt ended without a result. A cause that counts fails the step at maxAttempts; else the shard is queued again. */
  failed(a: Attempt, cause: FailureCause, message: string): void {
    const p = a.shard;
    const s = this.current;
    if (!s || p.done || !p.live.has(a) || s.shards[p.index] !== p) return;
    p.live.delete(a);
    this.untrack(a);
    if (cause.report) this.opts.onFailure?.(cause.reason, p.task, message);
    if (cause.counts) p.failures += 1;
    if (p.halves) {
      // Backed up by its halves: they cover the range; this attempt is simply gone.
      this.pump();
      return;
    }
    if (cause.counts && p.failures >= this.opts.maxAttempts) {
      this.fail(new TrainingError(`shard ${p.index} of step ${p.task.step + 1} failed ${p.failures} times; last: ${message}`));
      return;
    }
    const idle = this.opts.dispatcher.idle?.() ?? 0;
    if (p.live.size === 0 && !p.queued && idle > 1 && this.splitInto(s, p, idle, 'reissue')) {
      this.pump();
      return;
    }
    // Transport trouble before any worker took the shard keeps its wait for a worker running.
    this.requeue(s, p, cause.reason !== 'unavailable');
    this.pump();
  }

  /** The shard's result; the first cover of a range wins, and the step resolves when every task's range is covered. */
  accept(p: Shard, result: ChunkResult, info: ShardInfo): void {
    const s = this.current;
    if (!s || p.done || s.shards[p.index] !== p) return;
    p.result = { result, info };
    this.cover(s, p);
    if (s.left === 0) this.finish(s);
    else this.pump();
  }

  /** The shard's range is covered: nothing in it is needed any more; its parent may be covered now too. */
  private cover(s: StepRun, p: Shard): void {
    if (!p.result) {
      const now = this.clock.now();
      for (const a of p.live) s.overdue.push({ worker: a.worker ?? '?', local: a.local, blocks: blocksOf(p.task), elapsedMs: now - a.startedAt });
    }
    this.closeRange(s, p);
    const parent = p.parent;
    if (!parent) s.left -= 1;
    else if (!parent.done && parent.halves!.every((h) => h.done)) this.cover(s, parent);
  }

  /** Stop tracking a shard and what lies below it: attempts untracked (a late result is discarded), out of the queue. */
  private closeRange(s: StepRun, p: Shard): void {
    p.done = true;
    for (const a of p.live) this.untrack(a);
    p.live.clear();
    if (p.queued) {
      p.queued = false;
      s.queue.splice(s.queue.indexOf(p), 1);
    }
    for (const h of p.halves ?? []) if (!h.done) this.closeRange(s, h);
  }

  /**
   * Split `p` into aligned ranges, at least two and up to `pieces` (largest first, down to
   * single blocks), each a new shard, queued. False when it cannot be split (one block, no splitter).
   */
  private splitInto(s: StepRun, p: Shard, pieces: number, kind: SplitKind): boolean {
    if (!s.split || blocksOf(p.task) < 2) return false;
    const leaves = [p];
    while (leaves.length < Math.max(2, pieces)) {
      let at = -1;
      leaves.forEach((l, i) => {
        if (blocksOf(l.task) > 1 && (at < 0 || blocksOf(l.task) > blocksOf(leaves[at].task))) at = i;
      });
      if (at < 0) break;
      const leaf = leaves[at];
      const tasks = s.split(leaf.task, [s.shards.length, s.shards.length + 1]);
      if (!tasks) break;
      const now = this.clock.now();
      const halves = tasks.map((task): Shard => ({
        task, index: task.shard.index, parent: leaf, issued: 0,
        // A range's failures stay with its halves: a task failing every time still fails the step.
        failures: leaf.failures, live: new Set(), queued: false, waitingSince: now, done: false,
      })) as [Shard, Shard];
      halves.forEach((h, k) => {
        if (h.index !== s.shards.length) throw new Error(`the splitter gave half ${k} of shard ${leaf.index} index ${h.index}, expected ${s.shards.length}`);
        s.shards.push(h);
      });
      leaf.halves = halves;
      leaves.splice(at, 1, ...halves);
    }
    if (leaves.length === 1) return false;
    for (const l of leaves) {
      l.queued = true;
      s.queue.push(l);
    }
    this.opts.onSplit?.(kind, p.task, leaves.map((l) => l.task));
    return true;
  }

  /**
   * Back up stragglers: when nothing waits for a place and some place is idle, a running
   * task of several blocks that has taken STRAGGLER_FACTOR × its predicted time (and at
   * least STRAGGLER_FLOOR_MS) is split, its halves queued beside the attempt still running.
   * Otherwise a timer is set for the moment the first running task would qualify.
   */
  private watchStragglers(s: StepRun): void {
    if (this.stragglerTimer !== null) this.clock.clearTimer(this.stragglerTimer);
    this.stragglerTimer = null;
    const { dispatcher } = this.opts;
    if (!s.split || !dispatcher.expectedMs || s.queue.length > 0 || (dispatcher.idle?.() ?? 0) < 1) return;
    const now = this.clock.now();
    let next = Infinity;
    for (const p of s.shards) {
      if (p.done || p.halves || p.live.size === 0 || blocksOf(p.task) < 2) continue;
      const first = [...p.live].reduce((x, y) => (y.startedAt < x.startedAt ? y : x));
      const expected = dispatcher.expectedMs(first);
      if (expected === undefined) continue;
      const due = first.startedAt + Math.max(STRAGGLER_FACTOR * expected, STRAGGLER_FLOOR_MS);
      if (due <= now) {
        if (this.splitInto(s, p, dispatcher.idle?.() ?? 0, 'speculative')) return this.pump();
      } else next = Math.min(next, due);
    }
    if (Number.isFinite(next)) {
      this.stragglerTimer = this.clock.setTimer(() => {
        this.stragglerTimer = null;
        if (this.current === s) this.watchStragglers(s);
      }, next - now);
    }
  }

  /**
   * The open shard a result for (step, version, shard, attempt) belongs to, with its
   * attempt when that is still live (a re-issued shard takes the first result of any
   * of its attempts). null: the shard already has one or the step is over (a duplicate).
   */
  claim(step: number, version: number, shard: number, attempt: number): { shard: Shard; attempt: Attempt | undefined } | null {
    const s = this.current;
    const p = s && s.step === step && s.version === version ? s.shards[shard] : undefined;
    if (!p || p.done) return null;
    return { shard: p, attempt: [...p.live].find((a) => a.number === attempt) };
  }

  /** Count and report a result that came for a shard that had one, or for a finished step. */
  discard(step: number, shard: number): void {
    this.duplicates += 1;
    this.opts.onDuplicate?.(step, shard);
  }

  /** Is the attempt still tracked (not failed, not superseded by a result)? */
  isLive(a: Attempt): boolean {
    return a.shard.live.has(a) && !a.shard.done && this.current?.shards[a.shard.index] === a.shard;
  }

  /** The live attempts of the current step that match. */
  attempts(match: (a: Attempt) => boolean): Attempt[] {
    const out: Attempt[] = [];
    for (const p of this.current?.shards ?? []) for (const a of p.live) if (match(a)) out.push(a);
    return out;
  }

  /** The current step found no worker at all: onWaiting, once per step. */
  waiting(): void {
    const s = this.current;
    if (!s || s.waitingReported) return;
    s.waitingReported = true;
    this.opts.onWaiting?.(s.step);
  }

  /** Fail the current step (if any) with `error`. */
  fail(error: Error): void {
    const s = this.current;
    if (!s) return;
    this.end(s);
    s.reject(error);
  }

  close(): void {
    this.fail(new Error('the executor was closed'));
    this.closed = true;
  }

  private finish(s: StepRun): void {
    this.end(s);
    // The shards that covered the step, in block order: a task's own result, else its halves'.
    const covering = (p: Shard): Shard[] => (p.result ? [p] : p.halves!.flatMap(covering));
    const used = s.roots.flatMap(covering);
    let decodeMs = 0;
    for (const p of used) decodeMs += p.result!.info.decodeMs;
    s.resolve({
      results: used.map((p) => p.result!.result),
      decodeMs,
      shards: used.map((p) => ({ worker: p.result!.info.worker, computeMs: p.result!.info.computeMs, payloadBytes: p.result!.info.payloadBytes })),
      partition: used.map((p): ShardSpec => p.task.shard),
      overdue: s.overdue,
    });
  }

  private end(s: StepRun): void {
    this.current = null;
    for (const p of s.shards) for (const a of p.live) this.untrack(a);
    for (const t of [this.pumpTimer, this.sweepTimer, this.stragglerTimer]) if (t !== null) this.clock.clearTimer(t);
    this.pumpTimer = this.sweepTimer = this.stragglerTimer = null;
    this.opts.dispatcher.stepEnded?.(s.step);
  }

  /** Stop tracking an attempt: its deadline goes, its slot is free. */
  private untrack(a: Attempt): void {
    if (a.timer !== undefined) this.clock.clearTimer(a.timer);
    a.timer = undefined;
    this.opts.dispatcher.release(a);
  }

  /** Put a shard back in the queue; `taken`: a worker had it, so its wait for a worker starts again. */
  private requeue(s: StepRun, p: Shard, taken: boolean): void {
    if (p.done || p.queued) return;
    p.queued = true;
    if (taken) p.waitingSince = this.clock.now();
    s.queue.push(p);
    s.queue.sort((x, y) => x.index - y.index);
  }

  private armSweep(): void {
    this.sweepTimer = this.clock.setTimer(() => {
      this.sweepTimer = null;
      this.sweep();
      if (this.current && this.sweepTimer === null) this.armSweep();
    }, SWEEP_MS);
  }

  /** Fail the step when a queued shard has waited for a worker longer than waitMs; else offer the queue again. */
  private sweep(): void {
    const s = this.current;
    if (!s) return;
    const now = this.clock.now();
    const { waitMs } = this.opts;
    const stuck = s.queue.find((p) => now - p.waitingSince > waitMs);
    if (stuck) {
      const why = this.opts.dispatcher.noWorkerReason?.() ?? 'no worker has a free thread';
      this.fail(new TrainingError(`no worker took shard ${stuck.index} of step ${stuck.task.step + 1} for ${Math.round(waitMs / 1000)} s: ${why}`));
      return;
    }
    if (s.queue.length > 0) this.pump();
  }
}
