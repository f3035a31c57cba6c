// `gradpool worker --nats URL`: a worker process on any machine that can reach the
// NATS server. It joins the queue group of every run's shard subject (or of one run,
// --run ID) and listens on its own subject, runs each shard on its own Piscina pool of
// replica threads (the same worker/replica.ts as local threads) and answers with the
// same protobuf ShardResult, in chunks. Weights arrive once per version on the run's
// weights subject; a chunk it missed (joined late, server restarted) it requests.

import { hostname } from 'node:os';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { BACKENDS, type BackendName, backendUnavailable } from '../model/backend.js';
import { resolveModelConfig, type ModelConfig } from '../model/config.js';
import { buildLayout } from '../model/params.js';
import { Assembler, chunkBytesFor, splitChunks } from '../proto/chunks.js';
import {
  decodeChunk, decodeRemoteTask, decodeShardTask, decodeWeights, encodeBlobRequest, encodeChunk, encodeHeartbeat, encodeRemoteAck,
  ProtocolError, type RemoteTaskMsg,
} from '../proto/codec.js';
import { parseChunkKey, resultKey, weightsKey } from '../proto/keys.js';
import { anyRunShardSubject, heartbeatSubject, helloSubject, maxPayloadOf, queueGroup, subjects, workerSubject } from '../proto/nats.js';
import { parseRemoteSpec, type RemoteSpec } from '../proto/spec.js';
import { hostFaultHook } from './faults.js';
import { ReplicaError, ReplicaPool } from './pool.js';

export interface HostOptions {
  id: string;
  prefix: string;
  threads: number;
  /** Serve only this run (default: any run on the prefix). */
  run: string | null;
  /** A run's replica (threads, weights) is dropped after this long without a task. */
  idleMs: number;
  heartbeatMs: number;
  log(line: string): void;
}

/** A RemoteSpec whose model config the model's own rules accepted. */
interface Spec extends RemoteSpec {
  modelConfig: ModelConfig;
  backend: BackendName;
}

interface Replica {
  runId: string;
  specJson: string;
  pool: ReplicaPool;
  /** The newest complete weights that arrived by broadcast. */
  latest: { version: number; params: Float32Array } | null;
  assembler: Assembler;
  fetching: Map<number, Promise<Float32Array>>;
  sub: Subscription;
  lastUsed: number;
  running: number;
}

const BLOB_TIMEOUT_MS = 10_000;

/** The task's RemoteSpec (proto/spec.ts), its model config resolved and its parameter count checked. */
function parseSpec(json: string, runId: string): Spec {
  const raw = parseRemoteSpec(json, runId, BACKENDS);
  let modelConfig: ModelConfig;
  try {
    modelConfig = resolveModelConfig(raw.modelConfig as Record<string, unknown>);
  } catch (e) {
    throw new ProtocolError(`run ${runId}: bad model config in the task (${(e as Error).message})`);
  }
  const size = buildLayout(modelConfig, raw.vocabSize).size;
  if (size !== raw.paramCount) throw new ProtocolError(`run ${runId}: the spec says ${raw.paramCount} parameters, its model has ${size}`);
  return { ...raw, modelConfig, backend: raw.backend as BackendName };
}

/** What loadVersion needs of a replica: its pool's published version, the newest broadcast, the fetches under way. */
export interface VersionedReplica {
  pool: { readonly publishedVersion: number; publish(params: Float32Array, version: number): void };
  latest: { version: number; params: Float32Array } | null;
  fetching: Map<number, Promise<Float32Array>>;
}

/**
 * Have `replica`'s threads hold weights `version`: the newest broadcast if it is that
 * version, else what `fetch` brings (one fetch per version however many tasks wait).
 * Versions only move forward: a task of a version older than the one published belongs
 * to a step that is over, and it fails (ProtocolError) rather than write its older
 * weights under the newer version's tasks — also when the newer one was published while
 * it waited for its chunks.
 */
export async function loadVersion(replica: VersionedReplica, version: number, fetch: () => Promise<Float32Array>): Promise<void> {
  const stale = () => new ProtocolError(`weights version ${version} is older than the replica's ${replica.pool.publishedVersion}: the task's step is over`);
  if (replica.pool.publishedVersion === version) return;
  if (replica.pool.publishedVersion > version) throw stale();
  let params: Float32Array;
  if (replica.latest?.version === version) params = replica.latest.params;
  else {
    let fetching = replica.fetching.get(version);
    if (!fetching) {
      fetching = fetch().finally(() => replica.fetching.delete(version));
      replica.fetching.set(version, fetching);
    }
    params = await fetching;
  }
  if (replica.pool.publishedVersion > version) throw stale();
  if (replica.pool.publishedVersion !== version) replica.pool.publish(params, version);
}

