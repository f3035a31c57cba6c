// The run registry: every run and its history in one SQLite file (runs/gradpool.db by
// default), in WAL mode so several runs write and a dashboard reads at once. The schema
// has a version (PRAGMA user_version) and migrations, applied by writers; a read-only
// opener reads an older file as if it were current (never writing to it). Readers never
// see a half-written batch (each batch is one transaction).

import Database from 'better-sqlite3';
import { hostname } from 'node:os';

/** A run whose heartbeat is older than this while it says "running" was killed. */
export const HEARTBEAT_STALE_MS = 30_000;

export const RUN_STATUSES = ['running', 'finished', 'stopped', 'failed', 'killed'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** Each entry takes the schema from version i to i + 1. */
const MIGRATIONS: string[] = [
  `CREATE TABLE runs (
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
   CREATE INDEX failures_run ON failures (run_id, step);`,
  // 1 → 2: a captioner's validations carry its corpus BLEU-4 and its accuracy (NULL for a language model).
  `ALTER TABLE validations ADD COLUMN bleu4 REAL;
   ALTER TABLE validations ADD COLUMN accuracy REAL;`,
];
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * How a read-only opener reads a file of an older schema without migrating it (it must not
 * write): per older version, temporary views — in the connection's own temp schema, never in
 * the file — that shadow the tables lacking columns, with those columns NULL. Every query
 * then reads the current schema's names unchanged. A version missing here is refused.
 */
const READ_OLDER: Record<number, Record<string, string>> = {
  1: { validations: 'SELECT run_id, step, time, loss, bits_per_token, NULL AS bleu4, NULL AS accuracy FROM main.validations' },
};

/** Read-only connections reading an older file through READ_OLDER's views → the file's version then. */
const readingOlder = new WeakMap<Database.Database, number>();

function createReadViews(db: Database.Database, version: number): void {
  for (const [table, select] of Object.entries(READ_OLDER[version])) db.exec(`CREATE TEMP VIEW ${table} AS ${select}`);
  readingOlder.set(db, version);
}

/**
 * A long-lived reader (`gradpool dashboard`) of an older file: once a run has migrated the
 * file under it, its views go and the real columns show. Cheap (one header read); a no-op
 * for a connection reading the current schema.
 */
function followSchema(db: Database.Database): void {
  const opened = readingOlder.get(db);
  if (opened === undefined) return;
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version === opened) return;
  for (const table of Object.keys(READ_OLDER[opened])) db.exec(`DROP VIEW IF EXISTS temp.${table}`);
  readingOlder.delete(db);
  if (version < SCHEMA_VERSION && READ_OLDER[version]) createReadViews(db, version);
}

/** A registry file that cannot be used (corrupt, newer schema, unwritable): the run goes on without it. */
export class RegistryError extends Error {
  override name = 'RegistryError';
  readonly kind = 'input' as const;
  /** 'SQLITE_BUSY' when another process held the lock past the timeout: worth trying again later. */
  code?: string;
}

/** A RegistryError for `path`, keeping SQLite's busy code (a locked file is not a broken one). */
export function registryError(path: string, message: string, cause: unknown): RegistryError {
  const err = new RegistryError(`registry ${path}: ${message}`);
  if (transient(cause)) err.code = 'SQLITE_BUSY';
  return err;
}

/**
 * A lock another connection held (SQLITE_BUSY and its extended codes, SQLITE_LOCKED) or a
 * WAL index another process was rebuilding or resetting at that instant (SQLITE_PROTOCOL:
 * SQLite gives up retrying its own lock dance): gone a moment later. Several processes
 * opening one new registry at once (a sweep's runs) meet these while one of them creates it.
 */
function transient(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^SQLITE_(BUSY|LOCKED|PROTOCOL)/.test(code);
}

const pause = new Int32Array(new SharedArrayBuffer(4));

export interface RunRow {
  id: string;
  name: string | null;
  kind: string;
  dir: string;
  config: Record<string, unknown>;
  backend: string | null;
  status: RunStatus;
  startedAt: number;
  endedAt: number | null;
  heartbeatAt: number;
  host: string;
  pid: number;
  sweepId: string | null;
  stepsTarget: number | null;
  parameters: number | null;
  /** Summaries over the history. */
  lastStep: number | null;
  bestValLoss: number | null;
  /** A captioner's best validation BLEU-4 (null for a language model, and for a file of schema 1). */
  bestBleu4: number | null;
  lastLoss: number | null;
  tokensPerSecond: number | null;
}

/** One validation; bleu4 and accuracy are a captioner's (accuracy on shapes only), null otherwise. */
export interface ValidationRow {
  step: number;
  time: number;
  loss: number;
  bitsPerToken: number;
  bleu4: number | null;
  accuracy: number | null;
}

