// Remote workers over NATS, beside (or instead of) the local thread pool. The step is
// the same fixed set of shards; only where a shard runs changes, so the update is
// bit-identical to a local run with the same shards.
//
//   publish(params, v) ── Weights v as chunks ─▶ <p>.run.<run>.weights ─▶ every worker (once per step)
//   shard k ── RemoteTask request ─▶ <p>.worker.<id>.shard (a worker with a free thread)
//                                or <p>.run.<run>.shard (queue group, when none is known)
//           ◀─ RemoteAck (at once) ─┘
//           ◀─ ShardResult chunks on <p>.run.<run>.results.<conn>, keyed r.<step>.<shard>.<version>.<attempt>
//   a worker missing a weights chunk (or a large task) ── BlobRequest ─▶ <p>.run.<run>.blob
//
// This module is the NATS glue only: coordinator/scheduler.ts decides which shard goes
// where and when it is re-issued, coordinator/workers.ts keeps the workers seen,
// coordinator/blobs.ts the chunks served, coordinator/results.ts takes the result
// chunks in, proto/keys.ts names the chunk streams.
//
// Failure semantics: a shard attempt is re-issued when its worker answers "no
// responders", does not acknowledge, stops sending heartbeats, reports an error or
// misses the per-shard deadline. The first valid result for (run, step, shard, version)
// wins; any later one is a duplicate and is discarded. Transport failures (no
// responders, lost heartbeats, a reconnecting server) do not count against a shard's
// attempts; a shard that no worker takes for `waitMs` fails the run.

import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { BackendName } from '../model/backend.js';
import type { ParamLayout } from '../model/params.js';
import { chunkBytesFor } from '../proto/chunks.js';
import { decodeHeartbeat, decodeRemoteAck, encodeChunk, encodeRemoteTask, encodeShardTask, encodeWeights } from '../proto/codec.js';
import { heartbeatSubject, helloSubject, maxPayloadOf, requestFailure, subjects, workerSubject } from '../proto/nats.js';
import { encodeRemoteSpec } from '../proto/spec.js';
import { BlobStore } from './blobs.js';
import { type PoolEvents, type PoolExecutor, shardTaskMsg } from './pool.js';
import { ResultReceiver } from './results.js';
import { type Attempt, type Dispatcher, FailureCause, type Place, Scheduler, SWEEP_MS } from './scheduler.js';
import type { ExecResult, ShardExecutor, ShardTask, TaskSplitter } from './trainer.js';
import { SpeedBook } from './speeds.js';
import { type RemoteWorker, WorkerRegistry } from './workers.js';

export type { RemoteSpec } from '../proto/spec.js';
export type { RemoteWorker };

export interface RemoteEvents extends PoolEvents {
  /** A remote worker appeared or disappeared (reason: why it left). */
  onWorkerChange?(worker: RemoteWorker, joined: boolean, reason?: string): void;
  /** A result arrived for a shard that already had one, or for a finished step. */
  onDuplicate?(step: number, shard: number): void;
  /** The connection to NATS came back after a loss. */
  onReconnect?(): void;
  /** A step found no worker at all (no local threads, nobody in the queue group); it keeps trying. */
  onWaiting?(step: number): void;
}

export interface RemoteOptions extends RemoteEvents {
  runId: string;
  layout: ParamLayout;
  backend: BackendName;
  nc: NatsConnection;
  prefix: string;
  /** Local threads beside the remote workers (0 = remote only). */
  local: PoolExecutor | null;
  /** Builds a local pool when a run scaled to 0 local threads scales up again. */
  makeLocal(workers: number): PoolExecutor;
  /** Per-shard deadline of one attempt. */
  stepTimeoutMs: number;
  /** Attempts that may end in an error, a bad result or a missed deadline before the step fails. */
  maxAttempts: number;
  /** A shard that no worker takes for this long fails the step. */
  waitMs: number;
  /** A worker silent for this long is taken for dead and its shards re-issued. */
  heartbeatLapseMs: number;
}

const ACK_TIMEOUT_MS = 5_000;
/** After the queue group refused or had nobody: wait this long before asking it again. */
const GROUP_BACKOFF_MS = 250;

