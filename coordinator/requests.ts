// What the control API asks of a running training (scale, checkpoint), held until the
// training loop acts on it between steps; and refused, not left hanging, once the run ends.

import { checkWorkerCount } from './config.js';

export interface ScaleRequest {
  workers: number;
  done(workers: number): void;
  fail(e: Error): void;
}

type Saved = { path: string; step: number };

export class RunRequests {
  private scale: ScaleRequest | null = null;
  private checkpointWaiters: { resolve: (saved: Saved) => void; reject: (e: Error) => void }[] = [];
  private ended = false;

  /** `remote`: the run has remote workers (--nats), so it may scale to 0 local threads. */
  constructor(private readonly remote: boolean) {}

  /** Resolves once the loop has resized, before its next step; a newer request supersedes it. */
  requestScale(workers: number): Promise<{ workers: number }> {
    return new Promise((resolve, reject) => {
      const refused = this.ended ? new Error('the run ended') : scaleRefusal(workers, this.remote);
      if (refused) return reject(refused);
      this.scale?.fail(new Error('superseded by a newer scale request'));
      this.scale = { workers, done: (n) => resolve({ workers: n }), fail: reject };
    });
  }

  /** The scale request to carry out now, if any (the caller settles it). */
  takeScale(): ScaleRequest | null {
    const request = this.scale;
    this.scale = null;
    return request;
  }

  /** Resolves with the next checkpoint the loop writes. */
  requestCheckpoint(): Promise<Saved> {
    if (this.ended) return Promise.reject(new Error('the run ended'));
    return new Promise((resolve, reject) => this.checkpointWaiters.push({ resolve, reject }));
  }

  get checkpointWanted(): boolean {
    return this.checkpointWaiters.length > 0;
  }

  checkpointSaved(saved: Saved): void {
    for (const w of this.checkpointWaiters.splice(0)) w.resolve(saved);
  }

  /** The run is over: what is pending, and whatever comes later, is refused. */
  end(): void {
    this.ended = true;
    this.takeScale()?.fail(new Error('the run ended'));
    for (const w of this.checkpointWaiters.splice(0)) w.reject(new Error('the run ended'));
  }
}

/** Why a scale request for `w` local threads cannot be granted (an input error: 400), or null. */
function scaleRefusal(w: number, remote: boolean): Error | null {
  if (w === 0 && !remote) return new RangeError('workers 0 needs remote workers, and this run was started without --nats');
  try {
    checkWorkerCount(w, 'workers');
  } catch (e) {
    return e as Error;
  }
  return null;
}
