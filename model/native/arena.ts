// Recycled tensor memory for the native backend. A training step allocates the same
// large arrays every step (B×4H gate rows per time step, T·B×H activations, their
// gradients); fresh ones cost page faults, zeroing, and — as glibc returns big blocks
// to the kernel — TLB shootdowns that stall the other worker threads of the process.
// So the native backend's kernels take their outputs from here, and an array comes
// back when the last tensor holding it is disposed.
//
// Only arrays handed out by `take` are ever reused, and only when exactly one tensor
// ever held the whole array: an array that became the data of a second tensor, or one
// whose memory a view (a subarray, e.g. the cpu backend's contiguous Slice) shares, is
// left to the garbage collector. Small arrays are not pooled (V8 allocates them cheaply).

/** Arrays below this many floats are plain allocations. */
export const MIN_POOLED = 4096;
/** The free lists never hold more than this many bytes. */
const MAX_POOLED_BYTES = 256 * 2 ** 20;

const enum State {
  /** Handed out by take, not yet tensor data. */
  Taken,
  /** The data of exactly one tensor. */
  Live,
  /** Shared (a second tensor or a view): never reused. */
  Shared,
  /** On a free list. */
  Free,
}

/**
 * Fill arrays with NaN as they come back (GRADPOOL_ARENA_POISON=1, or setArenaPoison): a
 * result that still reads memory after its tensor went shows as NaN at once, instead of
 * as wrong bits only when the array happens to be handed out again before the read.
 */
let poison = !!process.env.GRADPOOL_ARENA_POISON;
const state = new WeakMap<ArrayBuffer, State>();
const free = new Map<number, Float32Array[]>();
let freeBytes = 0;
const stats = { taken: 0, reused: 0, returned: 0 };

const whole = (a: Float32Array) => a.byteOffset === 0 && a.byteLength === a.buffer.byteLength;

/** A Float32Array of n floats with unspecified contents (every kernel writes all of its outputs). */
export function take(n: number): Float32Array {
  if (n < MIN_POOLED) return new Float32Array(n);
  stats.taken++;
  const a = free.get(n)?.pop();
  if (a) {
    freeBytes -= a.byteLength;
    stats.reused++;
    state.set(a.buffer as ArrayBuffer, State.Taken);
    return a;
  }
  const fresh = new Float32Array(n);
  state.set(fresh.buffer, State.Taken);
  return fresh;
}

/** The backend stored `values` as a tensor's data. */
export function noteWrite(values: unknown): void {
  if (!(values instanceof Float32Array)) return;
  const buf = values.buffer as ArrayBuffer;
  const s = state.get(buf);
  if (s === undefined || s === State.Shared) return;
  state.set(buf, s === State.Taken && whole(values) ? State.Live : State.Shared);
}

/** The backend dropped a tensor's data `values` (its last reference). */
export function noteFree(values: unknown): void {
  if (!(values instanceof Float32Array) || !whole(values)) return;
  const buf = values.buffer as ArrayBuffer;
  if (state.get(buf) !== State.Live) return;
  if (freeBytes + values.byteLength > MAX_POOLED_BYTES) {
    state.delete(buf);
    return;
  }
  state.set(buf, State.Free);
  if (poison) values.fill(NaN);
  let list = free.get(values.length);
  if (!list) free.set(values.length, (list = []));
  list.push(values);
  freeBytes += values.byteLength;
  stats.returned++;
}

/** Counters for tests and the bench: arrays taken, reused from a free list, returned. */
export function arenaStats(): { taken: number; reused: number; returned: number; freeBytes: number } {
  return { ...stats, freeBytes };
}

/** Poison returned arrays (see `poison`); returns the previous setting. */
export function setArenaPoison(on: boolean): boolean {
  const was = poison;
  poison = on;
  return was;
}

/** Drop every free list (tests). */
export function clearArena(): void {
  for (const list of free.values()) for (const a of list) state.delete(a.buffer as ArrayBuffer);
  free.clear();
  freeBytes = 0;
}
