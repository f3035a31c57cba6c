// Every decoder of bytes from outside — the protobuf messages, checkpoints, safetensors
// and model files — fed random bytes, mutated valid encodings and hostile headers
// (fast-check, seeded). Each call returns a value consistent with itself or throws the
// decoder's own error class, within 2 s: never a TypeError, a RangeError or a hang.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointError, loadCheckpoint } from '../../coordinator/checkpoint.js';
import { type CellName, resolveModelConfig } from '../../model/config.js';
import { type ModelFile, ModelFileError, decodeModelFile, encodeModelFile, toPyTorchStateDict } from '../../model/modelfile.js';
import { buildLayout, initParams } from '../../model/params.js';
import { type Safetensors, SafetensorsError, type Tensor, encodeSafetensors, parseSafetensors } from '../../model/safetensors.js';
import {
  type CheckpointMsg, ProtocolError, type ShardResultMsg, type ShardTaskMsg, type WeightsMsg,
  decodeBlobRequest, decodeCheckpoint, decodeChunk, decodeHeartbeat, decodeRemoteAck, decodeRemoteTask, decodeShardResult, decodeShardTask, decodeWeights,
  encodeBlobRequest, encodeCheckpoint, encodeChunk, encodeHeartbeat, encodeRemoteAck, encodeRemoteTask, encodeShardResult, encodeShardTask, encodeWeights,
} from '../../proto/codec.js';
import { Assembler, splitChunks } from '../../proto/chunks.js';
import { rawSafetensors } from '../helpers/safetensors-bytes.js';

const SEED = 42;
/** Far above any real decode (a few ms), far below a hang; loose enough for a loaded 2-core machine. */
const LIMIT_MS = 2_000;
type ErrorClass = abstract new (...args: never[]) => Error;

function describeError(e: unknown): string {
  return e instanceof Error ? `${e.constructor.name}: ${e.message.slice(0, 300)}` : `non-Error ${String(e)}`;
}

/** One decoder call: a value must pass `sane`, an error must be one of `allowed`; either within LIMIT_MS. */
function clean<T>(decode: () => T, allowed: readonly ErrorClass[], sane: (value: T) => void): void {
  const started = performance.now();
  let value: T;
  try {
    value = decode();
  } catch (e) {
    if (!allowed.some((E) => e instanceof E)) throw new Error(`unclean error ${describeError(e)}`, { cause: e });
    expect(performance.now() - started, 'ms to reject').toBeLessThan(LIMIT_MS);
    return;
  }
  expect(performance.now() - started, 'ms to decode').toBeLessThan(LIMIT_MS);
  sane(value);
}

// ---- mutations of a valid encoding ----

type Mutation =
  | { kind: 'flip'; at: number; xor: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'overwrite'; at: number; bytes: Uint8Array };

// Lengths and tags a hostile writer would pick: 2^32−1, 2^64−1, an overlong varint, an
// unterminated one, and group / reserved wire types.
const HOSTILE_BYTES = [
  [0xff, 0xff, 0xff, 0xff, 0x0f], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
  [0xff, 0xff, 0xff], [0x0b], [0x0c], [0x0e], [0x0f], [0x00], [0x3a, 0x7f], [0x42, 0xff, 0x01],
].map((b) => Uint8Array.from(b));

/** A position, taken modulo the length; small ones (headers, tags) are picked more often. */
const position = fc.oneof(fc.nat({ max: 31 }), fc.nat());
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: position, xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: position, bytes: fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 16 }), fc.constantFrom(...HOSTILE_BYTES)) }),
  fc.record({ kind: fc.constant('delete' as const), at: position, count: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ kind: fc.constant('overwrite' as const), at: position, bytes: fc.constantFrom(...HOSTILE_BYTES) }),
);
const mutations = fc.array(mutation, { minLength: 1, maxLength: 4 });

