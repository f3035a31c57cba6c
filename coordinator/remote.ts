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
// Failure semantics: a shard attempt is re-issued when its worker answers "no
// responders", does not acknowledge, stops sending heartbeats, reports an error or
// misses the per-shard deadline. The first valid result for (run, step, shard, version)
// wins; any later one is a duplicate and is discarded. Transport failures (no
// responders, lost heartbeats, a reconnecting server) do not count against a shard's
// attempts; a shard that no worker takes for `waitMs` fails the run.

import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { BackendName } from '../model/backend.js';
import type { ChunkResult } from '../model/chunk.js';
import type { ParamLayout } from '../model/params.js';
import { Assembler, chunkBytesFor, chunkCount, chunkOf, splitChunks } from '../proto/chunks.js';
import {
  decodeBlobRequest, decodeChunk, decodeHeartbeat, decodeRemoteAck, encodeChunk, encodeRemoteTask, encodeShardTask, encodeWeights,
  ProtocolError,
} from '../proto/codec.js';
import { heartbeatSubject, helloSubject, maxPayloadOf, requestFailure, subjects, workerSubject } from '../proto/nats.js';
import { decodeResultFor, type FailureReason, type PoolEvents, type PoolExecutor, type ShardInfo, shardTaskMsg } from './pool.js';
import { type ExecResult, type ShardExecutor, type ShardTask, TrainingError } from './trainer.js';

/** What a worker needs to build its replica; sent with every task (a few hundred bytes). */
export interface RemoteSpec {
  modelConfig: ParamLayout['config'];
  vocabSize: number;
  backend: BackendName;
  paramCount: number;
  /** Changes when the coordinator restarts, so a worker never reuses weights of an earlier process. */
  session: string;
}

export interface RemoteWorker {
  id: string;
  threads: number;
  host: string;
  pid: number;
  /** Attempts this coordinator has running on it. */
  inFlight: number;
  lastSeen: number;
}

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

interface Attempt {
  attempt: number;
  /** Worker id, or null while a queue-group request has not been acknowledged. */
  worker: string | null;
  timer?: NodeJS.Timeout;
  local: boolean;
}

interface Pending {
  task: ShardTask;
  index: number;
  issued: number;
  failures: number;
  live: Set<Attempt>;
  queued: boolean;
  waitingSince: number;
  done: boolean;
}

interface StepRun {
  step: number;
  version: number;
  pending: Pending[];
  queue: Pending[];
  results: ChunkResult[];
  infos: ShardInfo[];
  left: number;
  resolve(r: ExecResult): void;
  reject(e: Error): void;
  failed: boolean;
  /** onWaiting was called for this step. */
  waitingReported?: boolean;
}

const ACK_TIMEOUT_MS = 5_000;
const SWEEP_MS = 200;

export class RemoteExecutor implements ShardExecutor {
  private readonly nc: NatsConnection;
  private readonly subj: ReturnType<typeof subjects>;
  private readonly conn = Math.random().toString(36).slice(2, 10);
  private readonly specJson: string;
  private readonly chunkBytes: number;
  private local: PoolExecutor | null;
  private localInFlight = 0;
  private readonly remote = new Map<string, RemoteWorker>();
  private readonly blobs = new Map<string, Uint8Array>();
  private readonly assembler: Assembler;
  private readonly subs: Subscription[] = [];
  private readonly sweeper: NodeJS.Timeout;
  private current: StepRun | null = null;
  private weightsVersion = -1;
  private weightsChunks = 1;
  private groupBlockedUntil = 0;
  private groupInFlight = 0;
  private pumpTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private lastSweep = performance.now();
  /** Workers that refused a task of this run: never asked again. */
  private readonly refusing = new Set<string>();
  private lastRefusal = '';
  /** Results discarded as duplicates or late, for metrics. */
  duplicates = 0;
  /** Bytes of result chunks received and of weights chunks published. */
  bytesIn = 0;
  bytesOut = 0;
  /** Milliseconds this thread spent on result chunks (decode, assemble, decode the ShardResult). */
  receiveMs = 0;

