// A run's recorder: takes the run's events (RunState) and writes them, batched off the
// training step, to the run directory's `history.jsonl` (the source of truth) and to the
// registry. A registry that is locked, corrupt, full or unwritable never stops or slows
// training: the recorder says so once and goes on with the history file alone.

import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type Database from 'better-sqlite3';
import type { RunEvent } from '../../dashboard/view.js';
import { type NewRun, openRegistry, upsertRun } from './store.js';

/** How often queued events are written, and how often the heartbeat says "still running". */
export const FLUSH_MS = 1_000;
export const HEARTBEAT_MS = 5_000;

export const HISTORY_FILE = 'history.jsonl';

/** One line of history.jsonl. A captioning run's gallery is not kept: the page shows its latest
 *  captions, and the 'sample' lines already keep a few of them at every evaluation. */
export type HistoryLine = { type: 'run'; data: NewRun } | Exclude<RunEvent, { type: 'run' } | { type: 'remote' } | { type: 'gallery' }> | { type: 'end'; data: { status: string; time: number } };

export class RunRecorder {
  private db: Database.Database | null = null;
  /** Lines not yet appended to the history file. */
  private queue: HistoryLine[] = [];
  /** Lines not yet in the registry (kept while it is locked; the history file has them). */
  private unregistered: HistoryLine[] = [];
  private readonly timer: NodeJS.Timeout;
  private lastHeartbeat = 0;
  private warned = false;
  private historyBroken = false;
  /** The run's entry is not written yet (the registry was busy at start). */
  private entryPending = true;
  /** The registry was locked when the run started: opening it is tried again at each flush. */
  private openPending = false;

  constructor(
    private readonly run: NewRun,
    private readonly registryPath: string | null,
    /** Said once, when the registry or the history file cannot be written. */
    private readonly warn: (message: string) => void,
  ) {
    if (registryPath) {
      try {
        mkdirSync(dirname(registryPath), { recursive: true });
      } catch (e) {
        this.dropRegistry(e);
      }
      this.openPending = !this.warned;
      this.open();
    }
    this.queue.push({ type: 'run', data: run });
    this.timer = setInterval(() => this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  /** Takes a run event (cheap: it is only queued). */
  record(event: RunEvent): void {
    if (event.type === 'run' || event.type === 'remote' || event.type === 'gallery') return;
    this.queue.push(event);
  }

  /**
   * Opens the registry and writes the run's entry, with a short busy timeout: a registry
   * locked by another process must not hold up a step (it is tried again at the next flush).
   */
  private open(): void {
    if (!this.openPending || !this.registryPath) return;
    try {
      this.db ??= openRegistry(this.registryPath, { timeoutMs: 100 });
      this.openPending = false;
      upsertRun(this.db, this.run);
      this.entryPending = false;
    } catch (e) {
      if (!isBusy(e)) {
        this.openPending = false;
        this.dropRegistry(e);
      }
    }
  }

  private dropRegistry(e: unknown): void {
    try {
      this.db?.close();
    } catch {
      // Closing a broken handle can fail too; it is gone either way.
    }
    this.db = null;
    this.unregistered = [];
    this.say(`the run registry ${this.registryPath} cannot be written (${(e as Error).message}); training goes on, and ${join(this.run.dir, HISTORY_FILE)} keeps the history (gradpool runs import ${this.run.dir} adds it later)`);
  }

  private say(message: string): void {
    if (this.warned) return;
    this.warned = true;
    this.warn(message);
  }

  /** Writes what is queued: one append to the history file, one registry transaction. */
  flush(now = Date.now()): void {
    const batch = this.queue;
    this.queue = [];
    if (this.db || this.openPending) this.unregistered.push(...batch);
    if (batch.length > 0 && !this.historyBroken) {
      try {
        appendFileSync(join(this.run.dir, HISTORY_FILE), batch.map((l) => JSON.stringify(l)).join('\n') + '\n');
      } catch (e) {
        this.historyBroken = true;
        this.say(`cannot append to ${join(this.run.dir, HISTORY_FILE)} (${(e as Error).message}); the run goes on`);
      }
    }
    // Still locked at the run's start: the lines wait in `unregistered` for the next flush.
    this.open();
    if (!this.db) return;
    try {
      if (this.entryPending) {
        upsertRun(this.db, this.run);
        this.entryPending = false;
      }
      const pending = this.unregistered;
      writeBatch(this.db, this.run.id, pending);
      this.unregistered = [];
      if (pending.length > 0 || now - this.lastHeartbeat >= HEARTBEAT_MS) {
        this.db.prepare('UPDATE runs SET heartbeat_at = ? WHERE id = ?').run(now, this.run.id);
        this.lastHeartbeat = now;
      }
    } catch (e) {
      // A busy database (another writer holding the lock past the timeout) is retried next time.
      if (isBusy(e)) return;
      this.dropRegistry(e);
    }
  }

  /** The run ended: its last events and its status. */
  close(status: 'finished' | 'stopped' | 'failed'): void {
    clearInterval(this.timer);
    const time = Date.now();
    this.queue.push({ type: 'end', data: { status, time } });
    this.flush(time);
    try {
      this.db?.close();
    } catch {
      // Nothing more to write.
    }
    this.db = null;
  }
}

const isBusy = (e: unknown) => (e as { code?: string }).code === 'SQLITE_BUSY';

/** Applies history lines to the registry in one transaction (also used by `gradpool runs import`). */
export function writeBatch(db: Database.Database, runId: string, batch: readonly HistoryLine[]): void {
  const step = db.prepare(
    `INSERT OR REPLACE INTO steps (run_id, step, time, loss, bits_per_token, grad_norm, grad_norm_clipped, learning_rate, tokens_per_second, workers)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const validation = db.prepare('INSERT OR REPLACE INTO validations (run_id, step, time, loss, bits_per_token, bleu4, accuracy) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const sample = db.prepare('INSERT INTO samples (run_id, step, time, text) VALUES (?, ?, ?, ?)');
  const checkpoint = db.prepare('INSERT INTO checkpoints (run_id, step, time, path, seconds) VALUES (?, ?, ?, ?, ?)');
  const failure = db.prepare('INSERT INTO failures (run_id, step, shard, time, reason, message) VALUES (?, ?, ?, ?, ?, ?)');
  const end = db.prepare('UPDATE runs SET status = ?, ended_at = ?, heartbeat_at = ? WHERE id = ?');
  db.transaction(() => {
    for (const line of batch) {
      switch (line.type) {
        case 'step': {
          const p = line.data;
          const finite = (v: number) => (Number.isFinite(v) ? v : null);
          step.run(runId, p.step, p.time, finite(p.loss), finite(p.bitsPerToken), finite(p.gradNorm), finite(p.gradNormClipped), p.learningRate, p.tokensPerSecond, p.workers);
          break;
        }
        case 'validation': {
          // A captioner's BLEU-4 and accuracy (a language model's validation has neither: NULL).
          const v = line.data;
          validation.run(runId, v.step, v.time, v.loss, v.bitsPerToken, v.bleu4 ?? null, v.accuracy ?? null);
          break;
        }
        case 'sample':
          sample.run(runId, line.data.step, line.data.time, line.data.text);
          break;
        case 'checkpoint':
          checkpoint.run(runId, line.data.step, Date.now(), line.data.path, line.data.seconds);
          break;
        case 'failure':
          failure.run(runId, line.data.step, line.data.shard, line.data.time, line.data.reason, line.data.message);
          break;
        case 'end':
          end.run(line.data.status, line.data.time, line.data.time, runId);
          break;
        case 'run':
          break;
      }
    }
  })();
}