function mutate(valid: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  let b = Uint8Array.from(valid);
  for (const m of ms) {
    const at = m.at % (b.length + 1);
    if (m.kind === 'flip' && at < b.length) b[at] ^= m.xor;
    else if (m.kind === 'truncate') b = b.slice(0, at);
    else if (m.kind === 'insert') b = Uint8Array.from([...b.subarray(0, at), ...m.bytes, ...b.subarray(at)]);
    else if (m.kind === 'delete') b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + m.count)]);
    else if (m.kind === 'overwrite') b = Uint8Array.from([...b.subarray(0, at), ...m.bytes, ...b.subarray(at + m.bytes.length)]);
  }
  return b;
}

/** The same bytes `shift` bytes into a larger buffer: decoders must not assume offset 0 or alignment. */
function shifted(bytes: Uint8Array, shift: number): Uint8Array {
  const big = new Uint8Array(bytes.length + shift);
  big.set(bytes, shift);
  return big.subarray(shift);
}

/**
 * Protobuf-framed noise: well-formed tags with any field number and wire type and any
 * payload, so that decoding gets past the framing and the codec's own checks are reached.
 */
const protobufNoise = fc
  .array(fc.record({ field: fc.integer({ min: 1, max: 16 }), wire: fc.constantFrom(0, 0, 1, 2, 2, 2, 5, 3, 4, 6, 7), value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), payload: fc.uint8Array({ maxLength: 64 }) }), { maxLength: 16 })
  .map((fields) => {
    const out: number[] = [];
    const varint = (v: bigint) => {
      do {
        out.push(Number(v & 0x7fn) | (v > 0x7fn ? 0x80 : 0));
        v >>= 7n;
      } while (v > 0n);
    };
    for (const { field, wire, value, payload } of fields) {
      varint(BigInt((field << 3) | wire));
      if (wire === 0) varint(value);
      else if (wire === 1) out.push(...payload.subarray(0, 8), ...new Array(Math.max(0, 8 - payload.length)).fill(0));
      else if (wire === 5) out.push(...payload.subarray(0, 4), ...new Array(Math.max(0, 4 - payload.length)).fill(0));
      else if (wire === 2) {
        varint(BigInt(payload.length));
        out.push(...payload);
      }
    }
    return Uint8Array.from(out);
  });

/** Random bytes, protobuf-framed noise, and mutations of valid encodings, each fed to `decode`. */
function fuzzDecoder<T>(name: string, valid: readonly Uint8Array[], decode: (b: Uint8Array) => T, allowed: readonly ErrorClass[], sane: (v: T) => void, runs: number): void {
  describe(name, () => {
    it('decodes its valid encodings (the fuzz starts from real messages)', () => {
      for (const v of valid) sane(decode(v));
    });
    it('random bytes', () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 4096 }), (b) => clean(() => decode(b), allowed, sane)), { seed: SEED, numRuns: runs });
    });
    it('protobuf-framed noise', () => {
      fc.assert(fc.property(protobufNoise, (b) => clean(() => decode(b), allowed, sane)), { seed: SEED, numRuns: runs });
    });
    it('mutated valid encodings (flips, truncations, insertions, deletions, hostile varints), at any byte offset', () => {
      fc.assert(
        fc.property(fc.constantFrom(...valid), mutations, fc.nat({ max: 7 }), (v, ms, shift) => clean(() => decode(shifted(mutate(v, ms), shift)), allowed, sane)),
        { seed: SEED, numRuns: 2 * runs },
      );
    });
  });
}

// ---- the protobuf messages ----

const P = 37; // parameters
const S = 12; // state values (L·S·B·H)
const ramp = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));

