// The Piscina task: one worker thread's replica of the model. A task is an encoded
// ShardTask; the replica loads the weights of the task's version from the shared
// weights buffer (only when the version changed), runs truncated BPTT on the shard
// and returns an encoded ShardResult, transferred (not copied) to the coordinator.
// A local coordinator also gives each task a shared gradient slot: the gradient is
// written there in place and the result only says so (no encoding, no copy).

import { threadId } from 'node:worker_threads';
import Piscina from 'piscina';
import { initBackend, type BackendName } from '../model/backend.js';
import type { ModelConfig } from '../model/config.js';
import { runBlocks } from '../model/blocks.js';
import { Network } from '../model/network.js';
import { buildLayout } from '../model/params.js';
import { decodeShardTask, ownBytes, type ShardResultMsg, type ShardTaskMsg } from '../proto/codec.js';
import { replicaTask } from './faults.js';

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
    const published = Atomics.load(sharedVersion, 0);
    if (published !== task.version) {
      throw new Error(`weights buffer holds version ${published}, task wants ${task.version}`);
    }
    net.setParams(weights);
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

/** What ReplicaPool.run sends: the encoded ShardTask and, from a local coordinator, a shared gradient slot. */
export interface ReplicaJob {
  task: Uint8Array;
  gradSlot?: SharedArrayBuffer;
}

export default async function runShard(job: ReplicaJob): Promise<unknown> {
  const bytes = await resultOf(decodeShardTask(job.task), job.gradSlot && new Float32Array(job.gradSlot));
  // Transfer needs a buffer of exactly the message (an encoder may return a view).
  return Piscina.move(ownBytes(bytes).buffer as ArrayBuffer);
}
