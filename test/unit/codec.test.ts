// The wire codec (proto/codec.ts): round trips of every message, one test per rejection
// message, and a seeded fuzz loop (random bytes, mutations, truncations) showing that a
// bad message only ever raises ProtocolError.

import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../model/rng.js';
import {
  type CheckpointMsg,
  ProtocolError,
  type ShardResultMsg,
  type ShardTaskMsg,
  decodeCheckpoint,
  decodeShardResult,
  decodeShardTask,
  decodeWeights,
  encodeCheckpoint,
  encodeShardResult,
  encodeShardTask,
  encodeWeights,
  firstNonFinite,
} from '../../proto/codec.js';

const P = 37; // parameters
const S = 12; // state values (L·S·B·H)

function task(): ShardTaskMsg {
  const [T, B] = [5, 3];
  return {
    runId: 'run-1', step: 7, shard: 2, version: 8, seqLen: T, streams: B,
    tokens: Int32Array.from({ length: (T + 1) * B }, (_, i) => (i * 7919) % 65 - (i === 4 ? 2 ** 31 : 0)),
    states: Float32Array.from({ length: S }, (_, i) => Math.sin(i) * 3),
    attempt: 1,
  };
}

function result(): ShardResultMsg {
  return {
    runId: 'run-1', step: 7, shard: 2, version: 8, loss: 61.25, penalty: 0.125, tokens: 15,
    grad: Float32Array.from({ length: P }, (_, i) => Math.cos(i) * 1e-3),
    finalStates: Float32Array.from({ length: S }, (_, i) => -i / 7),
    computeMs: 12.5, worker: 3,
  };
}
const EXPECT = { runId: 'run-1', step: 7, shard: 2, version: 8, paramCount: P, stateSize: S, tokens: 15 };

function checkpoint(): CheckpointMsg {
  return {
    format: 3, runId: 'run-1', configJson: JSON.stringify({ cell: 'lstm', hidden: 4 }),
    vocab: ['a', 'b', '\n', 'é'], tokenKind: 'char', step: 200,
    params: Float32Array.from({ length: P }, (_, i) => (i === 0 ? -0 : i === 1 ? 1e-45 : Math.tan(i))),
    optimizer: { t: 200, m: new Float32Array(P).fill(0.5), v: new Float32Array(P).fill(0.25) },
    streamStates: Float32Array.from({ length: S }, (_, i) => i - 6),
    rngState: [1, 0xffffffff, 123456789, 0],
    tokensSeen: 2 ** 40 + 3, dataEpoch: 1, dataChunk: 42, shards: 4, backend: 'native (avx512)', reduction: 'tree',
  };
}

/** Bit-exact view of a float array, so that −0 and denormals count. */
const bits = (a: Float32Array | Int32Array) => Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));

/** Messages the codec's encoders refuse to write: encoded here with protobufjs directly. */
const rawRoot = protobuf.loadSync(fileURLToPath(new URL('../../proto/gradpool.proto', import.meta.url)));
function rawCheckpoint(overrides: Record<string, unknown>): Uint8Array {
  const c = checkpoint();
  const raw = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const msg = { ...c, params: raw(c.params), streamStates: raw(c.streamStates), optimizer: { t: 1, m: raw(c.optimizer.m), v: raw(c.optimizer.v) }, ...overrides };
  return rawRoot.lookupType('gradpool.Checkpoint').encode(msg).finish();
}

/** The same bytes starting at `shift` inside a larger buffer, so every bytes field moves off 4-byte alignment. */
function shifted(bytes: Uint8Array, shift: number): Uint8Array {
  const big = new Uint8Array(bytes.length + shift);
  big.set(bytes, shift);
  return big.subarray(shift);
}

