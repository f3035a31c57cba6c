// Remote workers over NATS, end to end with Debian's nats-server on loopback and real
// `gradpool worker` processes: the result of a run must be bit-identical to a local run
// with the same shards, whatever happens to the workers or the server on the way.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeCheckpoint } from '../../proto/codec.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'gradpool.js');
const dir = mkdtempSync(join(tmpdir(), 'gradpool-nats-test-'));
const data = join(dir, 'text.txt');
writeFileSync(data, 'a stitch in time saves nine; the early bird catches the worm. '.repeat(400));
const quiet = ['--data', data, '--seq-len', '16', '--lr', '0.01', '--eval-every', '0', '--sample-every', '0', '--port', '0', '--json', '--step-timeout', '60'];
/** H=256: 0.4 M parameters, so weights and every gradient take 2 chunks at the default 1 MB max_payload. */
const medium = [...quiet, '--hidden', '256', '--embed', '32', '--batch', '8'];
const tiny = [...quiet, '--hidden', '32', '--embed', '16', '--batch', '8'];

const children: ChildProcess[] = [];
afterAll(() => rmSync(dir, { recursive: true, force: true, maxRetries: 5 }));
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

interface Worker {
  proc: ChildProcess;
  log: () => string;
  exited: Promise<number | null>;
}

