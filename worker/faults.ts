// TEST-ONLY fault injection, switched on by the GRADPOOL_FAULT environment variable
// and never used otherwise. It lets tests make a worker fail at a chosen shard:
//
//   GRADPOOL_FAULT="crash:step=3,shard=1"         the worker thread exits (process.exit inside it)
//   GRADPOOL_FAULT="throw:step=2,shard=0"         the task throws
//   GRADPOOL_FAULT="hang:step=2,shard=0"          the task never finishes (until aborted)
//   GRADPOOL_FAULT="malformed:step=2,shard=0"     the result bytes are garbage
//   GRADPOOL_FAULT="short:step=2,shard=0"         the gradient is one value short
//   GRADPOOL_FAULT="nan:step=2,shard=0"           the loss is NaN (every attempt)
//   GRADPOOL_FAULT="kill:step=2,shard=0"          a remote worker process (gradpool worker) SIGKILLs
//                                                 itself on receiving the task, after acknowledging it
//   GRADPOOL_FAULT="late:step=2,shard=0"          a remote worker process holds the result 3 s before sending it
//
// Several faults are separated by ";". A fault fires on a task's first attempt only
// (except nan, which is deterministic like a real numerical blow-up), so the retry succeeds.
//
// The hooks cost a production run nothing: with GRADPOOL_FAULT unset the replica's task
// function is the plain one (chosen once, when the thread starts) and the worker host has
// no hook to call.

import type { ShardResultMsg, ShardTaskMsg } from '../proto/types.js';
import { encodeShardResult } from '../proto/codec.js';

const KINDS = ['crash', 'throw', 'hang', 'malformed', 'short', 'nan', 'kill', 'late'] as const;
type FaultKind = (typeof KINDS)[number];

interface Fault {
  kind: FaultKind;
  step: number;
  shard: number;
}

function parseFaults(spec: string | undefined): Fault[] {
  if (!spec) return [];
  return spec.split(';').filter(Boolean).map((part) => {
    const m = /^(\w+):step=(\d+),shard=(\d+)$/.exec(part.trim());
    if (!m || !(KINDS as readonly string[]).includes(m[1])) {
      throw new Error(`GRADPOOL_FAULT: cannot parse "${part}"; expected KIND:step=N,shard=K with KIND one of ${KINDS.join(', ')}`);
    }
    return { kind: m[1] as FaultKind, step: Number(m[2]), shard: Number(m[3]) };
  });
}

function faultFor(faults: Fault[], task: ShardTaskMsg): FaultKind | null {
  const f = faults.find((x) => x.step === task.step && x.shard === task.shard);
  if (!f) return null;
  return f.kind === 'nan' || task.attempt === 0 ? f.kind : null;
}

/** The replica's computation; with a `gradSlot` the gradient is written there (shared memory). */
type Compute = (task: ShardTaskMsg, gradSlot?: Float32Array) => Promise<ShardResultMsg>;

/**
 * The replica thread's task, ShardTask → encoded ShardResult: `compute` itself when
 * GRADPOOL_FAULT is unset, else `compute` wrapped in the thread-side faults.
 */
export function replicaTask(compute: Compute, spec = process.env.GRADPOOL_FAULT): (task: ShardTaskMsg, gradSlot?: Float32Array) => Promise<Uint8Array> {
  const faults = parseFaults(spec);
  if (faults.length === 0) return async (task, gradSlot) => encodeShardResult(await compute(task, gradSlot), { gradInSlot: !!gradSlot });
  return async (task, gradSlot) => {
    const fault = faultFor(faults, task);
    if (fault === 'crash') process.exit(70);
    if (fault === 'throw') throw new Error(`injected fault at step ${task.step} shard ${task.shard}`);
    if (fault === 'hang') await new Promise(() => {});
    const result = await compute(task, gradSlot);
    if (fault === 'short') result.grad = result.grad.subarray(0, result.grad.length - 1);
    if (fault === 'nan') result.loss = NaN;
    const bytes = encodeShardResult(result, { gradInSlot: !!gradSlot });
    return fault === 'malformed' ? bytes.subarray(0, Math.floor(bytes.length / 3)) : bytes;
  };
}

/**
 * The `gradpool worker` process's faults (kill, late), called when a task was received and
 * when its result is ready; null when GRADPOOL_FAULT is unset, so the host calls nothing.
 */
export function hostFaultHook(spec = process.env.GRADPOOL_FAULT): ((task: ShardTaskMsg, at: 'received' | 'computed') => Promise<void>) | null {
  const faults = parseFaults(spec);
  if (faults.length === 0) return null;
  return async (task, at) => {
    const fault = faultFor(faults, task);
    if (fault === 'kill' && at === 'received') process.kill(process.pid, 'SIGKILL');
    if (fault === 'late' && at === 'computed') await new Promise((r) => setTimeout(r, 3_000));
  };
}
