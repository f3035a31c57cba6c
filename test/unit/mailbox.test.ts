// The local pool's mailboxes (worker/mailbox.ts) and the lanes of ReplicaPool over them
// (worker/pool.ts): a task and its answer cross shared memory, the data grows past its
// first size, a retired mailbox stays retired, and the pool keeps its promises — tasks
// beyond its threads wait their turn, a gradient slot is announced before its first use
// and forgotten when dropped, a task aborted while queued or running fails as a timeout
// and the thread that ran it is replaced, a task that throws leaves its thread serving.

import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { modelConfigOf, TRAIN_DEFAULTS } from '../../coordinator/config.js';
import { stateSize } from '../../model/chunk.js';
import { isLstm } from '../../model/config.js';
import { buildLayout, initParams } from '../../model/params.js';
import { decodeShardResult, encodeShardTask } from '../../proto/codec.js';
import { DONE, EXIT, FAILED, IDLE, JOB, Mailbox } from '../../worker/mailbox.js';
import { ReplicaError, ReplicaPool } from '../../worker/pool.js';

/** A thread serving a mailbox with the compiled Mailbox: answers each task with its bytes reversed, "fail" with a failure, "grow N" with N bytes. */
function echoThread(box: Mailbox): Worker {
  const mailboxJs = new URL('../../dist/worker/mailbox.js', import.meta.url).href;
  const code = `
    const { workerData } = require('node:worker_threads');
    import(${JSON.stringify(mailboxJs)}).then(({ Mailbox }) => {
      const box = new Mailbox(workerData);
      while (box.next() === 'job') {
        const { bytes, slot } = box.task();
        const text = new TextDecoder().decode(bytes);
        if (text === 'fail') box.fail('asked to fail, slot ' + slot);
        else if (text.startsWith('grow ')) box.done(Uint8Array.from({ length: Number(text.slice(5)) }, (_, i) => i % 253));
        else box.done(bytes.reverse());
      }
    });`;
  return new Worker(code, { eval: true, workerData: box.buffers });
}

describe('Mailbox', () => {
  it('carries a task to a thread and its answer back, growing its data for large ones, until retired', async () => {
    const box = Mailbox.create();
    const thread = echoThread(box);
    const exited = new Promise((r) => thread.once('exit', r));
    expect(box.state).toBe(IDLE);
    for (const size of [1, 1000, 300_000, 5]) {
      const task = Uint8Array.from({ length: size }, (_, i) => (i * 7) % 251);
      box.post(task, 3);
      await box.answered();
      expect(box.state).toBe(DONE);
      expect(new Uint8Array(box.take())).toEqual(task.slice().reverse());
      expect(box.state).toBe(IDLE);
    }
    // An answer larger than the data so far: the thread grows it, and the coordinator reads it whole.
    box.post(new TextEncoder().encode('grow 700000'), -1);
    await box.answered();
    const grown = new Uint8Array(box.take());
    expect(grown.length).toBe(700_000);
    expect(grown.every((v, i) => v === i % 253)).toBe(true);
    box.post(new TextEncoder().encode('fail'), 7);
    await box.answered();
    expect(box.state).toBe(FAILED);
    expect(new TextDecoder().decode(box.take())).toBe('asked to fail, slot 7');
    box.retire();
    expect(await exited).toBe(0);
    expect(box.state).toBe(EXIT);
  });

  it('refuses a second task while one is posted, and an answer to a retired mailbox is dropped', () => {
    const box = Mailbox.create();
    box.post(new Uint8Array([1]), -1);
    expect(box.state).toBe(JOB);
    expect(() => box.post(new Uint8Array([2]), -1)).toThrow(/posted in state 1, not idle/);
    box.retire();
    box.done(new Uint8Array([9, 9])); // the thread answers after the coordinator gave up
    expect(box.state).toBe(EXIT);
  });
});

describe('Mailboxes sharing a bell', () => {
  it('tasks posted without a ring wait; one ring wakes every thread with a task; a thread woken with none waits on; retiring one wakes only it out of its loop', async () => {
    const bell = new SharedArrayBuffer(4);
    const boxes = [0, 1, 2].map(() => Mailbox.create(bell));
    const threads = boxes.map(echoThread);
    const exits = threads.map((t) => new Promise((r) => t.once('exit', r)));
    const ask = (k: number, text: string, ring = true) => boxes[k].post(new TextEncoder().encode(text), -1, ring);
    const answer = async (k: number) => {
      await boxes[k].answered();
      return new TextDecoder().decode(boxes[k].take());
    };
    // A round trip each; then every thread is waiting on the bell (a ring wakes all of them,
    // so a thread still awake from the last one would take a task posted without a ring).
    for (const k of [0, 1, 2]) {
      ask(k, `warm${k}`);
      expect(await answer(k)).toBe(`${k}mraw`);
    }
    await new Promise((r) => setTimeout(r, 100));
    ask(0, 'ab', false);
    ask(1, 'cd', false);
    await new Promise((r) => setTimeout(r, 200));
    expect([boxes[0].state, boxes[1].state]).toEqual([JOB, JOB]);
    boxes[0].ring();
    expect(await Promise.all([answer(0), answer(1)])).toEqual(['ba', 'dc']);
    // The third thread was woken too, found nothing and went back to waiting: it still serves.
    expect(boxes[2].state).toBe(IDLE);
    ask(2, 'ef');
    expect(await answer(2)).toBe('fe');
    // Retiring one mailbox rings the shared bell: its thread leaves, the others serve on.
    boxes[2].retire();
    expect(await exits[2]).toBe(0);
    ask(0, 'gh');
    expect(await answer(0)).toBe('hg');
    boxes[0].retire();
    boxes[1].retire();
    expect(await Promise.all(exits)).toEqual([0, 0, 0]);
  });
});

