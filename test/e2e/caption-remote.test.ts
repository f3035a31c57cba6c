// A captioner trained by remote workers (a WorkerHost over a real nats-server) ends on the
// bits of the same steps trained in one thread: the images travel in the ShardTask over
// NATS (chunked when large), and the workers build their replicas from the spec.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { modelConfigOf, resolveTrainConfig } from '../../coordinator/config.js';
import { openCaptionData } from '../../coordinator/caption/task.js';
import { PoolExecutor } from '../../coordinator/pool.js';
import { RemoteExecutor } from '../../coordinator/remote.js';
import { Trainer } from '../../coordinator/trainer.js';
import { initBackend } from '../../model/backend.js';
import { buildLayout } from '../../model/params.js';
import { WorkerHost } from '../../worker/host.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js';

let server: NatsServer;
beforeAll(async () => {
  await initBackend('cpu');
  server = await startNatsServer();
});
afterAll(async () => {
  await server.stop();
});

it('two remote workers train the bits one thread trains', async () => {
  const config = resolveTrainConfig(null, { task: 'caption', shapesCount: '120', cnn: '4,8', hidden: '16', embed: '8', batch: '6', blocks: '3', backend: 'cpu' });
  const data = await openCaptionData(config);
  const model = modelConfigOf(config);
  const layout = buildLayout(model, data.vocab.tokens.length);
  const task = { model, source: data.source, vocab: data.vocab };

  const reference = new Trainer(config, { task });
  for (let s = 0; s < 3; s++) await reference.step();
  await reference.close();

  const conns: NatsConnection[] = [];
  const conn = async () => {
    const nc = await connect({ servers: `127.0.0.1:${server.port}` });
    conns.push(nc);
    return nc;
  };
  const hosts = await Promise.all(['w1', 'w2'].map(async (id) => {
    const h = new WorkerHost(await conn(), { id, prefix: 'gp-caption', threads: 1, run: null, idleMs: 60_000, heartbeatMs: 200, log: () => {} });
    h.start();
    return h;
  }));
  const executor = new RemoteExecutor({
    runId: 'caption-remote', layout, backend: 'cpu', nc: await conn(), prefix: 'gp-caption', local: null,
    makeLocal: (w) => new PoolExecutor({ runId: 'caption-remote', layout, backend: 'cpu', workers: w, stepTimeoutMs: 30_000, maxAttempts: 3 }),
    stepTimeoutMs: 30_000, maxAttempts: 3, waitMs: 30_000, heartbeatLapseMs: 5_000,
  });
  try {
    const end = Date.now() + 15_000;
    while (executor.remoteWorkers().length < 2) {
      if (Date.now() > end) throw new Error('the remote workers never appeared');
      await new Promise((r) => setTimeout(r, 20));
    }
    const remote = new Trainer(config, { task, executor });
    executor.publish(remote.state.params, 0);
    for (let s = 0; s < 3; s++) await remote.step();
    expect(Buffer.from(remote.state.params.buffer).equals(Buffer.from(reference.state.params.buffer))).toBe(true);
    expect(executor.bytesOut).toBeGreaterThan(3 * 6 * 64 * 64 * 3); // the images went over NATS
  } finally {
    await executor.close();
    for (const h of hosts) await h.close(1_000);
    for (const c of conns) await c.close();
  }
}, 60_000);
