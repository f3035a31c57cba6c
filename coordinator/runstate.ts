// The live state of a run as the dashboard, the metrics and the JSON API see it:
// bounded histories plus an event stream. The training loop writes it after each
// step; readers never block the loop (listeners run synchronously and must be cheap).

import type {
  FailurePoint, FailureReason, GalleryCaption, GalleryPoint, GalleryView, RemoteSnapshot, RunEvent, RunInfo, RunView, SamplePoint, SplitKind, StepPoint, ValidationPoint,
} from '../dashboard/view.js';
import type { StepReport } from './trainer.js';

/** Step points kept; past this the history is thinned by half (older points keep every other one). */
const MAX_POINTS = 10_000;
const MAX_SAMPLES = 50;
const MAX_FAILURES = 200;

/** A shard without a worker: a non-finite result (-1 locally, "<worker id>/-1" from a remote worker). */
const noWorker = (worker: number | string) => worker === -1 || (typeof worker === 'string' && worker.endsWith('/-1'));

/** The snapshot's own fields only (the executor's worker records carry more, e.g. lastSeen). */
function copyRemote(r: RemoteSnapshot): RemoteSnapshot {
  const workers = r.workers.map(({ id, threads, host, pid, inFlight }) => ({ id, threads, host, pid, inFlight }));
  return { workers, duplicates: r.duplicates, bytesIn: r.bytesIn, bytesOut: r.bytesOut };
}

export class RunState implements RunView, GalleryView {
  private readonly steps: StepPoint[] = [];
  private readonly vals: ValidationPoint[] = [];
  private readonly sampleList: SamplePoint[] = [];
  private readonly failureList: FailurePoint[] = [];
  private readonly listeners = new Set<(e: RunEvent) => void>();
  private galleryImages: readonly { name: string; png: Uint8Array }[] = [];
  private latestGallery: GalleryPoint | null = null;
  private readonly current: RunInfo;

  constructor(info: Omit<RunInfo, 'failures' | 'retries' | 'nonfiniteSteps' | 'lastCheckpoint' | 'startedAt' | 'remote'>) {
    this.current = {
      ...info, startedAt: Date.now(), failures: {}, retries: 0, nonfiniteSteps: 0, lastCheckpoint: null,
      remote: { workers: [], duplicates: 0, bytesIn: 0, bytesOut: 0 },
    };
  }

  info(): RunInfo {
    return { ...this.current, failures: { ...this.current.failures }, remote: copyRemote(this.current.remote) };
  }
  history(): StepPoint[] {
    return this.steps.slice();
  }
  validations(): ValidationPoint[] {
    return this.vals.slice();
  }
  samples(): SamplePoint[] {
    return this.sampleList.slice();
  }
  failures(): FailurePoint[] {
    return this.failureList.slice();
  }
  images(): readonly { name: string; png: Uint8Array }[] {
    return this.galleryImages;
  }
  gallery(): GalleryPoint | null {
    return this.latestGallery;
  }

