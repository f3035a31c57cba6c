// The thin codec over proto/gradpool.proto: encode and decode every message, and
// validate what arrives (a worker's result, a checkpoint file) with errors naming the field.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { CHUNK_FAILURES } from './types.js';
import type { BlobRequestMsg, CheckpointMsg, ChunkFailure, ChunkMsg, HeartbeatMsg, RemoteAckMsg, RemoteTaskMsg, ShardResultMsg, ShardTaskMsg, WeightsMsg } from './types.js';

export type {
  BlobRequestMsg, CheckpointMsg, ChunkFailure, ChunkMsg, HeartbeatMsg, OptimizerStateMsg, RemoteAckMsg, RemoteTaskMsg, ShardResultMsg,
  ShardTaskMsg, WeightsMsg,
} from './types.js';

/** Written by this version; formats 1 (no `backend` field) and 2 (no `reduction` field) are still read. */
export const CHECKPOINT_FORMAT = 3;

/**
 * Why a message was refused: 'malformed' (bad bytes, a field out of range, an answer to
 * another question) or 'nonfinite' (a well-formed result whose loss or penalty is NaN or
 * ±Infinity: a numerical event that re-running the shard would reproduce).
 */
export type ProtocolErrorCode = 'malformed' | 'nonfinite';

/** A message that is malformed, or does not answer what was asked. */
export class ProtocolError extends Error {
  constructor(
    message: string,
    readonly code: ProtocolErrorCode = 'malformed',
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

// Float and int arrays travel as their raw bytes, which are little-endian only on a little-endian machine.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('gradpool needs a little-endian machine: float32 arrays travel as raw little-endian bytes');
}

/** gradpool.proto beside this module (running from TypeScript) or two levels up (dist/proto/codec.js). */
function schemaPath(): string {
  const candidates = ['./gradpool.proto', '../../proto/gradpool.proto'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  if (!import.meta.url.endsWith('.ts')) candidates.reverse();
  const found = candidates.find((path) => existsSync(path));
  if (!found) throw new Error(`wire schema gradpool.proto not found; looked at ${candidates.join(' and ')}`);
  return found;
}

const root = protobuf.loadSync(schemaPath());
const TYPES = {
  task: root.lookupType('gradpool.ShardTask'),
  result: root.lookupType('gradpool.ShardResult'),
  weights: root.lookupType('gradpool.Weights'),
  checkpoint: root.lookupType('gradpool.Checkpoint'),
  remoteTask: root.lookupType('gradpool.RemoteTask'),
  remoteAck: root.lookupType('gradpool.RemoteAck'),
  chunk: root.lookupType('gradpool.Chunk'),
  blobRequest: root.lookupType('gradpool.BlobRequest'),
  heartbeat: root.lookupType('gradpool.Heartbeat'),
};

/** A decoded `bytes` field: a view into the message buffer at any offset, or a shared empty array when absent. */
type Bytes = ArrayLike<number>;
/** uint64 decodes to a Long when the `long` package is installed (it is, with protobufjs 7), else to a number. */
type U64 = number | { toNumber(): number };

/** The exact bytes of a typed array, without copying (a subarray's view starts at its byteOffset). */
function rawBytes(a: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** A bytes field copied into a fresh, 4-byte-aligned buffer; `want` is the expected number of 4-byte values. */
function aligned(b: Bytes, what: string, want?: number, why?: string): ArrayBuffer {
  if (b.length % 4 !== 0) throw new ProtocolError(`${what} has ${b.length} bytes, not a multiple of 4`);
  if (want !== undefined && b.length !== want * 4) {
    throw new ProtocolError(`${what} has ${b.length / 4} values, expected ${want}${why ? ` (${why})` : ''}`);
  }
  const copy = new Uint8Array(b.length);
  copy.set(b);
  return copy.buffer;
}

function encode(type: protobuf.Type, message: Record<string, unknown>): Uint8Array {
  const problem = type.verify(message);
  if (problem) throw new ProtocolError(`cannot encode ${type.name}: ${problem}`);
  const out = type.encode(message).finish();
  // Small messages are carved out of Node's shared Buffer pool; copy those so that a
  // caller may transfer `out.buffer` to another thread without taking the pool with it.
  return ownBytes(out);
}

/**
 * `b` itself when it spans its whole buffer (which may then be transferred), else a
 * copy that does. Never Buffer#slice(): on a Node Buffer that is a view, not a copy.
 */
export function ownBytes(b: Uint8Array): Uint8Array {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : new Uint8Array(b);
}

function decode<T>(type: protobuf.Type, bytes: Uint8Array): T {
  // A Node Buffer would get protobufjs's BufferReader, which cuts a truncated string short
  // instead of failing: read every message through a plain view of the same memory.
  const plain = Buffer.isBuffer(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes;
  try {
    return type.decode(plain) as unknown as T;
  } catch (e) {
    throw new ProtocolError(`not a valid ${type.name} message (${bytes.length} bytes, truncated or corrupt): ${(e as Error).message}`);
  }
}

/** Index of the first NaN or ±Infinity, or −1. */
export function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return i;
  return -1;
}

// ---- ShardTask ----

export function encodeShardTask(m: ShardTaskMsg): Uint8Array {
  const opt = (a?: Float32Array | Int32Array) => (a ? rawBytes(a) : new Uint8Array(0));
  return encode(TYPES.task, {
    ...m, tokens: rawBytes(m.tokens), states: rawBytes(m.states), inputs: opt(m.inputs), labels: opt(m.labels), values: opt(m.values),
    blocks: m.blocks && m.blocks.length > 1 ? m.blocks : [], images: m.images ?? new Uint8Array(0),
  });
}

export function decodeShardTask(bytes: Uint8Array, expect: { stateSize?: number } = {}): ShardTaskMsg {
  type Raw = Omit<ShardTaskMsg, 'tokens' | 'states' | 'inputs' | 'labels' | 'values' | 'blocks' | 'images'> & {
    blocks: number[];
    images: Bytes;
    tokens: Bytes;
    states: Bytes;
    inputs: Bytes;
    labels: Bytes;
    values: Bytes;
  };
  const m = decode<Raw>(TYPES.task, bytes);
  const at = `ShardTask for step ${m.step} shard ${m.shard}`;
  if (m.seqLen < 1) throw new ProtocolError(`${at}: seq_len is ${m.seqLen}, expected at least 1`);
  if (m.streams < 1) throw new ProtocolError(`${at}: streams is ${m.streams}, expected at least 1`);
  const { runId, step, shard, version, seqLen, streams, attempt } = m;
  const blocks = m.blocks.length > 1 ? [...m.blocks] : undefined;
  if (blocks && (blocks.some((b) => b < 1) || blocks.reduce((a, b) => a + b, 0) !== streams)) {
    throw new ProtocolError(`${at}: blocks ${JSON.stringify(blocks)} do not cut its ${streams} streams into groups of at least one`);
  }
  const states = new Float32Array(aligned(m.states, `${at}: states`, expect.stateSize, 'the state size L·S·B·H'));
  if (m.tokens.length === 0 && m.inputs.length > 0) {
    // A task model's shard: vectors in, one label or value set per sequence out.
    const rows = seqLen * streams;
    const inputs = new Float32Array(aligned(m.inputs, `${at}: inputs`));
    if (inputs.length % rows !== 0) throw new ProtocolError(`${at}: inputs has ${inputs.length} values, not a multiple of T·B = ${rows}`);
    const labels = m.labels.length ? new Int32Array(aligned(m.labels, `${at}: labels`, streams, 'one per sequence')) : undefined;
    const values = m.values.length ? new Float32Array(aligned(m.values, `${at}: values`)) : undefined;
    if (values && values.length % streams !== 0) throw new ProtocolError(`${at}: values has ${values.length} values, not a multiple of B = ${streams}`);
    if (!labels === !values) throw new ProtocolError(`${at}: a task shard needs exactly one of labels and values`);
    return { runId, step, shard, version, seqLen, streams, tokens: new Int32Array(0), states, attempt, inputs, labels, values, blocks };
  }
  const tokenCount = (seqLen + 1) * streams;
  const tokens = new Int32Array(aligned(m.tokens, `${at}: tokens`, tokenCount, `(seq_len + 1)·streams = (${seqLen} + 1)·${streams}`));
  if (m.images.length === 0) return { runId, step, shard, version, seqLen, streams, tokens, states, attempt, blocks };
  // A captioner's shard: an image per stream, all of one size.
  if (m.images.length % streams !== 0) throw new ProtocolError(`${at}: images has ${m.images.length} bytes, not a multiple of streams = ${streams} (one image each)`);
  const images = Uint8Array.from(m.images);
  return { runId, step, shard, version, seqLen, streams, tokens, states, attempt, blocks, images };
}

// ---- ShardResult ----

/**
 * With `gradInSlot` the gradient already lies in the shared slot the task came with
 * (m.grad is that memory, or a prefix of it): the message then carries only its length,
 * not its bytes.
 */
export function encodeShardResult(m: ShardResultMsg, opts: { gradInSlot?: boolean } = {}): Uint8Array {
  const grad = opts.gradInSlot ? new Uint8Array(0) : rawBytes(m.grad);
  return encode(TYPES.result, { ...m, grad, finalStates: rawBytes(m.finalStates), gradInSlot: opts.gradInSlot ? m.grad.length : 0 });
}

export interface ShardResultExpectation {
  runId: string;
  step: number;
  shard: number;
  version: number;
  paramCount: number;
  stateSize: number;
  tokens: number;
  /** The shared gradient slot the task gave a local replica, if it gave one. */
  gradSlot?: Float32Array;
}

/**
 * Decodes a worker's result and rejects one that does not answer the task it was
 * given. A non-finite value inside the gradient is accepted: the coordinator counts
 * and skips such steps (see firstNonFinite).
 */
export function decodeShardResult(bytes: Uint8Array, expect: ShardResultExpectation): ShardResultMsg {
  type Raw = Omit<ShardResultMsg, 'grad' | 'finalStates'> & { grad: Bytes; finalStates: Bytes; gradInSlot: number };
  const m = decode<Raw>(TYPES.result, bytes);
  const at = `ShardResult for step ${expect.step} shard ${expect.shard}`;
  for (const field of ['runId', 'step', 'shard', 'version', 'tokens'] as const) {
    if (m[field] !== expect[field]) {
      throw new ProtocolError(`${at}: ${field} is ${JSON.stringify(m[field])}, expected ${JSON.stringify(expect[field])}`);
    }
  }
  for (const field of ['loss', 'penalty'] as const) {
    if (!Number.isFinite(m[field])) throw new ProtocolError(`non-finite ${field} at step ${expect.step} shard ${expect.shard}: ${m[field]}`, 'nonfinite');
  }
  const grad = m.gradInSlot === 0 ? new Float32Array(aligned(m.grad, `${at}: grad`, expect.paramCount, 'the parameter count')) : slotGrad(m, expect, at);
  const finalStates = new Float32Array(aligned(m.finalStates, `${at}: finalStates`, expect.stateSize, 'the state size L·S·B·H'));
  const { runId, step, shard, version, loss, penalty, tokens, computeMs, worker } = m;
  return { runId, step, shard, version, loss, penalty, tokens, grad, finalStates, computeMs, worker };
}

/** The gradient a result says it wrote into the task's shared slot, checked against the slot. */
function slotGrad(m: { grad: Bytes; gradInSlot: number }, expect: ShardResultExpectation, at: string): Float32Array {
  const slot = expect.gradSlot;
  if (!slot) throw new ProtocolError(`${at}: the gradient is said to be in a shared slot, but the task gave none`);
  if (m.grad.length !== 0) throw new ProtocolError(`${at}: the gradient is both in the message (${m.grad.length} bytes) and in the shared slot`);
  if (m.gradInSlot !== expect.paramCount || slot.length !== expect.paramCount) {
    throw new ProtocolError(`${at}: grad has ${m.gradInSlot} values in the shared slot, expected ${expect.paramCount} (the parameter count)`);
  }
  return slot;
}

// ---- Weights ----

export function encodeWeights(m: WeightsMsg): Uint8Array {
  return encode(TYPES.weights, { ...m, params: rawBytes(m.params) });
}

export function decodeWeights(bytes: Uint8Array, expect: { paramCount?: number } = {}): WeightsMsg {
  const m = decode<{ runId: string; version: number; params: Bytes }>(TYPES.weights, bytes);
  const params = new Float32Array(aligned(m.params, `Weights version ${m.version}: params`, expect.paramCount, 'the parameter count'));
  return { runId: m.runId, version: m.version, params };
}

// ---- Checkpoint ----

/** Everything a checkpoint must satisfy on its own (sizes against the model are the caller's). */
function checkCheckpoint(c: CheckpointMsg): void {
  const fail = (problem: string): never => {
    throw new ProtocolError(`Checkpoint ${problem}`);
  };
  if (!(c.format >= 1 && c.format <= CHECKPOINT_FORMAT)) fail(`format is ${c.format}, expected 1 to ${CHECKPOINT_FORMAT}`);
  let config: unknown;
  try {
    config = JSON.parse(c.configJson);
  } catch (e) {
    fail(`config_json is not valid JSON (${(e as Error).message})`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) fail(`config_json is ${c.configJson.slice(0, 40)}, expected a JSON object`);
  if (c.vocab.length === 0) fail('vocab is empty');
  // Which kinds exist is model/tokenizer.ts's to say (proto may not import it): coordinator/checkpoint.ts checks.
  if (c.tokenKind === '') fail('token_kind is empty, expected a tokenization such as char or word');
  if (c.rngState.length !== 4) fail(`rng_state has ${c.rngState.length} words, expected 4 (xoshiro128**)`);
  const badWord = c.rngState.findIndex((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff);
  if (badWord >= 0) fail(`rng_state word ${badWord} is ${c.rngState[badWord]}, expected a uint32`);
  if (!Number.isSafeInteger(c.tokensSeen) || c.tokensSeen < 0) fail(`tokens_seen is ${c.tokensSeen}, expected an integer in [0, 2^53)`);
  // Fields are written in field order and the last one (format 1: shards; 2: backend; 3: reduction) is never 0 or
  // empty, so a file cut anywhere before its end fails here.
  if (!(c.shards >= 1)) fail(`shards is ${c.shards}, expected at least 1 (the file may be truncated)`);
  if (c.format >= 2 && !c.backend) fail('backend is empty, expected the backend that computed the run (the file may be truncated)');
  // Formats 1 and 2 have no such field: their math was "sequential" (filled in on decoding).
  if (c.format >= 3 && c.reduction !== 'tree' && c.reduction !== 'sequential') {
    fail(`reduction is ${JSON.stringify(c.reduction)}, expected "tree" or "sequential" in format ${c.format}${!c.reduction ? ' (the file may be truncated)' : ''}`);
  }
  const bad = firstNonFinite(c.params);
  if (bad >= 0) fail(`params holds a non-finite value (${c.params[bad]}) at index ${bad}`);
  for (const moment of ['m', 'v'] as const) {
    const n = c.optimizer[moment].length;
    if (n !== 0 && n !== c.params.length) fail(`optimizer.${moment} has ${n} values, expected 0 or ${c.params.length} (one per parameter)`);
  }
}

export function encodeCheckpoint(c: CheckpointMsg): Uint8Array {
  checkCheckpoint(c);
  const { optimizer: o } = c;
  return encode(TYPES.checkpoint, {
    ...c,
    // Formats 1 and 2 had no such field: their "sequential" is implied, never written.
    reduction: c.format >= 3 ? c.reduction : '',
    params: rawBytes(c.params),
    optimizer: { t: o.t, m: rawBytes(o.m), v: rawBytes(o.v) },
    streamStates: rawBytes(c.streamStates),
  });
}

export function decodeCheckpoint(bytes: Uint8Array): CheckpointMsg {
  type Raw = Omit<CheckpointMsg, 'params' | 'optimizer' | 'streamStates' | 'tokensSeen'> & {
    params: Bytes;
    optimizer: { t: number; m: Bytes; v: Bytes } | null;
    streamStates: Bytes;
    tokensSeen: U64;
  };
  const r = decode<Raw>(TYPES.checkpoint, bytes);
  if (!r.optimizer) throw new ProtocolError('Checkpoint optimizer is missing, expected an OptimizerState');
  const c: CheckpointMsg = {
    format: r.format,
    runId: r.runId,
    configJson: r.configJson,
    vocab: [...r.vocab],
    tokenKind: r.tokenKind,
    step: r.step,
    params: new Float32Array(aligned(r.params, 'Checkpoint params')),
    optimizer: {
      t: r.optimizer.t,
      m: new Float32Array(aligned(r.optimizer.m, 'Checkpoint optimizer.m')),
      v: new Float32Array(aligned(r.optimizer.v, 'Checkpoint optimizer.v')),
    },
    streamStates: new Float32Array(aligned(r.streamStates, 'Checkpoint stream_states')),
    rngState: [...r.rngState],
    tokensSeen: typeof r.tokensSeen === 'number' ? r.tokensSeen : r.tokensSeen.toNumber(),
    dataEpoch: r.dataEpoch,
    dataChunk: r.dataChunk,
    shards: r.shards,
    backend: r.backend ?? '',
    reduction: r.format >= 3 ? (r.reduction ?? '') : 'sequential',
  };
  checkCheckpoint(c);
  return c;
}

// ---- Remote workers (NATS) ----

/**
 * A bytes field as a plain Uint8Array view. protobufjs decodes the bytes of a Node
 * Buffer (as NATS delivers them) as Buffers, whose slice() is a view, not a copy; a
 * plain view keeps slice() a copy for every caller.
 */
function view(b: Bytes): Uint8Array {
  return b instanceof Uint8Array ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : Uint8Array.from(b);
}

export function encodeRemoteTask(m: RemoteTaskMsg): Uint8Array {
  return encode(TYPES.remoteTask, { ...m });
}

export function decodeRemoteTask(bytes: Uint8Array): RemoteTaskMsg {
  const m = decode<Omit<RemoteTaskMsg, 'task'> & { task: Bytes }>(TYPES.remoteTask, bytes);
  if (!m.runId) throw new ProtocolError('RemoteTask: run_id is empty');
  if (!m.replyTo) throw new ProtocolError('RemoteTask: reply_to is empty');
  if (m.task.length === 0 && !m.taskBlob) throw new ProtocolError('RemoteTask: neither task nor task_blob is set');
  if (m.taskBlob && !(m.taskChunks >= 1)) throw new ProtocolError(`RemoteTask: task_blob ${m.taskBlob} has ${m.taskChunks} chunks, expected at least 1`);
  if (!(m.weightsChunks >= 1)) throw new ProtocolError(`RemoteTask: weights_chunks is ${m.weightsChunks}, expected at least 1`);
  if (!(m.deadlineMs > 0)) throw new ProtocolError(`RemoteTask: deadline_ms is ${m.deadlineMs}, expected > 0`);
  return { runId: m.runId, task: view(m.task), taskBlob: m.taskBlob, taskChunks: m.taskChunks, replyTo: m.replyTo, specJson: m.specJson, weightsChunks: m.weightsChunks, deadlineMs: m.deadlineMs };
}

export function encodeRemoteAck(m: RemoteAckMsg): Uint8Array {
  return encode(TYPES.remoteAck, { ...m });
}

export function decodeRemoteAck(bytes: Uint8Array): RemoteAckMsg {
  const m = decode<RemoteAckMsg>(TYPES.remoteAck, bytes);
  return { worker: m.worker, error: m.error };
}

export function encodeChunk(m: ChunkMsg): Uint8Array {
  return encode(TYPES.chunk, { ...m });
}

export function decodeChunk(bytes: Uint8Array): ChunkMsg {
  const m = decode<Omit<ChunkMsg, 'data' | 'failure'> & { data: Bytes; failure: string }>(TYPES.chunk, bytes);
  const at = `Chunk ${JSON.stringify(m.key)} ${m.index}/${m.count}`;
  if (!m.key) throw new ProtocolError('Chunk: key is empty');
  if (m.failure && !(CHUNK_FAILURES as readonly string[]).includes(m.failure)) {
    throw new ProtocolError(`${at}: failure is ${JSON.stringify(m.failure)}, expected one of ${CHUNK_FAILURES.join(', ')}`);
  }
  if (m.failure && !m.error) throw new ProtocolError(`${at}: failure is ${m.failure} but error is empty`);
  if (!m.error) {
    if (!(m.count >= 1)) throw new ProtocolError(`${at}: count is ${m.count}, expected at least 1`);
    if (m.index >= m.count) throw new ProtocolError(`${at}: index is past the last chunk`);
    if (m.count > Math.max(1, m.totalBytes)) throw new ProtocolError(`${at}: ${m.count} chunks cannot share ${m.totalBytes} bytes`);
    if (m.offset + m.data.length > m.totalBytes) {
      throw new ProtocolError(`${at}: bytes ${m.offset}..${m.offset + m.data.length} run past the whole (${m.totalBytes} bytes)`);
    }
  }
  const c: ChunkMsg = { runId: m.runId, key: m.key, index: m.index, count: m.count, totalBytes: m.totalBytes, offset: m.offset, data: view(m.data), error: m.error };
  // A worker that names no failure kind reports a plain error.
  if (m.error) c.failure = (m.failure || 'error') as ChunkFailure;
  return c;
}

export function encodeBlobRequest(m: BlobRequestMsg): Uint8Array {
  return encode(TYPES.blobRequest, { ...m });
}

export function decodeBlobRequest(bytes: Uint8Array): BlobRequestMsg {
  const m = decode<BlobRequestMsg>(TYPES.blobRequest, bytes);
  if (!m.key) throw new ProtocolError('BlobRequest: key is empty');
  return { key: m.key, index: m.index };
}

export function encodeHeartbeat(m: HeartbeatMsg): Uint8Array {
  return encode(TYPES.heartbeat, { ...m });
}

export function decodeHeartbeat(bytes: Uint8Array): HeartbeatMsg {
  const m = decode<HeartbeatMsg>(TYPES.heartbeat, bytes);
  if (!m.worker) throw new ProtocolError('Heartbeat: worker is empty');
  return { worker: m.worker, threads: m.threads, busy: m.busy, runs: [...m.runs], host: m.host, pid: m.pid, onlyRun: m.onlyRun };
}