const TASKS: ShardTaskMsg[] = [
  { runId: 'run-1', step: 7, shard: 2, version: 8, seqLen: 5, streams: 3, tokens: Int32Array.from({ length: 18 }, (_, i) => i % 5), states: ramp(S, Math.sin), attempt: 1 },
  { runId: '', step: 0, shard: 0, version: 0, seqLen: 1, streams: 1, tokens: new Int32Array(2), states: ramp(S, () => 0), attempt: 0 },
  // Task models: T·B·inputSize vector inputs and one label, or `outputs` values, per sequence.
  { runId: 'run-2', step: 1, shard: 0, version: 1, seqLen: 4, streams: 2, tokens: new Int32Array(0), inputs: ramp(4 * 2 * 3, Math.cos), labels: Int32Array.of(1, 0), states: ramp(S, () => 1), attempt: 0 },
  { runId: 'run-3', step: 2, shard: 1, version: 2, seqLen: 3, streams: 2, tokens: new Int32Array(0), inputs: ramp(3 * 2, Math.sin), values: ramp(2 * 2, (i) => i / 3), states: ramp(S, () => -1), attempt: 2 },
];
const RESULT: ShardResultMsg = {
  runId: 'run-1', step: 7, shard: 2, version: 8, loss: 61.25, penalty: 0.125, tokens: 15,
  grad: ramp(P, (i) => Math.cos(i) * 1e-3), finalStates: ramp(S, (i) => -i / 7), computeMs: 12.5, worker: 3,
};
const EXPECT = { runId: 'run-1', step: 7, shard: 2, version: 8, paramCount: P, stateSize: S, tokens: 15 };
const WEIGHTS: WeightsMsg[] = [{ runId: 'run-1', version: 3, params: ramp(P, Math.tan) }, { runId: 'r', version: 0, params: ramp(P, () => 0) }];

function checkpointMsg(overrides: Partial<CheckpointMsg> = {}): CheckpointMsg {
  return {
    format: 1, runId: 'run-1', configJson: JSON.stringify({ cell: 'lstm', hidden: 4 }),
    vocab: ['a', 'b', '\n', 'é'], tokenKind: 'char', step: 200,
    params: ramp(P, (i) => Math.tan(i)), optimizer: { t: 200, m: ramp(P, () => 0.5), v: ramp(P, () => 0.25) },
    streamStates: ramp(S, (i) => i - 6), rngState: [1, 0xffffffff, 123456789, 0],
    tokensSeen: 2 ** 40 + 3, dataEpoch: 1, dataChunk: 42, shards: 4, backend: '', reduction: 'sequential', ...overrides,
  };
}
const CHECKPOINTS = [checkpointMsg(), checkpointMsg({ tokenKind: 'word', vocab: ['<unk>', 'the'], optimizer: { t: 0, m: new Float32Array(0), v: new Float32Array(0) }, shards: 1 })];

function saneCheckpoint(c: CheckpointMsg): void {
  expect(c.format).toBe(1);
  expect(c.vocab.length).toBeGreaterThan(0);
  // Which kinds exist is model/'s to say; coordinator/checkpoint.ts checks them on loading.
  expect(c.tokenKind).not.toBe('');
  expect(c.rngState).toHaveLength(4);
  expect(c.shards).toBeGreaterThanOrEqual(1);
  expect(c.params.every(Number.isFinite)).toBe(true);
  for (const m of [c.optimizer.m, c.optimizer.v]) expect([0, c.params.length]).toContain(m.length);
  const config: unknown = JSON.parse(c.configJson);
  expect(typeof config === 'object' && config !== null && !Array.isArray(config)).toBe(true);
}

fuzzDecoder('decodeShardTask', TASKS.map(encodeShardTask), (b) => decodeShardTask(b, { stateSize: S }), [ProtocolError], (t) => {
  expect(t.seqLen).toBeGreaterThanOrEqual(1);
  expect(t.streams).toBeGreaterThanOrEqual(1);
  expect(t.states.length).toBe(S);
  if (t.inputs === undefined) {
    expect(t.tokens.length).toBe((t.seqLen + 1) * t.streams);
    return;
  }
  expect(t.tokens.length).toBe(0);
  expect(t.inputs.length % (t.seqLen * t.streams)).toBe(0);
  expect(t.labels === undefined).not.toBe(t.values === undefined);
  if (t.labels) expect(t.labels.length).toBe(t.streams);
  if (t.values) expect(t.values.length % t.streams).toBe(0);
}, 800);

