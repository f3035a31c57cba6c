// Splitting a straggler's task (coordinator/scheduler.ts) with fake workers and a fake
// clock in milliseconds: a task of several blocks re-issued while places are idle goes out
// as its aligned halves, a task running far past its predicted time gets its halves as
// backups, and whichever covers the range first — the whole or both halves — wins; the
// step resolves with the partition that covered it.

import { describe, expect, it } from 'vitest';
import type { ChunkResult } from '../../model/chunk.js';
import {
  type Attempt, type Dispatcher, FailureCause, Scheduler, type ShardInfo, type SplitKind, STRAGGLER_FACTOR, STRAGGLER_FLOOR_MS,
} from '../../coordinator/scheduler.js';
import { halvesOf, planShards, type ShardSpec, tasksOf } from '../../coordinator/shards.js';
import type { ExecResult, ShardTask, TaskSplitter } from '../../coordinator/trainer.js';
import { FakeClock } from '../helpers/fake-clock.js';

const taskOf = (shard: ShardSpec): ShardTask => ({ step: 0, version: 0, T: 4, shard, states: new Float32Array(0) }) as unknown as ShardTask;
const result = (loss: number): ChunkResult => ({ loss, penalty: 0, tokens: 4, grad: new Float32Array(1), finalStates: new Float32Array(0) });

interface Options {
  /** Remote workers: id → threads. */
  workers: Record<string, number>;
  /** Measured ms per block of each worker (absent: nothing measured). */
  msPerBlock?: Record<string, number>;
  /** Without a splitter the scheduler never splits (an old run's sequential math). */
  noSplit?: boolean;
}

/** A scheduler over fake workers whose tasks are the given aligned ranges of blocks (2 streams each); every attempt started is recorded. */
function harness(o: Options, ranges: { lo: number; width: number }[]) {
  const K = Math.max(...ranges.map((r) => r.lo + r.width));
  const blocks = planShards(2 * K, K);
  const split: TaskSplitter = (t, indices) => {
    const h = halvesOf(blocks, t.shard, indices);
    return h && [taskOf(h[0]), taskOf(h[1])];
  };
  const clock = new FakeClock();
  const inFlight = new Map<string, number>();
  const started: Attempt[] = [];
  const splits: { kind: SplitKind; shard: number; into: [number, number][] }[] = [];
  const failures: number[] = [];
  const duplicates: number[] = [];
  const free = (id: string) => o.workers[id] - (inFlight.get(id) ?? 0);
  const dispatcher: Dispatcher = {
    place: () => {
      const id = Object.keys(o.workers).find((w) => free(w) > 0);
      return id ? { kind: 'worker', id } : null;
    },
    start(a) {
      started.push(a);
      inFlight.set(a.worker!, (inFlight.get(a.worker!) ?? 0) + 1);
    },
    release: (a) => void inFlight.set(a.worker!, inFlight.get(a.worker!)! - 1),
    idle: () => Object.keys(o.workers).reduce((n, w) => n + free(w), 0),
    expectedMs: (a) => (o.msPerBlock ? o.msPerBlock[a.worker!] * (a.shard.task.shard.blocks?.length ?? 1) : undefined),
  };
  const scheduler = new Scheduler({
    dispatcher, clock, maxAttempts: 3, attemptDeadlineMs: 60_000, waitMs: Infinity,
    onFailure: (_reason, t) => failures.push(t.shard.index),
    onDuplicate: (_step, shard) => duplicates.push(shard),
    onSplit: (kind, t, into) => splits.push({ kind, shard: t.shard.index, into: into.map((x) => [x.shard.firstBlock!, x.shard.blocks!.length]) }),
  });
  let outcome: { ok: ExecResult } | { error: Error } | undefined;
  const tasks = tasksOf(blocks, ranges).map(taskOf);
  scheduler.run(tasks, 0, o.noSplit ? undefined : split).then((ok) => (outcome = { ok }), (error: Error) => (outcome = { error }));
  /** The live attempt of shard `index` (its newest). */
  const live = (index: number) => started.filter((a) => a.shard.index === index && scheduler.isLive(a)).at(-1);
  /** What a shard's attempt runs: [first block, blocks, worker]. */
  const what = (a: Attempt) => [a.shard.task.shard.firstBlock, a.shard.task.shard.blocks!.length, a.worker];
  /** Deliver a result the way the NATS glue does: claim, then accept or count a duplicate. */
  const deliver = (shard: number, attempt: number, loss: number) => {
    const c = scheduler.claim(0, 0, shard, attempt);
    if (!c) scheduler.discard(0, shard);
    else scheduler.accept(c.shard, result(loss), { worker: c.attempt?.worker ?? '?', computeMs: 1, payloadBytes: 10, decodeMs: 0 } satisfies ShardInfo);
  };
  const settle = async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
    return outcome;
  };
  /** The resolved step: each covering task as [first block, blocks, loss]. */
  const covered = async () => {
    const out = (await settle()) as { ok: ExecResult } | undefined;
    expect(out?.ok, 'the step resolved').toBeDefined();
    return out!.ok.partition!.map((t, k) => [t.firstBlock, t.blocks!.length, out!.ok.results[k].loss]);
  };
  return { clock, scheduler, started, splits, failures, duplicates, live, what, deliver, settle, covered, inFlight };
}

