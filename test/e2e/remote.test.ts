// The NATS executor and worker host in one process, against a real nats-server: what
// travels (weights once per step, not per shard; a late joiner fetches the version it
// missed), and which results count (the first valid one per (run, step, shard,
// version); duplicates, other versions and other runs are discarded).

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { TRAIN_DEFAULTS, type TrainConfig, modelConfigOf } from '../../coordinator/config.js';
import { RemoteExecutor } from '../../coordinator/remote.js';
import { PoolExecutor } from '../../coordinator/pool.js';
import { Trainer } from '../../coordinator/trainer.js';
import { initBackend } from '../../model/backend.js';
import { buildLayout } from '../../model/params.js';
import { splitChunks } from '../../proto/chunks.js';
import { encodeChunk, encodeShardResult } from '../../proto/codec.js';
import { requestFailure } from '../../proto/nats.js';
import { subjects } from '../../proto/nats.js';
import { WorkerHost } from '../../worker/host.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js';
import { tenLetterCorpus } from '../helpers/corpus.js';

const corpus = tenLetterCorpus;

const config: TrainConfig = {
  ...TRAIN_DEFAULTS,
  cell: 'lstm', layers: 1, hidden: 32, embed: 8, seqLen: 8, batch: 8, blocks: 4, lr: 0.01, clip: 1, backend: 'cpu',
};
const layout = buildLayout(modelConfigOf(config), 10);
const PREFIX = 'gp-test';

let server: NatsServer;
const conns: NatsConnection[] = [];
const hosts: WorkerHost[] = [];
const executors: RemoteExecutor[] = [];

beforeAll(async () => {
  await initBackend('cpu');
  server = await startNatsServer();
});
afterEach(async () => {
  for (const e of executors.splice(0)) await e.close();
  for (const h of hosts.splice(0)) await h.close(1_000);
  for (const c of conns.splice(0)) await c.close();
});
afterAll(async () => {
  await server.stop();
});

async function conn(): Promise<NatsConnection> {
  const nc = await connect({ servers: `127.0.0.1:${server.port}` });
  conns.push(nc);
  return nc;
}

async function worker(id: string): Promise<WorkerHost> {
  const h = new WorkerHost(await conn(), { id, prefix: PREFIX, threads: 1, run: null, idleMs: 60_000, heartbeatMs: 200, log: () => {} });
  h.start();
  hosts.push(h);
  return h;
}

async function executor(runId: string, events: { duplicates?: [number, number][] } = {}): Promise<RemoteExecutor> {
  const e = new RemoteExecutor({
    runId, layout, backend: 'cpu', nc: await conn(), prefix: PREFIX, local: null,
    makeLocal: (w) => new PoolExecutor({ runId, layout, backend: 'cpu', workers: w, stepTimeoutMs: 30_000, maxAttempts: 3 }),
    stepTimeoutMs: 30_000, maxAttempts: 3, waitMs: 30_000, heartbeatLapseMs: 5_000,
    onDuplicate: (step, shard) => events.duplicates?.push([step, shard]),
  });
  executors.push(e);
  return e;
}

