// A remote straggler does not hold the step: a `gradpool worker` process that holds one
// task's result back for 3 s (GRADPOOL_FAULT=late, worker/faults.ts) while it has a free
// thread gets that task's halves as backups; they cover the range long before the held
// result comes, and the step is reduced over them. The run is bit-identical to a local one.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeCheckpoint } from '../../proto/codec.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'gradpool.js');
const dir = mkdtempSync(join(tmpdir(), 'gradpool-straggler-nats-'));
const data = join(dir, 'text.txt');
writeFileSync(data, 'a stitch in time saves nine; the early bird catches the worm. '.repeat(400));
// K = 4 blocks on the worker's 2 threads: tasks of 2 and 2 blocks (one speed key, so always the even partition).
const args = ['--data', data, '--seq-len', '16', '--lr', '0.01', '--eval-every', '0', '--sample-every', '0', '--port', '0', '--json',
  '--step-timeout', '60', '--hidden', '32', '--embed', '16', '--batch', '8', '--blocks', '4', '--steps', '3', '--registry', 'none'];

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

let server: NatsServer;
beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  await server?.stop();
});

type Event = Record<string, unknown>;

/** `gradpool train` as a child process: its exit code, JSON events and stderr. */
async function train(extra: string[]): Promise<{ code: number | null; events: Event[]; stderr: string }> {
  const proc = spawn(process.execPath, [bin, 'train', ...args, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const events: Event[] = [];
  for await (const line of createInterface({ input: proc.stdout! })) if (line.startsWith('{')) events.push(JSON.parse(line) as Event);
  const code = await new Promise<number | null>((r) => (proc.exitCode !== null ? r(proc.exitCode) : proc.on('exit', (c) => r(c))));
  return { code, events, stderr };
}

const checkpointBytes = (out: string) => {
  const c = decodeCheckpoint(new Uint8Array(readFileSync(join(out, 'checkpoint.pb'))));
  return [c.params, c.streamStates, c.optimizer.m, c.optimizer.v].map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength));
};

describe("a remote straggler's task is split", () => {
  it('a worker holding a 2-block result for 3 s: its halves cover the range first and the step is reduced over them, bit-identical', async () => {
    const local = join(dir, 'local');
    const ref = spawnSync(process.execPath, [bin, 'train', ...args, '--workers', '2', '--out', local], { encoding: 'utf8', timeout: 90_000 });
    expect([ref.status, ref.stderr]).toEqual([0, '']);

    // The third (last) step's task 1 (blocks [2, 4)) is computed, then held 3 s before it is sent.
    const worker = spawn(process.execPath, [bin, 'worker', '--nats', server.url, '--threads', '2', '--name', 'holder'], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GRADPOOL_FAULT: 'late:step=2,shard=1' },
    });
    children.push(worker);
    let log = '';
    worker.stdout!.on('data', (d) => (log += d));
    worker.stderr!.on('data', (d) => (log += d));
    for (const until = Date.now() + 20_000; !/serving any run/.test(log); await new Promise((r) => setTimeout(r, 50))) {
      if (Date.now() > until) throw new Error(`the worker did not start: ${log}`);
    }

    const out = join(dir, 'remote');
    const r = await train(['--nats', server.url, '--workers', '0', '--out', out]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.events.filter((e) => e.event === 'failure')).toEqual([]);
    expect(r.events.filter((e) => e.event === 'split')).toEqual([{ event: 'split', step: 3, shard: 1, kind: 'speculative', blocks: 2, into: [1, 1] }]);
    // The step that ends the run was reduced over the halves: the held whole did not win.
    const last = r.events.find((e) => e.event === 'step' && e.step === 3);
    expect(last?.tasks).toEqual([2, 1, 1]);
    // Each covering result came from the worker; the run ended before the held one (3 s) could arrive.
    expect(r.events.filter((e) => e.event === 'duplicate')).toEqual([]);
    expect(checkpointBytes(out)).toEqual(checkpointBytes(local));
  }, 120_000);
});