describe('split on re-issue', () => {
  it('a failed 4-block task with 2 free workers is re-issued as its two halves, and the step is reduced over them', async () => {
    const h = harness({ workers: { a: 1, b: 1 } }, [{ lo: 0, width: 4 }]);
    expect(h.started.map(h.what)).toEqual([[0, 4, 'a']]);
    h.scheduler.failed(h.live(0)!, FailureCause.failed('crash'), 'thread died');
    expect(h.splits).toEqual([{ kind: 'reissue', shard: 0, into: [[0, 2], [2, 2]] }]);
    // The halves are shards 1 and 2 of the step, on the two free workers.
    expect(h.started.slice(1).map((a) => [a.shard.index, ...h.what(a)])).toEqual([[1, 0, 2, 'a'], [2, 2, 2, 'b']]);
    h.deliver(2, 0, 22);
    expect(await h.settle()).toBeUndefined();
    h.deliver(1, 0, 11);
    expect(await h.covered()).toEqual([[0, 2, 11], [2, 2, 22]]);
    // The whole task's first attempt is not live any more: a result of it now is a late duplicate.
    h.deliver(0, 0, 99);
    expect(h.duplicates).toEqual([0]);
  });

  it('more free workers split further (largest range first, down to single blocks); one free worker gets the whole task again', async () => {
    const four = harness({ workers: { a: 1, b: 1, c: 1 } }, [{ lo: 0, width: 4 }]);
    four.scheduler.failed(four.live(0)!, FailureCause.failed('error'), 'boom');
    expect(four.splits).toEqual([{ kind: 'reissue', shard: 0, into: [[0, 1], [1, 1], [2, 2]] }]);
    expect(four.started.slice(1).map(four.what)).toEqual([[0, 1, 'a'], [1, 1, 'b'], [2, 2, 'c']]);
    for (const a of four.started.slice(1)) four.deliver(a.shard.index, 0, a.shard.index);
    expect(await four.covered()).toEqual([[0, 1, 3], [1, 1, 4], [2, 2, 2]]);

    const one = harness({ workers: { a: 1 } }, [{ lo: 0, width: 4 }]);
    one.scheduler.failed(one.live(0)!, FailureCause.failed('error'), 'boom');
    expect(one.splits).toEqual([]);
    expect(one.started.map((a) => [a.shard.index, a.number])).toEqual([[0, 0], [0, 1]]);
  });

  it('never splits a one-block task, nor without a splitter (the sequential math of old runs)', async () => {
    const single = harness({ workers: { a: 1, b: 1 } }, [{ lo: 0, width: 1 }, ...[1, 2, 3, 4, 5, 6, 7].map((lo) => ({ lo, width: 1 }))]);
    single.scheduler.failed(single.live(0)!, FailureCause.failed('error'), 'boom');
    const off = harness({ workers: { a: 1, b: 1 }, noSplit: true }, [{ lo: 0, width: 8 }]);
    off.scheduler.failed(off.live(0)!, FailureCause.failed('error'), 'boom');
    expect([single.splits, off.splits]).toEqual([[], []]);
    expect(off.started.map((a) => [a.shard.index, a.number])).toEqual([[0, 0], [0, 1]]);
  });

  it("a range's failures stay with its halves: a task that fails every time still fails the step after maxAttempts", async () => {
    const h = harness({ workers: { a: 1, b: 1 } }, [{ lo: 0, width: 2 }]);
    h.scheduler.failed(h.live(0)!, FailureCause.failed('error'), 'boom 1'); // → halves 1 and 2
    h.scheduler.failed(h.live(1)!, FailureCause.failed('error'), 'boom 2');
    h.scheduler.failed(h.live(1)!, FailureCause.failed('error'), 'boom 3');
    const out = (await h.settle()) as { error: Error };
    expect(out.error.message).toBe('shard 1 of step 1 failed 3 times; last: boom 3');
  });
});