const modelConfig = modelConfigOf({ ...TRAIN_DEFAULTS, cell: 'lstm', layers: 1, hidden: 8, embed: 4 });
const V = 5;
const [T, B] = [4, 2];
const layout = buildLayout(modelConfig, V);
const nState = stateSize(modelConfig.layers, isLstm(modelConfig.cell), B, modelConfig.hidden);

function shardTask(shard: number, version = 0): Uint8Array {
  return encodeShardTask({
    runId: 'box', step: 0, shard, version, seqLen: T, streams: B, attempt: 1,
    tokens: Int32Array.from({ length: (T + 1) * B }, (_, i) => (i * 3 + shard) % V),
    states: new Float32Array(nState),
  });
}

const decode = (r: ArrayBuffer, shard: number, gradSlot?: Float32Array) =>
  decodeShardResult(new Uint8Array(r), { runId: 'box', step: 0, shard, version: 0, paramCount: layout.size, stateSize: nState, tokens: T * B, gradSlot });

describe('ReplicaPool over mailboxes', () => {
  const pool = new ReplicaPool({ runId: 'box', modelConfig, vocabSize: V, paramCount: layout.size, backend: 'cpu', threads: 2 });
  pool.publish(initParams(layout, 1), 0);
  afterAll(() => pool.close());

  it('runs more tasks than threads, each once, with gradients in the slots announced to the threads', async () => {
    const slots = [0, 1, 2, 3, 4].map((id) => ({ id, buffer: new SharedArrayBuffer(layout.size * 4) }));
    const plain = await Promise.all([0, 1, 2, 3, 4].map((k) => pool.run(shardTask(k), AbortSignal.timeout(30_000))));
    const inSlots = await Promise.all(slots.map((slot, k) => pool.run(shardTask(k), AbortSignal.timeout(30_000), slot)));
    expect(pool.busy).toBe(0);
    slots.forEach((slot, k) => {
      const grad = new Float32Array(slot.buffer);
      expect(grad.some((g) => g !== 0)).toBe(true);
      const viaSlot = decode(inSlots[k], k, grad);
      const viaBytes = decode(plain[k], k);
      expect(viaSlot.loss).toBe(viaBytes.loss);
      expect(grad).toEqual(viaBytes.grad);
    });
    // A slot forgotten by the pool is unknown to the threads: its next use announces it again.
    pool.forgetSlot(0);
    const again = await pool.run(shardTask(0), AbortSignal.timeout(30_000), slots[0]);
    expect(decode(again, 0, new Float32Array(slots[0].buffer)).loss).toBe(decode(plain[0], 0).loss);
  });

  it('a task that throws fails with its message as an error, and the thread goes on serving', async () => {
    const wrongVersion = pool.run(shardTask(0, 5), AbortSignal.timeout(30_000));
    await expect(wrongVersion).rejects.toMatchObject({ name: 'ReplicaError', code: 'error', message: expect.stringMatching(/holds version 0, task wants 5/) });
    const ok = await Promise.all([0, 1].map((k) => pool.run(shardTask(k), AbortSignal.timeout(30_000))));
    expect(ok.map((r, k) => Number.isFinite(decode(r, k).loss))).toEqual([true, true]);
  });

  it('a task aborted while queued or running fails as a timeout; a running one takes its thread down and a new one serves', async () => {
    const already = new AbortController();
    already.abort();
    await expect(pool.run(shardTask(0), already.signal)).rejects.toMatchObject({ code: 'timeout' });
    // Two tasks take both threads; the third waits in the queue and is aborted there.
    const stops = [new AbortController(), new AbortController(), new AbortController()];
    const runs = stops.map((s, k) => pool.run(shardTask(k), s.signal).then(() => 'done', (e: ReplicaError) => e.code));
    stops[2].abort();
    stops[0].abort(); // running (or about to): its thread is terminated
    expect(await Promise.all(runs)).toEqual(['timeout', 'done', 'timeout']);
    expect(pool.busy).toBe(0);
    const after = await Promise.all([0, 1, 2].map((k) => pool.run(shardTask(k), AbortSignal.timeout(30_000))));
    expect(after.map((r, k) => Number.isFinite(decode(r, k).loss))).toEqual([true, true, true]);
  });

  it('after close, a task is refused as a timeout', async () => {
    const other = new ReplicaPool({ runId: 'box', modelConfig, vocabSize: V, paramCount: layout.size, backend: 'cpu', threads: 1 });
    await other.close();
    await expect(other.run(shardTask(0), AbortSignal.timeout(30_000))).rejects.toMatchObject({ code: 'timeout', message: /closed/ });
  });
});