async function until(what: string, ok: () => boolean): Promise<void> {
  const end = Date.now() + 15_000;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('RemoteExecutor with WorkerHosts', () => {
  it('sends the weights once per step (not once per shard); a worker joining late fetches only the version it missed', async () => {
    await worker('early');
    const ex = await executor('run-a');
    await until('the first worker', () => ex.remoteWorkers().length === 1);
    const trainer = new Trainer(config, { corpus: corpus(), executor: ex });
    const weightBytes = layout.size * 4;
    ex.publish(trainer.state.params, 0);
    const afterPublish = ex.bytesOut;
    for (let s = 0; s < 3; s++) await trainer.step();
    // 3 steps of 4 blocks, 1 worker thread: the initial version was fetched once (the worker built
    // its replica after the broadcast), then each new version was broadcast once.
    const perStep = (ex.bytesOut - afterPublish) / 3;
    expect(perStep).toBeGreaterThanOrEqual(weightBytes);
    expect(perStep).toBeLessThan(2 * weightBytes);
    // Gradients: one per task, and with one worker thread a step is one task of its 4 blocks,
    // summed by the worker (docs/PARALLEL.md): one full gradient per step, not four.
    expect(ex.bytesIn).toBeGreaterThanOrEqual(3 * weightBytes);
    expect(ex.bytesIn).toBeLessThan(3 * 2 * weightBytes);

    await worker('late');
    await until('the second worker', () => ex.remoteWorkers().length === 2);
    const before = ex.bytesOut;
    await trainer.step();
    // One broadcast for the new version; the late worker had subscribed only when it got its
    // first task, so it fetched that version's chunks once from the blob service.
    const sent = ex.bytesOut - before;
    expect(sent).toBeGreaterThanOrEqual(weightBytes);
    expect(sent).toBeLessThan(3 * weightBytes);
    expect(ex.remoteWorkers().every((w) => w.inFlight === 0)).toBe(true);
  }, 60_000);

  it('keeps the first valid result per (run, step, shard, version): forged duplicates, other versions and other runs change nothing', async () => {
    await worker('w1');
    const duplicates: [number, number][] = [];
    const ex = await executor('run-b', { duplicates });
    await until('the worker', () => ex.remoteWorkers().length === 1);
    const trainer = new Trainer(config, { corpus: corpus(), executor: ex });
    const reference = new Trainer(config, { corpus: corpus() });
    await trainer.step();
    await reference.step();
    // Forge results for step 0 (finished), for the current step at a wrong version, and for another run.
    const nc = await conn();
    const results = subjects(PREFIX, 'run-b').results((ex as unknown as { conn: string }).conn);
    const forged = (runId: string, step: number, version: number) =>
      encodeShardResult({
        runId, step, shard: 0, version, loss: 1, penalty: 0, tokens: 16, grad: new Float32Array(layout.size).fill(1e3),
        finalStates: new Float32Array(2 * 2 * 32), computeMs: 1, worker: 99,
      });
    for (const [runId, step, version] of [['run-b', 0, 0], ['run-b', 1, 7], ['run-x', 1, 1]] as const) {
      for (const c of splitChunks(runId, `r.${step}.0.${version}.0`, forged(runId, step, version), 64 * 1024)) nc.publish(results, encodeChunk(c));
    }
    await nc.flush();
    await trainer.step();
    await reference.step();
    expect(Buffer.from(trainer.state.params.buffer).equals(Buffer.from(reference.state.params.buffer))).toBe(true);
    // The finished step's forgery is a late duplicate; the wrong version too; the other run's is not even ours.
    expect(duplicates).toEqual(expect.arrayContaining([[0, 0], [1, 0]]));
    expect(duplicates.some(([step]) => step > 1)).toBe(false);
    expect(ex.duplicates).toBe(duplicates.length);
  }, 60_000);
});

describe('requestFailure against a real server', () => {
  // The classes the client really throws, not only the ones a unit test can construct.
  it('tells no responders, a timeout and a closed connection apart by class', async () => {
    const nc = await conn();
    const failureOf = (p: Promise<unknown>) => p.then(() => 'answered', requestFailure);
    expect(await failureOf(nc.request('gradpool-test.nobody', new Uint8Array(0), { timeout: 2_000 }))).toBe('no-responders');
    const silent = nc.subscribe('gradpool-test.silent', { callback: () => {} });
    expect(await failureOf(nc.request('gradpool-test.silent', new Uint8Array(0), { timeout: 200 }))).toBe('timeout');
    silent.unsubscribe();
    await nc.close();
    expect(await failureOf(Promise.resolve().then(() => nc.request('gradpool-test.nobody', new Uint8Array(0))))).toBe('disconnected');
  }, 30_000);
});
