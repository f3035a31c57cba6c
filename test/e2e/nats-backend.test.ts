// One backend per run, everywhere: a remote worker that cannot run a run's backend (here
// the native kernels, made unloadable with GRADPOOL_ISA) refuses its tasks with the reason,
// and the run says which worker refused and why instead of mixing backends.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js';
import { describeNative } from '../helpers/native-guard.js';

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'gradpool.js');
if (!existsSync(join(root, 'dist', 'coordinator', 'run.js'))) throw new Error('dist/ is missing: build first (npm run build)');

const base = mkdtempSync(join(tmpdir(), 'gradpool-nats-backend-'));
const data = join(base, 'data.txt');
writeFileSync(data, 'the quick brown fox jumps over the lazy dog. '.repeat(200));
let server: NatsServer;
const children: ChildProcess[] = [];
beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await server?.stop();
  rmSync(base, { recursive: true, force: true });
});

describeNative('a remote worker without the run\'s backend', () => {
  it('refuses the tasks with its reason; the run ends naming the refusal, not computing on another backend', async () => {
    const worker = spawn(process.execPath, [bin, 'worker', '--nats', server.url, '--threads', '1', '--name', 'no-native'], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GRADPOOL_ISA: 'bogus' },
    });
    children.push(worker);
    let log = '';
    worker.stdout!.on('data', (d) => (log += d));
    worker.stderr!.on('data', (d) => (log += d));
    const until = Date.now() + 20_000;
    while (!/serving any run/.test(log)) {
      if (Date.now() > until) throw new Error(`worker did not start: ${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = spawnSync(process.execPath, [bin, 'train', '--data', data, '--nats', server.url, '--workers', '0', '--backend', 'native',
      '--hidden', '16', '--embed', '8', '--batch', '4', '--seq-len', '8', '--steps', '2', '--step-timeout', '4', '--eval-every', '0',
      '--sample-every', '0', '--port', '0', '--json', '--registry', 'none', '--out', join(base, 'run')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^gradpool: no worker took shard 0 of step 1 for 4 s: .*last refusal: worker no-native refused the task: this worker cannot run the native backend of run [0-9a-f]+: backend "native" unavailable: native kernels failed to load: GRADPOOL_ISA=bogus/m);
    // Nothing was computed: no step event, and the worker served no shard.
    expect(r.stdout.split('\n').filter((l) => l.includes('"event":"step"'))).toEqual([]);
  }, 90_000);
});
