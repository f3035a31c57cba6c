// Crash safety of checkpoints (issue 5): a writer SIGKILLed at many points of its saves,
// the real trainer SIGKILLed and resumed, a run directory it may not write, a disk that
// fills during a save or is full at start. Runs dist/ (npm test builds it first). The
// mount tests need root (tmpfs, read-only bind mount): skipped without it, failed under CI=true.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Interface, createInterface } from 'node:readline';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { CHECKPOINT_FILE, loadCheckpoint, saveCheckpoint } from '../../coordinator/checkpoint.js';
import { loadModelFile } from '../../model/modelfile.js';
import type { CheckpointMsg } from '../../proto/codec.js';
import { readableCheckout } from '../helpers/readable-checkout.js';
import { systemTool } from '../helpers/system-tool.js';

// A plain-JS helper, since it also runs as a child process: the checkpoint of each step it writes.
const { checkpointAt } = await import('../helpers/checkpoint-writer.mjs');

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'gradpool.js');
const writer = join(root, 'test', 'helpers', 'checkpoint-writer.mjs');
if (!existsSync(join(root, 'dist', 'coordinator', 'checkpoint.js'))) throw new Error('dist/ is missing: build first (npx tsc -p tsconfig.json)');

// Everything lives under one world-readable directory, so that user `nobody` can read the data.
const base = mkdtempSync(join(tmpdir(), 'gradpool-crash-'));
chmodSync(base, 0o755);
const data = join(base, 'text.txt');
writeFileSync(data, 'the quick brown fox jumps over the lazy dog. '.repeat(300), { mode: 0o644 });
/** A small LSTM whose checkpoint (Adam) is about 950 kB and model file about 320 kB. */
const model = ['--data', data, '--batch', '8', '--seq-len', '16', '--hidden', '128', '--embed', '16', '--workers', '1'];
const quietRun = ['--eval-every', '0', '--sample-every', '0', '--port', '0', '--json'];

const isRoot = process.getuid?.() === 0;
const mounts: string[] = [];
/** Mounts (as root) `mount ...args` on a fresh directory; false when this machine does not let us. */
function mount(dir: string, ...args: string[]): boolean {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', [...args, dir], { encoding: 'utf8' });
  if (r.status === 0) mounts.push(dir);
  return r.status === 0;
}
const canMount = isRoot && mount(join(base, 'probe'), '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs');
const mounting = systemTool('crash-safety.test.ts', canMount, 'the tmpfs and read-only mount tests: mounting needs root and a mount-capable sandbox');

