// Chunk-stream keys (proto/keys.ts): every key built parses back to its parts, and
// anything not exactly one of the three forms is refused.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseChunkKey, resultKey, taskKey, weightsKey } from '../../proto/keys.js';

const n = fc.nat({ max: Number.MAX_SAFE_INTEGER });

describe('chunk keys', () => {
  it('spell the three forms', () => {
    expect([weightsKey(12), taskKey(3, 1, 0), resultKey(3, 1, 12, 2)]).toEqual(['w.12', 't.3.1.0', 'r.3.1.12.2']);
  });
  it('round trip: weights, task and result keys parse back to their parts', () => {
    fc.assert(fc.property(n, n, n, n, (step, shard, version, attempt) => {
      expect(parseChunkKey(weightsKey(version))).toEqual({ kind: 'weights', version });
      expect(parseChunkKey(taskKey(step, shard, attempt))).toEqual({ kind: 'task', step, shard, attempt });
      expect(parseChunkKey(resultKey(step, shard, version, attempt))).toEqual({ kind: 'result', step, shard, version, attempt });
    }));
  });
  it.each([
    ['', 'empty'], ['w', 'no fields'], ['w.', 'an empty field'], ['w.1.2', 'too many fields for w'], ['t.1.2', 'too few fields for t'],
    ['r.1.2.3', 'too few fields for r'], ['r.1.2.3.4.5', 'too many fields for r'], ['x.1', 'an unknown kind'], ['W.1', 'an upper-case kind'],
    ['w.-1', 'a sign'], ['w.+1', 'a plus sign'], ['w.1e3', 'an exponent'], ['w.1.5', 'a fraction (two fields)'], ['w.01', 'a leading zero'],
    ['w. 1', 'a space'], ['w.0x1', 'hex'], ['w.9007199254740993', 'past 2^53'], ['r.1.2.3.4 ', 'a trailing space'], ['r..2.3.4', 'an empty field inside'],
  ])('refuses %j (%s)', (key) => {
    expect(parseChunkKey(key)).toBeNull();
  });
});