/** The validations table's columns under ValidationRow's names. */
export const VALIDATION_COLUMNS = 'step, time, loss, bits_per_token AS bitsPerToken, bleu4, accuracy';

export interface StepRow {
  step: number;
  time: number;
  loss: number | null;
  bitsPerToken: number | null;
  gradNorm: number | null;
  gradNormClipped: number | null;
  learningRate: number | null;
  tokensPerSecond: number | null;
  workers: number | null;
}

/** What a run says of itself when it starts (the rest of its row comes from its history). */
export interface NewRun extends Pick<RunRow, 'id' | 'name' | 'kind' | 'dir' | 'config' | 'backend'>, Partial<Pick<RunRow, 'sweepId' | 'stepsTarget' | 'parameters' | 'startedAt'>> {
  /** A resumed run continues from this step: history recorded after it (by the run that was cut short) is dropped. */
  resumedFrom?: number | null;
}

/**
 * Opens (creating or migrating; read-only: reading an older schema as is) a registry; RegistryError says why it cannot.
 * A transient lock (see `transient`) is tried again, 10 ms apart, until the timeout has passed.
 */
export function openRegistry(path: string, opts: { readonly?: boolean; timeoutMs?: number } = {}): Database.Database {
  return retryBusy((leftMs) => openOnce(path, opts.readonly ?? false, leftMs), opts.timeoutMs ?? 2_000);
}

/**
 * fn(ms left), tried again 10 ms apart while it throws a busy RegistryError, until `timeoutMs`
 * has passed (then its last error). Each try gets the time left as its own lock wait, so
 * all of them together stay within `timeoutMs`.
 */
export function retryBusy<T>(fn: (leftMs: number) => T, timeoutMs: number): T {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return fn(Math.max(0, deadline - Date.now()));
    } catch (e) {
      if (!(e instanceof RegistryError && e.code === 'SQLITE_BUSY') || Date.now() >= deadline) throw e;
      Atomics.wait(pause, 0, 0, 10);
    }
  }
}

function openOnce(path: string, readonly: boolean, timeoutMs: number): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(path, { readonly, fileMustExist: readonly, timeout: timeoutMs });
  } catch (e) {
    throw registryError(path, `cannot open it (${(e as Error).message})`, e);
  }
  try {
    if (!readonly) {
      db.pragma('journal_mode = WAL');
      // No fsync per transaction (only at WAL checkpoints): a flush must not stall the
      // training loop's thread, and the run directory's history file is the source of truth.
      db.pragma('synchronous = NORMAL');
    }
    const newer = (version: number) => new Error(`its schema is version ${version}, newer than this gradpool's ${SCHEMA_VERSION}`);
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) throw newer(version);
    if (version < SCHEMA_VERSION && readonly) {
      // A reader never migrates: it reads an older file it knows through views, the file untouched.
      if (!READ_OLDER[version]) throw new Error(`its schema is version ${version}; open it once for writing to migrate it to ${SCHEMA_VERSION}`);
      createReadViews(db, version);
    } else if (version < SCHEMA_VERSION) {
      // Under the write lock, the version read again: two runs creating one registry at once
      // must not both migrate it (the second would find the tables there).
      db.transaction(() => {
        const current = db.pragma('user_version', { simple: true }) as number;
        if (current > SCHEMA_VERSION) throw newer(current);
        for (let v = current; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]);
        if (current < SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
      }).immediate();
    }
    // Reading the schema proves the file is a database (a corrupt one fails here).
    db.prepare('SELECT count(*) FROM runs').get();
  } catch (e) {
    db.close();
    if (e instanceof RegistryError) throw e;
    throw registryError(path, (e as Error).message, e);
  }
  return db;
}

/** Starts (or, for a resumed run, reopens) a run's entry. */
export function upsertRun(db: Database.Database, run: NewRun, now = Date.now()): void {
  db.transaction(() => {
    if (run.resumedFrom !== undefined && run.resumedFrom !== null) {
      for (const table of ['steps', 'validations', 'samples', 'checkpoints', 'failures']) {
        db.prepare(`DELETE FROM ${table} WHERE run_id = ? AND step > ?`).run(run.id, run.resumedFrom);
      }
    }
    db.prepare(
      `INSERT INTO runs (id, name, kind, dir, config, backend, status, started_at, heartbeat_at, host, pid, sweep_id, steps_target, parameters)
       VALUES (@id, @name, @kind, @dir, @config, @backend, 'running', @startedAt, @now, @host, @pid, @sweepId, @stepsTarget, @parameters)
       ON CONFLICT (id) DO UPDATE SET status = 'running', ended_at = NULL, heartbeat_at = @now, host = @host, pid = @pid,
         config = @config, steps_target = @stepsTarget, dir = @dir, name = coalesce(@name, name),
         sweep_id = coalesce(@sweepId, sweep_id)`,
    ).run({
      id: run.id, name: run.name, kind: run.kind, dir: run.dir, backend: run.backend,
      config: JSON.stringify(run.config), startedAt: run.startedAt ?? now, now, host: hostname(), pid: process.pid,
      sweepId: run.sweepId ?? null, stepsTarget: run.stepsTarget ?? null, parameters: run.parameters ?? null,
    });
  })();
}