fuzzDecoder('decodeShardResult (against a fixed expectation)', [encodeShardResult(RESULT)], (b) => decodeShardResult(b, EXPECT), [ProtocolError], (r) => {
  for (const key of ['runId', 'step', 'shard', 'version', 'tokens'] as const) expect(r[key]).toBe(EXPECT[key]);
  expect(Number.isFinite(r.loss) && Number.isFinite(r.penalty)).toBe(true);
  expect(r.grad.length).toBe(P);
  expect(r.finalStates.length).toBe(S);
}, 800);

fuzzDecoder('decodeWeights', WEIGHTS.map(encodeWeights), (b) => decodeWeights(b, { paramCount: P }), [ProtocolError], (w) => {
  expect(w.params).toBeInstanceOf(Float32Array);
  expect(w.params.length).toBe(P);
}, 800);

fuzzDecoder('decodeCheckpoint', CHECKPOINTS.map(encodeCheckpoint), decodeCheckpoint, [ProtocolError], saneCheckpoint, 800);

// ---- the NATS messages (remote workers): whatever arrives on a subject ----

const REMOTE_TASKS = [
  { runId: 'run-1', task: encodeShardTask(TASKS[0]), taskBlob: '', taskChunks: 0, replyTo: 'gradpool.run.run-1.results.c1', specJson: '{"backend":"wasm"}', weightsChunks: 2, deadlineMs: 600_000 },
  { runId: 'run-1', task: new Uint8Array(0), taskBlob: 't.7.2.0', taskChunks: 3, replyTo: 'r', specJson: '', weightsChunks: 1, deadlineMs: 0.5 },
];
fuzzDecoder('decodeRemoteTask', REMOTE_TASKS.map(encodeRemoteTask), decodeRemoteTask, [ProtocolError], (t) => {
  expect(t.runId).not.toBe('');
  expect(t.replyTo).not.toBe('');
  expect(t.task.length > 0 || (t.taskBlob !== '' && t.taskChunks >= 1)).toBe(true);
  expect(t.weightsChunks).toBeGreaterThanOrEqual(1);
  expect(t.deadlineMs).toBeGreaterThan(0);
}, 400);

fuzzDecoder('decodeRemoteAck', [encodeRemoteAck({ worker: 'w-1', error: '' }), encodeRemoteAck({ worker: 'w', error: 'refused' })], decodeRemoteAck, [ProtocolError], (a) => {
  expect(typeof a.worker).toBe('string');
  expect(typeof a.error).toBe('string');
}, 400);

const WHOLE = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 255);
const CHUNKS = [...splitChunks('run-1', 'w.3', WHOLE, 128), { runId: 'r', key: 'r.1.0.1.0', index: 0, count: 0, totalBytes: 0, offset: 0, data: new Uint8Array(0), error: 'boom' }];
fuzzDecoder('decodeChunk, then Assembler.add', CHUNKS.map(encodeChunk), (b) => {
  const c = decodeChunk(b);
  if (!c.error) new Assembler({ maxBytes: 1 << 20, maxOpen: 4 }).add(c);
  return c;
}, [ProtocolError], (c) => {
  expect(c.key).not.toBe('');
  if (c.error) return;
  expect(c.index).toBeLessThan(c.count);
  expect(c.offset + c.data.length).toBeLessThanOrEqual(c.totalBytes);
}, 400);

fuzzDecoder('decodeBlobRequest', [encodeBlobRequest({ key: 'w.12', index: 3 })], decodeBlobRequest, [ProtocolError], (r) => expect(r.key).not.toBe(''), 400);

fuzzDecoder('decodeHeartbeat', [encodeHeartbeat({ worker: 'worker-vm-1-abc', threads: 2, busy: 1, runs: ['r1', 'r2'], host: 'vm', pid: 42, onlyRun: '' })], decodeHeartbeat, [ProtocolError], (h) => {
  expect(h.worker).not.toBe('');
  expect(Array.isArray(h.runs)).toBe(true);
}, 400);

