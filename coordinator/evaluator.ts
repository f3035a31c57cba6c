// The coordinator's handle on the evaluator thread (worker/evaluator.ts): validation
// and samples on a copy of the weights, requested without waiting.
//
//   training loop ──requestValidation(params, step)──▶ params.slice() ──transfer──▶ thread
//        ▲  (returns at once: false if one is already running)                      │
//        └──────────── onValidation(cb) / onSample(cb) / onError(cb) ◀── result ────┘
//
// At most one job of each kind is in flight, so a slow evaluator skips requests
// instead of queueing work or weight copies. Results and errors arrive through
// callbacks; nothing thrown in the thread (nor the thread dying) reaches the caller.

import { Worker } from 'node:worker_threads';
import { type Endpoint, type Remote, transfer, wrap } from 'comlink';
// comlink ships node-adapter.mjs without a .d.mts, which TypeScript (NodeNext) needs to
// type an .mjs import; the signature below is the one in its node-adapter.d.ts.
// @ts-expect-error TS7016: no declaration file for the .mjs
import nodeAdapter from 'comlink/dist/esm/node-adapter.mjs';
import type { EvaluatorApi, EvaluatorInit, SampleRequest, SampleResult, ValidationResult } from '../worker/evaluator.js';
import { workerScript } from '../worker/paths.js';

const nodeEndpoint = nodeAdapter as (port: Worker) => Endpoint;

export type { EvaluatorInit, SampleRequest, SampleResult, ValidationResult };

type Listener<T> = (value: T) => void;
type Kind = 'validation' | 'sample';

export class Evaluator {
  private readonly inFlight = new Map<Kind, Promise<void>>();
  private readonly listeners = { validation: [] as Listener<ValidationResult>[], sample: [] as Listener<SampleResult>[], error: [] as Listener<Error>[] };
  /** Rejects when the thread exits, so no call waits on a dead thread forever. */
  private readonly exited: Promise<never>;
  private exitError: Error | null = null;
  private threadError: Error | null = null;
  private closing = false;
  /** Until start() resolves, failures reach the caller as start()'s rejection instead. */
  private started = false;

  private constructor(private readonly worker: Worker, private readonly remote: Remote<EvaluatorApi>) {
    // Without an 'error' listener an uncaught exception in the thread would be
    // rethrown here and end the coordinator.
    worker.on('error', (err) => {
      this.threadError = err;
      this.fail(err);
    });
    this.exited = new Promise<never>((_, reject) => {
      worker.once('exit', (code) => {
        this.exitError = this.threadError ?? new Error(`evaluator thread exited with code ${code}`);
        if (!this.closing && !this.threadError) this.fail(this.exitError);
        reject(this.exitError);
      });
    });
    this.exited.catch(() => {});
  }

  /** Spawn the thread and load the model; rejects (and ends the thread) if init fails. */
  static async start(opts: EvaluatorInit): Promise<Evaluator> {
    const worker = new Worker(workerScript('evaluator'));
    const evaluator = new Evaluator(worker, wrap<EvaluatorApi>(nodeEndpoint(worker)));
    // Only the ids that will be used cross over, moved rather than copied.
    const valIds = opts.valIds.slice(0, Math.max(0, opts.maxValTokens));
    try {
      await Promise.race([evaluator.remote.init(transfer({ ...opts, valIds }, [valIds.buffer])), evaluator.exited]);
    } catch (err) {
      await evaluator.close();
      throw err;
    }
    evaluator.started = true;
    return evaluator;
  }

  /** Whether the thread is up and close() has not been called. */
  get running(): boolean {
    return !this.closing && !this.exitError;
  }

  onValidation(cb: Listener<ValidationResult>): () => void {
    return this.listen(this.listeners.validation, cb);
  }

  onSample(cb: Listener<SampleResult>): () => void {
    return this.listen(this.listeners.sample, cb);
  }

  /** Errors from a job, from the thread, or from a result callback. */
  onError(cb: Listener<Error>): () => void {
    return this.listen(this.listeners.error, cb);
  }

  /** Queue a validation of a copy of `params`; false (nothing done) if one is running or the thread is gone. */
  requestValidation(params: Float32Array, step: number): boolean {
    return this.submit('validation', params, (copy) => this.remote.validate(copy, step), this.listeners.validation);
  }

  /** Queue a sample from a copy of `params`; false (nothing done) if one is running or the thread is gone. */
  requestSample(params: Float32Array, step: number, opts: SampleRequest): boolean {
    return this.submit('sample', params, (copy) => this.remote.sample(copy, step, opts), this.listeners.sample);
  }

  /** Wait until no job is in flight (their callbacks have run). */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight.values());
  }

  /** End the thread. Jobs still running are abandoned: call drain() first to keep them. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    // Release the tensors politely only when idle; a busy thread is just terminated.
    if (this.inFlight.size === 0 && !this.exitError) {
      await Promise.race([this.remote.close(), this.exited, new Promise((r) => setTimeout(r, 1000).unref())]).catch(() => {});
    }
    await this.worker.terminate();
  }

  private submit<T>(kind: Kind, params: Float32Array, call: (copy: Float32Array) => Promise<T>, listeners: Listener<T>[]): boolean {
    if (this.inFlight.has(kind) || !this.running) return false;
    // The copy is taken now, so the caller may update `params` right away; its buffer
    // is then moved to the thread, not cloned again.
    const copy = params.slice();
    const job = Promise.race([call(transfer(copy, [copy.buffer])), this.exited])
      .then(
        (result) => listeners.forEach((cb) => this.deliver(cb, result)),
        (err: unknown) => {
          if (err !== this.exitError) this.fail(err); // a thread death is reported once, by the listeners
        },
      )
      .finally(() => this.inFlight.delete(kind));
    this.inFlight.set(kind, job);
    return true;
  }

  private deliver<T>(cb: Listener<T>, value: T): void {
    try {
      cb(value);
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    if (this.listeners.error.length === 0 && this.started) process.emitWarning(`evaluator: ${error.message}`);
    for (const cb of this.listeners.error) {
      try {
        cb(error);
      } catch {
        // An error handler that throws has nowhere left to report to.
      }
    }
  }

  private listen<T>(list: Listener<T>[], cb: Listener<T>): () => void {
    list.push(cb);
    return () => {
      const i = list.indexOf(cb);
      if (i >= 0) list.splice(i, 1);
    };
  }
}