describe('round trips', () => {
  it('ShardTask', () => {
    const m = task();
    const back = decodeShardTask(encodeShardTask(m), { stateSize: S });
    expect({ ...back, tokens: bits(back.tokens), states: bits(back.states) }).toEqual({ ...m, tokens: bits(m.tokens), states: bits(m.states) });
    expect(back.tokens).toBeInstanceOf(Int32Array);
  });

  it('ShardResult', () => {
    const m = result();
    const back = decodeShardResult(encodeShardResult(m), EXPECT);
    expect({ ...back, grad: bits(back.grad), finalStates: bits(back.finalStates) }).toEqual({ ...m, grad: bits(m.grad), finalStates: bits(m.finalStates) });
  });

  it('Weights', () => {
    const params = Float32Array.from({ length: P }, (_, i) => i * 0.1);
    const back = decodeWeights(encodeWeights({ runId: 'r', version: 9, params }), { paramCount: P });
    expect(back.runId).toBe('r');
    expect(back.version).toBe(9);
    expect(bits(back.params)).toEqual(bits(params));
  });

  it('Checkpoint, bit-exact, including −0, a denormal and a 2^40 token count', () => {
    const m = checkpoint();
    const back = decodeCheckpoint(encodeCheckpoint(m));
    const flat = (c: CheckpointMsg) => ({ ...c, params: bits(c.params), streamStates: bits(c.streamStates), optimizer: { t: c.optimizer.t, m: bits(c.optimizer.m), v: bits(c.optimizer.v) } });
    expect(flat(back)).toEqual(flat(m));
  });

  it('Checkpoint with SGD (empty moments) and zero-valued fields', () => {
    const m = { ...checkpoint(), step: 0, tokensSeen: 0, dataEpoch: 0, dataChunk: 0, optimizer: { t: 0, m: new Float32Array(0), v: new Float32Array(0) } };
    const back = decodeCheckpoint(encodeCheckpoint(m));
    expect(back.optimizer.m.length).toBe(0);
    expect(back.optimizer.v.length).toBe(0);
    expect([back.step, back.tokensSeen, back.dataEpoch]).toEqual([0, 0, 0]);
  });

  it('encodes only the subarray of a Float32Array with a nonzero byteOffset', () => {
    const backing = Float32Array.from({ length: P + 10 }, (_, i) => i + 0.5);
    const grad = backing.subarray(5, 5 + P);
    expect(grad.byteOffset).toBe(20);
    const back = decodeShardResult(encodeShardResult({ ...result(), grad }), EXPECT);
    expect(Array.from(back.grad)).toEqual(Array.from(grad));
  });

  it('decodes bytes fields that start at any offset into aligned copies', () => {
    const m = result();
    for (let shift = 0; shift < 4; shift++) {
      const back = decodeShardResult(shifted(encodeShardResult(m), shift), EXPECT);
      expect(back.grad.byteOffset).toBe(0);
      expect(back.grad.buffer.byteLength).toBe(P * 4); // its own buffer, not a view of the message
      expect(bits(back.grad)).toEqual(bits(m.grad));
      expect(bits(back.finalStates)).toEqual(bits(m.finalStates));
    }
  });

  it('returns encoded bytes that own their ArrayBuffer (safe to transfer)', () => {
    const bytes = encodeWeights({ runId: 'r', version: 1, params: new Float32Array(2) });
    expect(bytes.byteOffset).toBe(0);
    expect(bytes.buffer.byteLength).toBe(bytes.byteLength);
  });
});

describe('ShardResult with the gradient in a shared slot (local replicas)', () => {
  const inSlot = () => {
    const slot = new Float32Array(new SharedArrayBuffer(P * 4));
    const m = result();
    slot.set(m.grad);
    return { m: { ...m, grad: slot }, slot };
  };
  it('carries no gradient bytes, and decodes to the slot itself', () => {
    const { m, slot } = inSlot();
    const bytes = encodeShardResult(m, { gradInSlot: true });
    expect(bytes.byteLength).toBeLessThan(encodeShardResult(m).byteLength - P * 4 + 8);
    const back = decodeShardResult(bytes, { ...EXPECT, gradSlot: slot });
    expect(back.grad).toBe(slot);
    expect(bits(back.finalStates)).toEqual(bits(m.finalStates));
  });
  it('an inline gradient still decodes when the task gave a slot (the slot is not read)', () => {
    const { m, slot } = inSlot();
    const back = decodeShardResult(encodeShardResult(m), { ...EXPECT, gradSlot: slot });
    expect(back.grad).not.toBe(slot);
    expect(bits(back.grad)).toEqual(bits(m.grad));
  });
  it('is refused when the task gave no slot', () => {
    const { m } = inSlot();
    expect(() => decodeShardResult(encodeShardResult(m, { gradInSlot: true }), EXPECT)).toThrow(/step 7 shard 2: the gradient is said to be in a shared slot, but the task gave none/);
  });
  it('is refused when the worker wrote fewer values than the model has', () => {
    const { m, slot } = inSlot();
    const bytes = encodeShardResult({ ...m, grad: slot.subarray(0, P - 1) }, { gradInSlot: true });
    expect(() => decodeShardResult(bytes, { ...EXPECT, gradSlot: slot })).toThrow(/grad has 36 values in the shared slot, expected 37 \(the parameter count\)/);
  });
  it('is refused when the message also carries gradient bytes', () => {
    const { m, slot } = inSlot();
    const raw = rawRoot.lookupType('gradpool.ShardResult').encode({ ...m, grad: new Uint8Array(P * 4), finalStates: new Uint8Array(S * 4), gradInSlot: P }).finish();
    expect(() => decodeShardResult(raw, { ...EXPECT, gradSlot: slot })).toThrow(/the gradient is both in the message \(148 bytes\) and in the shared slot/);
  });
});