describe('loadCheckpoint on a directory holding a mutated checkpoint.pb', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gradpool-fuzz-ckpt-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const valid = CHECKPOINTS.map(encodeCheckpoint);

  it('throws only CheckpointError', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...valid), mutations, async (v, ms) => {
        writeFileSync(join(dir, 'checkpoint.pb'), mutate(v, ms));
        const started = performance.now();
        let c: CheckpointMsg;
        try {
          c = await loadCheckpoint(dir);
        } catch (e) {
          if (!(e instanceof CheckpointError)) throw new Error(`unclean error ${describeError(e)}`, { cause: e });
          expect(e.message).toContain(join(dir, 'checkpoint.pb'));
          return;
        } finally {
          expect(performance.now() - started).toBeLessThan(LIMIT_MS);
        }
        saneCheckpoint(c);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
});

// ---- safetensors ----

const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function saneSafetensors(s: Safetensors): void {
  for (const [, t] of s.tensors) {
    expect(t.dtype).toBe('F32');
    expect(t.data).toBeInstanceOf(Float32Array);
    expect(t.data.length).toBe(product(t.shape));
  }
  for (const value of Object.values(s.metadata)) expect(typeof value).toBe('string');
}

const SAFETENSORS = [
  encodeSafetensors(new Map<string, Tensor>([
    ['a', { shape: [2, 3], data: ramp(6, Math.sin) }],
    ['b', { shape: [4], data: ramp(4, (i) => i) }],
    ['empty', { shape: [0, 5], data: new Float32Array(0) }],
    ['scalar', { shape: [], data: Float32Array.of(7) }],
  ]), { note: 'hi', json: '{"a":[1,2]}' }),
  encodeSafetensors(new Map([['w', { shape: [1], data: Float32Array.of(1) }]])),
];

const container = rawSafetensors;

