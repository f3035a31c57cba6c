// The sweep's writes to the run registry: each trial's run gets the sweep's id (its
// sweep_id) as soon as it has registered itself, and a trial started over loses its old
// entry. Like a run's own recorder, a registry that cannot be written costs one warning,
// never the sweep; a busy one is tried again later.

import type Database from 'better-sqlite3';
import { openRegistry } from '../registry/store.js';
import { removeSweepRun, tagSweepRun } from '../registry/sweep-queries.js';

export class SweepTags {
  private db: Database.Database | null = null;
  private broken = false;
  /** Runs not tagged yet: their entry was missing or the registry busy. */
  private readonly pending = new Set<string>();

  constructor(
    private readonly registry: string,
    private readonly sweepId: string,
    private readonly warn: (message: string) => void,
  ) {}

  private use(write: (db: Database.Database) => void): boolean {
    if (this.registry === 'none' || this.broken) return false;
    try {
      this.db ??= openRegistry(this.registry, { timeoutMs: 500 });
      write(this.db);
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_BUSY') return false;
      this.broken = true;
      this.close();
      this.warn(`the run registry ${this.registry} cannot be written (${(e as Error).message}); the sweep goes on, its runs without their sweep id`);
      return false;
    }
  }

  /** Tags a trial's run (and any left over from before). */
  tag(runId: string): void {
    this.pending.add(runId);
    this.use((db) => {
      for (const id of this.pending) if (tagSweepRun(db, id, this.sweepId)) this.pending.delete(id);
    });
  }

  /** Removes the entry of a trial's run that is being started over. */
  forget(runId: string): void {
    this.pending.delete(runId);
    this.use((db) => removeSweepRun(db, runId, this.sweepId));
  }

  close(): void {
    try {
      this.db?.close();
    } catch {
      // Nothing more to write.
    }
    this.db = null;
  }
}
