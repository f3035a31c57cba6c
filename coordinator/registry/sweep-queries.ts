// The registry's side of sweeps: a trial's run carries its sweep's id in the runs table's
// sweep_id column (the run registers itself with it: `gradpool train --sweep ID`, also in
// its history.jsonl for `gradpool runs import`), so a sweep's runs are one query away —
// for `gradpool sweep show` and the all-runs dashboard.

import type Database from 'better-sqlite3';
import { removeRun } from './store.js';

/** The id and directory of every run of a sweep, oldest first. */
export function sweepRuns(db: Database.Database, sweepId: string): { id: string; dir: string }[] {
  return db.prepare('SELECT id, dir FROM runs WHERE sweep_id = ? ORDER BY started_at, id').all(sweepId) as { id: string; dir: string }[];
}

/** Forgets a trial's run (a trial started over replaces it); only a run of that sweep. */
export function removeSweepRun(db: Database.Database, runId: string, sweepId: string): void {
  if (db.prepare('SELECT 1 FROM runs WHERE id = ? AND sweep_id = ?').get(runId, sweepId)) removeRun(db, runId);
}
