// Failures are classified by what the error carries, never by its text: NATS request
// errors by class, a refused ShardResult by ProtocolError.code, a remote worker's error
// by the Chunk's failure field, a local thread's by ReplicaError.code.

import { errors } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { classify, decodeResultFor } from '../../coordinator/pool.js';
import type { ShardTask } from '../../coordinator/trainer.js';
import { buildLayout } from '../../model/params.js';
import { resolveModelConfig } from '../../model/config.js';
import { decodeChunk, decodeShardResult, encodeChunk, encodeShardResult, ProtocolError } from '../../proto/codec.js';
import { requestFailure } from '../../proto/nats.js';
import type { ChunkMsg } from '../../proto/types.js';
import { ReplicaError } from '../../worker/pool.js';

describe('requestFailure: NATS request errors by class', () => {
  it.each([
    ['a RequestError caused by NoRespondersError', new errors.RequestError('503', { cause: new errors.NoRespondersError('p.run.r.shard') }), 'no-responders'],
    ['a NoRespondersError', new errors.NoRespondersError('p.run.r.shard'), 'no-responders'],
    ['a TimeoutError', new errors.TimeoutError(), 'timeout'],
    ['a ClosedConnectionError', new errors.ClosedConnectionError(), 'disconnected'],
    ['a DrainingConnectionError', new errors.DrainingConnectionError(), 'disconnected'],
    ['a RequestError with another cause', new errors.RequestError('cancelled'), 'other'],
    ['a plain Error that only says "no responders, timeout"', new Error('no responders, timeout'), 'other'],
  ])('%s', (_what, e, kind) => {
    expect(requestFailure(e)).toBe(kind);
  });
});

describe('ProtocolError.code', () => {
  const expect7 = { runId: 'run-1', step: 7, shard: 2, version: 8, paramCount: 3, stateSize: 0, tokens: 4 };
  const result = (over: object) => encodeShardResult({
    runId: 'run-1', step: 7, shard: 2, version: 8, loss: 1, penalty: 0, tokens: 4, grad: new Float32Array(3), finalStates: new Float32Array(0), computeMs: 1, worker: 1, ...over,
  });
  const codeOf = (bytes: Uint8Array) => {
    try {
      decodeShardResult(bytes, expect7);
    } catch (e) {
      return (e as ProtocolError).code;
    }
    return 'accepted';
  };
  it('is nonfinite for a NaN loss or an infinite penalty, malformed for anything else', () => {
    expect([codeOf(result({ loss: NaN })), codeOf(result({ penalty: Infinity })), codeOf(result({ step: 6 })), codeOf(result({})), codeOf(new Uint8Array([255, 255]))])
      .toEqual(['nonfinite', 'nonfinite', 'malformed', 'accepted', 'malformed']);
  });
  it('decodeResultFor turns a non-finite loss into a NaN result (the step is skipped, not retried) and throws the rest', () => {
    const layout = buildLayout(resolveModelConfig({ cell: 'rnn', layers: 1, hidden: 2, embed: 2 }), 3);
    const task = { step: 1, version: 2, T: 2, shard: { index: 0, first: 0, count: 1 }, states: new Float32Array(2) } as unknown as ShardTask;
    const msg = { runId: 'r', step: 1, shard: 0, version: 2, loss: NaN, penalty: 0, tokens: 2, grad: new Float32Array(layout.size), finalStates: new Float32Array(2), computeMs: 1, worker: 3 };
    const nan = decodeResultFor(encodeShardResult(msg), 'r', layout, task);
    expect([Number.isNaN(nan.result.loss), nan.info.worker]).toEqual([true, -1]);
    expect(() => decodeResultFor(encodeShardResult({ ...msg, loss: 1, version: 9 }), 'r', layout, task)).toThrow(/version is 9, expected 2/);
  });
});

describe('Chunk.failure: what kind of error a remote worker reports', () => {
  const chunk = (over: Partial<ChunkMsg>): ChunkMsg => ({ runId: 'r', key: 'r.1.0.1.0', index: 0, count: 0, totalBytes: 0, offset: 0, data: new Uint8Array(0), error: 'boom', ...over });
  it('round trips crash and error', () => {
    expect(decodeChunk(encodeChunk(chunk({ failure: 'crash' }))).failure).toBe('crash');
    expect(decodeChunk(encodeChunk(chunk({ failure: 'error' }))).failure).toBe('error');
  });
  it('is error when a worker names none, and absent without an error', () => {
    expect(decodeChunk(encodeChunk(chunk({}))).failure).toBe('error');
    expect(decodeChunk(encodeChunk(chunk({ error: '', count: 1, totalBytes: 0 }))).failure).toBeUndefined();
  });
  it('rejects an unknown kind', () => {
    expect(() => decodeChunk(encodeChunk(chunk({ failure: 'meltdown' as 'crash' })))).toThrow('Chunk "r.1.0.1.0" 0/0: failure is "meltdown", expected one of crash, error');
  });
  it('rejects a kind without an error', () => {
    expect(() => decodeChunk(encodeChunk(chunk({ error: '', count: 1, failure: 'crash' })))).toThrow('Chunk "r.1.0.1.0" 0/1: failure is crash but error is empty');
  });
});

describe('classify: a local attempt by its error', () => {
  it.each([
    [new ReplicaError('timeout', 'The task has been aborted'), 'timeout', 'no result within the step timeout (The task has been aborted)'],
    [new ReplicaError('crash', 'worker exited with code: 70'), 'crash', 'worker exited with code: 70'],
    [new ReplicaError('error', 'injected fault, worker exited, terminated, aborted'), 'error', 'injected fault, worker exited, terminated, aborted'],
    [new ProtocolError('ShardResult: grad has 3 values'), 'protocol', 'ShardResult: grad has 3 values'],
    [new Error('worker exited with code: 1'), 'error', 'worker exited with code: 1'],
  ])('%s', (e, reason, message) => {
    expect(classify(e)).toEqual({ reason, message });
  });
});
