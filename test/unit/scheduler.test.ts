// The scheduler (coordinator/scheduler.ts) driven by fake workers and a fake clock in
// milliseconds: the first result wins, a failure re-issues its shard (counted or not by
// its cause), deadlines fire, and a step fails with the message that names why.

import { describe, expect, it } from 'vitest';
import type { ChunkResult } from '../../model/chunk.js';
import {
  type Attempt, type Dispatcher, FailureCause, type FailureReason, type Place, Scheduler, type ShardInfo, SWEEP_MS,
} from '../../coordinator/scheduler.js';
import type { ExecResult, ShardTask } from '../../coordinator/trainer.js';
import { FakeClock } from '../helpers/fake-clock.js';

const task = (step: number, index: number): ShardTask =>
  ({ step, version: step, T: 4, shard: { index, first: index, count: 1 }, states: new Float32Array(0) }) as unknown as ShardTask;
const result = (loss: number): ChunkResult => ({ loss, penalty: 0, tokens: 4, grad: new Float32Array(1), finalStates: new Float32Array(0) });
const info = (worker: string): ShardInfo => ({ worker, computeMs: 1, payloadBytes: 10, decodeMs: 0.5 });

interface Options {
  /** Remote workers: id → threads. */
  workers?: Record<string, number>;
  /** A queue group that takes one request at a time when no worker is known. */
  group?: boolean;
  local?: number;
  maxAttempts?: number;
  waitMs?: number;
  deadlineMs?: number;
}

/** A scheduler over fake places: every attempt started is recorded for the test to answer. */
function harness(o: Options = {}) {
  const clock = new FakeClock();
  const workers = new Map(Object.entries(o.workers ?? {}));
  const inFlight = new Map<string, number>();
  const started: Attempt[] = [];
  const failures: { reason: FailureReason; shard: number; message: string }[] = [];
  const duplicates: [number, number][] = [];
  const waiting: number[] = [];
  let localBusy = 0;
  let groupBusy = 0;
  const dispatcher: Dispatcher = {
    place(): Place | null {
      if (localBusy < (o.local ?? 0)) return { kind: 'local' };
      for (const [id, threads] of workers) if ((inFlight.get(id) ?? 0) < threads) return { kind: 'worker', id };
      if (o.group && groupBusy === 0) return { kind: 'group' };
      return null;
    },
    start(a) {
      started.push(a);
      if (a.local) localBusy += 1;
      else if (a.worker === null) groupBusy += 1;
      else inFlight.set(a.worker, (inFlight.get(a.worker) ?? 0) + 1);
    },
    release(a) {
      if (a.local) localBusy -= 1;
      else if (a.worker === null) groupBusy -= 1;
      else inFlight.set(a.worker, inFlight.get(a.worker)! - 1);
    },
    noWorkerReason: () => 'nobody here',
  };
  const scheduler = new Scheduler({
    dispatcher,
    clock,
    maxAttempts: o.maxAttempts ?? 3,
    attemptDeadlineMs: o.deadlineMs ?? 10_000,
    waitMs: o.waitMs ?? Infinity,
    onFailure: (reason, t, message) => failures.push({ reason, shard: t.shard.index, message }),
    onDuplicate: (step, shard) => duplicates.push([step, shard]),
    onWaiting: (step) => waiting.push(step),
  });
  let outcome: { ok: ExecResult } | { error: Error } | undefined;
  const run = (step: number, shards: number) => {
    outcome = undefined;
    scheduler.run(Array.from({ length: shards }, (_, k) => task(step, k)), step).then((ok) => (outcome = { ok }), (error: Error) => (outcome = { error }));
  };
  /** Live attempts of a shard, oldest first. */
  const live = (shard: number) => started.filter((a) => a.shard.index === shard && scheduler.isLive(a));
  /** Deliver a result the way the NATS glue does: claim, then accept or count a duplicate. */
  const deliver = (step: number, shard: number, attempt: number, loss: number) => {
    const c = scheduler.claim(step, step, shard, attempt);
    if (!c) scheduler.discard(step, shard);
    else scheduler.accept(c.shard, result(loss), info(c.attempt?.worker ?? '?'));
  };
  const settle = async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
    return outcome;
  };
  return { clock, scheduler, started, failures, duplicates, waiting, run, live, deliver, settle, workers, options: o };
}

