// A captioner's BLEU-4 and accuracy in the run registry: the first schema migration (1 → 2)
// on a file written with the version-1 DDL, read-only openers of a version-1 file (they read
// it, the captioning figures null, and never write it), a newer file refused, and the figures
// through the recorder, `gradpool runs show/list`, `gradpool runs import` and the runs
// dashboard's API.

import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { importRun, runsCommand } from '../../coordinator/registry/command.js';
import { registryView } from '../../coordinator/registry/dashboard-command.js';
import { validationsAfter } from '../../coordinator/registry/queries.js';
import { RunRecorder } from '../../coordinator/registry/recorder.js';
import { findRun, listRuns, openRegistry, SCHEMA_VERSION, stepHistory, validationHistory } from '../../coordinator/registry/store.js';
import { buildRunsServer } from '../../dashboard/runs-server.js';
import type { StepPoint, ValidationPoint } from '../../dashboard/view.js';

/** The registry's DDL at schema version 1 (gradpool before 2026-12-02), as it created files: frozen here on purpose. */
const SCHEMA_1_DDL = `CREATE TABLE runs (
     id TEXT PRIMARY KEY, name TEXT, kind TEXT NOT NULL, dir TEXT NOT NULL, config TEXT NOT NULL,
     backend TEXT, status TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL, heartbeat_at REAL NOT NULL,
     host TEXT NOT NULL, pid INTEGER NOT NULL, sweep_id TEXT, steps_target INTEGER, parameters INTEGER);
   CREATE TABLE steps (
     run_id TEXT NOT NULL, step INTEGER NOT NULL, time REAL NOT NULL, loss REAL, bits_per_token REAL,
     grad_norm REAL, grad_norm_clipped REAL, learning_rate REAL, tokens_per_second REAL, workers INTEGER,
     PRIMARY KEY (run_id, step)) WITHOUT ROWID;
   CREATE TABLE validations (
     run_id TEXT NOT NULL, step INTEGER NOT NULL, time REAL NOT NULL, loss REAL, bits_per_token REAL,
     PRIMARY KEY (run_id, step)) WITHOUT ROWID;
   CREATE TABLE samples (run_id TEXT NOT NULL, step INTEGER NOT NULL, time REAL NOT NULL, text TEXT NOT NULL);
   CREATE TABLE checkpoints (run_id TEXT NOT NULL, step INTEGER NOT NULL, time REAL NOT NULL, path TEXT NOT NULL, seconds REAL);
   CREATE TABLE failures (run_id TEXT NOT NULL, step INTEGER NOT NULL, shard INTEGER NOT NULL, time REAL NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL);
   CREATE INDEX samples_run ON samples (run_id, step);
   CREATE INDEX checkpoints_run ON checkpoints (run_id, step);
   CREATE INDEX failures_run ON failures (run_id, step);`;

const TABLES = ['runs', 'steps', 'validations', 'samples', 'checkpoints', 'failures'] as const;