const odd = fc.constantFrom<unknown>(null, true, 'F32', '3', [], {}, [2], -0, 0.5, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e308, -1e308);
const dim = fc.oneof(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 6 }), fc.constantFrom(-1, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53), odd);
const offset = fc.oneof(fc.integer({ min: -4, max: 160 }), fc.constantFrom(-1, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e308), odd);
const dtype = fc.oneof(fc.constant('F32'), fc.constant('F32'), fc.constantFrom('F16', 'BF16', 'F64', 'I32', 'U8', 'BOOL', 'f32', 'F32 ', '', 'F8_E4M3', '__proto__'), fc.string({ maxLength: 5 }), odd);
const tensorInfo = fc.oneof(
  // Plausible: F32, a shape and offsets that agree in size, placed anywhere (overlaps, out of range).
  {
    weight: 4,
    arbitrary: fc.record({ shape: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }), begin: fc.integer({ min: 0, max: 48 }) })
      .map(({ shape, begin }) => ({ dtype: 'F32', shape, data_offsets: [begin, begin + 4 * product(shape)] })),
  },
  { weight: 2, arbitrary: fc.record({ dtype, shape: fc.oneof(fc.array(dim, { maxLength: 4 }), odd), data_offsets: fc.oneof(fc.tuple(offset, offset), fc.array(offset, { maxLength: 3 }), odd) }) },
  { weight: 1, arbitrary: fc.record({ dtype, shape: fc.array(dim, { maxLength: 3 }), data_offsets: fc.tuple(offset, offset), extra: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);
const metadata = fc.oneof(
  { weight: 4, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 4 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);
const hostileHeader = fc
  .record({ meta: fc.option(metadata), tensors: fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('__proto__', 'constructor', '__metadata__ ')), tensorInfo, { maxKeys: 6 }) })
  .map(({ meta, tensors }) => (meta === null ? tensors : { __metadata__: meta, ...tensors }));

fuzzDecoder('parseSafetensors', SAFETENSORS, (b) => parseSafetensors(b, 'fuzz.safetensors'), [SafetensorsError], saneSafetensors, 800);

describe('parseSafetensors on hostile headers', () => {
  const allowed = [SafetensorsError];

  it('hostile JSON headers: odd dtypes, huge or negative shapes, overlapping or out-of-range offsets, non-string metadata', () => {
    fc.assert(
      fc.property(hostileHeader, fc.uint8Array({ minLength: 32, maxLength: 128 }), (header, data) => clean(() => parseSafetensors(container(header, data)), allowed, saneSafetensors)),
      { seed: SEED, numRuns: 3000 },
    );
  });

  it('a forged u64 header length: past the end, over 100 MB, beyond 2^53, or just off', () => {
    const length = fc.oneof(
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.constantFrom(0n, 1n, 2n, 7n, 100_000_000n, 100_000_001n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n),
      fc.integer({ min: -16, max: 16 }).map((d) => BigInt(Math.max(0, 64 + d))), // around the true lengths below
    );
    fc.assert(
      fc.property(fc.constantFrom(...SAFETENSORS), length, (valid, n) => {
        const b = Uint8Array.from(valid);
        new DataView(b.buffer).setBigUint64(0, n, true);
        clean(() => parseSafetensors(b), allowed, saneSafetensors);
      }),
      { seed: SEED, numRuns: 600 },
    );
  });
});

// ---- model files ----

const VOCAB = ['a', 'b', 'c', ' ', '.'];
function tinyModel(cell: CellName, layers: number, layerNorm: boolean) {
  const layout = buildLayout(resolveModelConfig({ cell, layers, hidden: 3, embed: 2, layerNorm }), VOCAB.length);
  return { layout, params: initParams(layout, 5) };
}
const MODELS = [tinyModel('lstm', 1, false), tinyModel('gru-reset-after', 2, false), tinyModel('lstm-peephole', 1, true), tinyModel('rnn', 2, true)];
const MODEL_FILES = MODELS.map(({ layout, params }) => encodeModelFile(layout, params, VOCAB, 'char'));

function saneModel(m: ModelFile): void {
  expect(m.params.length).toBe(m.layout.size);
  expect(m.params.every(Number.isFinite)).toBe(true);
  expect(m.vocab.length).toBe(m.layout.vocabSize);
  expect(['char', 'word']).toContain(m.tokens);
}

// A broken container is a SafetensorsError; everything gradpool-specific a ModelFileError.
fuzzDecoder('decodeModelFile', MODEL_FILES, (b) => decodeModelFile(b, 'fuzz.safetensors'), [ModelFileError, SafetensorsError], saneModel, 500);

describe('decodeModelFile on hostile metadata and tensors', () => {
  const allowed = [ModelFileError, SafetensorsError];

  it('hostile metadata: the config or vocabulary changed, or any JSON, or missing', () => {
    const anyValue = fc.oneof(
      fc.jsonValue({ maxDepth: 1 }), fc.integer({ min: -1, max: 4 }),
      fc.constantFrom('lstm', 'gru', 'rnn', 'gru-reset-after', 'lstm-peephole', 'lstm-1997', 'LSTM', 'lm', 'classify', 'regress', 64, 16384, 1e6, 1e7), odd,
    );
    const key = fc.constantFrom('cell', 'layers', 'hidden', 'embed', 'layerNorm', 'normStabilizer', 'task', 'inputSize', 'outputs', 'dropout');
    const config = fc.oneof(
      // The model's own config with one key changed (or added): a shape or missing-tensor error, or a value error.
      { weight: 4, arbitrary: fc.record({ key, value: anyValue }) },
      // A task model's config (vector inputs, no embedding): model files hold language models only.
      { weight: 1, arbitrary: fc.record({ task: fc.constantFrom('classify', 'regress'), inputSize: fc.integer({ min: 1, max: 3 }), outputs: fc.integer({ min: 1, max: 5 }) }).map((t) => ({ merge: t })) },
      { weight: 1, arbitrary: fc.constant('own' as const) },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => ({ text: JSON.stringify(v) })) },
      { weight: 1, arbitrary: fc.string({ maxLength: 12 }).map((text) => ({ text })) },
      { weight: 1, arbitrary: fc.constant(null) }, // missing
    );
    const vocab = fc.oneof(
      { weight: 2, arbitrary: fc.constant(VOCAB) },
      { weight: 1, arbitrary: fc.constant([...VOCAB.slice(0, -1), 'a']) }, // a duplicate
      { weight: 1, arbitrary: fc.constantFrom(VOCAB.slice(1), [...VOCAB, 'z'], [], ['a', 1, 'c', ' ', '.'], [...VOCAB.slice(0, 4), null]) }, // size or type
      { weight: 1, arbitrary: fc.array(fc.oneof(fc.string({ maxLength: 2 }), odd), { maxLength: 7 }) },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
      { weight: 1, arbitrary: fc.constant(undefined) }, // missing
    );
    const tokens = fc.constantFrom('char', 'word', 'byte', '', 'CHAR', undefined);
    // Mostly one of the three spoiled, the others valid, so that later checks are reached too.
    const spoiled = fc.constantFrom('config', 'config', 'vocab', 'tokens', 'all');
    fc.assert(
      fc.property(fc.nat({ max: MODELS.length - 1 }), spoiled, config, vocab, tokens, (k, which, c0, v0, t0) => {
        const { layout, params } = MODELS[k];
        const all = which === 'all';
        const [c, v, t] = [all || which === 'config' ? c0 : 'own', all || which === 'vocab' ? v0 : VOCAB, all || which === 'tokens' ? t0 : 'char'];
        const meta: Record<string, string> = {};
        if (c === 'own') meta['gradpool.config'] = JSON.stringify(layout.config);
        else if (c !== null && 'key' in c) meta['gradpool.config'] = JSON.stringify({ ...layout.config, [c.key]: c.value });
        else if (c !== null && 'merge' in c) meta['gradpool.config'] = JSON.stringify({ ...layout.config, ...c.merge });
        else if (c !== null) meta['gradpool.config'] = c.text;
        if (v !== undefined) meta['gradpool.vocab'] = JSON.stringify(v);
        if (t !== undefined) meta['gradpool.tokens'] = t;
        const bytes = encodeSafetensors(toPyTorchStateDict(layout, params), meta);
        clean(() => decodeModelFile(bytes, 'fuzz.safetensors'), allowed, saneModel);
      }),
      { seed: SEED, numRuns: 1500 },
    );
  });

  it('NaN or infinite weights, and tensors of the wrong shape', () => {
    fc.assert(
      fc.property(fc.nat({ max: MODELS.length - 1 }), fc.nat(), fc.constantFrom(NaN, Infinity, -Infinity, 3e38, -0), fc.nat({ max: 2 }), (k, at, value, reshape) => {
        const { layout, params } = MODELS[k];
        const sd = toPyTorchStateDict(layout, params);
        const names = [...sd.keys()];
        const name = names[at % names.length];
        const t = sd.get(name)!;
        const data = t.data.slice();
        if (data.length > 0) data[at % data.length] = value;
        // reshape 1: the same values in a flat shape; 2: one value dropped.
        if (reshape === 0 || data.length === 0) sd.set(name, { shape: t.shape, data });
        else if (reshape === 1) sd.set(name, { shape: [data.length], data });
        else sd.set(name, { shape: [data.length - 1], data: data.subarray(1) });
        const bytes = encodeSafetensors(sd, { 'gradpool.config': JSON.stringify(layout.config), 'gradpool.vocab': JSON.stringify(VOCAB), 'gradpool.tokens': 'char' });
        clean(() => decodeModelFile(bytes, 'fuzz.safetensors'), allowed, saneModel);
      }),
      { seed: SEED, numRuns: 600 },
    );
  });
});