export class WorkerHost {
  private readonly replicas = new Map<string, Replica>();
  private readonly subs: Subscription[] = [];
  /** Test-only (worker/faults.ts); null in production. */
  private readonly faultHook = hostFaultHook();
  private readonly chunkBytes: number;
  private heartbeat: NodeJS.Timeout | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private busy = 0;
  private leaving = false;
  /** Shards answered and failed, for the log. */
  served = 0;
  failed = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly opts: HostOptions,
  ) {
    this.chunkBytes = chunkBytesFor(maxPayloadOf(nc));
  }

  start(): void {
    const { prefix, id, run } = this.opts;
    const onTask = (err: Error | null, msg: Msg) => {
      if (!err) this.onTask(msg);
    };
    this.subs.push(this.nc.subscribe(run ? subjects(prefix, run).shard : anyRunShardSubject(prefix), { queue: queueGroup(prefix), callback: onTask }));
    this.subs.push(this.nc.subscribe(workerSubject(prefix, id), { callback: onTask }));
    this.subs.push(this.nc.subscribe(helloSubject(prefix), { callback: () => this.sendHeartbeat() }));
    this.sendHeartbeat();
    this.heartbeat = setInterval(() => this.sendHeartbeat(), this.opts.heartbeatMs);
    this.sweeper = setInterval(() => void this.dropIdle(), 5_000);
    this.sweeper.unref();
  }

  private sendHeartbeat(): void {
    if (this.nc.isClosed()) return;
    try {
      this.nc.publish(
        heartbeatSubject(this.opts.prefix),
        encodeHeartbeat({
          worker: this.opts.id,
          threads: this.leaving ? 0 : this.opts.threads,
          busy: this.busy,
          runs: [...this.replicas.keys()],
          host: hostname(),
          pid: process.pid,
          onlyRun: this.opts.run ?? '',
        }),
      );
    } catch {
      // Disconnected: the next one goes out after reconnecting.
    }
  }

  private onTask(msg: Msg): void {
    let rt: RemoteTaskMsg;
    try {
      rt = decodeRemoteTask(msg.data);
      if (this.opts.run && rt.runId !== this.opts.run) throw new ProtocolError(`this worker serves run ${this.opts.run} only, not ${rt.runId}`);
      if (this.leaving) throw new ProtocolError('this worker is shutting down');
      // A run is computed by one backend everywhere: a worker that cannot run it says so.
      const { backend } = parseRemoteSpec(rt.specJson, rt.runId, BACKENDS);
      const unavailable = backendUnavailable(backend as BackendName);
      if (unavailable) throw new ProtocolError(`this worker cannot run the ${backend} backend of run ${rt.runId}: ${unavailable}`);
    } catch (e) {
      msg.respond(encodeRemoteAck({ worker: this.opts.id, error: (e as Error).message }));
      return;
    }
    msg.respond(encodeRemoteAck({ worker: this.opts.id, error: '' }));
    this.busy += 1;
    void this.serve(rt).finally(() => {
      this.busy -= 1;
    });
  }

  private async serve(rt: RemoteTaskMsg): Promise<void> {
    let key = '';
    let replica: Replica | undefined;
    try {
      const taskBytes = rt.task.length > 0 ? rt.task : await this.fetchBlob(rt.runId, rt.taskBlob, rt.taskChunks);
      const task = decodeShardTask(taskBytes);
      if (task.runId !== rt.runId) throw new ProtocolError(`the ShardTask is for run ${task.runId}, the envelope says ${rt.runId}`);
      // From here on a failure is reported to the coordinator under this key.
      key = resultKey(task.step, task.shard, task.version, task.attempt);
      replica = await this.replicaFor(rt.runId, rt.specJson);
      replica.running += 1;
      replica.lastUsed = performance.now();
      if (this.faultHook) await this.faultHook(task, 'received');
      await this.ensureWeights(replica, task.version, rt.weightsChunks);
      const out = new Uint8Array(await replica.pool.run(taskBytes, AbortSignal.timeout(rt.deadlineMs)));
      if (this.faultHook) await this.faultHook(task, 'computed');
      for (const c of splitChunks(rt.runId, key, out, this.chunkBytes)) this.nc.publish(rt.replyTo, encodeChunk(c));
      this.served += 1;
    } catch (e) {
      this.failed += 1;
      const message = (e as Error).message;
      this.opts.log(`run ${rt.runId}${key ? ` ${key}` : ''}: ${message}`);
      if (!key) return; // Not even the task could be read: the coordinator's deadline re-issues it.
      try {
        const failure = e instanceof ReplicaError && e.code === 'crash' ? 'crash' : 'error';
        this.nc.publish(rt.replyTo, encodeChunk({ runId: rt.runId, key, index: 0, count: 0, totalBytes: 0, offset: 0, data: new Uint8Array(0), error: message, failure }));
      } catch {
        // Disconnected: the coordinator re-issues after its deadline.
      }
    } finally {
      if (replica) {
        replica.running -= 1;
        replica.lastUsed = performance.now();
      }
    }
  }

  private async replicaFor(runId: string, specJson: string): Promise<Replica> {
    const have = this.replicas.get(runId);
    if (have && have.specJson === specJson) return have;
    const spec = parseSpec(specJson, runId);
    if (have) {
      // The run's coordinator restarted (or changed the model): never reuse its old weights.
      this.opts.log(`run ${runId}: a new coordinator session; rebuilding the replica`);
      this.replicas.delete(runId);
      have.sub.unsubscribe();
      void have.pool.close();
    }
    const pool = new ReplicaPool({
      runId, modelConfig: spec.modelConfig, vocabSize: spec.vocabSize, paramCount: spec.paramCount, backend: spec.backend, threads: this.opts.threads,
    });
    const replica: Replica = {
      runId, specJson, pool, latest: null, assembler: new Assembler({ maxBytes: spec.paramCount * 4 + 4096, maxOpen: 4 }),
      fetching: new Map(), sub: null as unknown as Subscription, lastUsed: performance.now(), running: 0,
    };
    replica.sub = this.nc.subscribe(subjects(this.opts.prefix, runId).weights, { callback: (err, msg) => {
          if (!err) this.onWeightsChunk(replica, msg.data);
        } });
    this.replicas.set(runId, replica);
    const { cell, layers, hidden } = spec.modelConfig;
    this.opts.log(`run ${runId}: replica of ${cell} ×${layers} (H=${hidden}), ${spec.paramCount.toLocaleString('en-US')} parameters, on ${this.opts.threads} threads`);
    return replica;
  }

  private onWeightsChunk(replica: Replica, data: Uint8Array): void {
    try {
      const c = decodeChunk(data);
      const k = parseChunkKey(c.key);
      if (c.runId !== replica.runId || k?.kind !== 'weights') return;
      const { version } = k;
      if (replica.latest && version <= replica.latest.version) return;
      // A newer version makes older partial ones useless.
      replica.assembler.drop((key) => key !== c.key);
      const whole = replica.assembler.add(c);
      if (whole) replica.latest = { version, params: decodeWeights(whole, { paramCount: replica.pool.paramCount }).params };
    } catch (e) {
      this.opts.log(`run ${replica.runId}: a weights chunk was unusable (${(e as Error).message}); missing chunks are requested when needed`);
    }
  }

  /** Have the replica threads hold `version`: from the broadcast, else by requesting the missing chunks. */
  private ensureWeights(replica: Replica, version: number, chunks: number): Promise<void> {
    return loadVersion(replica, version, () => this.fetchWeights(replica, version, chunks));
  }

  private async fetchWeights(replica: Replica, version: number, chunks: number): Promise<Float32Array> {
    const key = weightsKey(version);
    const missing = replica.assembler.missing(key, chunks);
    const wholes = await Promise.all(missing.map((i) => this.requestChunk(replica.runId, key, i).then((c) => replica.assembler.add(c))));
    const whole = wholes.find((w) => w !== null);
    if (replica.latest?.version === version) return replica.latest.params;
    if (!whole) throw new ProtocolError(`weights version ${version}: fetched its ${missing.length} missing chunks but the whole is still incomplete`);
    const params = decodeWeights(whole, { paramCount: replica.pool.paramCount }).params;
    if (!replica.latest || replica.latest.version < version) replica.latest = { version, params };
    return params;
  }

  private async fetchBlob(runId: string, key: string, chunks: number): Promise<Uint8Array> {
    const assembler = new Assembler({ maxBytes: 1 << 30, maxOpen: 1 });
    const wholes = await Promise.all(Array.from({ length: chunks }, (_, i) => this.requestChunk(runId, key, i).then((c) => assembler.add(c))));
    const whole = wholes.find((w) => w !== null);
    if (!whole) throw new ProtocolError(`blob ${key}: all ${chunks} chunks arrived but do not make a whole`);
    return whole;
  }

  private async requestChunk(runId: string, key: string, index: number) {
    const reply = await this.nc.request(subjects(this.opts.prefix, runId).blob, encodeBlobRequest({ key, index }), { timeout: BLOB_TIMEOUT_MS });
    const c = decodeChunk(reply.data);
    if (c.error) throw new ProtocolError(`the coordinator could not send chunk ${index} of ${key}: ${c.error}`);
    return c;
  }

  private async dropIdle(): Promise<void> {
    const now = performance.now();
    for (const r of [...this.replicas.values()]) {
      if (r.running === 0 && now - r.lastUsed > this.opts.idleMs) {
        this.replicas.delete(r.runId);
        r.sub.unsubscribe();
        this.opts.log(`run ${r.runId}: no task for ${Math.round(this.opts.idleMs / 1000)} s; replica released`);
        await r.pool.close();
      }
    }
  }

  /** Stop taking tasks, finish the ones held (up to graceMs), say goodbye, release everything. */
  async close(graceMs = 30_000): Promise<void> {
    this.leaving = true;
    this.sendHeartbeat();
    for (const s of this.subs) s.unsubscribe();
    const until = performance.now() + graceMs;
    while (this.busy > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 50));
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.sweeper) clearInterval(this.sweeper);
    for (const r of this.replicas.values()) r.sub.unsubscribe();
    await Promise.all([...this.replicas.values()].map((r) => r.pool.close()));
    this.replicas.clear();
  }
}
