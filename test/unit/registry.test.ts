// The run registry (coordinator/registry/): schema and migrations, the batched recorder
// with its history file, killed runs, resumed runs, concurrent writers, locked and
// corrupt files (training goes on), import from a run directory, and `gradpool runs`.

import Database from 'better-sqlite3';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { StepPoint } from '../../dashboard/view.js';
import { importRun, runsCommand } from '../../coordinator/registry/command.js';
import { HISTORY_FILE, RunRecorder } from '../../coordinator/registry/recorder.js';
import { findRun, HEARTBEAT_STALE_MS, listRuns, openRegistry, RegistryError, registryError, retryBusy, SCHEMA_VERSION, stepHistory, validationHistory } from '../../coordinator/registry/store.js';

const base = mkdtempSync(join(tmpdir(), 'gradpool-registry-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const dir = join(base, `case${n++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
};

function stepPoint(step: number, loss: number): StepPoint {
  return {
    step, time: 1_000 + step, loss, bitsPerToken: loss / Math.LN2, gradNorm: 1, gradNormClipped: 1, clipped: false, clipThreshold: 5,
    learningRate: 0.01, tokensPerSecond: 1000 + step, tokens: 64, workers: 2, skipped: false, stepMs: 10,
    phases: { compute: 1, decode: 1, reduce: 1, apply: 1, publish: 1 }, workerMs: {}, payloadBytes: [], tasks: [1], imbalance: 1, hiddenNorms: [],
  };
}

function recordRun(registry: string | null, dir: string, id: string, steps: number, opts: { from?: number; close?: 'finished' | 'stopped' | 'failed' | null; sweepId?: string } = {}) {
  const warn = vi.fn();
  const rec = new RunRecorder(
    { id, name: `run ${id}`, kind: 'train', dir, config: { cell: 'lstm', hidden: 32, lr: id === 'b' ? 0.1 : 0.01 }, backend: 'wasm', stepsTarget: 10, resumedFrom: opts.from ?? null, sweepId: opts.sweepId },
    registry,
    warn,
  );
  for (let s = (opts.from ?? 0) + 1; s <= steps; s++) {
    rec.record({ type: 'step', data: stepPoint(s, 3 - s / 10) });
    if (s % 2 === 0) rec.record({ type: 'validation', data: { step: s, time: 2000 + s, loss: 3.5 - s / 10, bitsPerToken: 5 } });
  }
  rec.record({ type: 'sample', data: { step: steps, time: 3000, text: 'hello' } });
  rec.record({ type: 'checkpoint', data: { step: steps, path: join(dir, 'checkpoint.pb'), seconds: 0.1 } });
  rec.record({ type: 'failure', data: { step: 1, shard: 0, time: 1, reason: 'crash', message: 'worker exited' } });
  if (opts.close === null) rec.flush();
  else rec.close(opts.close ?? 'finished');
  return warn;
}

describe('the registry file', () => {
  it('is created in WAL mode with the current schema version, and reopened as is', () => {
    const path = join(fresh(), 'r.db');
    openRegistry(path).close();
    const db = new Database(path);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    db.close();
    openRegistry(path).close();
  });

  it('refuses a newer schema and a corrupt file with a message naming the file', () => {
    const newer = join(fresh(), 'newer.db');
    const db = new Database(newer);
    db.pragma('user_version = 99');
    db.close();
    expect(() => openRegistry(newer)).toThrow(new RegistryError(`registry ${newer}: its schema is version 99, newer than this gradpool's ${SCHEMA_VERSION}`));
    const corrupt = join(fresh(), 'corrupt.db');
    writeFileSync(corrupt, Buffer.alloc(8192, 7));
    expect(() => openRegistry(corrupt)).toThrow(new RegExp(`^registry ${corrupt}: .*(not a database|malformed)`));
  });
});

describe('the recorder', () => {
  it('records a run and its history, in the registry and in the run directory', () => {
    const dir = fresh();
    const registry = join(dir, 'r.db');
    const warn = recordRun(registry, dir, 'a', 6);
    expect(warn).not.toHaveBeenCalled();
    const db = openRegistry(registry, { readonly: true });
    const [run] = listRuns(db);
    expect(run).toMatchObject({ id: 'a', name: 'run a', status: 'finished', dir, lastStep: 6, stepsTarget: 10, backend: 'wasm' });
    expect(run.bestValLoss).toBeCloseTo(3.5 - 0.6, 12);
    expect(stepHistory(db, 'a').map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(validationHistory(db, 'a').map((v) => v.step)).toEqual([2, 4, 6]);
    expect(db.prepare('SELECT count(*) AS n FROM samples').get()).toEqual({ n: 1 });
    expect(db.prepare('SELECT reason FROM failures').all()).toEqual([{ reason: 'crash' }]);
    db.close();
    const history = readFileSync(join(dir, HISTORY_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    expect(history[0].type).toBe('run');
    expect(history[history.length - 1].type).toBe('end');
    expect(history.filter((h) => h.type === 'step')).toHaveLength(6);
  });

  it('a run whose heartbeat is stale while it says "running" is killed, with its history up to its last write', () => {
    const dir = fresh();
    const registry = join(dir, 'r.db');
    recordRun(registry, dir, 'k', 4, { close: null });
    const db = openRegistry(registry, { readonly: true });
    const now = Date.now();
    expect(findRun(db, 'k', now)!.status).toBe('running');
    expect(findRun(db, 'k', now + HEARTBEAT_STALE_MS + 1_000)!.status).toBe('killed');
    expect(stepHistory(db, 'k')).toHaveLength(4);
    db.close();
  });

  it('a resumed run continues its own history; what the cut-short run logged after the checkpoint goes', () => {
    const dir = fresh();
    const registry = join(dir, 'r.db');
    recordRun(registry, dir, 'r', 8, { close: null }); // killed at step 8, checkpoint at 5
    recordRun(registry, dir, 'r', 7, { from: 5 });
    const db = openRegistry(registry, { readonly: true });
    expect(stepHistory(db, 'r').map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(validationHistory(db, 'r').map((v) => v.step)).toEqual([2, 4, 6]);
    expect(listRuns(db)).toHaveLength(1);
    expect(findRun(db, 'r')!.status).toBe('finished');
    db.close();
  });

  it('two runs write one registry at once', () => {
    const dir = fresh();
    const registry = join(dir, 'r.db');
    const warn = vi.fn();
    const recs = ['x', 'y'].map((id) => new RunRecorder({ id, name: null, kind: 'train', dir, config: {}, backend: 'wasm' }, registry, warn));
    for (let s = 1; s <= 20; s++) for (const r of recs) r.record({ type: 'step', data: stepPoint(s, 1) });
    recs[0].flush();
    recs[1].flush();
    recs.forEach((r) => r.close('finished'));
    const db = openRegistry(registry, { readonly: true });
    expect(stepHistory(db, 'x')).toHaveLength(20);
    expect(stepHistory(db, 'y')).toHaveLength(20);
    db.close();
    expect(warn).not.toHaveBeenCalled();
  });

  it('a corrupt registry: the run goes on, says so once, and the history file has everything', () => {
    const dir = fresh();
    const registry = join(dir, 'r.db');
    writeFileSync(registry, Buffer.alloc(8192, 3));
    const warn = recordRun(registry, dir, 'c', 5);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatch(new RegExp(`the run registry ${registry} cannot be written .*training goes on.*gradpool runs import`));
    const lines = readFileSync(join(dir, HISTORY_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    expect(lines.filter((l) => l.type === 'step')).toHaveLength(5);
    expect(lines[lines.length - 1]).toMatchObject({ type: 'end', data: { status: 'finished' } });
  });

  it('a locked registry neither stops nor blocks the run: batches wait and are written once the lock goes', () => {
    const dir = fresh();
    const registry = join(dir, 'r.db');
    openRegistry(registry).close();
    const holder = new Database(registry);
    const warn = vi.fn();
    const rec = new RunRecorder({ id: 'l', name: null, kind: 'train', dir, config: {}, backend: 'wasm' }, registry, warn);
    holder.exec('BEGIN EXCLUSIVE');
    rec.record({ type: 'step', data: stepPoint(1, 1) });
    const started = performance.now();
    rec.flush();
    expect(performance.now() - started).toBeLessThan(1_000);
    holder.exec('COMMIT');
    holder.close();
    rec.record({ type: 'step', data: stepPoint(2, 1) });
    rec.close('stopped');
    const db = openRegistry(registry, { readonly: true });
    expect(stepHistory(db, 'l').map((s) => s.step)).toEqual([1, 2]);
    expect(findRun(db, 'l')!.status).toBe('stopped');
    db.close();
    expect(warn).not.toHaveBeenCalled();
  });

  it('a registry locked when the run starts: the run registers once the lock goes, with every line, and the history file has each line once', () => {
    const dir = fresh();
    const registry = join(dir, 'r.db');
    openRegistry(registry).close();
    const holder = new Database(registry);
    holder.exec('BEGIN EXCLUSIVE');
    const warn = vi.fn();
    const rec = new RunRecorder({ id: 'late', name: null, kind: 'train', dir, config: {}, backend: 'wasm' }, registry, warn);
    rec.record({ type: 'step', data: stepPoint(1, 1) });
    rec.record({ type: 'sample', data: { step: 1, time: 5, text: 'hello' } });
    rec.flush();
    rec.record({ type: 'step', data: stepPoint(2, 1) });
    rec.flush();
    holder.exec('COMMIT');
    holder.close();
    rec.record({ type: 'step', data: stepPoint(3, 1) });
    rec.close('finished');
    const db = openRegistry(registry, { readonly: true });
    expect(stepHistory(db, 'late').map((x) => x.step)).toEqual([1, 2, 3]);
    expect(findRun(db, 'late')!.status).toBe('finished');
    expect((db.prepare('SELECT count(*) AS n FROM samples').get() as { n: number }).n).toBe(1);
    db.close();
    const lines = readFileSync(join(dir, HISTORY_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    expect(lines.map((l) => l.type)).toEqual(['run', 'step', 'sample', 'step', 'step', 'end']);
    expect(warn).not.toHaveBeenCalled();
  });

  it('a transient lock (SQLITE_BUSY and its extended codes, SQLITE_LOCKED, SQLITE_PROTOCOL) is tried again until the timeout; other errors are not', () => {
    for (const code of ['SQLITE_BUSY', 'SQLITE_BUSY_RECOVERY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_LOCKED', 'SQLITE_PROTOCOL']) {
      expect(registryError('r.db', 'x', { code }).code, code).toBe('SQLITE_BUSY');
    }
    for (const code of ['SQLITE_CORRUPT', 'SQLITE_NOTADB', undefined]) expect(registryError('r.db', 'x', { code }).code, String(code)).toBeUndefined();
    let calls = 0;
    const busyTwice = () => {
      if (++calls <= 2) throw registryError('r.db', 'database is locked', { code: 'SQLITE_BUSY_RECOVERY' });
      return 'open';
    };
    expect(retryBusy(busyTwice, 1_000)).toBe('open');
    expect(calls).toBe(3);
    calls = 0;
    const corrupt = () => {
      calls++;
      throw registryError('r.db', 'file is not a database', { code: 'SQLITE_NOTADB' });
    };
    expect(() => retryBusy(corrupt, 1_000)).toThrow(/not a database/);
    expect(calls).toBe(1);
    calls = 0;
    const started = Date.now();
    const alwaysBusy = () => {
      calls++;
      throw registryError('r.db', 'database is locked', { code: 'SQLITE_BUSY' });
    };
    const left: number[] = [];
    expect(() => retryBusy((ms) => (left.push(ms), alwaysBusy()), 100)).toThrow(/locked/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(calls).toBeGreaterThan(2);
    // Each try is given only the time left (its own lock wait), so the tries together stay within the timeout.
    expect(left[0]).toBeLessThanOrEqual(100);
    for (let i = 1; i < left.length; i++) expect(left[i]).toBeLessThan(left[i - 1]);
  });

  it('a busy registry keeps SQLite\'s code on the RegistryError (so it is retried, not dropped)', () => {
    const dir = fresh();
    const registry = join(dir, 'r.db');
    const holder = new Database(registry);
    holder.pragma('journal_mode = WAL');
    holder.exec('BEGIN EXCLUSIVE');
    try {
      openRegistry(registry, { timeoutMs: 50 });
      expect.unreachable('the registry was locked');
    } catch (e) {
      expect(e).toBeInstanceOf(RegistryError);
      expect((e as RegistryError).code).toBe('SQLITE_BUSY');
    } finally {
      holder.exec('COMMIT');
      holder.close();
    }
  });
});

describe('gradpool runs', () => {
  const dir = fresh();
  const registry = join(dir, 'r.db');
  recordRun(registry, join(dir), 'aaaa1', 6);
  recordRun(registry, join(dir), 'b', 4, { close: 'stopped' });

  const output = async (args: string[]) => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      expect(await runsCommand([...args, '--registry', registry])).toBe(0);
      return log.mock.calls.map((c) => String(c[0])).join('\n');
    } finally {
      log.mockRestore();
    }
  };

  it('lists runs, as a table and as JSON with id, name, status and dir', async () => {
    const runs = JSON.parse(await output(['--json'])) as { id: string; name: string; status: string; dir: string }[];
    expect(runs.map((r) => [r.id, r.name, r.status, r.dir]).sort()).toEqual([['aaaa1', 'run aaaa1', 'finished', dir], ['b', 'run b', 'stopped', dir]]);
    const text = await output([]);
    expect(text.split('\n')[0]).toMatch(/^id\s+name\s+status\s+model\s+steps\s+best val\s+tokens\/s\s+started\s+duration$/);
    expect(text).toContain('lstm 1×32');
  });

  it('shows a run by a prefix of its id, and compares runs by their differences', async () => {
    const shown = JSON.parse(await output(['show', 'aaa', '--json'])) as { id: string; figures: { steps: number; bestValLoss: number } };
    expect(shown.id).toBe('aaaa1');
    expect(shown.figures.steps).toBe(6);
    const compared = JSON.parse(await output(['compare', 'aaaa1', 'b', '--json'])) as { differences: Record<string, unknown[]> };
    expect(compared.differences).toEqual({ lr: [0.01, 0.1] });
    expect(await output(['compare', 'aaaa1', 'b'])).toMatch(/^lr\s+0\.01\s+0\.1$/m);
  });

  it('names what is wrong: unknown run, unknown subcommand, missing registry', async () => {
    await expect(runsCommand(['show', 'zzz', '--registry', registry])).rejects.toThrow(`no run "zzz" in ${registry}`);
    await expect(runsCommand(['frobnicate', '--registry', registry])).rejects.toThrow('unknown runs command "frobnicate"; allowed: list, show, compare, rm, import');
    await expect(runsCommand(['--registry', join(dir, 'none.db')])).rejects.toThrow(`registry ${join(dir, 'none.db')} does not exist`);
    await expect(runsCommand(['compare', 'b', '--registry', registry])).rejects.toThrow('gradpool runs compare needs two or more run ids');
  });

  it('import rebuilds a run from its directory; rm removes it (and its directory with --files)', async () => {
    const runDir = fresh();
    recordRun(null, runDir, 'imp', 5, { close: null });
    const target = join(fresh(), 'new.db');
    expect(importRun(target, runDir)).toEqual({ id: 'imp', lines: expect.any(Number) });
    const db = openRegistry(target, { readonly: true });
    expect(stepHistory(db, 'imp')).toHaveLength(5);
    // No end line: the run was cut short, and shows as killed once its last event is old.
    expect(findRun(db, 'imp')!.status).toBe('killed');
    db.close();
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    expect(await runsCommand(['rm', 'imp', '--files', '--registry', target])).toBe(0);
    log.mockRestore();
    expect(() => readFileSync(join(runDir, HISTORY_FILE))).toThrow(/ENOENT/);
  });

  it('a sweep trial keeps its sweep id: in the registry, in its history file, and through import', () => {
    const registry = join(fresh(), 'r.db');
    const runDir = fresh();
    recordRun(registry, runDir, 'trial', 4, { sweepId: '0a1b2c3d' });
    const first = JSON.parse(readFileSync(join(runDir, HISTORY_FILE), 'utf8').split('\n')[0]) as { type: string; data: { sweepId?: string } };
    expect(first).toMatchObject({ type: 'run', data: { sweepId: '0a1b2c3d' } });
    const db = openRegistry(registry, { readonly: true });
    expect(findRun(db, 'trial')!.sweepId).toBe('0a1b2c3d');
    db.close();
    const target = join(fresh(), 'new.db');
    importRun(target, runDir);
    const imported = openRegistry(target, { readonly: true });
    expect(findRun(imported, 'trial')).toMatchObject({ sweepId: '0a1b2c3d', status: 'finished' });
    imported.close();
  });
});