// ---- deeply nested JSON ----

// JSON.parse takes any depth, but JSON.stringify of a value nested ~10^4 deep throws a
// RangeError (call stack), so every message that prints a bad JSON value must survive it.
const DEPTH = 100_000;
const NESTED = '['.repeat(DEPTH) + ']'.repeat(DEPTH);
const metaFile = (meta: Record<string, string>) => encodeSafetensors(new Map(), meta);
const validModelMeta = (overrides: Record<string, string>) => ({
  'gradpool.config': JSON.stringify(MODELS[0].layout.config), 'gradpool.vocab': JSON.stringify(VOCAB), 'gradpool.tokens': 'char', ...overrides,
});

describe('deeply nested JSON is a clean error', () => {
  const safetensorsCases: [string, string][] = [
    ['the whole header', NESTED],
    ['a tensor entry', `{"t":${NESTED}}`],
    ['an unknown key of a tensor', `{"t":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":${NESTED}}}`],
  ];
  for (const [where, header] of safetensorsCases) {
    it(`safetensors: ${where}`, () => clean(() => parseSafetensors(container(header, new Uint8Array(0))), [SafetensorsError], saneSafetensors));
  }

  it('checkpoint: config_json', () => {
    const bytes = encodeCheckpoint(checkpointMsg({ configJson: '{}' }));
    const nested = checkpointMsg({ configJson: NESTED });
    // encodeCheckpoint refuses it, so splice the field in: config_json is field 3 (tag 0x1a).
    expect(() => encodeCheckpoint(nested)).toThrow(ProtocolError);
    const at = bytes.indexOf(0x1a);
    const text = new TextEncoder().encode(NESTED);
    const len: number[] = [];
    for (let v = text.length; ; v >>>= 7) {
      len.push((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
      if (v <= 0x7f) break;
    }
    const spliced = Uint8Array.from([...bytes.subarray(0, at + 1), ...len, ...text, ...bytes.subarray(at + 3)]); // '{}' is 1 length byte + 2
    clean(() => decodeCheckpoint(spliced), [ProtocolError], saneCheckpoint);
  });

  // Deeply nested JSON in any header or metadata field: once a RangeError (the bad value
  // was printed with a bare JSON.stringify); now a clean error (model/show.ts).
  const crashing: [string, () => Uint8Array, (b: Uint8Array) => unknown][] = [
    ['safetensors: __metadata__', () => container(`{"__metadata__":${NESTED}}`, new Uint8Array(0)), (b) => parseSafetensors(b)],
    ['safetensors: a __metadata__ value', () => container(`{"__metadata__":{"k":${NESTED}}}`, new Uint8Array(0)), (b) => parseSafetensors(b)],
    ['safetensors: dtype', () => container(`{"t":{"dtype":${NESTED},"shape":[0],"data_offsets":[0,0]}}`, new Uint8Array(0)), (b) => parseSafetensors(b)],
    ['safetensors: shape', () => container(`{"t":{"dtype":"F32","shape":${NESTED},"data_offsets":[0,0]}}`, new Uint8Array(0)), (b) => parseSafetensors(b)],
    ['safetensors: data_offsets', () => container(`{"t":{"dtype":"F32","shape":[0],"data_offsets":${NESTED}}}`, new Uint8Array(0)), (b) => parseSafetensors(b)],
    ['model file: gradpool.config', () => metaFile(validModelMeta({ 'gradpool.config': NESTED })), (b) => decodeModelFile(b)],
    ['model file: a key of gradpool.config', () => metaFile(validModelMeta({ 'gradpool.config': `{"cell":"lstm","layers":${NESTED}}` })), (b) => decodeModelFile(b)],
    ['model file: gradpool.vocab', () => metaFile(validModelMeta({ 'gradpool.vocab': NESTED })), (b) => decodeModelFile(b)],
    ['model file: gradpool.vocab as an object', () => metaFile(validModelMeta({ 'gradpool.vocab': `{"a":${NESTED}}` })), (b) => decodeModelFile(b)],
  ];
  for (const [where, bytes, decode] of crashing) {
    it(`${where}: deeply nested JSON`, () => clean(() => decode(bytes()), [SafetensorsError, ModelFileError], () => undefined));
  }
});
