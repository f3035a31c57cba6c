// Checkpoint files (coordinator/checkpoint.ts): bit-exact round trip, atomic replacement
// with no temp files left behind, and one test per CheckpointError message.

import { mkdtemp, readFile, readdir, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CHECKPOINT_FILE, CheckpointError, loadCheckpoint, saveCheckpoint } from '../../coordinator/checkpoint.js';
import type { CheckpointMsg } from '../../proto/codec.js';

function checkpoint(step = 100): CheckpointMsg {
  const P = 1000;
  return {
    format: 3, runId: 'run-7', configJson: JSON.stringify({ cell: 'gru', hidden: 8, lr: 0.002 }),
    vocab: ['x', 'y', 'z'], tokenKind: 'word', step,
    params: Float32Array.from({ length: P }, (_, i) => (i === 0 ? -0 : Math.sin(i * 12.9898) * 43758.5453)),
    optimizer: { t: step, m: Float32Array.from({ length: P }, (_, i) => i * 1e-7), v: Float32Array.from({ length: P }, (_, i) => 1e-38 * i) },
    streamStates: Float32Array.from({ length: 48 }, (_, i) => Math.tanh(i - 24)),
    rngState: [0xdeadbeef, 1, 2, 3], tokensSeen: step * 2048, dataEpoch: 0, dataChunk: step, shards: 2, backend: 'native (avx2)', reduction: 'tree',
  };
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
/** A pid no process has: Linux caps pids at 2^22. */
const DEAD_PID = 2 ** 30;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradpool-ckpt-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function thrown(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

describe('save and load', () => {
  it('round-trips bit-exactly', async () => {
    const m = checkpoint();
    const before = performance.now();
    const saved = await saveCheckpoint(dir, m);
    const elapsedMs = performance.now() - before;
    expect(saved.path).toBe(join(dir, CHECKPOINT_FILE));
    expect(saved.bytes).toBe((await readFile(saved.path)).length);
    // The save's own duration in milliseconds: not zero (it encodes, writes and fsyncs), within the call's.
    expect(saved.ms).toBeGreaterThan(0);
    expect(saved.ms).toBeLessThanOrEqual(elapsedMs);
    const back = await loadCheckpoint(dir);
    expect(bits(back.params)).toBe(bits(m.params));
    expect(bits(back.optimizer.m)).toBe(bits(m.optimizer.m));
    expect(bits(back.optimizer.v)).toBe(bits(m.optimizer.v));
    expect(bits(back.streamStates)).toBe(bits(m.streamStates));
    const { params, optimizer, streamStates, ...rest } = back;
    const { params: p0, optimizer: o0, streamStates: s0, ...rest0 } = m;
    expect(rest).toEqual(rest0);
    expect(optimizer.t).toBe(o0.t);
  });

  it('creates the directory when needed', async () => {
    const nested = join(dir, 'runs', 'a');
    await saveCheckpoint(nested, checkpoint());
    expect((await loadCheckpoint(nested)).step).toBe(100);
  });

  it('a later save replaces the earlier one and leaves no temp file', async () => {
    await saveCheckpoint(dir, checkpoint(100));
    await saveCheckpoint(dir, checkpoint(200));
    expect(await readdir(dir)).toEqual([CHECKPOINT_FILE]);
    expect((await loadCheckpoint(dir)).step).toBe(200);
  });

  it('ignores a stray temp file from an interrupted save, and the next save removes it', async () => {
    await saveCheckpoint(dir, checkpoint(100));
    const stray = `.${CHECKPOINT_FILE}.${DEAD_PID}.0badf00d.tmp`;
    await writeFile(join(dir, stray), Buffer.from('half a checkpoint'));
    expect((await loadCheckpoint(dir)).step).toBe(100);
    await saveCheckpoint(dir, checkpoint(300));
    expect(await readdir(dir)).toEqual([CHECKPOINT_FILE]);
    expect((await loadCheckpoint(dir)).step).toBe(300);
  });

  it('leaves alone a temp file of a live process (it may be mid-save) and unrelated files', async () => {
    const live = `.${CHECKPOINT_FILE}.${process.pid}.12345678.tmp`;
    await writeFile(join(dir, live), '');
    await writeFile(join(dir, 'notes.txt'), '');
    await saveCheckpoint(dir, checkpoint());
    expect((await readdir(dir)).sort()).toEqual([live, CHECKPOINT_FILE, 'notes.txt'].sort());
  });

  it('refuses to save a checkpoint that could not be loaded back, and writes nothing', async () => {
    const m = checkpoint();
    m.params[42] = NaN;
    const err = await thrown(saveCheckpoint(dir, m));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.name).toBe('CheckpointError');
    expect(err.message).toMatch(/refusing to save checkpoint .*checkpoint\.pb: .*non-finite value \(NaN\) at index 42/);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('load errors', () => {
  it('missing directory', async () => {
    const missing = join(dir, 'nope');
    const err = await thrown(loadCheckpoint(missing));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toBe(`checkpoint directory ${missing} does not exist`);
  });

  it('a file where the directory should be', async () => {
    const file = join(dir, 'file');
    await writeFile(file, 'x');
    expect((await thrown(loadCheckpoint(file))).message).toBe(`checkpoint directory ${file} is not a directory`);
  });

  it('no checkpoint in the directory', async () => {
    const err = await thrown(loadCheckpoint(dir));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toBe(`no checkpoint in ${dir} (no checkpoint.pb): run a training with --out ${dir} first`);
  });

  it('checkpoint.pb is a directory', async () => {
    await mkdir(join(dir, CHECKPOINT_FILE));
    expect((await thrown(loadCheckpoint(dir))).message).toMatch(/checkpoint .*checkpoint\.pb is a directory/);
  });

  it('empty file', async () => {
    await writeFile(join(dir, CHECKPOINT_FILE), '');
    expect((await thrown(loadCheckpoint(dir))).message).toBe(`checkpoint ${join(dir, CHECKPOINT_FILE)} is empty (0 bytes)`);
  });

  it('corrupt file: names the path', async () => {
    await writeFile(join(dir, CHECKPOINT_FILE), Buffer.from('this is not a protobuf message, just some text\n'));
    const err = await thrown(loadCheckpoint(dir));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toContain(`checkpoint ${join(dir, CHECKPOINT_FILE)}: `);
  });

  it('truncated file, cut at several places: names the path', async () => {
    const { path } = await saveCheckpoint(dir, checkpoint());
    const whole = await readFile(path);
    // whole.length − 15: just before the last field (the backend, "native (avx2)"), so the file reads as format 2 without it.
    for (const n of [1, 10, 100, 1000, 4000, whole.length - 15, whole.length - 3, whole.length - 1]) {
      await writeFile(path, whole.subarray(0, n));
      const err = await thrown(loadCheckpoint(dir));
      expect(err, `cut at ${n}`).toBeInstanceOf(CheckpointError);
      expect(err.message).toContain(`checkpoint ${path}: `);
    }
  });

  it('validation failure from the codec: names the path and the field', async () => {
    const { path } = await saveCheckpoint(dir, checkpoint());
    const bytes = await readFile(path);
    expect(bytes[0]).toBe(0x08); // field 1 (format), varint
    bytes[1] = 9;
    await writeFile(path, bytes);
    expect((await thrown(loadCheckpoint(dir))).message).toBe(`checkpoint ${path}: Checkpoint format is 9, expected 1 to 3`);
  });
});