describe('ShardResult rejections', () => {
  const bad = (change: Partial<ShardResultMsg>, re: RegExp) => {
    const bytes = encodeShardResult({ ...result(), ...change });
    expect(() => decodeShardResult(bytes, EXPECT)).toThrow(ProtocolError);
    expect(() => decodeShardResult(bytes, EXPECT)).toThrow(re);
  };
  it('wrong run id', () => bad({ runId: 'run-0' }, /step 7 shard 2: runId is "run-0", expected "run-1"/));
  it('wrong step', () => bad({ step: 6 }, /step is 6, expected 7/));
  it('wrong shard id', () => bad({ shard: 3 }, /step 7 shard 2: shard is 3, expected 2/));
  it('wrong version', () => bad({ version: 7 }, /version is 7, expected 8/));
  it('wrong token count', () => bad({ tokens: 14 }, /tokens is 14, expected 15/));
  it('wrong gradient length', () => bad({ grad: new Float32Array(P - 1) }, /grad has 36 values, expected 37 \(the parameter count\)/));
  it('wrong final states length', () => bad({ finalStates: new Float32Array(S + 1) }, /finalStates has 13 values, expected 12/));
  it('non-finite loss', () => bad({ loss: NaN }, /non-finite loss at step 7 shard 2: NaN/));
  it('non-finite penalty', () => bad({ penalty: -Infinity }, /non-finite penalty at step 7 shard 2: -Infinity/));

  it('gradient bytes that are not a multiple of 4', () => {
    const raw = rawRoot.lookupType('gradpool.ShardResult').encode({ ...result(), grad: new Uint8Array(P * 4 - 1), finalStates: new Uint8Array(S * 4) }).finish();
    expect(() => decodeShardResult(raw, EXPECT)).toThrow(/grad has 147 bytes, not a multiple of 4/);
  });

  it('truncated bytes', () => {
    const bytes = encodeShardResult(result());
    expect(() => decodeShardResult(bytes.subarray(0, bytes.length - 10), EXPECT)).toThrow(/not a valid ShardResult message .*truncated or corrupt/);
  });

  it('random garbage bytes', () => {
    const garbage = Uint8Array.from({ length: 64 }, (_, i) => (i * 97 + 13) & 0xff);
    expect(() => decodeShardResult(garbage, EXPECT)).toThrow(ProtocolError);
  });

  it('accepts a non-finite gradient value, which firstNonFinite finds', () => {
    const grad = new Float32Array(P);
    grad[17] = Infinity;
    grad[30] = NaN;
    const back = decodeShardResult(encodeShardResult({ ...result(), grad }), EXPECT);
    expect(firstNonFinite(back.grad)).toBe(17);
    expect(firstNonFinite(new Float32Array(4))).toBe(-1);
  });

  it('error has the name ProtocolError', () => {
    const err = (() => { try { decodeShardResult(new Uint8Array([0xff]), EXPECT); } catch (e) { return e as Error; } })();
    expect(err?.name).toBe('ProtocolError');
  });
});

