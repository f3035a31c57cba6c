// Read queries of the all-runs dashboard (`gradpool dashboard`) over the registry: a run's
// steps and validations after a given step, thinned to a bound; its latest samples, its
// checkpoints and its failures. store.ts keeps the run rows and their summaries. Every
// query reads through the (run_id, step) primary key or an index on it.

import type Database from 'better-sqlite3';
import { type StepRow, VALIDATION_COLUMNS, type ValidationRow } from './store.js';

const STEP_COLUMNS = `step, time, loss, bits_per_token AS bitsPerToken, grad_norm AS gradNorm, grad_norm_clipped AS gradNormClipped,
  learning_rate AS learningRate, tokens_per_second AS tokensPerSecond, workers`;

/**
 * Rows of `table` (steps or validations) after `afterStep`, oldest first: at most maxPoints
 * of them, every k-th row and always the last, so a long run's curve keeps its shape and
 * its latest point.
 */
function thinned<T>(db: Database.Database, table: 'steps' | 'validations', columns: string, runId: string, afterStep: number, maxPoints: number): T[] {
  if (!Number.isInteger(maxPoints) || maxPoints < 2) throw new RangeError(`maxPoints must be an integer ≥ 2, got ${maxPoints}`);
  const { n } = db.prepare(`SELECT count(*) AS n FROM ${table} WHERE run_id = ? AND step > ?`).get(runId, afterStep) as { n: number };
  if (n <= maxPoints) return db.prepare(`SELECT ${columns} FROM ${table} WHERE run_id = ? AND step > ? ORDER BY step`).all(runId, afterStep) as T[];
  // Rows 0, k, 2k, … before the last (at most maxPoints - 1 of them), then the last.
  const every = Math.ceil((n - 1) / (maxPoints - 1));
  return db.prepare(
    `SELECT ${columns} FROM (SELECT *, row_number() OVER (ORDER BY step) - 1 AS i FROM ${table} WHERE run_id = ? AND step > ?)
     WHERE (i % ? = 0 AND i < ?) OR i = ? ORDER BY step`,
  ).all(runId, afterStep, every, n - 1, n - 1) as T[];
}

export function stepsAfter(db: Database.Database, runId: string, afterStep: number, maxPoints: number): StepRow[] {
  return thinned<StepRow>(db, 'steps', STEP_COLUMNS, runId, afterStep, maxPoints);
}

/** A captioner's validations carry its BLEU-4 and accuracy (null for a language model). */
export function validationsAfter(db: Database.Database, runId: string, afterStep: number, maxPoints: number): ValidationRow[] {
  return thinned<ValidationRow>(db, 'validations', VALIDATION_COLUMNS, runId, afterStep, maxPoints);
}

/** The latest `limit` samples, oldest first. */
export function latestSamples(db: Database.Database, runId: string, limit: number): { step: number; time: number; text: string }[] {
  const rows = db.prepare('SELECT step, time, text FROM samples WHERE run_id = ? ORDER BY step DESC, time DESC, rowid DESC LIMIT ?').all(runId, limit);
  return (rows as { step: number; time: number; text: string }[]).reverse();
}

export function checkpointsOf(db: Database.Database, runId: string): { step: number; time: number; path: string; seconds: number | null }[] {
  return db.prepare('SELECT step, time, path, seconds FROM checkpoints WHERE run_id = ? ORDER BY step, time').all(runId) as never;
}

export interface FailureRow {
  step: number;
  shard: number;
  time: number;
  reason: string;
  message: string;
}

/** A run's failures: how many of each reason, and the latest `limit` of them, oldest first. */
export function failuresOf(db: Database.Database, runId: string, limit: number): { total: number; byReason: Record<string, number>; latest: FailureRow[] } {
  const counts = db.prepare('SELECT reason, count(*) AS n FROM failures WHERE run_id = ? GROUP BY reason ORDER BY reason').all(runId) as { reason: string; n: number }[];
  const latest = db.prepare('SELECT step, shard, time, reason, message FROM failures WHERE run_id = ? ORDER BY step DESC, time DESC, rowid DESC LIMIT ?').all(runId, limit) as FailureRow[];
  return {
    total: counts.reduce((sum, c) => sum + c.n, 0),
    byReason: Object.fromEntries(counts.map((c) => [c.reason, c.n])),
    latest: latest.reverse(),
  };
}
