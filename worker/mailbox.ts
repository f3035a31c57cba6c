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
//   bell     (Int32Array[1], shared by a pool's mailboxes) rung to wake their threads
//
// A thread waits on the bell, not on its own word: the pool posts a step's tasks into
// their mailboxes, then rings once, and one Atomics.notify wakes every thread. Woken one
// by one, the first thread could take the core the coordinator was running on before it
// woke the second (two cores, three threads: the notify itself took over 0.5 ms in 15–20%
// of steps, up to 12 ms), and the second task started that much later. A thread woken with
// nothing posted to it goes back to waiting.
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
  /** The bell its thread waits on (4 bytes, may be shared with other mailboxes). */
  bell: SharedArrayBuffer;
}

export class Mailbox {
  private readonly ctl: Int32Array;
  private readonly bell: Int32Array;

  constructor(readonly buffers: MailboxBuffers) {
    this.ctl = new Int32Array(buffers.ctl);
    this.bell = new Int32Array(buffers.bell);
  }

  /** A new mailbox; its thread waits on `bell` (a pool's mailboxes share one), else on a bell of its own. */
  static create(bell: SharedArrayBuffer = new SharedArrayBuffer(4)): Mailbox {
    return new Mailbox({ ctl: new SharedArrayBuffer(16), data: growable(FIRST_DATA_BYTES, MAX_DATA_BYTES), bell });
  }

  get state(): number {
    return Atomics.load(this.ctl, STATE);
  }

  // ── the coordinator's side ──

  /**
   * Hand the thread a task (the mailbox must be IDLE) and wake it — or, with `ring` false,
   * leave the waking to a later ring() (several mailboxes posted, then one ring for all).
   */
  post(task: Uint8Array, slot: number, ring = true): void {
    if (this.state !== IDLE) throw new Error(`mailbox: a task was posted in state ${this.state}, not idle`);
    this.write(task);
    Atomics.store(this.ctl, SLOT, slot);
    Atomics.store(this.ctl, STATE, JOB);
    if (ring) this.ring();
  }

  /** Wake every thread waiting on this mailbox's bell (one notify: all of them are woken before this returns). */
  ring(): void {
    Atomics.add(this.bell, 0, 1);
    Atomics.notify(this.bell, 0);
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

  /** Tell the thread to leave its loop (and wake anything waiting on the mailbox or its bell). */
  retire(): void {
    Atomics.store(this.ctl, STATE, EXIT);
    Atomics.notify(this.ctl, STATE);
    this.ring();
  }

  // ── the thread's side ──

  /** Blocks until a task is posted ('job') or the mailbox is retired ('exit'). */
  next(): 'job' | 'exit' {
    for (;;) {
      // The bell's count first: a post after this read changes it, so the wait below returns at once.
      const rung = Atomics.load(this.bell, 0);
      const s = Atomics.load(this.ctl, STATE);
      if (s === JOB) return 'job';
      if (s === EXIT) return 'exit';
      Atomics.wait(this.bell, 0, rung);
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