describe('ShardTask rejections', () => {
  const bad = (change: Partial<ShardTaskMsg>, re: RegExp, stateSize: number | undefined = S) => {
    expect(() => decodeShardTask(encodeShardTask({ ...task(), ...change }), { stateSize })).toThrow(re);
  };
  it('token count not (T+1)·B', () => bad({ tokens: new Int32Array(15) }, /tokens has 15 values, expected 18 \(\(seq_len \+ 1\)·streams = \(5 \+ 1\)·3\)/));
  it('states not the expected size', () => bad({ states: new Float32Array(11) }, /states has 11 values, expected 12/));
  it('states of any size without an expectation', () => {
    expect(decodeShardTask(encodeShardTask({ ...task(), states: new Float32Array(3) })).states.length).toBe(3);
  });
  it('seq_len 0', () => bad({ seqLen: 0, tokens: new Int32Array(3) }, /seq_len is 0, expected at least 1/));
  it('streams 0', () => bad({ streams: 0, tokens: new Int32Array(0) }, /streams is 0, expected at least 1/));
  it('blocks that do not cut its streams', () => {
    bad({ blocks: [1, 1] }, /ShardTask for step 7 shard 2: blocks \[1,1\] do not cut its 3 streams into groups of at least one/);
    bad({ blocks: [3, 0] }, /blocks \[3,0\] do not cut its 3 streams/);
  });
  it('blocks round-trip; one block or none decodes as one block', () => {
    expect(decodeShardTask(encodeShardTask({ ...task(), blocks: [1, 2] })).blocks).toEqual([1, 2]);
    expect(decodeShardTask(encodeShardTask({ ...task(), blocks: [3] })).blocks).toBeUndefined();
    expect(decodeShardTask(encodeShardTask(task())).blocks).toBeUndefined();
  });
  it('token bytes not a multiple of 4', () => {
    const raw = rawRoot.lookupType('gradpool.ShardTask').encode({ ...task(), tokens: new Uint8Array(71), states: new Uint8Array(S * 4) }).finish();
    expect(() => decodeShardTask(raw)).toThrow(/tokens has 71 bytes, not a multiple of 4/);
  });
});

describe('Checkpoint rejections', () => {
  const bad = (overrides: Record<string, unknown>, re: RegExp) => {
    expect(() => decodeCheckpoint(rawCheckpoint(overrides))).toThrow(ProtocolError);
    expect(() => decodeCheckpoint(rawCheckpoint(overrides))).toThrow(re);
  };
  it('format other than 1 to 3', () => {
    bad({ format: 4 }, /format is 4, expected 1 to 3/);
    bad({ format: 0 }, /format is 0, expected 1 to 3/);
  });
  it('format 3 without a backend (as a file cut before its last two fields reads)', () => bad({ backend: '', reduction: '' }, /backend is empty, expected the backend that computed the run \(the file may be truncated\)/));
  it('format 3 without a reduction (as a file cut before its last field reads)', () => bad({ reduction: '' }, /reduction is "", expected "tree" or "sequential" in format 3 \(the file may be truncated\)/));
  it('format 3 with an unknown reduction', () => bad({ reduction: 'pairwise' }, /reduction is "pairwise", expected "tree" or "sequential" in format 3$/));
  it('format 3 keeps a resumed old run\'s "sequential"', () => expect(decodeCheckpoint(rawCheckpoint({ reduction: 'sequential' })).reduction).toBe('sequential'));
  it('format 2 (before the reduction field) still decodes, as the sequential math it had', () => {
    const c = decodeCheckpoint(rawCheckpoint({ format: 2, reduction: '' }));
    expect([c.format, c.backend, c.reduction]).toEqual([2, 'native (avx512)', 'sequential']);
  });
  it('format 1 (before the backend field) still decodes, with an empty backend', () => {
    const c = decodeCheckpoint(rawCheckpoint({ format: 1, backend: '', reduction: '' }));
    expect([c.format, c.backend, c.shards, c.reduction]).toEqual([1, '', 4, 'sequential']);
  });
  it('config_json not JSON', () => bad({ configJson: '{cell:' }, /config_json is not valid JSON/));
  it('config_json not an object', () => bad({ configJson: '[1,2]' }, /config_json is \[1,2\], expected a JSON object/));
  it('empty vocab', () => bad({ vocab: [] }, /vocab is empty/));
  it('empty token kind', () => bad({ tokenKind: '' }, /token_kind is empty/));
  it('rng_state not 4 words', () => bad({ rngState: [1, 2, 3] }, /rng_state has 3 words, expected 4/));
  it('params bytes not a multiple of 4', () => bad({ params: new Uint8Array(10) }, /params has 10 bytes, not a multiple of 4/));
  it('optimizer moment bytes not a multiple of 4', () => bad({ optimizer: { t: 1, m: new Uint8Array(6) } }, /optimizer.m has 6 bytes/));
  it('optimizer moment of the wrong size', () => bad({ optimizer: { t: 1, m: new Uint8Array(8) } }, /optimizer.m has 2 values, expected 0 or 37/));
  it('missing optimizer', () => bad({ optimizer: null }, /optimizer is missing/));
  it('shards 0 (as a truncated file reads)', () => bad({ shards: 0 }, /shards is 0, expected at least 1 \(the file may be truncated\)/));
  it('NaN in params, naming the index', () => {
    const params = checkpoint().params.slice();
    params[23] = NaN;
    bad({ params: new Uint8Array(params.buffer) }, /params holds a non-finite value \(NaN\) at index 23/);
  });
  it('the encoder refuses what the decoder would reject', () => {
    const params = checkpoint().params.slice();
    params[5] = -Infinity;
    expect(() => encodeCheckpoint({ ...checkpoint(), params })).toThrow(/non-finite value \(-Infinity\) at index 5/);
    expect(() => encodeCheckpoint({ ...checkpoint(), rngState: [1, 2, 3, 2 ** 32] })).toThrow(/rng_state word 3 is 4294967296/);
  });
  it('every truncation of a valid checkpoint', () => {
    const bytes = encodeCheckpoint(checkpoint());
    for (let n = 0; n < bytes.length; n++) expect(() => decodeCheckpoint(bytes.subarray(0, n)), `cut at ${n}`).toThrow(ProtocolError);
  });
});

