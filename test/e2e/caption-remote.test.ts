// A captioner trained by remote workers (a WorkerHost over a real nats-server) ends on the
// bits of the same steps trained in one thread: the images travel in the ShardTask over
// NATS (chunked when large), and the workers build their replicas from the spec. The same
// for a captioner over precomputed features, whose rows travel as the images do.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { modelConfigOf, resolveTrainConfig } from '../../coordinator/config.js';
import { openCaptionData } from '../../coordinator/caption/task.js';
import { PoolExecutor } from '../../coordinator/pool.js';
import { RemoteExecutor } from '../../coordinator/remote.js';
import { Trainer } from '../../coordinator/trainer.js';
import { initBackend } from '../../model/backend.js';
import { buildLayout } from '../../model/params.js';
import { Rng } from '../../model/rng.js';
import { encodeSafetensors } from '../../model/safetensors.js';
import { WorkerHost } from '../../worker/host.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js';

let server: NatsServer;
const dir = mkdtempSync(join(tmpdir(), 'gradpool-caption-remote-'));
beforeAll(async () => {
  await initBackend('cpu');
  server = await startNatsServer();
});
afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A directory of 20 captioned images whose features (D = 10) are in dir/features.safetensors. */
function featuresDataset(): Record<string, string> {
  const data = join(dir, 'data');
  mkdirSync(data, { recursive: true });
  const names = Array.from({ length: 20 }, (_, i) => `img${i}.jpg`);
  writeFileSync(join(data, 'captions.txt'), names.map((n, i) => `${n}#0\ta ${['red', 'blue', 'green'][i % 3]} ${['dog', 'cat'][i % 2]}\n`).join(''));
  const rng = new Rng(5);
  const rows = Float32Array.from({ length: 20 * 10 }, () => rng.normal());
  const features = join(dir, 'features.safetensors');
  writeFileSync(features, encodeSafetensors(new Map([['features', { shape: [20, 10], data: rows }]]), { images: JSON.stringify(names) }));
  return { dataset: data, features };
}

it.each([
  ['images', () => ({ shapesCount: '120', cnn: '4,8' }), 6 * 64 * 64 * 3],
  ['precomputed features', featuresDataset, 6 * 10 * 4],
])('two remote workers train the bits one thread trains (%s)', async (_, data0, bytesPerStep) => {
  const config = resolveTrainConfig(null, { task: 'caption', ...data0(), hidden: '16', embed: '8', batch: '6', blocks: '3', backend: 'cpu' });
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
    expect(executor.bytesOut).toBeGreaterThan(3 * bytesPerStep); // the images (or feature rows) went over NATS
  } finally {
    await executor.close();
    for (const h of hosts) await h.close(1_000);
    for (const c of conns) await c.close();
  }
}, 60_000);