describe('Scheduler', () => {
  it('hands every shard to a free place and resolves with the results in shard order', async () => {
    const h = harness({ workers: { a: 1, b: 2 } });
    h.run(0, 3);
    expect(h.started.map((a) => [a.shard.index, a.worker, a.number])).toEqual([[0, 'a', 0], [1, 'b', 0], [2, 'b', 0]]);
    h.deliver(0, 2, 0, 2);
    h.deliver(0, 0, 0, 0);
    expect(await h.settle()).toBeUndefined();
    h.deliver(0, 1, 0, 1);
    const out = (await h.settle()) as { ok: ExecResult };
    expect(out.ok.results.map((r) => r.loss)).toEqual([0, 1, 2]);
    expect(out.ok.shards.map((s) => s.worker)).toEqual(['a', 'b', 'b']);
    expect(out.ok.decodeMs).toBe(1.5);
  });

  it('hands the largest tasks out first (unequal tasks after a partition by speed), results still in task order', async () => {
    const h = harness({ workers: { a: 1 } });
    const sized = (index: number, blocks: number): ShardTask =>
      ({ ...task(0, index), shard: { index, first: index, count: blocks, firstBlock: index, blocks: new Array(blocks).fill(1) } }) as ShardTask;
    let out: ExecResult | undefined;
    void h.scheduler.run([sized(0, 1), sized(1, 4), sized(2, 2), sized(3, 1)], 0).then((r) => (out = r));
    for (const expected of [1, 2, 0, 3]) {
      expect(h.started.at(-1)!.shard.index).toBe(expected);
      h.deliver(0, expected, 0, expected);
    }
    await h.settle();
    expect(out!.results.map((r) => r.loss)).toEqual([0, 1, 2, 3]);
  });

  it('queues what finds no place and starts it when a place frees up', async () => {
    const h = harness({ workers: { a: 1 } });
    h.run(0, 2);
    expect(h.started).toHaveLength(1);
    h.deliver(0, 0, 0, 0);
    expect(h.started.map((a) => a.shard.index)).toEqual([0, 1]);
    h.deliver(0, 1, 0, 1);
    expect(((await h.settle()) as { ok: ExecResult }).ok.results).toHaveLength(2);
  });

  it('first result wins: a later one for the same shard, and any for a finished step, is counted and discarded', async () => {
    const h = harness({ workers: { a: 2 }, deadlineMs: 500 });
    h.run(0, 2);
    h.clock.advance(500); // both attempts miss their deadline: re-issued as attempt 1
    expect(h.started.map((a) => [a.shard.index, a.number])).toEqual([[0, 0], [1, 0], [0, 1], [1, 1]]);
    h.deliver(0, 0, 0, 10); // the late attempt 0 still wins its shard (no attempt of it is live)
    h.deliver(0, 0, 1, 11); // attempt 1's result is a duplicate
    h.deliver(0, 1, 1, 21);
    h.deliver(0, 1, 0, 20); // a duplicate after the step is over
    const out = (await h.settle()) as { ok: ExecResult };
    expect(out.ok.results.map((r) => r.loss)).toEqual([10, 21]);
    expect(out.ok.shards.map((s) => s.worker)).toEqual(['?', 'a']);
    expect(h.duplicates).toEqual([[0, 0], [0, 1]]);
    expect(h.scheduler.duplicates).toBe(2);
  });

  it('a missed deadline counts against the attempts and names the worker, or the queue group before any took it', async () => {
    const h = harness({ group: true, deadlineMs: 1_500, maxAttempts: 2 });
    h.run(4, 1);
    h.clock.advance(1_500);
    expect(h.failures).toEqual([{ reason: 'timeout', shard: 0, message: 'no result from the queue group within the step timeout (1.5 s)' }]);
    h.started[1].worker = 'w-7'; // acknowledged by w-7
    h.clock.advance(1_500);
    expect(h.failures[1].message).toBe('no result from w-7 within the step timeout (1.5 s)');
    const out = (await h.settle()) as { error: Error };
    expect(out.error.name).toBe('TrainingError');
    expect(out.error.message).toBe('shard 0 of step 5 failed 2 times; last: no result from w-7 within the step timeout (1.5 s)');
  });

  it('maxAttempts failures that count fail the step with the last message; fewer re-issue the shard', async () => {
    const h = harness({ workers: { a: 1, b: 1 }, maxAttempts: 3 });
    h.run(0, 2);
    h.scheduler.failed(h.live(1)[0], FailureCause.failed('error'), 'boom 1');
    h.scheduler.failed(h.live(1)[0], FailureCause.failed('crash'), 'boom 2');
    expect(await h.settle()).toBeUndefined();
    expect(h.live(1).map((a) => a.number)).toEqual([2]);
    h.scheduler.failed(h.live(1)[0], FailureCause.failed('protocol'), 'boom 3');
    const out = (await h.settle()) as { error: Error };
    expect(out.error.message).toBe('shard 1 of step 1 failed 3 times; last: boom 3');
    expect(h.failures.map((f) => [f.reason, f.shard])).toEqual([['error', 1], ['crash', 1], ['protocol', 1]]);
    // Nothing is tracked once the step failed: a late result changes nothing.
    expect(h.scheduler.claim(0, 0, 0, 0)).toBeNull();
  });

  it('failures that do not count (a lost worker, an unreachable one) re-issue the shard without using up its attempts', async () => {
    const h = harness({ workers: { a: 1 }, maxAttempts: 1 });
    h.run(0, 1);
    for (let i = 0; i < 5; i++) {
      h.scheduler.failed(h.live(0)[0], i % 2 ? FailureCause.workerGone() : FailureCause.unreachable(), `lost ${i}`);
    }
    expect(h.failures.map((f) => f.reason)).toEqual(['unavailable', 'crash', 'unavailable', 'crash', 'unavailable']);
    h.deliver(0, 0, 5, 1);
    expect(((await h.settle()) as { ok: ExecResult }).ok.results[0].loss).toBe(1);
  });

  it('re-issues every remote attempt in flight on a reconnect and leaves local ones alone', async () => {
    const h = harness({ local: 1, workers: { a: 1 }, group: true });
    h.run(0, 3);
    expect(h.started.map((a) => [a.worker, a.local])).toEqual([['local', true], ['a', false], [null, false]]);
    // What RemoteExecutor does on a 'reconnect' status:
    for (const a of h.scheduler.attempts((x) => !x.local)) h.scheduler.failed(a, FailureCause.unreachable(), 'reconnected');
    expect(h.failures.map((f) => [f.reason, f.shard])).toEqual([['unavailable', 1], ['unavailable', 2]]);
    expect(h.started.slice(3).map((a) => [a.shard.index, a.number, a.worker])).toEqual([[1, 1, 'a'], [2, 1, null]]);
    expect(h.live(0).map((a) => a.number)).toEqual([0]);
  });

  it('a shard that no place takes for waitMs fails the step with a message naming it and why', async () => {
    const h = harness({ waitMs: 3_000 });
    h.run(6, 2);
    h.clock.advance(3_000);
    expect(await h.settle()).toBeUndefined();
    h.clock.advance(SWEEP_MS);
    const out = (await h.settle()) as { error: Error };
    expect(out.error.name).toBe('TrainingError');
    expect(out.error.message).toBe('no worker took shard 0 of step 7 for 3 s: nobody here');
  });

  it('the wait restarts when a worker had the shard, but not after transport trouble before any took it', async () => {
    const h = harness({ workers: { a: 1 }, waitMs: 1_000 });
    h.run(0, 1);
    h.clock.advance(900);
    h.workers.delete('a');
    h.scheduler.failed(h.live(0)[0], FailureCause.workerGone(), 'a is gone');
    h.clock.advance(900); // 1.8 s since the start, 0.9 s since a worker had it
    expect(await h.settle()).toBeUndefined();
    const g = harness({ group: true, waitMs: 1_000 });
    g.run(0, 1);
    g.clock.advance(900);
    g.options.group = false; // what a "no responders" does to the real queue group: a pause
    g.scheduler.failed(g.live(0)[0], FailureCause.nobodyThere(), 'no responders');
    expect(g.failures).toEqual([]); // nobody there is not a failure
    g.scheduler.waiting();
    g.scheduler.waiting();
    expect(g.waiting).toEqual([0]);
    g.clock.advance(300);
    expect(((await g.settle()) as { error: Error }).error.message).toMatch(/^no worker took shard 0 of step 1 for 1 s/);
  });

  it('offers queued shards again on a timer when the dispatcher names when room may come', async () => {
    let open = false;
    const started: Attempt[] = [];
    const clock = new FakeClock();
    const s = new Scheduler({
      clock, maxAttempts: 1, attemptDeadlineMs: Infinity, waitMs: Infinity,
      dispatcher: { place: () => (open ? { kind: 'group' } : null), start: (a) => started.push(a), release: () => {}, retryInMs: () => 250 },
    });
    s.run([task(0, 0)], 0).catch(() => {}); // closed at the end
    clock.advance(249);
    open = true;
    expect(started).toHaveLength(0);
    clock.advance(1);
    expect(started).toHaveLength(1);
    s.close();
  });

  it('close() fails the running step and refuses new ones', async () => {
    const h = harness({ workers: { a: 1 } });
    h.run(0, 1);
    h.scheduler.close();
    expect(((await h.settle()) as { error: Error }).error.message).toBe('the executor was closed');
    h.run(1, 1);
    expect(((await h.settle()) as { error: Error }).error.message).toBe('the executor was closed');
  });
});