const base = mkdtempSync(join(tmpdir(), 'gradpool-registry-caption-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const dir = join(base, `case${n++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
};

/**
 * A registry file as gradpool at schema 1 left it (WAL mode, closed, so the main file holds
 * everything): a finished captioner `cap1` (its figures were never stored) and a language model
 * `lm1`, each with 4 steps, 2 validations, a sample, a checkpoint and a failure.
 */
function schema1File(path: string): void {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(SCHEMA_1_DDL);
  db.pragma('user_version = 1');
  const run = db.prepare(`INSERT INTO runs (id, name, kind, dir, config, backend, status, started_at, ended_at, heartbeat_at, host, pid, steps_target, parameters)
    VALUES (?, ?, 'train', ?, ?, 'wasm', 'finished', 1000, 9000, 9000, 'old-host', 42, 4, 1234)`);
  run.run('cap1', 'old captioner', join(base, 'cap1'), JSON.stringify({ task: 'caption', dataset: 'shapes', cell: 'lstm', hidden: 64 }));
  run.run('lm1', 'old lm', join(base, 'lm1'), JSON.stringify({ task: 'lm', cell: 'gru', hidden: 32 }));
  for (const id of ['cap1', 'lm1']) {
    for (let s = 1; s <= 4; s++) {
      db.prepare('INSERT INTO steps VALUES (?, ?, ?, ?, ?, 1, 1, 0.01, 500, 2)').run(id, s, 1000 + s, 3 - s / 4, (3 - s / 4) / Math.LN2);
    }
    for (const s of [2, 4]) db.prepare('INSERT INTO validations VALUES (?, ?, ?, ?, ?)').run(id, s, 2000 + s, 3.2 - s / 4, 4.5);
    db.prepare('INSERT INTO samples VALUES (?, 4, 3000, ?)').run(id, `sample of ${id}`);
    db.prepare('INSERT INTO checkpoints VALUES (?, 4, 3001, ?, 0.1)').run(id, `/old/${id}/checkpoint.pb`);
    db.prepare("INSERT INTO failures VALUES (?, 3, 1, 2500, 'crash', 'worker exited')").run(id);
  }
  db.close();
}

/** Every row of every table, in a stable order (the columns of schema 1 only). */
function contents(path: string): Record<string, unknown[]> {
  const db = new Database(path, { readonly: true });
  try {
    const v1 = { validations: 'run_id, step, time, loss, bits_per_token' } as Record<string, string>;
    return Object.fromEntries(TABLES.map((t) => [t, db.prepare(`SELECT ${v1[t] ?? '*'} FROM ${t} ORDER BY 1, 2, 3`).all()]));
  } finally {
    db.close();
  }
}

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const userVersion = (path: string) => {
  const db = new Database(path, { readonly: true });
  try {
    return db.pragma('user_version', { simple: true }) as number;
  } finally {
    db.close();
  }
};

function stepPoint(step: number): StepPoint {
  return {
    step, time: 1_000 + step, loss: 3 - step / 10, bitsPerToken: 4, gradNorm: 1, gradNormClipped: 1, clipped: false, clipThreshold: 5,
    learningRate: 0.01, tokensPerSecond: 900, tokens: 64, workers: 2, skipped: false, stepMs: 10,
    phases: { compute: 1, decode: 1, reduce: 1, apply: 1, publish: 1 }, workerMs: {}, payloadBytes: [], tasks: [1], imbalance: 1, hiddenNorms: [],
  };
}

/** A captioner's validations: BLEU-4 rising (best at step 4), accuracy best at step 6; null accuracy on a directory dataset. */
const captionValidations = (shapes: boolean): ValidationPoint[] => [
  { step: 2, time: 2002, loss: 2.5, bitsPerToken: 3.6, bleu4: 0.25, accuracy: shapes ? 0.125 : null },
  { step: 4, time: 2004, loss: 2.0, bitsPerToken: 2.9, bleu4: 0.75, accuracy: shapes ? 0.5 : null },
  { step: 6, time: 2006, loss: 2.1, bitsPerToken: 3.0, bleu4: 0.625, accuracy: shapes ? 0.625 : null },
];

/** Records a captioner through the real recorder (registry null: the history file alone). */
function recordCaptioner(registry: string | null, dir: string, id: string, opts: { shapes?: boolean } = {}) {
  const warn = vi.fn();
  const shapes = opts.shapes ?? true;
  const config = { task: 'caption', dataset: shapes ? 'shapes' : 'dir', cell: 'lstm', layers: 1, hidden: 64 };
  const rec = new RunRecorder({ id, name: `captioner ${id}`, kind: 'train', dir, config, backend: 'wasm', stepsTarget: 6 }, registry, warn);
  const vals = captionValidations(shapes);
  for (let s = 1; s <= 6; s++) {
    rec.record({ type: 'step', data: stepPoint(s) });
    const v = vals.find((x) => x.step === s);
    if (v) rec.record({ type: 'validation', data: v });
  }
  rec.close('finished');
  expect(warn).not.toHaveBeenCalled();
}

async function output(registry: string, args: string[]): Promise<string> {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    expect(await runsCommand([...args, '--registry', registry])).toBe(0);
    return log.mock.calls.map((c) => String(c[0])).join('\n');
  } finally {
    log.mockRestore();
  }
}

