// What the dashboard sees of a run: a read-only view with its history and a stream
// of events. The coordinator implements it (coordinator/runstate.ts); the server,
// the SSE route and the metrics registry only read it. Types only.

/** The phases of a training step the coordinator times (the metric's `phase` label). */
export const STEP_PHASES = ['compute', 'decode', 'reduce', 'apply', 'publish'] as const;
export type StepPhase = (typeof STEP_PHASES)[number];

/**
 * Why a shard attempt failed (the metric's `reason` label): its worker died (`crash`),
 * threw (`error`), missed its deadline (`timeout`) or answered nonsense (`protocol`);
 * `unavailable` is transport trouble (no responders, no acknowledgement, server
 * unreachable), re-issued without counting against the shard's attempts.
 */
export const FAILURE_REASONS = ['crash', 'error', 'timeout', 'protocol', 'unavailable'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/**
 * Why a task of several blocks was split into aligned halves (the metric's `kind` label):
 * it was re-issued while several workers were idle (`reissue`), or it straggled and its
 * halves were issued as backups beside it (`speculative`).
 */
export const SPLIT_KINDS = ['reissue', 'speculative'] as const;
export type SplitKind = (typeof SPLIT_KINDS)[number];

export interface StepPoint {
  step: number;
  /** Unix time, ms. */
  time: number;
  /** Mean cross-entropy per token, nats (train split). */
  loss: number;
  bitsPerToken: number;
  /** Global gradient norm before and after clipping. */
  gradNorm: number;
  gradNormClipped: number;
  clipped: boolean;
  /** Clipping threshold (0 = off). */
  clipThreshold: number;
  learningRate: number;
  tokensPerSecond: number;
  tokens: number;
  workers: number;
  skipped: boolean;
  stepMs: number;
  /** Coordinator phases of the step, ms. */
  phases: Record<StepPhase, number>;
  /** Per worker thread id (a number for a local thread, "<worker id>/<thread>" for a remote one):
   *  summed forward + backward ms of its shards in this step. */
  workerMs: Record<string, number>;
  /** Gradient bytes received per shard in this step. */
  payloadBytes: number[];
  /** The step's partition: blocks per task, in task order (a task's worker and time are in workerMs). */
  tasks: number[];
  /** The slowest task's compute time ÷ the mean task's (1: even; 1 for a single task). */
  imbalance: number;
  /** Mean ‖h‖ per layer of the carried states. */
  hiddenNorms: number[];
}

export interface ValidationPoint {
  step: number;
  time: number;
  loss: number;
  bitsPerToken: number;
  /** A captioner's corpus BLEU-4 of its greedy captions (captioning runs only). */
  bleu4?: number;
  /** The share of correct captions (captioning runs on shapes; null on a directory dataset). */
  accuracy?: number | null;
}

/** One image of a captioning run's gallery at one evaluation. */
export interface GalleryCaption {
  /** The image's file name in the validation split. */
  image: string;
  /** The caption the model generated (greedy). */
  caption: string;
  references: readonly string[];
  /** Whether the caption is correct (shapes), null when the dataset cannot say. */
  correct: boolean | null;
}

/** A captioning run's gallery at one evaluation: the same images every time, in order. */
export interface GalleryPoint {
  step: number;
  time: number;
  captions: GalleryCaption[];
}

/**
 * A captioning run's gallery as the dashboard serves it: a fixed set of validation images
 * (PNG, encoded once by the run) and their captions at the latest evaluation.
 */
export interface GalleryView {
  /** The gallery's images, in gallery order: their names and PNG bytes. */
  images(): readonly { name: string; png: Uint8Array }[];
  /** The captions at the latest evaluation (null before the first). */
  gallery(): GalleryPoint | null;
}

export interface SamplePoint {
  step: number;
  time: number;
  text: string;
}

export interface FailurePoint {
  step: number;
  shard: number;
  time: number;
  reason: FailureReason;
  message: string;
}

export interface SplitPoint {
  step: number;
  /** The task split (its index in the step) and how many blocks it covered. */
  shard: number;
  blocks: number;
  time: number;
  kind: SplitKind;
  /** The blocks of each task it was split into, in block order. */
  into: number[];
}

/** The remote workers of a run over NATS (all zero and empty for a run without --nats). */
export interface RemoteSnapshot {
  /** Live remote worker processes. */
  workers: { id: string; threads: number; host: string; pid: number; inFlight: number }[];
  /** Shard results discarded as late duplicates, since the run started in this process. */
  duplicates: number;
  /** Bytes of result chunks received / of weights and blob chunks sent over NATS, since start. */
  bytesIn: number;
  bytesOut: number;
}

export interface RunInfo {
  runId: string;
  /** starting | running | stopping | done | failed */
  status: string;
  step: number;
  steps: number;
  workers: number;
  shards: number;
  outDir: string;
  startedAt: number;
  /** The resolved run config (the same object as in checkpoints). */
  config: Record<string, unknown>;
  parameters: number;
  /** The backend and kernel path computing the run, e.g. "native (avx512)" or "wasm". */
  backend: string;
  failures: Record<string, number>;
  retries: number;
  nonfiniteSteps: number;
  lastCheckpoint: { step: number; path: string; time: number } | null;
  /** The latest remote snapshot (RunState.recordRemote). */
  remote: RemoteSnapshot;
}

export type RunEvent =
  | { type: 'step'; data: StepPoint }
  | { type: 'validation'; data: ValidationPoint }
  | { type: 'sample'; data: SamplePoint }
  | { type: 'gallery'; data: GalleryPoint }
  | { type: 'failure'; data: FailurePoint }
  | { type: 'split'; data: SplitPoint }
  | { type: 'checkpoint'; data: { step: number; path: string; seconds: number } }
  | { type: 'remote'; data: RemoteSnapshot }
  | { type: 'run'; data: RunInfo };

export interface RunView {
  info(): RunInfo;
  /** Step history, oldest first (long runs are thinned to a bounded number of points). */
  history(): StepPoint[];
  validations(): ValidationPoint[];
  /** The latest samples, oldest first. */
  samples(): SamplePoint[];
  /** Every event as it happens; returns the unsubscribe function. */
  subscribe(listener: (event: RunEvent) => void): () => void;
}