export class RemoteExecutor implements ShardExecutor {
  /** How fast the local threads and each remote worker have been (the trainer feeds it); place() follows it. */
  readonly speeds = new SpeedBook();
  private readonly nc: NatsConnection;
  private readonly subj: ReturnType<typeof subjects>;
  private readonly conn = Math.random().toString(36).slice(2, 10);
  private readonly specJson: string;
  private local: PoolExecutor | null;
  private localInFlight = 0;
  private readonly registry: WorkerRegistry;
  private readonly scheduler: Scheduler;
  private readonly blobs: BlobStore;
  private readonly results: ResultReceiver;
  private readonly subs: Subscription[] = [];
  private readonly sweeper: NodeJS.Timeout;
  private weightsVersion = -1;
  private lastParams: Float32Array | null = null;
  private groupBlockedUntil = 0;
  private groupInFlight = 0;
  private closed = false;
  /** Bytes of weights and task chunks sent. */
  bytesOut = 0;

  constructor(private readonly opts: RemoteOptions) {
    this.nc = opts.nc;
    this.local = opts.local;
    this.subj = subjects(opts.prefix, opts.runId);
    this.blobs = new BlobStore(opts.runId, chunkBytesFor(maxPayloadOf(this.nc)));
    this.specJson = encodeRemoteSpec({
      modelConfig: opts.layout.config,
      vocabSize: opts.layout.vocabSize,
      backend: opts.backend,
      paramCount: opts.layout.size,
      session: this.conn,
    });
    this.registry = new WorkerRegistry({
      runId: opts.runId,
      heartbeatLapseMs: opts.heartbeatLapseMs,
      sweepMs: SWEEP_MS,
      onWorkerChange: (w, joined, reason) => this.opts.onWorkerChange?.(w, joined, reason),
    });
    const dispatcher: Dispatcher = {
      place: () => this.place(),
      start: (a) => this.start(a),
      release: (a) => this.release(a),
      retryInMs: () => this.groupBlockedUntil - performance.now(),
      noWorkerReason: () => this.noWorkerReason(),
      stepEnded: (step) => {
        this.blobs.drop('task');
        this.results.dropStep(step);
      },
      idle: () => this.idle(),
      expectedMs: (a) => (a.local || a.worker !== null ? this.speeds.expectedMs(a.local ? 'local' : a.worker!, a.shard.task.shard.blocks?.length ?? 1) : undefined),
    };
    this.scheduler = new Scheduler({
      dispatcher,
      maxAttempts: opts.maxAttempts,
      attemptDeadlineMs: opts.stepTimeoutMs,
      waitMs: opts.waitMs,
      onFailure: (reason, task, message) => this.opts.onFailure?.(reason, task, message),
      onSplit: (kind, task, into) => this.opts.onSplit?.(kind, task, into),
      onDuplicate: (step, shard) => this.opts.onDuplicate?.(step, shard),
      onWaiting: (step) => this.opts.onWaiting?.(step),
    });
    this.results = new ResultReceiver(opts.runId, opts.layout, this.scheduler);
    this.subs.push(this.nc.subscribe(heartbeatSubject(opts.prefix), { callback: (err, msg) => {
          if (!err) this.onHeartbeat(msg.data);
        } }));
    this.subs.push(this.nc.subscribe(this.subj.results(this.conn), { callback: (err, msg) => {
          if (!err) this.results.take(msg.data);
        } }));
    this.subs.push(
      this.nc.subscribe(this.subj.blob, {
        callback: (err, msg) => {
          if (err) return;
          const c = this.blobs.answer(msg.data);
          this.bytesOut += c.data.length;
          try {
            msg.respond(encodeChunk(c));
          } catch {
            // The requester gave up or the connection is closing: nothing to answer.
          }
        },
      }),
    );
    this.sweeper = setInterval(() => {
      for (const { id, why } of this.registry.lapsed()) this.dropWorker(id, why);
    }, SWEEP_MS);
    this.sweeper.unref();
    void this.watchConnection();
    // Workers already running say who they are now, not at their next heartbeat.
    this.nc.publish(helloSubject(opts.prefix));
  }

  /** Results discarded as duplicates or late, for metrics. */
  get duplicates(): number {
    return this.scheduler.duplicates;
  }

  /** Bytes of result chunks received. */
  get bytesIn(): number {
    return this.results.bytesIn;
  }

  /** Milliseconds this thread spent on result chunks (decode, assemble, decode the ShardResult). */
  get receiveMs(): number {
    return this.results.receiveMs;
  }

  /**
   * After a reconnect, acknowledgements and result chunks sent while we were away are
   * lost: re-issue every remote attempt in flight at once instead of waiting for its
   * deadline. (A result that does arrive after all is then a discarded duplicate.)
   */
  private async watchConnection(): Promise<void> {
    for await (const st of this.nc.status()) {
      if (st.type !== 'reconnect' || this.closed) continue;
      this.opts.onReconnect?.();
      for (const a of this.scheduler.attempts((x) => !x.local)) {
        this.scheduler.failed(a, FailureCause.unreachable(), 'the NATS connection was re-established; results sent meanwhile may be lost');
      }
    }
  }

