// One worker thread's replica of the model. Its one Piscina task is a serve loop: it
// takes encoded ShardTasks from its mailbox (worker/mailbox.ts, filled by worker/pool.ts),
// loads the weights of a task's version from the shared weights buffer (only when the
// version changed), runs truncated BPTT on the task's blocks and puts the encoded
// ShardResult back in the mailbox. A local coordinator also gives each task a shared
// gradient slot: the gradient is written there in place and the result only says so
// (no encoding, no copy); the slots are announced on the lane's port.

import { type MessagePort, receiveMessageOnPort, threadId } from 'node:worker_threads';
import Piscina from 'piscina';
import { initBackend, type BackendName } from '../model/backend.js';
import type { ModelConfig } from '../model/config.js';
import { runBlocks } from '../model/blocks.js';
import { Network } from '../model/network.js';
import { buildLayout } from '../model/params.js';
import { decodeShardTask, type ShardResultMsg, type ShardTaskMsg } from '../proto/codec.js';
import { replicaTask } from './faults.js';
import { Mailbox, type MailboxBuffers } from './mailbox.js';
import { loadShared } from './pool.js';

export interface ReplicaData {
  runId: string;
  modelConfig: ModelConfig;
  vocabSize: number;
  backend: BackendName;
  /** float32 weights, written by the coordinator between steps. */
  weights: SharedArrayBuffer;
  /** int32[1]: the version the weights buffer holds. */
  version: SharedArrayBuffer;
}

const data = Piscina.workerData as ReplicaData;
const layout = buildLayout(data.modelConfig, data.vocabSize);
const weights = new Float32Array(data.weights);
const sharedVersion = new Int32Array(data.version);
const ready = initBackend(data.backend);
const net = new Network(layout);
let loadedVersion = -1;
let gradMemory: Float32Array | undefined;

async function compute(task: ShardTaskMsg, gradSlot?: Float32Array): Promise<ShardResultMsg> {
  await ready;
  if (task.version !== loadedVersion) {
    // A publish that overlaps the copy is seen (a sequence lock): a torn copy is never used,
    // and until a load succeeds the replica holds no version.
    loadedVersion = -1;
    loadShared(sharedVersion, task.version, () => net.setParams(weights));
    loadedVersion = task.version;
  }
  if (gradSlot && gradSlot.length !== layout.size) {
    throw new Error(`the gradient slot holds ${gradSlot.length} values, the model has ${layout.size} parameters`);
  }
  const started = performance.now();
  const chunk = task.inputs
    ? { inputs: task.inputs, labels: task.labels, values: task.values, T: task.seqLen, B: task.streams, states: task.states }
    : { tokens: task.tokens, images: task.images, T: task.seqLen, B: task.streams, states: task.states };
  // The gradient goes into the task's shared slot (the coordinator reads it there), else
  // into this thread's own buffer: the result is encoded before the next task starts (one
  // task at a time per thread), so that memory is reused.
  const r = runBlocks(net, chunk, task.blocks, { training: true, gradInto: gradSlot ?? gradMemory });
  if (!gradSlot) gradMemory = r.grad!;
  return {
    runId: task.runId,
    step: task.step,
    shard: task.shard,
    version: task.version,
    loss: r.loss,
    penalty: r.penalty,
    tokens: r.tokens,
    grad: r.grad!,
    finalStates: r.finalStates,
    computeMs: performance.now() - started,
    worker: threadId,
  };
}

// The plain task unless GRADPOOL_FAULT asks for test faults: decided once per thread.
const resultOf = replicaTask(compute);

/** The serve task a lane starts on its thread: the mailbox and the port slots are announced on. */
export interface ServeJob {
  mailbox: MailboxBuffers;
  port: MessagePort;
}

/** On a lane's port: a gradient slot to use by its id, or one to forget. */
export type SlotNotice = { id: number; buffer: SharedArrayBuffer } | { forget: number };

/**
 * The serve loop: one task after another from the mailbox until it is retired. It blocks
 * in Atomics.wait between tasks (the thread has nothing else to do); a task's failure is
 * written back as its message, and the loop goes on.
 */
export default async function serve(job: ServeJob): Promise<number> {
  const box = new Mailbox(job.mailbox);
  const slots = new Map<number, Float32Array>();
  let served = 0;
  // Blocking in Atomics.wait stops this thread's event loop: let the backend finish starting
  // first (its failure, if any, is each task's error).
  await ready.catch(() => {});
  while (box.next() === 'job') {
    const { bytes, slot } = box.task();
    try {
      for (let m = receiveMessageOnPort(job.port); m; m = receiveMessageOnPort(job.port)) {
        const notice = m.message as SlotNotice;
        if ('forget' in notice) slots.delete(notice.forget);
        else slots.set(notice.id, new Float32Array(notice.buffer));
      }
      const gradSlot = slot >= 0 ? slots.get(slot) : undefined;
      if (slot >= 0 && !gradSlot) throw new Error(`gradient slot ${slot} was never announced to this thread`);
      box.done(await resultOf(decodeShardTask(bytes), gradSlot));
    } catch (e) {
      box.fail(e instanceof Error ? e.message : String(e));
    }
    served += 1;
  }
  job.port.close();
  return served;
}
