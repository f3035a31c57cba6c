// The test-only fault hooks (worker/faults.ts) in one thread: without GRADPOOL_FAULT the
// replica's task is the plain encode of its result and the host has no hook; with it,
// each thread-side fault changes exactly what it names. (crash and kill end the process:
// test/e2e/faults.test.ts and test/e2e/nats.test.ts cover them.)

import { describe, expect, it, vi } from 'vitest';
import { decodeShardResult, encodeShardResult, type ShardResultMsg, type ShardTaskMsg } from '../../proto/codec.js';
import { hostFaultHook, replicaTask } from '../../worker/faults.js';

const P = 6;

function task(attempt = 0, step = 2, shard = 1): ShardTaskMsg {
  return { runId: 'r', step, shard, version: 3, seqLen: 2, streams: 1, tokens: Int32Array.of(1, 2, 3), states: new Float32Array(0), attempt };
}

function compute(t: ShardTaskMsg): Promise<ShardResultMsg> {
  return Promise.resolve({
    runId: t.runId, step: t.step, shard: t.shard, version: t.version, loss: 4.5, penalty: 0, tokens: 2,
    grad: Float32Array.from({ length: P }, (_, i) => i / 8), finalStates: new Float32Array(0), computeMs: 1, worker: 1,
  });
}

const expectation = (t: ShardTaskMsg) => ({ runId: t.runId, step: t.step, shard: t.shard, version: t.version, paramCount: P, stateSize: 0, tokens: 2 });

describe('without GRADPOOL_FAULT', () => {
  it('the replica task is the encoded result, and the host has no hook', async () => {
    const run = replicaTask(compute, undefined);
    expect(await run(task())).toEqual(encodeShardResult(await compute(task())));
    expect(hostFaultHook(undefined)).toBeNull();
    expect(hostFaultHook('')).toBeNull();
  });
});

describe('with GRADPOOL_FAULT', () => {
  it('nan: the loss is NaN on every attempt (the codec refuses it)', async () => {
    const run = replicaTask(compute, 'nan:step=2,shard=1');
    for (const attempt of [0, 1]) await expect(run(task(attempt)).then((b) => decodeShardResult(b, expectation(task())))).rejects.toThrow(/non-finite loss at step 2 shard 1: NaN/);
  });
  it('short: the gradient is one value short on the first attempt only', async () => {
    const run = replicaTask(compute, 'short:step=2,shard=1');
    await expect(run(task(0)).then((b) => decodeShardResult(b, expectation(task())))).rejects.toThrow(/grad/);
    expect(decodeShardResult(await run(task(1)), expectation(task())).grad).toHaveLength(P);
  });
  it('short with a shared gradient slot: the result says one value fewer, and is refused', async () => {
    const run = replicaTask(compute, 'short:step=2,shard=1');
    const slot = new Float32Array(new SharedArrayBuffer(P * 4));
    await expect(run(task(0), slot).then((b) => decodeShardResult(b, { ...expectation(task()), gradSlot: slot }))).rejects.toThrow(/grad has 5 values in the shared slot, expected 6/);
  });
  it('malformed: the bytes are cut to a third', async () => {
    const whole = encodeShardResult(await compute(task()));
    expect(await replicaTask(compute, 'malformed:step=2,shard=1')(task())).toEqual(whole.subarray(0, Math.floor(whole.length / 3)));
  });
  it('throw: the task throws; other shards and retries run plainly', async () => {
    const run = replicaTask(compute, 'throw:step=2,shard=1;throw:step=9,shard=0');
    await expect(run(task())).rejects.toThrow('injected fault at step 2 shard 1');
    expect(await run(task(1))).toEqual(encodeShardResult(await compute(task(1))));
    expect(await run(task(0, 2, 0))).toEqual(encodeShardResult(await compute(task(0, 2, 0))));
  });
  it('late: the host hook holds a computed result 3 s; nothing when received', async () => {
    const hook = hostFaultHook('late:step=2,shard=1')!;
    vi.useFakeTimers();
    try {
      let done = '';
      void hook(task(), 'received').then(() => (done += 'received '));
      void hook(task(), 'computed').then(() => (done += 'computed'));
      await vi.advanceTimersByTimeAsync(2_999);
      expect(done).toBe('received ');
      await vi.advanceTimersByTimeAsync(1);
      expect(done).toBe('received computed');
    } finally {
      vi.useRealTimers();
    }
  });
  it('a spec that does not parse names the part and the kinds', () => {
    expect(() => replicaTask(compute, 'explode:step=1,shard=0')).toThrow(
      'GRADPOOL_FAULT: cannot parse "explode:step=1,shard=0"; expected KIND:step=N,shard=K with KIND one of crash, throw, hang, malformed, short, nan, kill, late');
  });
});