/** Children still running when a test fails are killed before their directories go. */
const running = new Set<ChildProcess>();
function startChild(args: string[]): ChildProcess {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

afterAll(async () => {
  for (const child of running) child.kill('SIGKILL');
  await Promise.all([...running].map((child) => once(child, 'exit')));
  for (const dir of mounts.reverse()) spawnSync('umount', [dir]);
  rmSync(base, { recursive: true, force: true });
});

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const tempFiles = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.tmp'));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every file of a directory with its size, mtime and content hash: to show nothing was touched. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const s = statSync(path);
    out[name] = `${s.size} ${s.mtimeMs} ${s.mode.toString(8)} ${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
  }
  return out;
}

/** `gradpool train ARGS` to its end (or killed after timeoutMs), as user uid if given, from program if given. */
function train(args: string[], options: { uid?: number; program?: string; timeoutMs?: number } = {}) {
  const ids = options.uid === undefined ? {} : { uid: options.uid, gid: options.uid };
  const timeout = options.timeoutMs ?? 60_000;
  const r = spawnSync(process.execPath, [options.program ?? bin, 'train', ...args], { encoding: 'utf8', timeout, killSignal: 'SIGKILL', cwd: base, ...ids });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, lines: r.stderr.trim().split('\n') };
}

/** Resolves on the first line that matches; rejects if the stream ends first. */
function lineMatching(rl: Interface, match: (line: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const onLine = (line: string) => {
      if (!match(line)) return;
      rl.off('line', onLine);
      resolve(line);
    };
    rl.on('line', onLine);
    rl.once('close', () => reject(new Error('the child closed its stdout first')));
  });
}

async function killed(child: ChildProcess): Promise<void> {
  const closed = once(child, 'close');
  child.kill('SIGKILL');
  const [code, signal] = await closed;
  expect({ code, signal }).toEqual({ code: null, signal: 'SIGKILL' });
}

function expectExactly(back: CheckpointMsg, step: number, P: number): void {
  const want: CheckpointMsg = checkpointAt(step, P);
  expect(back.step).toBe(step);
  expect(back.optimizer.t).toBe(step);
  expect(back.tokensSeen).toBe(want.tokensSeen);
  expect(back.rngState).toEqual(want.rngState);
  expect(bits(back.params).equals(bits(want.params)), `params of step ${step}`).toBe(true);
  expect(bits(back.optimizer.m).equals(bits(want.optimizer.m)), `optimizer.m of step ${step}`).toBe(true);
  expect(bits(back.optimizer.v).equals(bits(want.optimizer.v)), `optimizer.v of step ${step}`).toBe(true);
  expect(bits(back.streamStates).equals(bits(want.streamStates)), `stream states of step ${step}`).toBe(true);
}

describe('SIGKILL during checkpoint saves', () => {
  it('a writer killed at 32 points of its saves always leaves the latest whole checkpoint', async () => {
    const P = 300_000; // 3 × 1.2 MB of floats: a 3.6 MB checkpoint
    const dir = join(base, 'killed-writer');
    const KILLS = 32;
    let whole = 0; // the step known to be on disk, whole
    let saveMs = 0;
    const outcomes = { beforeTempFile: 0, midWrite: 0, renamedNotReported: 0, betweenSaves: 0 };
    for (let k = 0; k < KILLS; k++) {
      const child = startChild([writer, dir, String(whole + 1), String(P)]);
      const rl = createInterface({ input: child.stdout! });
      let writing = whole;
      let wrote = whole;
      const ms: number[] = [];
      rl.on('line', (line) => {
        const [word, n, took] = line.split(' ');
        if (word === 'writing') writing = Number(n);
        if (word === 'wrote') {
          wrote = Number(n);
          ms.push(Number(took));
        }
      });
      if (k === 0) {
        // The first run measures how long a save takes here (fsync dominates, and varies).
        await lineMatching(rl, (l) => l.startsWith(`wrote ${whole + 5} `));
        saveMs = ms.sort((a, b) => a - b)[2];
      } else {
        // Aim at the 1st, 2nd or 3rd save of this process, from its first byte to past its end.
        await lineMatching(rl, (l) => l === `writing ${whole + 1 + (k % 3)}`);
        await sleep(Math.round((1.3 * saveMs * (k - 1)) / (KILLS - 2)));
      }
      await killed(child);

      const back = await loadCheckpoint(dir); // never throws: the previous checkpoint is whole
      const allowed = writing > wrote ? [wrote, writing] : [wrote];
      expect(allowed, `kill ${k}: loaded step ${back.step}`).toContain(back.step);
      expectExactly(back, back.step, P);
      if (writing === wrote) outcomes.betweenSaves++;
      else if (back.step === writing) outcomes.renamedNotReported++;
      else if (tempFiles(dir).some((n) => n.includes(`.${child.pid}.`))) outcomes.midWrite++;
      else outcomes.beforeTempFile++; // encoding, or opening the temp file
      whole = back.step;
    }
    // The kills did land inside saves, and a good number with the temp file half written or
    // not yet renamed (typically 7–13 of 32 here; fsync's time varies, hence the margin).
    const report = JSON.stringify({ ...outcomes, saveMs });
    expect(KILLS - outcomes.betweenSaves, report).toBeGreaterThanOrEqual(16);
    expect(outcomes.midWrite, report).toBeGreaterThanOrEqual(4);
    // The temp files of killed writers never break a load, and the next save removes them all.
    await saveCheckpoint(dir, checkpointAt(whole + 1, P));
    expect(readdirSync(dir)).toEqual([CHECKPOINT_FILE]);
    expectExactly(await loadCheckpoint(dir), whole + 1, P);
  }, 120_000); // ~45 s on a busy 2-core machine

  it('the trainer, SIGKILLed at 5 moments after a checkpoint, resumes each time from at least the last one it announced', async () => {
    const dir = join(base, 'killed-trainer');
    const delaysMs = [0, 170, 45, 310, 90]; // after this process's first checkpoint
    // Six trainer starts: ~100 s on a busy 2-core machine, hence the 240 s limit.
    let resumeFrom = 0;
    for (const [round, delayMs] of delaysMs.entries()) {
      const args = round === 0 ? [...model, '--checkpoint-every', '1', '--out', dir] : ['--resume', dir];
      const child = startChild([bin, 'train', ...args, ...quietRun, '--steps', '1000']);
      const rl = createInterface({ input: child.stdout! });
      const start = JSON.parse(await lineMatching(rl, (l) => l.startsWith('{"event":"start"')));
      expect(start.step, `round ${round} starts where the last checkpoint is`).toBe(resumeFrom);
      const announced = async () => ((await (await fetch(`${start.url}/api/run`)).json()).lastCheckpoint?.step ?? -1) as number;
      while ((await announced()) <= resumeFrom) await sleep(10);
      await sleep(delayMs);
      const last = await announced();
      await killed(child);

      const back = await loadCheckpoint(dir);
      expect(back.step, `round ${round}: announced checkpoint ${last}`).toBeGreaterThanOrEqual(last);
      // The model file is written just after the checkpoint: the same step or the one before, whole.
      const modelStep = Number((await loadModelFile(join(dir, 'model.safetensors'))).metadata['gradpool.step']);
      expect([back.step - 1, back.step]).toContain(modelStep);
      resumeFrom = back.step;
    }
    const r = train(['--resume', dir, '--steps', String(resumeFrom + 3), '--port', '0', '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!)).toMatchObject({ event: 'done', steps: resumeFrom + 3 });
    // No temp file of the killed runs is left behind, and the control files are gone.
    expect(readdirSync(dir).sort()).toEqual([CHECKPOINT_FILE, 'history.jsonl', 'model.safetensors']);
  }, 240_000);
});

describe('a run directory that cannot be written', () => {
  // root ignores permissions, so the run goes as user nobody; otherwise as ourselves into a 0555 directory.
  // nobody runs a world-readable copy of the program: this checkout may sit under a 0700 directory.
  const asNobody = () => (isRoot ? { uid: 65534, program: readableCheckout(root, join(base, 'program')) } : {});
  const locked = join(base, 'locked');
  /** A finished 2-step run in `dir`, plus a file of the user's. */
  function finishedRun(dir: string): void {
    const r = train([...model, '--hidden', '16', '--steps', '2', '--out', dir, ...quietRun]);
    expect(r.status, r.stderr).toBe(0);
    writeFileSync(join(dir, 'notes.txt'), 'mine\n');
  }

  it('fails at start with exit code 2 naming the directory, and touches nothing in it', async () => {
    finishedRun(locked);
    if (!isRoot) chmodSync(locked, 0o555);
    const before = snapshot(locked);
    const unprivileged = asNobody();
    for (const [args, named] of [
      [[...model, '--out', locked], locked],
      [[...model, '--out', join(locked, 'new')], join(locked, 'new')],
      [['--resume', locked, '--steps', '10'], locked],
    ] as const) {
      const r = train([...args, ...quietRun], unprivileged);
      expect(r.lines, r.stderr).toHaveLength(1);
      expect(r.stderr).toContain(`gradpool: run directory ${named} is not writable`);
      expect(r.stderr).toMatch(/permission denied.*EACCES|EACCES: permission denied/);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe('');
    }
    expect(snapshot(locked)).toEqual(before);
    expect((await loadCheckpoint(locked)).step).toBe(2);
  });

  it.skipIf(mounting.skip)('a read-only file system: the same, for root too', async () => {
    mounting.require();
    const source = join(base, 'ro-source');
    const readOnly = join(base, 'ro');
    finishedRun(source);
    expect(mount(readOnly, '--bind', source)).toBe(true);
    expect(spawnSync('mount', ['-o', 'remount,bind,ro', readOnly]).status).toBe(0);
    const before = snapshot(readOnly);
    for (const args of [[...model, '--out', readOnly], ['--resume', readOnly, '--steps', '10']]) {
      const r = train([...args, ...quietRun]);
      expect(r.lines, r.stderr).toHaveLength(1);
      expect(r.stderr).toContain(`gradpool: run directory ${readOnly} is not writable`);
      expect(r.stderr).toMatch(/read-only file system.*EROFS|EROFS: read-only file system/);
      expect(r.status).toBe(2);
    }
    expect(snapshot(readOnly)).toEqual(before);
    expect((await loadCheckpoint(readOnly)).step).toBe(2);
  });
});

describe.skipIf(mounting.skip)('a disk that is full, or fills during a checkpoint', () => {
  const PAGE = 4096;
  const pages = (bytes: number) => Math.ceil(bytes / PAGE) * PAGE;
  /** Sizes of this model's checkpoint.pb and model.safetensors, from a 1-step run. */
  function sizes(): { checkpoint: number; model: number } {
    const dir = join(base, 'sizes');
    const r = train([...model, '--steps', '1', '--out', dir, ...quietRun]);
    expect(r.status, r.stderr).toBe(0);
    return { checkpoint: statSync(join(dir, CHECKPOINT_FILE)).size, model: statSync(join(dir, 'model.safetensors')).size };
  }
  /** A tmpfs of `bytes` (the token, control.json, its temp file and history.jsonl take a page each). */
  function tinyDisk(name: string, bytes: number): string {
    const dir = join(base, name);
    expect(mount(dir, '-t', 'tmpfs', '-o', `size=${bytes},mode=0755`, 'tmpfs')).toBe(true);
    return join(dir, 'run');
  }
  const controlFiles = 4 * PAGE;
  beforeEach(() => mounting.require());
  let size: { checkpoint: number; model: number } | undefined;

  it('the second checkpoint does not fit: exit 2 naming checkpoint.pb and ENOSPC; the first still loads and resumes', async () => {
    size ??= sizes();
    // Room for the first checkpoint and model file, not for the second checkpoint beside the first.
    const run = tinyDisk('full-ckpt', pages(size.checkpoint) + pages(size.model) + controlFiles + pages(size.checkpoint / 2));
    const r = train([...model, '--checkpoint-every', '1', '--steps', '20', '--out', run, ...quietRun]);
    expect(r.lines, r.stderr).toHaveLength(1);
    expect(r.stderr.trim()).toBe(`gradpool: cannot write checkpoint ${join(run, CHECKPOINT_FILE)}: no space left on device (ENOSPC); the previous checkpoint is intact`);
    expect(r.status).toBe(2);
    expect((await loadCheckpoint(run)).step).toBe(1);
    expect(tempFiles(run)).toEqual([]);
    const { bsize, bfree, blocks } = statfsSync(run);
    expect((blocks - bfree) * bsize, 'the failed temp file was removed').toBeLessThanOrEqual(pages(size.checkpoint) + pages(size.model) + PAGE);
    // The last checkpoint is whole: the run continues from it elsewhere.
    const resumed = train(['--resume', run, '--out', join(base, 'roomy'), '--steps', '3', ...quietRun]);
    expect(resumed.stderr).toBe('');
    expect(resumed.status).toBe(0);
    expect(JSON.parse(resumed.stdout.trim().split('\n').at(-1)!)).toMatchObject({ event: 'done', steps: 3 });
  });

  it('the first model file does not fit: exit 2 naming model.safetensors and ENOSPC; its checkpoint still loads', async () => {
    size ??= sizes();
    const run = tinyDisk('full-model', pages(size.checkpoint) + controlFiles + pages(size.model / 2));
    const r = train([...model, '--checkpoint-every', '1', '--steps', '20', '--out', run, ...quietRun]);
    expect(r.lines, r.stderr).toHaveLength(1);
    expect(r.stderr).toContain(`cannot write ${join(run, 'model.safetensors')}: no space left on device (ENOSPC)`);
    expect(r.status).toBe(2);
    expect((await loadCheckpoint(run)).step).toBe(1);
    expect(tempFiles(run)).toEqual([]);
    expect(existsSync(join(run, 'model.safetensors'))).toBe(false);
  });

  it('a disk already full at start: exit 2 naming the directory and ENOSPC, without hanging', () => {
    const run = tinyDisk('full-at-start', 4 * PAGE);
    writeFileSync(join(run, '..', 'filler'), Buffer.alloc(4 * PAGE));
    const r = train([...model, '--steps', '3', '--out', run, ...quietRun], { timeoutMs: 30_000 });
    expect(r.status, 'the run must end by itself').not.toBeNull();
    expect(r.lines, r.stderr).toHaveLength(1);
    expect(r.stderr).toContain(`gradpool: run directory ${run}`);
    expect(r.stderr).toContain('no space left on device (ENOSPC)');
    expect(r.status).toBe(2);
  });
});
