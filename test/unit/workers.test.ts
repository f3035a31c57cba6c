// The worker registry (coordinator/workers.ts) on a fake clock: heartbeats make workers
// known, a lapse or a refusal takes them away, and with the scheduler a lapsed worker's
// shards are re-issued elsewhere while a refusing worker is never asked again.

import { describe, expect, it } from 'vitest';
import { type Attempt, FailureCause, Scheduler } from '../../coordinator/scheduler.js';
import type { ShardTask } from '../../coordinator/trainer.js';
import { type RemoteWorker, WorkerRegistry } from '../../coordinator/workers.js';
import type { HeartbeatMsg } from '../../proto/types.js';
import { FakeClock } from '../helpers/fake-clock.js';

const hb = (worker: string, threads = 2, over: Partial<HeartbeatMsg> = {}): HeartbeatMsg =>
  ({ worker, threads, busy: 0, runs: [], host: `host-${worker}`, pid: 7, onlyRun: '', ...over });

function registry(lapseMs = 3_000) {
  const clock = new FakeClock();
  const changes: [string, boolean, string?][] = [];
  const reg = new WorkerRegistry({
    runId: 'run-1', heartbeatLapseMs: lapseMs, sweepMs: 200, clock,
    onWorkerChange: (w: RemoteWorker, joined, reason) => changes.push(reason === undefined ? [w.id, joined] : [w.id, joined, reason]),
  });
  return { clock, reg, changes };
}

describe('WorkerRegistry', () => {
  it('a first heartbeat makes a worker known (true: offer it work), later ones refresh it', () => {
    const { reg, changes, clock } = registry();
    expect(reg.heartbeat(hb('a', 2))).toBe(true);
    clock.advance(500);
    expect(reg.heartbeat(hb('a', 4, { host: 'h2', pid: 9 }))).toBe(false);
    expect(reg.list()).toEqual([{ id: 'a', threads: 4, host: 'h2', pid: 9, inFlight: 0, lastSeen: 500 }]);
    expect(reg.threads).toBe(4);
    expect(changes).toEqual([['a', true]]);
  });

  it('ignores workers that serve another run only; a heartbeat with 0 threads says goodbye', () => {
    const { reg, changes } = registry();
    expect(reg.heartbeat(hb('other', 2, { onlyRun: 'run-2' }))).toBe(false);
    expect(reg.heartbeat(hb('mine', 2, { onlyRun: 'run-1' }))).toBe(true);
    reg.heartbeat(hb('mine', 0));
    expect(reg.size).toBe(0);
    expect(changes).toEqual([['mine', true], ['mine', false, 'it is shutting down']]);
  });

  it('picks the worker with the most free threads, and none when all are busy', () => {
    const { reg } = registry();
    reg.heartbeat(hb('a', 2));
    reg.heartbeat(hb('b', 3));
    expect(reg.pick()?.id).toBe('b');
    reg.count('b', 1);
    reg.count('b', 1);
    expect(reg.pick()?.id).toBe('a');
    reg.count('a', 1);
    reg.count('a', 1);
    reg.count('b', 1);
    expect(reg.pick()).toBeNull();
    reg.count('b', -1);
    expect(reg.pick()?.id).toBe('b');
  });

  it('with measured speeds, picks the fastest worker that has a free thread (free threads break ties)', () => {
    const { reg } = registry();
    reg.heartbeat(hb('slow', 4));
    reg.heartbeat(hb('fast', 1));
    reg.heartbeat(hb('fast2', 2));
    const time = (id: string) => ({ slow: 30, fast: 10, fast2: 10 })[id]!;
    expect(reg.pick()?.id).toBe('slow'); // no speeds: the most free threads
    expect(reg.pick(time)?.id).toBe('fast2'); // as fast as 'fast', more free threads
    reg.count('fast2', 1);
    reg.count('fast2', 1);
    expect(reg.pick(time)?.id).toBe('fast');
    reg.count('fast', 1);
    expect(reg.pick(time)?.id).toBe('slow');
  });

  it('a refusing worker is dropped, remembered in the message, and its heartbeats ignored from then on', () => {
    const { reg, changes } = registry();
    reg.heartbeat(hb('a'));
    expect(reg.refused('a', 'this worker serves run x only, not run-1')).toBe('worker a refused the task: this worker serves run x only, not run-1');
    expect(reg.lastRefusal).toBe('worker a refused the task: this worker serves run x only, not run-1');
    expect(reg.heartbeat(hb('a'))).toBe(false);
    expect(reg.size).toBe(0);
    expect(changes).toEqual([['a', true], ['a', false, 'it refused a task: this worker serves run x only, not run-1']]);
  });

  it('a worker silent for longer than the lapse is reported with how long', () => {
    const { reg, clock } = registry(3_000);
    reg.heartbeat(hb('a'));
    reg.heartbeat(hb('b'));
    for (let t = 0; t < 3_000; t += 200) {
      clock.advance(200);
      reg.heartbeat(hb('b'));
      expect(reg.lapsed()).toEqual([]);
    }
    clock.advance(200);
    expect(reg.lapsed()).toEqual([{ id: 'a', why: 'no heartbeat for 3.2 s' }]);
  });

  it('after a long gap between sweeps (this thread was busy), silence counts from now, not against the workers', () => {
    const { reg, clock } = registry(3_000);
    reg.heartbeat(hb('a'));
    clock.advance(10_000);
    expect(reg.lapsed()).toEqual([]); // taken as last heard one sweep (0.2 s) ago
    for (let t = 200; t < 3_000; t += 200) {
      clock.advance(200);
      expect(reg.lapsed()).toEqual([]);
    }
    clock.advance(200);
    expect(reg.lapsed()).toEqual([{ id: 'a', why: 'no heartbeat for 3.2 s' }]);
  });

  it('ensure() tracks a worker known only from its acknowledgement', () => {
    const { reg, changes } = registry();
    const w = reg.ensure('quiet');
    expect([w.threads, w.host, reg.ensure('quiet') === w]).toEqual([1, '?', true]);
    expect(changes).toEqual([['quiet', true]]);
  });
});