  constructor(private readonly opts: RemoteOptions) {
    this.nc = opts.nc;
    this.local = opts.local;
    this.subj = subjects(opts.prefix, opts.runId);
    this.chunkBytes = chunkBytesFor(maxPayloadOf(this.nc));
    // A result is a gradient (P floats) plus the shard's states: refuse any claim far beyond.
    this.assembler = new Assembler({ maxBytes: opts.layout.size * 8 + 64 * 1024 * 1024, maxOpen: 256 });
    const spec: RemoteSpec = {
      modelConfig: opts.layout.config,
      vocabSize: opts.layout.vocabSize,
      backend: opts.backend,
      paramCount: opts.layout.size,
      session: this.conn,
    };
    this.specJson = JSON.stringify(spec);
    this.subs.push(this.nc.subscribe(heartbeatSubject(opts.prefix), { callback: (err, msg) => {
          if (!err) this.onHeartbeat(msg.data);
        } }));
    this.subs.push(this.nc.subscribe(this.subj.results(this.conn), { callback: (err, msg) => {
          if (!err) this.onResultChunk(msg.data);
        } }));
    this.subs.push(
      this.nc.subscribe(this.subj.blob, {
        callback: (err, msg) => {
          if (err) return;
          try {
            msg.respond(this.blobChunk(msg.data));
          } catch {
            // The requester gave up or the connection is closing: nothing to answer.
          }
        },
      }),
    );
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
    void this.watchConnection();
    // Workers already running say who they are now, not at their next heartbeat.
    this.nc.publish(helloSubject(opts.prefix));
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
      const s = this.current;
      if (!s) continue;
      for (const p of s.pending) {
        for (const a of [...p.live]) if (!a.local) this.attemptFailed(s, p, a, 'unavailable', 'the NATS connection was re-established; results sent meanwhile may be lost', false);
      }
    }
  }

  /** Local threads plus the threads of every live remote worker. */
  get workers(): number {
    let n = this.local?.workers ?? 0;
    for (const w of this.remote.values()) n += w.threads;
    return n;
  }

  get localWorkers(): number {
    return this.local?.workers ?? 0;
  }

  remoteWorkers(): RemoteWorker[] {
    return [...this.remote.values()];
  }

  /** Wait up to `ms` for heartbeats; returns the remote threads seen (to size the shards of a new run). */
  async discover(ms: number): Promise<number> {
    const until = performance.now() + ms;
    let last = -1;
    while (performance.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      const n = this.remoteThreads();
      // Heartbeats come once a second: after 1.1 s every live worker has spoken.
      if (n === last && performance.now() > until - ms + 1100) break;
      last = n;
    }
    return this.remoteThreads();
  }

  private remoteThreads(): number {
    let n = 0;
    for (const w of this.remote.values()) n += w.threads;
    return n;
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

  private lastParams: Float32Array | null = null;

  /** Publish a weights version: into local shared memory, and once to every remote worker as chunks. */
  publish(params: Float32Array, version: number): void {
    this.local?.publish(params, version);
    this.lastParams = params;
    const whole = encodeWeights({ runId: this.opts.runId, version, params });
    for (const key of [...this.blobs.keys()]) if (key.startsWith('w.')) this.blobs.delete(key);
    const key = `w.${version}`;
    this.blobs.set(key, whole);
    this.weightsVersion = version;
    this.weightsChunks = chunkCount(whole.length, this.chunkBytes);
    if (this.nc.isClosed()) return;
    for (const c of splitChunks(this.opts.runId, key, whole, this.chunkBytes)) {
      try {
        this.nc.publish(this.subj.weights, encodeChunk(c));
        this.bytesOut += c.data.length;
      } catch {
        // Disconnected with a full buffer: workers ask for the chunks they miss.
      }
    }
  }

  private blobChunk(request: Uint8Array): Uint8Array {
    let key = '';
    try {
      const r = decodeBlobRequest(request);
      key = r.key;
      const whole = this.blobs.get(r.key);
      if (!whole) throw new Error(`unknown or expired blob ${r.key} (the coordinator holds ${[...this.blobs.keys()].join(', ') || 'none'})`);
      const c = chunkOf(this.opts.runId, r.key, whole, this.chunkBytes, r.index);
      this.bytesOut += c.data.length;
      return encodeChunk(c);
    } catch (e) {
      return encodeChunk({ runId: this.opts.runId, key: key || '?', index: 0, count: 0, totalBytes: 0, offset: 0, data: new Uint8Array(0), error: (e as Error).message });
    }
  }

  run(tasks: ShardTask[], params: Float32Array, version: number): Promise<ExecResult> {
    if (this.weightsVersion !== version) this.publish(params, version);
    return new Promise<ExecResult>((resolve, reject) => {
      const now = performance.now();
      const pending = tasks.map((task, index) => ({ task, index, issued: 0, failures: 0, live: new Set<Attempt>(), queued: true, waitingSince: now, done: false }));
      this.current = {
        step: tasks[0]?.step ?? -1,
        version,
        pending,
        queue: [...pending],
        results: new Array(tasks.length),
        infos: new Array(tasks.length),
        left: tasks.length,
        resolve,
        reject,
        failed: false,
      };
      if (tasks.length === 0) return this.finish();
      this.pump();
    });
  }

  private finish(): void {
    const s = this.current!;
    this.current = null;
    for (const p of s.pending) for (const a of p.live) this.release(a);
    for (const key of [...this.blobs.keys()]) if (key.startsWith('t.')) this.blobs.delete(key);
    this.assembler.drop((key) => key.startsWith(`r.${s.step}.`));
    let decodeMs = 0;
    for (const i of s.infos) decodeMs += i.decodeMs;
    s.resolve({
      results: s.results,
      decodeMs,
      shards: s.infos.map(({ worker, computeMs, payloadBytes }) => ({ worker, computeMs, payloadBytes })),
    });
  }

  private fail(error: Error): void {
    const s = this.current;
    if (!s || s.failed) return;
    s.failed = true;
    this.current = null;
    for (const p of s.pending) for (const a of p.live) this.release(a);
    s.reject(error);
  }

  /** Stop tracking an attempt (its worker slot is free again). */
  private release(a: Attempt): void {
    if (a.timer) clearTimeout(a.timer);
    if (a.local) return;
    if (a.worker === null) this.groupInFlight = Math.max(0, this.groupInFlight - 1);
    else {
      const w = this.remote.get(a.worker);
      if (w) w.inFlight = Math.max(0, w.inFlight - 1);
    }
  }

  /** Hand queued shards to free local threads and free remote workers. */
  private pump(): void {
    const s = this.current;
    if (!s || this.closed) return;
    while (s.queue.length > 0) {
      const p = s.queue[0];
      if (this.local && this.localInFlight < this.local.workers) {
        s.queue.shift();
        p.queued = false;
        this.issueLocal(s, p);
        continue;
      }
      const w = this.pickWorker();
      if (w) {
        s.queue.shift();
        p.queued = false;
        this.issueRemote(s, p, w);
        continue;
      }
      // Nobody known with a free thread: ask the queue group (one request at a time), e.g.
      // before the first heartbeats or when heartbeats cannot reach us.
      if (!this.local && this.remote.size === 0 && this.groupInFlight === 0 && performance.now() >= this.groupBlockedUntil) {
        s.queue.shift();
        p.queued = false;
        this.issueRemote(s, p, null);
        continue;
      }
      break;
    }
    if (s.queue.length > 0 && !this.pumpTimer) {
      this.pumpTimer = setTimeout(() => {
        this.pumpTimer = null;
        this.pump();
      }, Math.max(20, this.groupBlockedUntil - performance.now()));
    }
  }

  private pickWorker(): RemoteWorker | null {
    let best: RemoteWorker | null = null;
    for (const w of this.remote.values()) {
      const free = w.threads - w.inFlight;
      if (free <= 0) continue;
      if (!best || free > best.threads - best.inFlight) best = w;
    }
    return best;
  }

  /** Put a shard back in the queue; `taken`: a worker had it, so its wait for a worker starts again. */
  private requeue(s: StepRun, p: Pending, taken: boolean): void {
    if (p.done || p.queued || s !== this.current) return;
    p.queued = true;
    if (taken) p.waitingSince = performance.now();
    s.queue.unshift(p);
    s.queue.sort((a, b) => a.index - b.index);
  }

  /** `counts`: against the shard's attempts; `report`: as a failure (not when no worker was ever there to fail). */
  private attemptFailed(s: StepRun, p: Pending, a: Attempt, reason: FailureReason, message: string, counts: boolean, report = true): void {
    if (p.done || !p.live.has(a) || s !== this.current) return;
    p.live.delete(a);
    this.release(a);
    if (report) this.opts.onFailure?.(reason, p.task, message);
    if (counts) {
      p.failures += 1;
      if (p.failures >= this.opts.maxAttempts) {
        this.fail(new TrainingError(`shard ${p.index} of step ${p.task.step + 1} failed ${p.failures} times; last: ${message}`));
        return;
      }
    }
    // Transport trouble before any worker took the shard keeps its wait for a worker running.
    this.requeue(s, p, reason !== 'unavailable');
    this.pump();
  }

  private accept(s: StepRun, p: Pending, result: ChunkResult, info: ShardInfo): void {
    if (p.done || s !== this.current) return;
    p.done = true;
    for (const a of p.live) this.release(a);
    p.live.clear();
    s.results[p.index] = result;
    s.infos[p.index] = info;
    s.left -= 1;
    if (s.left === 0) this.finish();
    else this.pump();
  }

  private issueLocal(s: StepRun, p: Pending): void {
    const local = this.local!;
    const a: Attempt = { attempt: p.issued++, worker: 'local', local: true };
    p.live.add(a);
    this.localInFlight += 1;
    local.runShard(p.task).then(
      ({ result, info }) => {
        this.localInFlight -= 1;
        this.accept(s, p, result, info);
      },
      (e: Error) => {
        this.localInFlight -= 1;
        // The local pool already re-ran the shard maxAttempts times.
        if (!p.done && s === this.current) this.fail(e);
      },
    );
  }

  private issueRemote(s: StepRun, p: Pending, w: RemoteWorker | null): void {
    const a: Attempt = { attempt: p.issued++, worker: w?.id ?? null, local: false };
    p.live.add(a);
    if (w) w.inFlight += 1;
    else this.groupInFlight += 1;
    const { runId } = this.opts;
    let taskBytes = encodeShardTask(shardTaskMsg(runId, p.task, a.attempt));
    let taskBlob = '';
    let taskChunks = 0;
    if (taskBytes.length > this.chunkBytes) {
      taskBlob = `t.${p.task.step}.${p.index}.${a.attempt}`;
      this.blobs.set(taskBlob, taskBytes);
      taskChunks = chunkCount(taskBytes.length, this.chunkBytes);
      taskBytes = new Uint8Array(0);
    }
    const request = encodeRemoteTask({
      runId,
      task: taskBytes,
      taskBlob,
      taskChunks,
      replyTo: this.subj.results(this.conn),
      specJson: this.specJson,
      weightsChunks: this.weightsChunks,
      deadlineMs: this.opts.stepTimeoutMs,
    });
    const where = w ? `worker ${w.id}` : 'the queue group';
    a.timer = setTimeout(
      () => this.attemptFailed(s, p, a, 'timeout', `no result from ${a.worker ?? where} within the step timeout (${this.opts.stepTimeoutMs / 1000} s)`, true),
      this.opts.stepTimeoutMs,
    );
    const subject = w ? workerSubject(this.opts.prefix, w.id) : this.subj.shard;
    let sent: Promise<{ data: Uint8Array }>;
    try {
      sent = this.nc.request(subject, request, { timeout: Math.min(ACK_TIMEOUT_MS, this.opts.stepTimeoutMs) });
    } catch (e) {
      sent = Promise.reject(e);
    }
    sent.then(
      (msg) => {
        let ack;
        try {
          ack = decodeRemoteAck(msg.data);
        } catch (e) {
          return this.attemptFailed(s, p, a, 'protocol', `${where}: ${(e as Error).message}`, true);
        }
        if (ack.error) {
          // A worker that will not serve this run (another --run, shutting down): take no more
          // tasks to it; the shard goes elsewhere without counting against its attempts.
          const message = `worker ${ack.worker || '?'} refused the task: ${ack.error}`;
          this.lastRefusal = message;
          if (ack.worker) {
            this.refusing.add(ack.worker);
            const known = this.remote.get(ack.worker);
            if (known) {
              this.remote.delete(ack.worker);
              this.opts.onWorkerChange?.(known, false, `it refused a task: ${ack.error}`);
            }
          }
          if (!w) this.groupBlockedUntil = performance.now() + 250;
          return this.attemptFailed(s, p, a, 'unavailable', message, false);
        }
        if (a.worker === null && p.live.has(a)) {
          // A queue-group request: from now on the attempt belongs to the worker that took it.
          this.groupInFlight = Math.max(0, this.groupInFlight - 1);
          a.worker = ack.worker;
          // A worker whose heartbeat has not reached us yet: track it from now on, so that
          // its silence (a crash) is noticed like any other worker's.
          const known = this.remote.get(ack.worker) ?? this.addWorker({ id: ack.worker, threads: 1, host: '?', pid: 0 });
          known.inFlight += 1;
        }
      },
      (e: unknown) => {
        const kind = requestFailure(e);
        if (kind === 'no-responders') {
          if (w) this.dropWorker(w.id, 'no responders on its subject');
          else {
            // Nobody in the queue group: not a failure, the run is waiting for workers.
            this.groupBlockedUntil = performance.now() + 250;
            if (s.waitingReported !== true) {
              s.waitingReported = true;
              this.opts.onWaiting?.(p.task.step);
            }
          }
          this.attemptFailed(s, p, a, 'unavailable', `no responders on ${subject}`, false, w !== null);
        } else if (kind === 'timeout') {
          this.attemptFailed(s, p, a, 'unavailable', `${where} did not acknowledge the task within ${ACK_TIMEOUT_MS / 1000} s`, false);
        } else {
          if (!w) this.groupBlockedUntil = performance.now() + 250;
          this.attemptFailed(s, p, a, 'unavailable', `sending the task to ${where} failed: ${(e as Error).message}`, false);
        }
      },
    );
  }

  private onResultChunk(data: Uint8Array): void {
    const started = performance.now();
    try {
      this.takeResultChunk(data);
    } finally {
      this.receiveMs += performance.now() - started;
    }
  }

  private takeResultChunk(data: Uint8Array): void {
    let c;
    try {
      c = decodeChunk(data);
    } catch {
      return; // Not ours to make sense of; the attempt's deadline covers a result that never comes.
    }
    if (c.runId !== this.opts.runId) return;
    this.bytesIn += c.data.length;
    const m = /^r\.(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(c.key);
    if (!m) return;
    const [step, shard, version, attempt] = m.slice(1).map(Number);
    const s = this.current;
    const p = s && s.step === step && s.version === version ? s.pending[shard] : undefined;
    if (!s || !p || p.done) {
      if (!c.error && c.index === c.count - 1) {
        this.duplicates += 1;
        this.opts.onDuplicate?.(step, shard);
      }
      this.assembler.drop((key) => key === c.key);
      return;
    }
    const a = [...p.live].find((x) => x.attempt === attempt);
    if (c.error) {
      if (a) this.attemptFailed(s, p, a, /exited|terminated|killed/i.test(c.error) ? 'crash' : 'error', c.error, true);
      return;
    }
    let whole: Uint8Array | null;
    try {
      whole = this.assembler.add(c);
    } catch (e) {
      if (a) this.attemptFailed(s, p, a, 'protocol', (e as Error).message, true);
      return;
    }
    if (!whole) return;
    let done;
    try {
      done = decodeResultFor(whole, this.opts.runId, this.opts.layout, p.task);
    } catch (e) {
      if (a) this.attemptFailed(s, p, a, e instanceof ProtocolError ? 'protocol' : 'error', (e as Error).message, true);
      return;
    }
    const worker = a?.worker ?? '?';
    this.accept(s, p, done.result, { ...done.info, worker: done.info.worker === -1 ? -1 : `${worker}/${done.info.worker}` });
  }

  private onHeartbeat(data: Uint8Array): void {
    let hb;
    try {
      hb = decodeHeartbeat(data);
    } catch {
      return;
    }
    if ((hb.onlyRun && hb.onlyRun !== this.opts.runId) || this.refusing.has(hb.worker)) return;
    if (hb.threads === 0) {
      // A worker leaving cleanly: it finishes what it holds, but takes nothing new.
      const w = this.remote.get(hb.worker);
      if (w) {
        this.remote.delete(hb.worker);
        this.opts.onWorkerChange?.(w, false, 'it is shutting down');
      }
      return;
    }
    const known = this.remote.get(hb.worker);
    if (known) {
      known.lastSeen = performance.now();
      known.threads = hb.threads;
      known.host = hb.host;
      known.pid = hb.pid;
      return;
    }
    this.addWorker({ id: hb.worker, threads: hb.threads, host: hb.host, pid: hb.pid });
    this.pump();
  }

  private addWorker(info: Pick<RemoteWorker, 'id' | 'threads' | 'host' | 'pid'>): RemoteWorker {
    const w: RemoteWorker = { ...info, inFlight: 0, lastSeen: performance.now() };
    this.remote.set(w.id, w);
    this.opts.onWorkerChange?.(w, true);
    return w;
  }

  private dropWorker(id: string, why: string): void {
    const w = this.remote.get(id);
    if (!w) return;
    this.remote.delete(id);
    this.opts.onWorkerChange?.(w, false, why);
    const s = this.current;
    if (!s) return;
    for (const p of s.pending) {
      for (const a of [...p.live]) {
        if (a.worker === id) this.attemptFailed(s, p, a, 'crash', `worker ${id} is gone (${why})`, false);
      }
    }
  }

  private sweep(): void {
    const now = performance.now();
    if (now - this.lastSweep > 1_000) {
      // This thread was busy (or the machine suspended): heartbeats may be waiting
      // unread in the socket. Silence is measured from now, not held against the workers.
      for (const w of this.remote.values()) w.lastSeen = Math.max(w.lastSeen, now - SWEEP_MS);
    }
    this.lastSweep = now;
    for (const w of [...this.remote.values()]) {
      if (now - w.lastSeen > this.opts.heartbeatLapseMs) this.dropWorker(w.id, `no heartbeat for ${Math.round((now - w.lastSeen) / 100) / 10} s`);
    }
    const s = this.current;
    if (!s) return;
    for (const p of s.queue) {
      if (now - p.waitingSince > this.opts.waitMs) {
        this.fail(
          new TrainingError(
            `no worker took shard ${p.index} of step ${p.task.step + 1} for ${Math.round(this.opts.waitMs / 1000)} s: ` +
              `${this.local ? 'the local threads are busy and ' : 'there are no local threads (--workers 0) and '}no remote worker answers on NATS; ` +
              'start one with `gradpool worker --nats URL`' + (this.lastRefusal ? ` (last refusal: ${this.lastRefusal})` : ''),
          ),
        );
        return;
      }
    }
    if (s.queue.length > 0) this.pump();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    this.fail(new Error('the executor was closed'));
    for (const sub of this.subs) sub.unsubscribe();
    await this.local?.close();
    this.local = null;
  }
}