describe('fuzz: bad bytes raise ProtocolError and nothing else', () => {
  const validResult = encodeShardResult(result());
  const validCheckpoint = encodeCheckpoint(checkpoint());

  /** Random bytes, or a valid message with one byte changed, or cut short. */
  function mangle(rng: Rng, valid: Uint8Array): Uint8Array {
    const kind = rng.int(3);
    if (kind === 0) return Uint8Array.from({ length: rng.int(200) }, () => rng.int(256));
    if (kind === 1) {
      const copy = valid.slice();
      copy[rng.int(copy.length)] = rng.int(256);
      return copy;
    }
    return valid.slice(0, rng.int(valid.length));
  }

  function decodesOrRejects<T>(decode: () => T, check: (m: T) => void): 'ok' | 'rejected' {
    try {
      check(decode());
      return 'ok';
    } catch (e) {
      if (e instanceof ProtocolError) return 'rejected';
      throw e;
    }
  }

  it('300 seeded cases per message', () => {
    const rng = new Rng(20240611);
    const seen = { ok: 0, rejected: 0 };
    for (let i = 0; i < 300; i++) {
      seen[decodesOrRejects(() => decodeShardResult(mangle(rng, validResult), EXPECT), (m) => {
        expect([m.runId, m.step, m.shard, m.version, m.tokens]).toEqual([EXPECT.runId, EXPECT.step, EXPECT.shard, EXPECT.version, EXPECT.tokens]);
        expect([m.grad.length, m.finalStates.length]).toEqual([P, S]);
        expect(Number.isFinite(m.loss) && Number.isFinite(m.penalty)).toBe(true);
      })]++;
      seen[decodesOrRejects(() => decodeCheckpoint(mangle(rng, validCheckpoint)), (c) => {
        expect(c.format).toBe(3);
        expect(c.backend.length).toBeGreaterThan(0);
        expect(['tree', 'sequential']).toContain(c.reduction);
        expect(c.vocab.length).toBeGreaterThan(0);
        expect(c.rngState).toHaveLength(4);
        expect(c.shards).toBeGreaterThanOrEqual(1);
        expect(firstNonFinite(c.params)).toBe(-1);
      })]++;
    }
    // Both outcomes happen, or the loop is not exercising anything.
    expect(seen.ok).toBeGreaterThan(20);
    expect(seen.rejected).toBeGreaterThan(20);
  });
});