describe('WorkerRegistry with the Scheduler', () => {
  const task = (index: number) => ({ step: 0, version: 0, T: 1, shard: { index, first: index, count: 1 }, states: new Float32Array(0) }) as unknown as ShardTask;

  /** The registry as the scheduler's places, the way RemoteExecutor wires them. */
  function wired(maxAttempts: number) {
    const { clock, reg } = registry(3_000);
    const started: Attempt[] = [];
    const failures: string[] = [];
    const scheduler = new Scheduler({
      clock, maxAttempts, attemptDeadlineMs: 60_000, waitMs: Infinity,
      onFailure: (reason, _t, message) => failures.push(`${reason}: ${message}`),
      dispatcher: {
        place: () => {
          const w = reg.pick();
          return w ? { kind: 'worker', id: w.id } : null;
        },
        start: (a) => {
          started.push(a);
          reg.count(a.worker!, 1);
        },
        release: (a) => reg.count(a.worker!, -1),
      },
    });
    const dropWorker = (id: string, why: string) => {
      if (!reg.remove(id, why)) return;
      for (const a of scheduler.attempts((x) => x.worker === id)) scheduler.failed(a, FailureCause.workerGone(), `worker ${id} is gone (${why})`);
    };
    return { clock, reg, scheduler, started, failures, dropWorker };
  }

  it('re-issues the shards of a worker whose heartbeats lapsed on another worker, without counting them', async () => {
    const h = wired(1);
    h.reg.heartbeat(hb('a', 2));
    let done: unknown;
    h.scheduler.run([task(0), task(1)], 0).then((r) => (done = r));
    expect(h.started.map((x) => x.worker)).toEqual(['a', 'a']);
    h.reg.heartbeat(hb('b', 2));
    for (let t = 0; t < 3_200; t += 200) {
      h.clock.advance(200);
      h.reg.heartbeat(hb('b', 2));
      for (const { id, why } of h.reg.lapsed()) h.dropWorker(id, why);
    }
    expect(h.failures).toEqual(['crash: worker a is gone (no heartbeat for 3.2 s)', 'crash: worker a is gone (no heartbeat for 3.2 s)']);
    expect(h.started.slice(2).map((x) => [x.shard.index, x.number, x.worker])).toEqual([[0, 1, 'b'], [1, 1, 'b']]);
    for (const a of h.started.slice(2)) h.scheduler.accept(a.shard, { loss: 1, penalty: 0, tokens: 1, grad: new Float32Array(0), finalStates: new Float32Array(0) }, { worker: 'b', computeMs: 0, payloadBytes: 0, decodeMs: 0 });
    await Promise.resolve();
    expect(done).toBeDefined();
  });

  it('a refusal re-issues the shard elsewhere without counting it, and the refusing worker is not asked again', () => {
    const h = wired(1);
    h.reg.heartbeat(hb('a', 1));
    h.scheduler.run([task(0)], 0).catch(() => {});
    const first = h.started[0];
    expect(first.worker).toBe('a');
    const message = h.reg.refused('a', 'this worker is shutting down');
    h.scheduler.failed(first, FailureCause.unreachable(), message);
    expect(h.started).toHaveLength(1); // nobody left to ask
    h.reg.heartbeat(hb('a', 1));
    h.scheduler.pump();
    expect(h.started).toHaveLength(1);
    h.reg.heartbeat(hb('b', 1));
    h.scheduler.pump();
    expect(h.started.map((x) => [x.worker, x.number])).toEqual([['a', 0], ['b', 1]]);
    expect(h.failures).toEqual(['unavailable: worker a refused the task: this worker is shutting down']);
    h.scheduler.close();
  });
});