describe('the first migration (schema 1 → 2)', () => {
  it('a schema-1 file opened for writing keeps every row and gains the validations\' bleu4 and accuracy, NULL', () => {
    const path = join(fresh(), 'old.db');
    schema1File(path);
    const before = contents(path);
    expect(before.validations).toHaveLength(4);
    openRegistry(path).close();
    expect(SCHEMA_VERSION).toBe(2);
    expect(userVersion(path)).toBe(2);
    expect(contents(path)).toEqual(before);
    const db = new Database(path, { readonly: true });
    const columns = (db.prepare("SELECT name, type FROM pragma_table_info('validations')").all() as { name: string; type: string }[]).map((c) => `${c.name} ${c.type}`);
    expect(columns).toEqual(['run_id TEXT', 'step INTEGER', 'time REAL', 'loss REAL', 'bits_per_token REAL', 'bleu4 REAL', 'accuracy REAL']);
    expect(db.prepare('SELECT DISTINCT bleu4, accuracy FROM validations').all()).toEqual([{ bleu4: null, accuracy: null }]);
    db.close();
  });

  it('a run recorded into a migrated file stores its figures beside the old runs', () => {
    const dir = fresh();
    const path = join(dir, 'old.db');
    schema1File(path);
    recordCaptioner(path, dir, 'cap2');
    const db = openRegistry(path, { readonly: true });
    expect(validationHistory(db, 'cap2').map((v) => [v.bleu4, v.accuracy])).toEqual([[0.25, 0.125], [0.75, 0.5], [0.625, 0.625]]);
    expect(Object.fromEntries(listRuns(db).map((r) => [r.id, r.bestBleu4]))).toEqual({ cap1: null, lm1: null, cap2: 0.75 });
    db.close();
  });
});

describe('a read-only opener of a schema-1 file', () => {
  it('reads it, the captioning figures null, and writes nothing to it', () => {
    const path = join(fresh(), 'old.db');
    schema1File(path);
    const hash = sha(path);
    const db = openRegistry(path, { readonly: true });
    try {
      const runs = listRuns(db);
      expect(runs.map((r) => [r.id, r.lastStep, r.bestBleu4])).toEqual([['cap1', 4, null], ['lm1', 4, null]]);
      expect(runs[0].bestValLoss).toBeCloseTo(3.2 - 1, 12);
      expect(findRun(db, 'cap')!.id).toBe('cap1');
      expect(stepHistory(db, 'cap1')).toHaveLength(4);
      expect(validationHistory(db, 'cap1')).toEqual([
        { step: 2, time: 2002, loss: 2.7, bitsPerToken: 4.5, bleu4: null, accuracy: null },
        { step: 4, time: 2004, loss: 2.2, bitsPerToken: 4.5, bleu4: null, accuracy: null },
      ]);
      // Thinned (the window-function query over the view) and whole.
      expect(validationsAfter(db, 'lm1', 0, 2).map((v) => [v.step, v.bleu4, v.accuracy])).toEqual([[2, null, null], [4, null, null]]);
      expect(validationsAfter(db, 'lm1', 2, 5).map((v) => v.step)).toEqual([4]);
    } finally {
      db.close();
    }
    expect(userVersion(path)).toBe(1);
    expect(sha(path)).toBe(hash);
  });

  it('gradpool runs (list, show --json, compare) reads it as it is', async () => {
    const path = join(fresh(), 'old.db');
    schema1File(path);
    const hash = sha(path);
    const list = await output(path, []);
    expect(list.split('\n')[0]).toMatch(/^id\s+name\s+status\s+model\s+steps\s+best val\s+BLEU-4\s+tokens\/s\s+started\s+duration$/);
    expect(list).toMatch(/^cap1\s+old captioner\s+finished\s+lstm 1×64\s+4\/4\s+2\.2000\s+-\s+500\s/m);
    const shown = JSON.parse(await output(path, ['show', 'cap1', '--json'])) as { figures: Record<string, unknown>; validations: unknown[] };
    expect(shown.figures).toMatchObject({ steps: 4, bestBleu4: null, bestAccuracy: null });
    expect(shown.validations).toEqual([expect.objectContaining({ step: 2, bleu4: null, accuracy: null }), expect.objectContaining({ step: 4, bleu4: null, accuracy: null })]);
    expect(await output(path, ['compare', 'cap1', 'lm1'])).toMatch(/^bestBleu4\s+-\s+-$/m);
    expect(userVersion(path)).toBe(1);
    expect(sha(path)).toBe(hash);
  });

  it('the runs dashboard serves it, and shows a captioner\'s figures once a run has migrated the file under it', async () => {
    const dir = fresh();
    const path = join(dir, 'old.db');
    schema1File(path);
    const db = openRegistry(path, { readonly: true });
    const app = buildRunsServer({ source: registryView(db), registry: path });
    try {
      const history = (await app.inject('/api/runs/cap1/history')).json() as { validations: { bleu4: unknown; accuracy: unknown }[] };
      expect(history.validations.map((v) => [v.bleu4, v.accuracy])).toEqual([[null, null], [null, null]]);
      expect(userVersion(path)).toBe(1);
      // A new run opens the file for writing: it migrates it, and records a captioner.
      recordCaptioner(path, dir, 'cap2');
      const runs = (await app.inject('/api/runs')).json() as { runs: { id: string; bestBleu4: number | null }[] };
      expect(Object.fromEntries(runs.runs.map((r) => [r.id, r.bestBleu4]))).toEqual({ cap1: null, lm1: null, cap2: 0.75 });
      const fresh2 = (await app.inject('/api/runs/cap2/history')).json() as { validations: { bleu4: number; accuracy: number }[] };
      expect(fresh2.validations.map((v) => [v.bleu4, v.accuracy])).toEqual([[0.25, 0.125], [0.75, 0.5], [0.625, 0.625]]);
    } finally {
      await app.close();
      db.close();
    }
  });
});

