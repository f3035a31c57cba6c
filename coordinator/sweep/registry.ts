// The sweep's own write to the run registry: a trial started over loses its old run's
// entry. (A trial's run records its sweep id itself: `gradpool train --sweep ID`.) Like a
// run's own recorder, a registry that cannot be written costs one warning, never the
// sweep; a busy one leaves the old entry, which `gradpool runs rm` removes.

import type Database from 'better-sqlite3';
import { openRegistry } from '../registry/store.js';
import { removeSweepRun } from '../registry/sweep-queries.js';

export class SweepRegistry {
  private db: Database.Database | null = null;
  private broken = false;

  constructor(
    private readonly registry: string,
    private readonly sweepId: string,
    private readonly warn: (message: string) => void,
  ) {}

  /** Removes the entry of a trial's run that is being started over. */
  forget(runId: string): void {
    if (this.registry === 'none' || this.broken) return;
    try {
      this.db ??= openRegistry(this.registry, { timeoutMs: 500 });
      removeSweepRun(this.db, runId, this.sweepId);
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_BUSY') return;
      this.broken = true;
      this.close();
      this.warn(`the run registry ${this.registry} cannot be written (${(e as Error).message}); the sweep goes on, a trial started over leaves its old run's entry`);
    }
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
