// A replica thread's mailbox: the shared memory through which the local pool hands one
// thread its tasks and takes back its results, with no message per task. A message
// through a thread pool costs ~0.5–1 ms (a structured clone and a port wake-up each way,
// measured with Piscina on this machine); a write into shared memory and an
// Atomics.notify cost ~0.1 ms for the round trip. At W = 2 that is ~3% of a step.
//
//   ctl (Int32Array)           coordinator                          thread
//   [STATE]  IDLE ──────────── post(task) ─▶ JOB ───────────────── next() wakes, reads the task
//            DONE | FAILED ◀── (result copied out) ◀────────────── done(result) | fail(message)
//            EXIT ──────────── retire() ────────────────────────── next() returns 'exit'
//   [LENGTH] bytes of the task, then of the result (or of the error's text)
//   [SLOT]   the task's gradient slot id, −1 for none
//   data     a growable SharedArrayBuffer: the task's bytes, then the result's
//
// Bytes are copied in and out (tens of microseconds for a task's ~70 KB), so no view into
// the shared memory outlives its exchange: decoders and TextDecoder see private buffers.
// The wire contract stays the encoded ShardTask and ShardResult (proto/).

export const IDLE = 0;
export const JOB = 1;
export const DONE = 2;
export const FAILED = 3;
export const EXIT = 4;

const STATE = 0;
const LENGTH = 1;
const SLOT = 2;

/** Room reserved for the data (address space only; pages are used as the data grows). */
const MAX_DATA_BYTES = 1 << 30;
const FIRST_DATA_BYTES = 1 << 17;

// Growable SharedArrayBuffers and Atomics.waitAsync are in Node 20 (V8 11) but in the
// ES2024 lib, which this project's ES2022 target does not load: typed here.
interface GrowableShared extends SharedArrayBuffer {
  readonly maxByteLength: number;
  grow(bytes: number): void;
}
export type WaitAsync = (a: Int32Array, index: number, value: number) => { async: false; value: string } | { async: true; value: Promise<string> };
/** Atomics.waitAsync, typed (see above). */
export const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;
const growable = (bytes: number, maxByteLength: number) =>
  new (SharedArrayBuffer as unknown as new (bytes: number, opts: { maxByteLength: number }) => GrowableShared)(bytes, { maxByteLength });

/** What a thread's serve task is given: the mailbox's two buffers. */
export interface MailboxBuffers {
  ctl: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

export class Mailbox {
  private readonly ctl: Int32Array;

  constructor(readonly buffers: MailboxBuffers) {
    this.ctl = new Int32Array(buffers.ctl);
  }

  static create(): Mailbox {
    return new Mailbox({ ctl: new SharedArrayBuffer(16), data: growable(FIRST_DATA_BYTES, MAX_DATA_BYTES) });
  }

  get state(): number {
    return Atomics.load(this.ctl, STATE);
  }

  // ── the coordinator's side ──

  /** Hand the thread a task (the mailbox must be IDLE) and wake it. */
  post(task: Uint8Array, slot: number): void {
    if (this.state !== IDLE) throw new Error(`mailbox: a task was posted in state ${this.state}, not idle`);
    this.write(task);
    Atomics.store(this.ctl, SLOT, slot);
    Atomics.store(this.ctl, STATE, JOB);
    Atomics.notify(this.ctl, STATE);
  }

  /** Resolves once the thread has answered the task posted (or the mailbox was retired). */
  answered(): Promise<unknown> {
    const w = waitAsync(this.ctl, STATE, JOB);
    return w.async ? w.value : Promise.resolve();
  }

  /** The answer's bytes, copied out; the mailbox is IDLE again. */
  take(): ArrayBuffer {
    const out = new Uint8Array(this.buffers.data, 0, Atomics.load(this.ctl, LENGTH)).slice();
    Atomics.store(this.ctl, STATE, IDLE);
    return out.buffer;
  }

  /** Tell the thread to leave its loop (and wake anything waiting on the mailbox). */
  retire(): void {
    Atomics.store(this.ctl, STATE, EXIT);
    Atomics.notify(this.ctl, STATE);
  }

  // ── the thread's side ──

  /** Blocks until a task is posted ('job') or the mailbox is retired ('exit'). */
  next(): 'job' | 'exit' {
    for (;;) {
      const s = Atomics.load(this.ctl, STATE);
      if (s === JOB) return 'job';
      if (s === EXIT) return 'exit';
      Atomics.wait(this.ctl, STATE, s);
    }
  }

  /** The task posted: its bytes (a private copy) and its gradient slot id (−1: none). */
  task(): { bytes: Uint8Array; slot: number } {
    return { bytes: new Uint8Array(this.buffers.data, 0, Atomics.load(this.ctl, LENGTH)).slice(), slot: Atomics.load(this.ctl, SLOT) };
  }

  done(result: Uint8Array): void {
    this.answer(DONE, result);
  }

  fail(message: string): void {
    this.answer(FAILED, new TextEncoder().encode(message));
  }

  private answer(state: number, bytes: Uint8Array): void {
    this.write(bytes);
    // Only a task still posted is answered: a mailbox retired meanwhile stays EXIT.
    if (Atomics.compareExchange(this.ctl, STATE, JOB, state) === JOB) Atomics.notify(this.ctl, STATE);
  }

  private write(bytes: Uint8Array): void {
    const data = this.buffers.data as GrowableShared;
    if (bytes.byteLength > data.byteLength) {
      if (bytes.byteLength > data.maxByteLength) throw new RangeError(`mailbox: ${bytes.byteLength} bytes exceed its ${data.maxByteLength}`);
      data.grow(Math.min(data.maxByteLength, Math.max(bytes.byteLength, 2 * data.byteLength)));
    }
    new Uint8Array(data, 0, bytes.byteLength).set(bytes);
    Atomics.store(this.ctl, LENGTH, bytes.byteLength);
  }
}