describe('a registry of another schema', () => {
  it('a newer one (schema 3) is refused, read-only or not, naming both versions', () => {
    const path = join(fresh(), 'newer.db');
    const db = new Database(path);
    db.exec(SCHEMA_1_DDL);
    db.pragma('user_version = 3');
    db.close();
    const message = `registry ${path}: its schema is version 3, newer than this gradpool's 2`;
    expect(() => openRegistry(path, { readonly: true })).toThrow(message);
    expect(() => openRegistry(path)).toThrow(message);
    expect(userVersion(path)).toBe(3);
  });

  it('an empty one (schema 0) is not read: only a writer creates the tables', () => {
    const path = join(fresh(), 'empty.db');
    new Database(path).close();
    expect(() => openRegistry(path, { readonly: true })).toThrow(`registry ${path}: its schema is version 0; open it once for writing to migrate it to 2`);
  });
});

describe('a captioner\'s BLEU-4 and accuracy', () => {
  it('recorder → registry → gradpool runs show --json, list and compare', async () => {
    const dir = fresh();
    const registry = join(dir, 'r.db');
    recordCaptioner(registry, dir, 'capA');
    recordCaptioner(registry, dir, 'capB', { shapes: false });
    const shown = JSON.parse(await output(registry, ['show', 'capA', '--json'])) as { figures: Record<string, unknown>; validations: Record<string, unknown>[] };
    expect(shown.validations.map((v) => [v.step, v.bleu4, v.accuracy])).toEqual([[2, 0.25, 0.125], [4, 0.75, 0.5], [6, 0.625, 0.625]]);
    expect(shown.figures).toMatchObject({ bestValLoss: 2, bestValStep: 4, bestBleu4: 0.75, bestBleu4Step: 4, bestAccuracy: 0.625, bestAccuracyStep: 6 });
    const text = await output(registry, ['show', 'capA']);
    expect(text).toMatch(/^bestBleu4\s+0\.75$/m);
    expect(text).toMatch(/^bestAccuracy\s+0\.625$/m);
    const dirData = JSON.parse(await output(registry, ['show', 'capB', '--json'])) as { figures: Record<string, unknown> };
    expect(dirData.figures).toMatchObject({ bestBleu4: 0.75, bestAccuracy: null, bestAccuracyStep: null });
    const list = await output(registry, []);
    expect(list).toMatch(/^capA\s+captioner capA\s+finished\s+lstm 1×64\s+6\/6\s+2\.0000\s+0\.7500\s/m);
    expect(await output(registry, ['compare', 'capA', 'capB'])).toMatch(/^bestAccuracy\s+0\.625\s+-$/m);
  });

  it('a language model\'s show and list carry no captioning figures', async () => {
    const dir = fresh();
    const registry = join(dir, 'r.db');
    const rec = new RunRecorder({ id: 'lm', name: null, kind: 'train', dir, config: { task: 'lm', cell: 'gru', hidden: 8 }, backend: 'wasm' }, registry, () => {});
    rec.record({ type: 'step', data: stepPoint(1) });
    rec.record({ type: 'validation', data: { step: 1, time: 5, loss: 2, bitsPerToken: 3 } });
    rec.close('finished');
    const shown = JSON.parse(await output(registry, ['show', 'lm', '--json'])) as { figures: Record<string, unknown>; validations: Record<string, unknown>[]; bestBleu4: unknown };
    expect(Object.keys(shown.figures)).not.toContain('bestBleu4');
    expect(shown.validations).toEqual([{ step: 1, time: 5, loss: 2, bitsPerToken: 3, bleu4: null, accuracy: null }]);
    expect(shown.bestBleu4).toBeNull();
    expect((await output(registry, [])).split('\n')[0]).not.toContain('BLEU-4');
  });

  it('gradpool runs import carries them from a captioner\'s history.jsonl', () => {
    const runDir = fresh();
    recordCaptioner(null, runDir, 'imp');
    const lines = readFileSync(join(runDir, 'history.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; data: { bleu4?: number } });
    expect(lines.filter((l) => l.type === 'validation').map((l) => l.data.bleu4)).toEqual([0.25, 0.75, 0.625]);
    const target = join(fresh(), 'new.db');
    importRun(target, runDir);
    const db = openRegistry(target, { readonly: true });
    expect(validationHistory(db, 'imp').map((v) => [v.step, v.bleu4, v.accuracy])).toEqual([[2, 0.25, 0.125], [4, 0.75, 0.5], [6, 0.625, 0.625]]);
    expect(findRun(db, 'imp')!.bestBleu4).toBe(0.75);
    db.close();
  });

  it('the runs dashboard\'s API returns them: runs list, a run\'s history (whole and since a step), compare', async () => {
    const dir = fresh();
    const registry = join(dir, 'r.db');
    recordCaptioner(registry, dir, 'capA');
    recordCaptioner(registry, dir, 'capB', { shapes: false });
    const db = openRegistry(registry, { readonly: true });
    const app = buildRunsServer({ source: registryView(db), registry });
    try {
      const runs = (await app.inject('/api/runs')).json() as { runs: { id: string; bestBleu4: number }[] };
      expect(runs.runs.map((r) => [r.id, r.bestBleu4]).sort()).toEqual([['capA', 0.75], ['capB', 0.75]]);
      const h = (await app.inject('/api/runs/capA/history')).json() as { validations: { step: number; bleu4: number; accuracy: number }[] };
      expect(h.validations.map((v) => [v.step, v.bleu4, v.accuracy])).toEqual([[2, 0.25, 0.125], [4, 0.75, 0.5], [6, 0.625, 0.625]]);
      const since = (await app.inject('/api/runs/capB/history?after=6&validationsAfter=2')).json() as { validations: { step: number; bleu4: number; accuracy: null }[] };
      expect(since.validations.map((v) => [v.step, v.bleu4, v.accuracy])).toEqual([[4, 0.75, null], [6, 0.625, null]]);
      const cmp = (await app.inject('/api/compare?runs=capA,capB')).json() as { run: { id: string }; validations: { bleu4: number }[] }[];
      expect(cmp.map((c) => [c.run.id, c.validations.map((v) => v.bleu4)])).toEqual([['capA', [0.25, 0.75, 0.625]], ['capB', [0.25, 0.75, 0.625]]]);
    } finally {
      await app.close();
      db.close();
    }
  });
});
