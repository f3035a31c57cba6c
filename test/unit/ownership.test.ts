// Memory we do not own is never transferred to a thread. NATS hands each message over as
// a Node Buffer that is a view into one receive buffer shared by every message of the
// same socket read, and protobufjs decodes `bytes` fields of a Buffer as Buffers too.
// Buffer#slice() is a view, not a copy: "copying" a task with it and transferring the
// copy's buffer used to hand the whole receive buffer to a replica thread, detaching it
// under the next task of the same read, whose thread then died with "Unable to
// deserialize cloned data." (seen once in CI as a failed shard on a NATS run).

import { afterAll, describe, expect, it } from 'vitest';
import { modelConfigOf, TRAIN_DEFAULTS } from '../../coordinator/config.js';
import { stateSize } from '../../model/chunk.js';
import { isLstm } from '../../model/config.js';
import { buildLayout, initParams } from '../../model/params.js';
import { Assembler, splitChunks } from '../../proto/chunks.js';
import { decodeChunk, decodeRemoteTask, decodeShardResult, encodeChunk, encodeRemoteTask, encodeShardTask } from '../../proto/codec.js';
import { ReplicaPool } from '../../worker/pool.js';

const modelConfig = modelConfigOf({ ...TRAIN_DEFAULTS, cell: 'lstm', layers: 1, hidden: 8, embed: 4 });
const V = 5;
const [T, B] = [4, 2];
const layout = buildLayout(modelConfig, V);

function shardTask(shard: number): Uint8Array {
  return encodeShardTask({
    runId: 'own', step: 0, shard, version: 0, seqLen: T, streams: B, attempt: 1,
    tokens: Int32Array.from({ length: (T + 1) * B }, (_, i) => (i * 3 + shard) % V),
    states: new Float32Array(stateSize(modelConfig.layers, isLstm(modelConfig.cell), B, modelConfig.hidden)),
  });
}

/** Messages laid end to end in one Buffer, handed out as Buffer views, the way a NATS socket read arrives. */
function oneRead(messages: Uint8Array[]): { read: Buffer; views: Buffer[] } {
  // Buffer.alloc, not the small-Buffer pool (which Node never transfers): a socket read is its own allocation.
  const parts = messages.flatMap((m) => [Buffer.from('MSG header\r\n'), Buffer.from(m)]);
  const read = Buffer.alloc(parts.reduce((n, p) => n + p.length, 0));
  Buffer.concat(parts).copy(read);
  const views: Buffer[] = [];
  let at = 0;
  for (const m of messages) {
    at += 'MSG header\r\n'.length;
    views.push(read.subarray(at, at + m.length));
    at += m.length;
  }
  return { read, views };
}

describe('memory a caller does not own is never transferred', () => {
  const pool = new ReplicaPool({ runId: 'own', modelConfig, vocabSize: V, paramCount: layout.size, backend: 'cpu', threads: 1 });
  pool.publish(initParams(layout, 1), 0);
  afterAll(() => pool.close());

  it('ReplicaPool.run given Buffer views of one read: every task runs and the read stays intact', async () => {
    const tasks = [0, 1, 2].map(shardTask);
    const { read, views } = oneRead(tasks);
    const before = Buffer.from(read);
    const results = await Promise.all(views.map((v) => pool.run(v, AbortSignal.timeout(30_000))));
    const nState = stateSize(modelConfig.layers, isLstm(modelConfig.cell), B, modelConfig.hidden);
    results.forEach((r, shard) => {
      const m = decodeShardResult(new Uint8Array(r), { runId: 'own', step: 0, shard, version: 0, paramCount: layout.size, stateSize: nState, tokens: T * B });
      expect(Number.isFinite(m.loss)).toBe(true);
    });
    expect(read.buffer.byteLength).toBeGreaterThan(0); // not detached
    expect(read.equals(before)).toBe(true);
  });

  it('decoded bytes fields are plain views: slice() copies', () => {
    const inner = shardTask(0);
    const rt = encodeRemoteTask({ runId: 'own', task: inner, taskBlob: '', taskChunks: 0, replyTo: 'x', specJson: '{}', weightsChunks: 1, deadlineMs: 1000 });
    const { read, views } = oneRead([rt]);
    const task = decodeRemoteTask(views[0]).task;
    expect(Buffer.isBuffer(task)).toBe(false);
    expect(task.slice().buffer).not.toBe(read.buffer);
    const [chunk] = splitChunks('own', 'k', inner, 1 << 20);
    const c = decodeChunk(oneRead([encodeChunk(chunk)]).views[0]);
    expect(Buffer.isBuffer(c.data)).toBe(false);
  });

  it('a whole assembled from a single chunk owns its memory', () => {
    const inner = shardTask(1);
    const [chunk] = splitChunks('own', 'k', inner, 1 << 20);
    const { read, views } = oneRead([encodeChunk(chunk)]);
    const whole = new Assembler().add(decodeChunk(views[0]))!;
    expect(whole.buffer).not.toBe(read.buffer);
    expect(whole.byteOffset).toBe(0);
    expect(whole.byteLength).toBe(whole.buffer.byteLength);
    expect(Buffer.from(whole).equals(Buffer.from(inner))).toBe(true);
  });
});