function startWorker(url: string, name: string, env: Record<string, string> = {}, extra: string[] = []): Worker {
  const proc = spawn(process.execPath, [bin, 'worker', '--nats', url, '--threads', '1', '--name', name, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  children.push(proc);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  return { proc, log: () => out, exited: new Promise((r) => proc.on('exit', (code) => r(code))) };
}

/** Worker processes that are connected and listening (so a run's first shards find them). */
async function startWorkers(url: string, names: string[], env: Record<string, string> = {}): Promise<Worker[]> {
  const ws = names.map((n) => startWorker(url, n, env));
  await waitFor(`workers ${names.join(', ')} to serve`, () => ws.every((w) => /serving any run/.test(w.log())));
  return ws;
}

async function waitFor(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type Event = Record<string, unknown>;

/** A training run as a child process; `onEvent` sees each JSON line as it comes. */
function train(args: string[], onEvent: (e: Event) => void | Promise<void> = () => {}) {
  const proc = spawn(process.execPath, [bin, 'train', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const events: Event[] = [];
  const lines = createInterface({ input: proc.stdout! });
  const done = (async () => {
    for await (const line of lines) {
      if (!line.startsWith('{')) continue;
      const e = JSON.parse(line) as Event;
      events.push(e);
      await onEvent(e);
    }
    const code = await new Promise<number | null>((r) => (proc.exitCode !== null ? r(proc.exitCode) : proc.on('exit', (c) => r(c))));
    return { code, events, stderr };
  })();
  return { proc, done };
}

function checkpointOf(out: string) {
  return decodeCheckpoint(new Uint8Array(readFileSync(join(out, 'checkpoint.pb'))));
}

function bytes(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** The step records of a run directory's history.jsonl (empty if it cannot be read). */
function stepRecords(dir: string): { step: number; loss: number }[] {
  try {
    const lines = readFileSync(join(dir, 'history.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; data: { step: number; loss: number } });
    return lines.filter((l) => l.type === 'step').map((l) => l.data);
  } catch {
    return [];
  }
}

/**
 * Params, carried states and optimizer moments equal bit for bit. Given the remote run's
 * events, a mismatch prints what happened besides the steps (failures, splits, duplicates,
 * workers leaving and joining) and the first step whose loss differs from the local run's
 * history: an intermittent mismatch must leave a trail.
 */
function expectSameRun(a: string, b: string, events?: Record<string, unknown>[]): void {
  const x = checkpointOf(a);
  const y = checkpointOf(b);
  if (events && !(y.step === x.step && bytes(y.params).equals(bytes(x.params)))) {
    const [ra, rb] = [stepRecords(a), stepRecords(b)];
    const la = new Map(ra.map((r) => [r.step, r.loss]));
    const lb = new Map(rb.map((r) => [r.step, r.loss]));
    const first = [...lb.keys()].find((k) => la.get(k) !== lb.get(k));
    console.error(`runs differ: ${first === undefined ? "every step's loss is the same in both histories" : `the first step whose loss differs is ${first} (local ${la.get(first)}, remote ${lb.get(first)})`}; the remote run's other events:\n` +
      events.filter((e) => e.event !== 'step' && e.event !== 'validation' && e.event !== 'sample').map((e) => JSON.stringify(e)).join('\n') +
      // The steps around the first difference, from the remote run's history: who computed which tasks, and their partition.
      (first === undefined ? '' : '\nthe remote steps around it:\n' + rb.filter((r) => Math.abs(r.step - first) <= 2).map((r) => JSON.stringify(r)).join('\n')));
  }
  expect(y.step).toBe(x.step);
  expect(bytes(y.params).equals(bytes(x.params))).toBe(true);
  expect(bytes(y.streamStates).equals(bytes(x.streamStates))).toBe(true);
  expect(bytes(y.optimizer.m).equals(bytes(x.optimizer.m))).toBe(true);
  expect(bytes(y.optimizer.v).equals(bytes(x.optimizer.v))).toBe(true);
}

/** A run that ended well: exit 0, nothing on stderr, and not one shard failed on the way. */
function expectCleanRun(r: { code: number | null; stderr: string; events: Event[] }): void {
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.events.filter((e) => e.event === 'failure')).toEqual([]);
}

/** A local run (2 threads) with the same shards: the reference every NATS run must match. */
function localRun(name: string, args: string[]): string {
  const out = join(dir, name);
  const r = spawnSync(process.execPath, [bin, 'train', ...args, '--workers', '2', '--out', out], { encoding: 'utf8', timeout: 180_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return out;
}

describe('remote workers over NATS', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('a coordinator with two worker processes (--workers 0) matches the local run bit for bit', async () => {
    const args = [...medium, '--blocks', '4', '--steps', '12'];
    const local = localRun('local-medium', args);
    const [a, b] = await startWorkers(server.url, ['wa', 'wb']);
    const out = join(dir, 'remote-medium');
    const r = await train([...args, '--nats', server.url, '--workers', '0', '--out', out]).done;
    expectCleanRun(r);
    expectSameRun(local, out);
    // Both processes built a replica and served shards (weights and results in 2 chunks each).
    for (const w of [a, b]) expect(w.log()).toMatch(/replica of lstm ×1 \(H=256\)/);
    a.proc.kill('SIGTERM');
    b.proc.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    expect(await b.exited).toBe(0);
    expect(a.log() + b.log()).toMatch(/served \d+ shards \(0 failed\)/);
  }, 180_000);

  it('local threads and remote workers serve one run; a worker joins mid-run and local threads scale to 0: still bit-identical', async () => {
    const args = [...tiny, '--blocks', '3', '--steps', '300'];
    const local = localRun('local-mixed', args);
    await startWorkers(server.url, ['mixed-a']);
    const out = join(dir, 'remote-mixed');
    let joined = false;
    let scaled = false;
    const run = train([...args, '--nats', server.url, '--workers', '1', '--out', out], async (e) => {
      if (e.event === 'step' && e.step === 1 && !joined) {
        joined = true;
        startWorker(server.url, 'mixed-b');
      }
      if (e.event === 'worker' && e.id === 'mixed-b' && e.joined && !scaled) {
        scaled = true;
        const s = spawnSync(process.execPath, [bin, 'scale', '--workers', '0', '--run', out], { encoding: 'utf8' });
        expect(s.stderr).toBe('');
        expect(s.status).toBe(0);
      }
    });
    const r = await run.done;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(scaled).toBe(true);
    expect(r.events.filter((e) => e.event === 'step').at(-1)?.workers).toBe(2);
    expectSameRun(local, out);
  }, 180_000);

  it('a worker process killed mid-step (after acknowledging a shard) has its shard re-run elsewhere', async () => {
    const args = [...tiny, '--blocks', '2', '--steps', '20'];
    const local = localRun('local-kill', args);
    // Whichever process receives shard 0 of step 6 first dies on the spot (SIGKILL).
    const fault = { GRADPOOL_FAULT: 'kill:step=5,shard=0' };
    const [a, b] = await startWorkers(server.url, ['kill-a', 'kill-b'], fault);
    const out = join(dir, 'remote-kill');
    const started = Date.now();
    const r = await train([...args, '--nats', server.url, '--workers', '0', '--out', out]).done;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const killed = [a, b].filter((w) => w.proc.signalCode === 'SIGKILL');
    expect(killed.length).toBe(1);
    const left = r.events.find((e) => e.event === 'worker' && e.joined === false);
    expect(left?.reason).toMatch(/no heartbeat for [\d.]+ s|no responders/);
    const failure = r.events.find((e) => e.event === 'failure');
    expect(failure).toMatchObject({ step: 6, shard: 0, reason: 'crash' });
    expect(Date.now() - started).toBeLessThan(60_000);
    expectSameRun(local, out);
  }, 180_000);

  it('a worker process killed with SIGKILL at a random moment of a run costs a re-run shard, not the run', async () => {
    const args = [...tiny, '--blocks', '2', '--steps', '300'];
    const local = localRun('local-kill2', args);
    const [a] = await startWorkers(server.url, ['rk-a', 'rk-b']);
    const out = join(dir, 'remote-kill2');
    const r = await train([...args, '--nats', server.url, '--workers', '0', '--out', out], (e) => {
      if (e.event === 'step' && e.step === 10) setTimeout(() => a.proc.kill('SIGKILL'), 137);
    }).done;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(a.proc.signalCode).toBe('SIGKILL');
    expect(r.events.some((e) => e.event === 'worker' && e.id === 'rk-a' && e.joined === false)).toBe(true);
    expectSameRun(local, out, r.events);
  }, 180_000);

  it('a nats-server restarted mid-run: the run reconnects and continues, bit-identical', async () => {
    const own = await startNatsServer();
    try {
      const args = [...tiny, '--blocks', '2', '--steps', '300'];
      const local = localRun('local-restart', args);
      const [a, b] = await startWorkers(own.url, ['rs-a', 'rs-b']);
      const out = join(dir, 'remote-restart');
      let restarted = false;
      const started = Date.now();
      const r = await train([...args, '--nats', own.url, '--workers', '0', '--out', out], async (e) => {
        if (e.event === 'step' && e.step === 10 && !restarted) {
          restarted = true;
          await own.kill();
          await new Promise((res) => setTimeout(res, 1_000));
          await own.restart();
        }
      }).done;
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(restarted).toBe(true);
      // The coordinator itself lost the server mid-run and came back.
      expect(r.events.some((e) => e.event === 'reconnect')).toBe(true);
      // The shards in flight were re-issued on reconnect, not left to their 60 s deadline.
      expect(Date.now() - started).toBeLessThan(45_000);
      expectSameRun(local, out);
      for (const w of [a, b]) expect(w.log()).toMatch(/reconnected to NATS/);
    } finally {
      await own.stop();
    }
  }, 180_000);

  it('a coordinator SIGKILLed mid-run resumes from its last checkpoint with the same workers, bit-identical', async () => {
    const args = [...tiny, '--blocks', '2', '--steps', '300', '--checkpoint-every', '50'];
    const local = localRun('local-resume', args);
    const workers = await startWorkers(server.url, ['re-a', 're-b']);
    const out = join(dir, 'remote-resume');
    // The workers hold weights of versions past the checkpoint when the coordinator dies;
    // the resumed coordinator is a new session (same run id), and they rebuild their replica
    // rather than trust weights an earlier process published under the same version numbers.
    const first = train([...args, '--nats', server.url, '--workers', '0', '--out', out], (e) => {
      if (e.event === 'step' && e.step === 120) first.proc.kill('SIGKILL');
    });
    const killed = await first.done;
    expect(killed.code).toBe(null);
    const resumedFrom = checkpointOf(out).step;
    expect(resumedFrom).toBeGreaterThanOrEqual(100);
    expect(resumedFrom).toBeLessThan(300);
    const r = await train(['--resume', out, '--steps', '300', '--nats', server.url, '--workers', '0', '--json', '--port', '0']).done;
    expectCleanRun(r);
    for (const w of workers) expect(w.log()).toMatch(/a new coordinator session; rebuilding the replica/);
    expectSameRun(local, out);
  }, 180_000);

  it('a result that misses its deadline is re-issued; the late duplicate is discarded', async () => {
    // Long enough that the run is still going when the held result arrives, 1 s after the re-issue.
    const args = [...tiny, '--blocks', '2', '--steps', '400', '--step-timeout', '2'];
    const local = localRun('local-late', args);
    const fault = { GRADPOOL_FAULT: 'late:step=3,shard=1' };
    await startWorkers(server.url, ['late-a', 'late-b'], fault);
    const out = join(dir, 'remote-late');
    const r = await train([...args, '--nats', server.url, '--workers', '0', '--out', out]).done;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.events.find((e) => e.event === 'failure')).toMatchObject({ step: 4, shard: 1, reason: 'timeout' });
    expect(r.events.find((e) => e.event === 'duplicate')).toMatchObject({ step: 4, shard: 1 });
    expectSameRun(local, out);
  }, 180_000);

  it('a worker restricted to another run (--run) is never given this run\'s shards', async () => {
    const own = await startNatsServer();
    try {
      const other = startWorker(own.url, 'only-other', {}, ['--run', 'someotherrun']);
      await waitFor('the restricted worker', () => /serving run someotherrun/.test(other.log()));
      await startWorkers(own.url, ['any-run']);
      const out = join(dir, 'restricted');
      const r = await train([...tiny, '--blocks', '2', '--steps', '20', '--nats', own.url, '--workers', '0', '--out', out]).done;
      expectCleanRun(r);
      expect(r.events.some((e) => e.event === 'worker' && e.id === 'only-other')).toBe(false);
      expect(other.log()).not.toMatch(/replica of/);
    } finally {
      await own.stop();
    }
  }, 60_000);

  it('no worker at all: a remote-only run fails after the step timeout with a clear message', async () => {
    const own = await startNatsServer();
    try {
      const out = join(dir, 'no-workers');
      const r = await train([...tiny, '--blocks', '2', '--steps', '5', '--step-timeout', '2', '--nats', own.url, '--workers', '0', '--out', out]).done;
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/gradpool: no worker took shard 0 of step 1 for 2 s: there are no local threads \(--workers 0\) and no remote worker answers on NATS/);
    } finally {
      await own.stop();
    }
  }, 60_000);

  it('a worker stopped (SIGTERM) while its server is down still exits, within seconds', async () => {
    const own = await startNatsServer();
    const w = startWorker(own.url, 'down');
    await waitFor('the worker to serve', () => /serving any run/.test(w.log()));
    await own.kill();
    await waitFor('the worker to notice', () => /disconnected from NATS/.test(w.log()));
    const asked = Date.now();
    w.proc.kill('SIGTERM');
    expect(await w.exited).toBe(0);
    expect(Date.now() - asked).toBeLessThan(10_000);
  }, 60_000);

  it('--workers 0 without --nats, a server that is not there, a taken port, bad worker flags: exit 2 naming the problem', async () => {
    const a = spawnSync(process.execPath, [bin, 'train', ...tiny, '--workers', '0', '--steps', '1', '--out', join(dir, 'x0')], { encoding: 'utf8' });
    expect(a.status).toBe(2);
    expect(a.stderr).toBe('gradpool: --workers 0 leaves the run to remote workers: it needs --nats URL\n');
    const b = spawnSync(process.execPath, [bin, 'train', ...tiny, '--nats', 'nats://127.0.0.1:1', '--steps', '1', '--out', join(dir, 'x1')], { encoding: 'utf8' });
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/^gradpool: cannot connect to NATS at nats:\/\/127\.0\.0\.1:1: /);
    const c = spawnSync(process.execPath, [bin, 'worker', '--nats', 'nats://127.0.0.1:1'], { encoding: 'utf8' });
    expect(c.status).toBe(2);
    expect(c.stderr).toMatch(/^gradpool: cannot connect to NATS at nats:\/\/127\.0\.0\.1:1: /);
    const d = spawnSync(process.execPath, [bin, 'worker', '--threads', '2'], { encoding: 'utf8' });
    expect(d.status).toBe(2);
    expect(d.stderr).toMatch(/^gradpool: --nats URL is required/);
    const e = spawnSync(process.execPath, [bin, 'worker', '--nats', 'nats://127.0.0.1:1', '--threads', '0'], { encoding: 'utf8' });
    expect(e.status).toBe(2);
    expect(e.stderr).toBe('gradpool: --threads is "0"; allowed: an integer from 1 to 1024\n');
    const f = spawnSync(process.execPath, [bin, 'worker', '--nats', 'nats://127.0.0.1:1', '--name', 'a.b'], { encoding: 'utf8' });
    expect(f.status).toBe(2);
    expect(f.stderr).toBe('gradpool: --name is "a.b"; allowed: 1 to 64 letters, digits, _ and -\n');
    // The dashboard's port taken: exit 2 at once, not a stack trace and a process kept alive by its pool and connection.
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = String((taken.address() as { port: number }).port);
    for (const extra of [[], ['--nats', server.url]]) {
      const g = spawnSync(process.execPath, [bin, 'train', ...tiny, ...extra, '--workers', '1', '--steps', '1', '--port', port, '--out', join(dir, 'x2')], { encoding: 'utf8', timeout: 30_000 });
      expect(g.status).toBe(2);
      expect(g.stderr).toBe(`gradpool: --port ${port}: 127.0.0.1:${port} is already in use; pick another port or --port 0 for any free one\n`);
    }
    taken.close();
    const h = spawnSync(process.execPath, [bin, 'worker', '--help'], { encoding: 'utf8' });
    expect(h.status).toBe(0);
    expect(h.stdout).toMatch(/^Usage: gradpool worker --nats URL/);
    expect(h.stdout).toContain('--nats-require-auth');
  }, 60_000);
});

describe('the least-privilege server config of docs/SCALING.md', () => {
  it('lets a coordinator and a worker (each with only its own permissions) train, with no permission violation', async () => {
    const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'SCALING.md'), 'utf8');
    const block = /^authorization \{[\s\S]*?^\}$/m.exec(doc)?.[0];
    expect(block).toContain('GRADPOOL_WORKER_PASS');
    process.env.GRADPOOL_COORDINATOR_PASS = 'coordinator-secret';
    process.env.GRADPOOL_WORKER_PASS = 'worker-secret';
    const server = await startNatsServer(block);
    try {
      writeFileSync(join(dir, 'c.pass'), 'coordinator-secret\n');
      writeFileSync(join(dir, 'w.pass'), 'worker-secret\n');
      const w = startWorker(server.url, 'least', {}, ['--nats-user', 'worker', '--nats-pass-file', join(dir, 'w.pass'), '--nats-require-auth']);
      await waitFor('the worker to serve', () => /serving any run/.test(w.log()));
      const r = await train([
        ...tiny, '--blocks', '2', '--steps', '5', '--workers', '0', '--out', join(dir, 'least'),
        '--nats', server.url, '--nats-user', 'coordinator', '--nats-pass-file', join(dir, 'c.pass'), '--nats-require-auth',
      ]).done;
      expectCleanRun(r);
      expect(w.log()).toMatch(/replica of/);
      expect(server.log()).not.toMatch(/[Vv]iolation/);
    } finally {
      delete process.env.GRADPOOL_COORDINATOR_PASS;
      delete process.env.GRADPOOL_WORKER_PASS;
      await server.stop();
    }
  }, 60_000);
});

describe('chunking under a small max_payload', () => {
  it('weights, gradients and whole shard tasks cut into 1 KB chunks (max_payload 2048): bit-identical', async () => {
    const server = await startNatsServer('max_payload: 2048');
    try {
      const args = [...tiny, '--blocks', '2', '--steps', '8'];
      const local = localRun('local-chunks', args);
      await startWorkers(server.url, ['ch-a', 'ch-b']);
      const out = join(dir, 'remote-chunks');
      const r = await train([...args, '--nats', server.url, '--workers', '0', '--out', out]).done;
      expectCleanRun(r);
      expectSameRun(local, out);
    } finally {
      await server.stop();
    }
  }, 180_000);
});