  /** Local threads plus the threads of every live remote worker. */
  get workers(): number {
    return (this.local?.workers ?? 0) + this.registry.threads;
  }

  /** One speed key per thread: the local threads ('local') and each live remote worker's threads (its id). */
  slotKeys(): string[] {
    const keys = new Array<string>(this.local?.workers ?? 0).fill('local');
    for (const w of this.registry.list()) for (let t = 0; t < w.threads; t++) keys.push(w.id);
    return keys;
  }

  get localWorkers(): number {
    return this.local?.workers ?? 0;
  }

  remoteWorkers(): RemoteWorker[] {
    return this.registry.list();
  }

  /** Local thread count; call between steps. 0 leaves the run to remote workers. */
  async resize(workers: number): Promise<void> {
    if (workers === this.localWorkers) return;
    if (workers === 0) {
      const old = this.local;
      this.local = null;
      await old?.close();
    } else if (!this.local) {
      this.local = this.opts.makeLocal(workers);
      if (this.weightsVersion >= 0 && this.lastParams) this.local.publish(this.lastParams, this.weightsVersion);
    } else {
      await this.local.resize(workers);
    }
  }

  /** Publish a weights version: into local shared memory, and once to every remote worker as chunks. */
  publish(params: Float32Array, version: number): void {
    this.local?.publish(params, version);
    this.lastParams = params;
    const chunks = this.blobs.putWeights(version, encodeWeights({ runId: this.opts.runId, version, params }));
    this.weightsVersion = version;
    if (this.nc.isClosed()) return;
    for (const c of chunks) {
      try {
        this.nc.publish(this.subj.weights, encodeChunk(c));
        this.bytesOut += c.data.length;
      } catch {
        // Disconnected with a full buffer: workers ask for the chunks they miss.
      }
    }
  }

  run(tasks: ShardTask[], params: Float32Array, version: number, split?: TaskSplitter): Promise<ExecResult> {
    if (this.weightsVersion !== version) this.publish(params, version);
    return this.scheduler.run(tasks, version, split);
  }

  // ---- The scheduler's Dispatcher: where its shards go ----

  /** The fastest free place by measured speed (a local thread on a tie, and while nothing is measured), then the queue group. */
  private place(): Place | null {
    if (this.closed) return null;
    // The fastest free place by the speeds measured so far (a new worker counts as average):
    // the scheduler hands the largest task out first, so it goes there.
    const time = (key: string) => this.speeds.get(key) ?? this.speeds.typical() ?? 0;
    const localFree = !!this.local && this.localInFlight < this.local.workers;
    const w = this.registry.pick((id) => time(id));
    if (localFree && (!w || time('local') <= time(w.id))) return { kind: 'local' };
    if (w) return { kind: 'worker', id: w.id };
    // Nobody known with a free thread: ask the queue group (one request at a time), e.g.
    // before the first heartbeats or when heartbeats cannot reach us.
    if (!this.local && this.registry.size === 0 && this.groupInFlight === 0 && performance.now() >= this.groupBlockedUntil) return { kind: 'group' };
    return null;
  }

  /** Threads free now: the local pool's idle threads and every known remote worker's free ones (not the queue group). */
  private idle(): number {
    if (this.closed) return 0;
    const local = this.local?.idleThreads ?? 0;
    let remote = 0;
    for (const w of this.registry.list()) remote += Math.max(0, w.threads - w.inFlight);
    return local + remote;
  }

  private noWorkerReason(): string {
    const { lastRefusal } = this.registry;
    return `${this.local ? 'the local threads are busy and ' : 'there are no local threads (--workers 0) and '}no remote worker answers on NATS; ` +
      'start one with `gradpool worker --nats URL`' + (lastRefusal ? ` (last refusal: ${lastRefusal})` : '');
  }

  private start(a: Attempt): void {
    if (a.local) {
      this.localInFlight += 1;
      this.local!.startAttempt(a, this.scheduler, () => (this.localInFlight -= 1));
    } else this.sendTask(a);
  }

  private release(a: Attempt): void {
    if (a.local) return; // its thread is free when its promise settles
    if (a.worker === null) this.groupInFlight = Math.max(0, this.groupInFlight - 1);
    else this.registry.count(a.worker, -1);
  }

