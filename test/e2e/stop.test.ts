// Stopping never waits on absent workers (issue 13, item 5): SIGTERM or /api/stop while a
// step waits for remote workers abandons that step (nothing applied), saves the last
// completed step's checkpoint and exits within seconds; the run then resumes from it.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../coordinator/checkpoint.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js';

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'gradpool.js');
if (!existsSync(join(root, 'dist', 'coordinator', 'run.js'))) throw new Error('dist/ is missing: build first (npm run build)');

const base = mkdtempSync(join(tmpdir(), 'gradpool-stop-'));
const data = join(base, 'data.txt');
writeFileSync(data, 'the quick brown fox jumps over the lazy dog. '.repeat(200));
const tiny = ['--data', data, '--hidden', '16', '--embed', '8', '--batch', '4', '--seq-len', '8', '--eval-every', '0', '--sample-every', '0',
  '--port', '0', '--json', '--registry', 'none', '--step-timeout', '600'];
let server: NatsServer;
const children: ChildProcess[] = [];
beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await server?.stop();
  rmSync(base, { recursive: true, force: true });
});

function start(args: string[], env: Record<string, string> = {}) {
  const c = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.push(c);
  let out = '';
  c.stdout!.on('data', (d) => (out += d));
  c.stderr!.on('data', (d) => (out += d));
  return { c, out: () => out, exit: once(c, 'exit') as Promise<[number | null, string | null]> };
}

async function waitFor(what: string, ok: () => boolean, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const events = (out: string) => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('a stop request while a step waits for workers', () => {
  it('with no worker at all: SIGTERM abandons step 1, saves step 0 and exits 0 within seconds', async () => {
    const dir = join(base, 'none');
    const run = start(['train', ...tiny, '--nats', server.url, '--workers', '0', '--blocks', '2', '--steps', '5', '--out', dir]);
    await waitFor('the step to wait for workers', () => /"event":"waiting"/.test(run.out()));
    const sent = Date.now();
    run.c.kill('SIGTERM');
    const [code] = await run.exit;
    expect(code, run.out()).toBe(0);
    expect(Date.now() - sent).toBeLessThan(10_000);
    const ev = events(run.out());
    expect(ev.find((e) => e.event === 'abandoned')).toEqual({ event: 'abandoned', step: 1 });
    expect(ev.at(-1)).toMatchObject({ event: 'done', steps: 0 });
    expect((await loadCheckpoint(dir)).step).toBe(0);
  }, 90_000);

  it('with its worker cut off mid-run (SIGSTOP): /api/stop saves the last completed step, which resumes', async () => {
    const dir = join(base, 'cut');
    const worker = start(['worker', '--nats', server.url, '--threads', '1', '--name', 'cut-off']);
    await waitFor('the worker to serve', () => /serving any run/.test(worker.out()));
    const run = start(['train', ...tiny, '--nats', server.url, '--workers', '0', '--blocks', '1', '--steps', '100000', '--out', dir]);
    await waitFor('ten steps', () => /"event":"step","step":10,/.test(run.out()));
    worker.c.kill('SIGSTOP'); // alive but silent: its shard never comes back
    const { url } = JSON.parse(readFileSync(join(dir, 'control.json'), 'utf8')) as { url: string };
    const token = readFileSync(join(dir, 'token'), 'utf8').trim();
    const sent = Date.now();
    const res = await fetch(`${url}/api/stop`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBeLessThan(300);
    const [code] = await run.exit;
    expect(code, run.out()).toBe(0);
    expect(Date.now() - sent).toBeLessThan(10_000);
    const ev = events(run.out());
    const last = ev.at(-1)!.steps as number;
    expect(ev.at(-1)!.event).toBe('done');
    expect(last).toBeGreaterThanOrEqual(10);
    expect(ev.find((e) => e.event === 'abandoned')).toEqual({ event: 'abandoned', step: last + 1 });
    expect((await loadCheckpoint(dir)).step).toBe(last);
    worker.c.kill('SIGKILL');
    // The checkpoint is whole: the run continues from it on local threads.
    const resumed = spawnSync(process.execPath, [bin, 'train', '--resume', dir, '--steps', String(last + 2), '--workers', '1', '--port', '0', '--json'], { encoding: 'utf8', timeout: 60_000 });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(events(resumed.stdout).at(-1)).toMatchObject({ event: 'done', steps: last + 2 });
  }, 120_000);
});