describe('speculative split of a straggler', () => {
  // Two tasks of 4 blocks on a and b, measured at 10 ms a block (40 ms predicted); c is idle.
  const straggling = () => harness({ workers: { a: 1, b: 1, c: 1 }, msPerBlock: { a: 10, b: 10, c: 10 } }, [{ lo: 0, width: 4 }, { lo: 4, width: 4 }]);

  it("backs up a task running past max(2 × predicted, the floor) with its halves on the idle workers; the halves win", async () => {
    const h = straggling();
    expect(h.started.map(h.what)).toEqual([[0, 4, 'a'], [4, 4, 'b']]);
    h.clock.advance(40);
    h.deliver(0, 0, 0);
    h.clock.advance(STRAGGLER_FLOOR_MS - 41); // 1 ms before the floor: nothing yet
    expect(h.splits).toEqual([]);
    h.clock.advance(1);
    expect(h.splits).toEqual([{ kind: 'speculative', shard: 1, into: [[4, 2], [6, 2]] }]);
    // The halves run on the idle workers; b's attempt of the whole is still live beside them.
    expect(h.started.slice(2).map((a) => [a.shard.index, ...h.what(a)])).toEqual([[2, 4, 2, 'a'], [3, 6, 2, 'c']]);
    expect(h.live(1)?.worker).toBe('b');
    h.clock.advance(30);
    h.deliver(3, 0, 3);
    h.deliver(2, 0, 2);
    expect(await h.covered()).toEqual([[0, 4, 0], [4, 2, 2], [6, 2, 3]]);
    // How long b had run on the range when the halves covered it (the trainer feeds a remote worker's to its speed).
    const out = (await h.settle()) as { ok: ExecResult };
    expect(out.ok.overdue).toEqual([{ worker: 'b', local: false, blocks: 4, elapsedMs: STRAGGLER_FLOOR_MS + 30 }]);
    // The straggler's whole result, when it comes, is discarded.
    h.deliver(1, 0, 1);
    expect(h.duplicates).toEqual([1]);
    expect(h.failures).toEqual([]);
  });

  it("the straggler's whole winning after the backups were issued covers the range: the halves are dropped and their results discarded", async () => {
    const h = straggling();
    h.deliver(0, 0, 0);
    h.clock.advance(STRAGGLER_FLOOR_MS);
    expect(h.started.slice(2).map(h.what)).toEqual([[4, 2, 'a'], [6, 2, 'c']]);
    h.deliver(2, 0, 2); // one half is in
    h.deliver(1, 0, 1); // then the whole: it covers [4, 8) first
    expect(await h.covered()).toEqual([[0, 4, 0], [4, 4, 1]]);
    expect(((await h.settle()) as { ok: ExecResult }).ok.overdue).toEqual([]);
    expect(h.started.slice(2).map((a) => h.scheduler.isLive(a))).toEqual([false, false]);
    expect([...h.inFlight.values()]).toEqual([0, 0, 0]); // every slot released
    h.deliver(3, 0, 3);
    expect(h.duplicates).toEqual([3]);
  });

  it('a half failing is re-issued on its own; the whole failing leaves the range to its halves', async () => {
    const h = straggling();
    h.deliver(0, 0, 0);
    h.clock.advance(STRAGGLER_FLOOR_MS);
    h.scheduler.failed(h.live(3)!, FailureCause.failed('error'), 'half failed');
    expect(h.failures).toEqual([3]);
    expect(h.live(3)!.number).toBe(1); // the half again (one idle worker: not split further)
    h.scheduler.failed(h.live(1)!, FailureCause.workerGone(), 'b is gone');
    expect(h.failures).toEqual([3, 1]);
    expect(h.started.filter((a) => a.shard.index === 1)).toHaveLength(1); // not re-issued: the halves cover it
    h.deliver(2, 0, 2);
    h.deliver(3, 1, 3);
    expect(await h.covered()).toEqual([[0, 4, 0], [4, 2, 2], [6, 2, 3]]);
  });

  it('waits for STRAGGLER_FACTOR × the prediction when that is past the floor; never speculates with nothing measured, nor while tasks wait for a place', async () => {
    const slow = harness({ workers: { a: 1, b: 1, c: 1 }, msPerBlock: { a: 100, b: 100, c: 100 } }, [{ lo: 0, width: 4 }, { lo: 4, width: 4 }]);
    slow.deliver(0, 0, 0);
    slow.clock.advance(STRAGGLER_FACTOR * 400 - 1);
    expect(slow.splits).toEqual([]);
    slow.clock.advance(1);
    expect(slow.splits.map((s) => s.shard)).toEqual([1]);

    const unmeasured = harness({ workers: { a: 1, b: 1, c: 1 } }, [{ lo: 0, width: 4 }, { lo: 4, width: 4 }]);
    unmeasured.deliver(0, 0, 0);
    unmeasured.clock.advance(60_000 - 1);
    expect(unmeasured.splits).toEqual([]);

    // One worker, two tasks: the second waits for a place, so the first is not backed up.
    const queued = harness({ workers: { a: 1 }, msPerBlock: { a: 10 } }, [{ lo: 0, width: 4 }, { lo: 4, width: 4 }]);
    queued.clock.advance(10_000);
    expect(queued.splits).toEqual([]);
  });

  it('halves of a straggler can straggle too: they are backed up in turn, and the step is covered by single blocks', async () => {
    const h = harness({ workers: { a: 1, b: 1, c: 1 }, msPerBlock: { a: 10, b: 10, c: 10 } }, [{ lo: 0, width: 4 }]);
    h.clock.advance(STRAGGLER_FLOOR_MS); // a's whole task straggles while b and c are idle
    expect(h.splits).toEqual([{ kind: 'speculative', shard: 0, into: [[0, 2], [2, 2]] }]);
    expect(h.started.slice(1).map(h.what)).toEqual([[0, 2, 'b'], [2, 2, 'c']]);
    h.deliver(2, 0, 2); // c's half [2, 4) is in; b's half [0, 2) straggles while c is idle
    h.clock.advance(STRAGGLER_FLOOR_MS);
    // One idle worker: still two halves, the second waits for a place.
    expect(h.splits[1]).toEqual({ kind: 'speculative', shard: 1, into: [[0, 1], [1, 1]] });
    expect(h.started.slice(3).map(h.what)).toEqual([[0, 1, 'c']]);
    h.deliver(3, 0, 3);
    expect(h.started.slice(4).map(h.what)).toEqual([[1, 1, 'c']]);
    h.deliver(4, 0, 4);
    expect(await h.covered()).toEqual([[0, 1, 3], [1, 1, 4], [2, 2, 2]]);
    expect(h.started.filter((a) => h.scheduler.isLive(a))).toEqual([]); // a's and b's attempts dropped
  });
});