const SUMMARY = `
  (SELECT max(step) FROM steps s WHERE s.run_id = r.id) AS last_step,
  (SELECT min(loss) FROM validations v WHERE v.run_id = r.id) AS best_val_loss,
  (SELECT max(bleu4) FROM validations v WHERE v.run_id = r.id) AS best_bleu4,
  (SELECT loss FROM steps s WHERE s.run_id = r.id ORDER BY step DESC LIMIT 1) AS last_loss,
  (SELECT tokens_per_second FROM steps s WHERE s.run_id = r.id ORDER BY step DESC LIMIT 1) AS tokens_per_second`;

function runOf(row: Record<string, unknown>, now: number): RunRow {
  const stored = row.status as RunStatus;
  // A run that stopped sending heartbeats without saying how it ended was killed.
  const status: RunStatus = stored === 'running' && now - (row.heartbeat_at as number) > HEARTBEAT_STALE_MS ? 'killed' : stored;
  return {
    id: row.id as string, name: row.name as string | null, kind: row.kind as string, dir: row.dir as string,
    config: JSON.parse(row.config as string) as Record<string, unknown>, backend: row.backend as string | null, status,
    startedAt: row.started_at as number, endedAt: row.ended_at as number | null, heartbeatAt: row.heartbeat_at as number,
    host: row.host as string, pid: row.pid as number, sweepId: row.sweep_id as string | null,
    stepsTarget: row.steps_target as number | null, parameters: row.parameters as number | null,
    lastStep: row.last_step as number | null, bestValLoss: row.best_val_loss as number | null, bestBleu4: row.best_bleu4 as number | null,
    lastLoss: row.last_loss as number | null, tokensPerSecond: row.tokens_per_second as number | null,
  };
}

/** Every run, newest first. */
export function listRuns(db: Database.Database, now = Date.now()): RunRow[] {
  followSchema(db);
  return db.prepare(`SELECT r.*, ${SUMMARY} FROM runs r ORDER BY started_at DESC, id`).all().map((r) => runOf(r as Record<string, unknown>, now));
}

/** One run by id or by a unique id prefix; null when none matches. */
export function findRun(db: Database.Database, idOrPrefix: string, now = Date.now()): RunRow | null {
  followSchema(db);
  const rows = db.prepare(`SELECT r.*, ${SUMMARY} FROM runs r WHERE id = ? OR id LIKE ? ESCAPE '\\' LIMIT 2`)
    .all(idOrPrefix, `${idOrPrefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`) as Record<string, unknown>[];
  const exact = rows.find((r) => r.id === idOrPrefix);
  if (exact) return runOf(exact, now);
  if (rows.length > 1) throw new RegistryError(`run id prefix "${idOrPrefix}" matches several runs; give more of the id`);
  return rows.length === 1 ? runOf(rows[0], now) : null;
}

export function stepHistory(db: Database.Database, runId: string): StepRow[] {
  return db.prepare(
    `SELECT step, time, loss, bits_per_token AS bitsPerToken, grad_norm AS gradNorm, grad_norm_clipped AS gradNormClipped,
       learning_rate AS learningRate, tokens_per_second AS tokensPerSecond, workers FROM steps WHERE run_id = ? ORDER BY step`,
  ).all(runId) as StepRow[];
}

export function validationHistory(db: Database.Database, runId: string): ValidationRow[] {
  return db.prepare(`SELECT ${VALIDATION_COLUMNS} FROM validations WHERE run_id = ? ORDER BY step`).all(runId) as ValidationRow[];
}

/** Removes a run and its history (not its directory). */
export function removeRun(db: Database.Database, runId: string): void {
  db.transaction(() => {
    for (const table of ['steps', 'validations', 'samples', 'checkpoints', 'failures']) db.prepare(`DELETE FROM ${table} WHERE run_id = ?`).run(runId);
    db.prepare('DELETE FROM runs WHERE id = ?').run(runId);
  })();
}