  private sendTask(a: Attempt): void {
    const w = a.worker;
    if (w !== null) this.registry.count(w, 1);
    else this.groupInFlight += 1;
    const { runId } = this.opts;
    const { task, index } = a.shard;
    let taskBytes = encodeShardTask(shardTaskMsg(runId, task, a.number));
    const blob = this.blobs.putTask(task.step, index, a.number, taskBytes);
    if (blob) taskBytes = new Uint8Array(0);
    const request = encodeRemoteTask({
      runId,
      task: taskBytes,
      taskBlob: blob?.key ?? '',
      taskChunks: blob?.chunks ?? 0,
      replyTo: this.subj.results(this.conn),
      specJson: this.specJson,
      weightsChunks: this.blobs.weightsChunks,
      deadlineMs: this.opts.stepTimeoutMs,
    });
    const where = w !== null ? `worker ${w}` : 'the queue group';
    const subject = w !== null ? workerSubject(this.opts.prefix, w) : this.subj.shard;
    let sent: Promise<{ data: Uint8Array }>;
    try {
      sent = this.nc.request(subject, request, { timeout: Math.min(ACK_TIMEOUT_MS, this.opts.stepTimeoutMs) });
    } catch (e) {
      sent = Promise.reject(e);
    }
    sent.then(
      (msg) => this.onAck(a, w, where, msg.data),
      (e: unknown) => this.onRequestFailed(a, w, where, subject, e),
    );
  }

  private onAck(a: Attempt, w: string | null, where: string, data: Uint8Array): void {
    let ack;
    try {
      ack = decodeRemoteAck(data);
    } catch (e) {
      return this.scheduler.failed(a, FailureCause.failed('protocol'), `${where}: ${(e as Error).message}`);
    }
    if (ack.error) {
      // A worker that will not serve this run (another --run, shutting down): take no more
      // tasks to it; the shard goes elsewhere without counting against its attempts.
      const message = this.registry.refused(ack.worker, ack.error);
      if (w === null) this.groupBlockedUntil = performance.now() + GROUP_BACKOFF_MS;
      return this.scheduler.failed(a, FailureCause.unreachable(), message);
    }
    if (a.worker === null && this.scheduler.isLive(a)) {
      // A queue-group request: from now on the attempt belongs to the worker that took it,
      // tracked even before its heartbeat reaches us, so that its silence (a crash) is noticed.
      this.groupInFlight = Math.max(0, this.groupInFlight - 1);
      a.worker = ack.worker;
      this.registry.ensure(ack.worker).inFlight += 1;
    }
  }

  private onRequestFailed(a: Attempt, w: string | null, where: string, subject: string, e: unknown): void {
    const kind = requestFailure(e);
    if (kind === 'no-responders') {
      if (w !== null) this.dropWorker(w, 'no responders on its subject');
      else {
        // Nobody in the queue group: not a failure, the run is waiting for workers.
        this.groupBlockedUntil = performance.now() + GROUP_BACKOFF_MS;
        this.scheduler.waiting();
      }
      this.scheduler.failed(a, w !== null ? FailureCause.unreachable() : FailureCause.nobodyThere(), `no responders on ${subject}`);
    } else if (kind === 'timeout') {
      this.scheduler.failed(a, FailureCause.unreachable(), `${where} did not acknowledge the task within ${ACK_TIMEOUT_MS / 1000} s`);
    } else {
      if (w === null) this.groupBlockedUntil = performance.now() + GROUP_BACKOFF_MS;
      this.scheduler.failed(a, FailureCause.unreachable(), `sending the task to ${where} failed: ${(e as Error).message}`);
    }
  }

  private onHeartbeat(data: Uint8Array): void {
    let hb;
    try {
      hb = decodeHeartbeat(data);
    } catch {
      return;
    }
    if (this.registry.heartbeat(hb)) this.scheduler.pump();
  }

  /** Forget a worker and re-issue what it held, without counting against the shards. */
  private dropWorker(id: string, why: string): void {
    if (!this.registry.remove(id, why)) return;
    for (const a of this.scheduler.attempts((x) => x.worker === id)) {
      this.scheduler.failed(a, FailureCause.workerGone(), `worker ${id} is gone (${why})`);
    }
  }

  /** Gives up the step in flight (local attempts included: they share this scheduler). */
  abandon(reason: Error): void {
    this.scheduler.fail(reason);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    this.scheduler.close();
    for (const sub of this.subs) sub.unsubscribe();
    await this.local?.close();
    this.local = null;
  }
}