  subscribe(listener: (event: RunEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: RunEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        // A broken reader must not stop training; it is dropped.
        this.listeners.delete(l);
      }
    }
  }

  update(changes: Partial<Pick<RunInfo, 'status' | 'workers' | 'steps'>>): void {
    Object.assign(this.current, changes);
    this.emit({ type: 'run', data: this.info() });
  }

  recordStep(r: StepReport, workers: number, clipThreshold: number): StepPoint {
    const workerMs: Record<string, number> = {};
    for (const s of r.shards) if (!noWorker(s.worker)) workerMs[s.worker] = (workerMs[s.worker] ?? 0) + s.computeMs;
    const point: StepPoint = {
      step: r.step,
      time: Date.now(),
      loss: r.loss,
      bitsPerToken: r.bitsPerToken,
      gradNorm: r.clip.normBefore,
      gradNormClipped: r.clip.normAfter,
      clipped: r.clip.clipped,
      clipThreshold,
      learningRate: r.learningRate,
      tokensPerSecond: r.tokensPerSecond,
      tokens: r.tokens,
      workers,
      skipped: r.skipped,
      stepMs: r.stepMs,
      phases: r.phases,
      workerMs,
      payloadBytes: r.shards.map((s) => s.payloadBytes),
      tasks: r.partition,
      imbalance: imbalanceOf(r.shards.map((s) => s.computeMs)),
      hiddenNorms: r.hiddenNorms,
    };
    this.current.step = r.step;
    this.current.workers = workers;
    if (r.skipped) this.current.nonfiniteSteps += 1;
    this.steps.push(point);
    if (this.steps.length > MAX_POINTS) {
      const half = this.steps.length >> 1;
      const thinned = this.steps.slice(0, half).filter((_, i) => i % 2 === 0);
      this.steps.splice(0, half, ...thinned);
    }
    this.emit({ type: 'step', data: point });
    return point;
  }

  /** A validation; a captioning run's also carries its BLEU-4 and (shapes) accuracy. */
  recordValidation(step: number, loss: number, bitsPerToken: number, caption?: { bleu4: number; accuracy: number | null }): void {
    const point: ValidationPoint = { step, time: Date.now(), loss, bitsPerToken, ...(caption && { bleu4: caption.bleu4, accuracy: caption.accuracy }) };
    this.vals.push(point);
    if (this.vals.length > MAX_POINTS) this.vals.splice(0, this.vals.length - MAX_POINTS);
    this.emit({ type: 'validation', data: point });
  }

  recordSample(step: number, text: string): void {
    const point = { step, time: Date.now(), text };
    this.sampleList.push(point);
    if (this.sampleList.length > MAX_SAMPLES) this.sampleList.shift();
    this.emit({ type: 'sample', data: point });
  }

  /** A captioning run's gallery images (PNG), set once before its first evaluation. */
  setGalleryImages(images: readonly { name: string; png: Uint8Array }[]): void {
    this.galleryImages = images.slice();
  }

  /** The gallery images' captions at an evaluation: one per image, in gallery order. */
  recordGallery(step: number, captions: readonly GalleryCaption[]): void {
    if (captions.length !== this.galleryImages.length) throw new RangeError(`recordGallery: ${captions.length} captions for ${this.galleryImages.length} gallery images`);
    const point: GalleryPoint = { step, time: Date.now(), captions: captions.map(({ image, caption, references, correct }) => ({ image, caption, references: references.slice(), correct })) };
    this.latestGallery = point;
    this.emit({ type: 'gallery', data: point });
  }

  recordFailure(step: number, shard: number, reason: FailureReason, message: string): void {
    const point = { step, shard, time: Date.now(), reason, message };
    this.current.failures[reason] = (this.current.failures[reason] ?? 0) + 1;
    this.current.retries += 1;
    this.failureList.push(point);
    if (this.failureList.length > MAX_FAILURES) this.failureList.shift();
    this.emit({ type: 'failure', data: point });
  }

  /** A task split into halves (`into`: blocks per resulting task). */
  recordSplit(step: number, shard: number, kind: SplitKind, blocks: number, into: number[]): void {
    this.emit({ type: 'split', data: { step, shard, blocks, time: Date.now(), kind, into: into.slice() } });
  }

  /** The remote workers and NATS counters, after every step and whenever a remote worker joins
   *  or leaves. Counters are cumulative; an unchanged snapshot emits nothing. */
  recordRemote(r: RemoteSnapshot): void {
    for (const [key, v] of Object.entries({ duplicates: r.duplicates, bytesIn: r.bytesIn, bytesOut: r.bytesOut })) {
      if (!Number.isFinite(v) || v < 0) throw new RangeError(`recordRemote: ${key} must be a finite number >= 0; got ${v}`);
    }
    const next = copyRemote(r);
    if (JSON.stringify(next) === JSON.stringify(this.current.remote)) return;
    this.current.remote = next;
    this.emit({ type: 'remote', data: copyRemote(next) });
  }

  recordCheckpoint(step: number, path: string, seconds: number): void {
    this.current.lastCheckpoint = { step, path, time: Date.now() };
    this.emit({ type: 'checkpoint', data: { step, path, seconds } });
  }
}

/** The slowest task's time ÷ the mean task's: 1 when the partition is even (or has one task). */
export function imbalanceOf(ms: readonly number[]): number {
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
  return ms.length > 1 && mean > 0 ? Math.max(...ms) / mean : 1;
}
