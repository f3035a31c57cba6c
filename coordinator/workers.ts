// The remote workers a coordinator knows from their heartbeats: who joined, who left,
// who refused this run (never asked again), who fell silent, how many attempts each
// runs, and which one the next shard goes to.

import type { HeartbeatMsg } from '../proto/types.js';
import { type Clock, systemClock } from './scheduler.js';

export interface RemoteWorker {
  id: string;
  threads: number;
  host: string;
  pid: number;
  /** Attempts this coordinator has running on it. */
  inFlight: number;
  lastSeen: number;
}

export interface WorkerRegistryOptions {
  runId: string;
  /** A worker silent for this long is taken for dead. */
  heartbeatLapseMs: number;
  /** How often lapsed() is called (a longer gap means this thread was busy, not the workers silent). */
  sweepMs: number;
  clock?: Clock;
  /** A worker appeared or disappeared (reason: why it left). */
  onWorkerChange?(worker: RemoteWorker, joined: boolean, reason?: string): void;
}

export class WorkerRegistry {
  private readonly clock: Clock;
  private readonly known = new Map<string, RemoteWorker>();
  /** Workers that refused a task of this run: never asked again. */
  private readonly refusing = new Set<string>();
  private lastSweep: number;
  /** The last refusal, for the message of a step that found no worker. */
  lastRefusal = '';

  constructor(private readonly opts: WorkerRegistryOptions) {
    this.clock = opts.clock ?? systemClock;
    this.lastSweep = this.clock.now();
  }

  get size(): number {
    return this.known.size;
  }

  /** Threads of every live worker. */
  get threads(): number {
    let n = 0;
    for (const w of this.known.values()) n += w.threads;
    return n;
  }

  list(): RemoteWorker[] {
    return [...this.known.values()];
  }

  get(id: string): RemoteWorker | undefined {
    return this.known.get(id);
  }

  /** Take a heartbeat in; true when it made a new worker known (which may take queued shards). */
  heartbeat(hb: HeartbeatMsg): boolean {
    if ((hb.onlyRun && hb.onlyRun !== this.opts.runId) || this.refusing.has(hb.worker)) return false;
    if (hb.threads === 0) {
      // A worker leaving cleanly: it finishes what it holds, but takes nothing new.
      this.remove(hb.worker, 'it is shutting down');
      return false;
    }
    const known = this.known.get(hb.worker);
    if (known) {
      known.lastSeen = this.clock.now();
      known.threads = hb.threads;
      known.host = hb.host;
      known.pid = hb.pid;
      return false;
    }
    this.add({ id: hb.worker, threads: hb.threads, host: hb.host, pid: hb.pid });
    return true;
  }

  /** The worker `id`; one whose heartbeat has not reached us yet is tracked from now on (so its silence is noticed). */
  ensure(id: string): RemoteWorker {
    return this.known.get(id) ?? this.add({ id, threads: 1, host: '?', pid: 0 });
  }

  private add(info: Pick<RemoteWorker, 'id' | 'threads' | 'host' | 'pid'>): RemoteWorker {
    const w: RemoteWorker = { ...info, inFlight: 0, lastSeen: this.clock.now() };
    this.known.set(w.id, w);
    this.opts.onWorkerChange?.(w, true);
    return w;
  }

  /** Forget a worker; returns it when it was known. */
  remove(id: string, why: string): RemoteWorker | undefined {
    const w = this.known.get(id);
    if (!w) return undefined;
    this.known.delete(id);
    this.opts.onWorkerChange?.(w, false, why);
    return w;
  }

  /** A worker refused a task of this run (another --run, shutting down): never ask it again. Returns the message. */
  refused(id: string, error: string): string {
    const message = `worker ${id || '?'} refused the task: ${error}`;
    this.lastRefusal = message;
    if (id) {
      this.refusing.add(id);
      this.remove(id, `it refused a task: ${error}`);
    }
    return message;
  }

  /** A worker with a free thread: the fastest by `time` (ms per block), else the one with the most free threads; null when none has one. */
  pick(time?: (id: string) => number): RemoteWorker | null {
    let best: RemoteWorker | null = null;
    for (const w of this.known.values()) {
      const free = w.threads - w.inFlight;
      if (free <= 0) continue;
      if (!best) best = w;
      else if (time && time(w.id) !== time(best.id)) {
        if (time(w.id) < time(best.id)) best = w;
      } else if (free > best.threads - best.inFlight) best = w;
    }
    return best;
  }

  /** An attempt started on (+1) or left (−1) worker `id`. */
  count(id: string, delta: 1 | -1): void {
    const w = this.known.get(id);
    if (w) w.inFlight = Math.max(0, w.inFlight + delta);
  }

  /** The workers silent for longer than heartbeatLapseMs, with why (call every sweepMs). */
  lapsed(): { id: string; why: string }[] {
    const now = this.clock.now();
    if (now - this.lastSweep > 1_000) {
      // This thread was busy (or the machine suspended): heartbeats may be waiting
      // unread in the socket. Silence is measured from now, not held against the workers.
      for (const w of this.known.values()) w.lastSeen = Math.max(w.lastSeen, now - this.opts.sweepMs);
    }
    this.lastSweep = now;
    return this.list()
      .filter((w) => now - w.lastSeen > this.opts.heartbeatLapseMs)
      .map((w) => ({ id: w.id, why: `no heartbeat for ${Math.round((now - w.lastSeen) / 100) / 10} s` }));
  }
}
