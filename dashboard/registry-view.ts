// What the all-runs dashboard (runs-server.ts) reads of a run registry: a read-only data
// source. The coordinator implements it over its SQLite store (coordinator/registry/
// dashboard-command.ts); the dashboard never sees SQL or a database handle. Types only.

/** A run's status as of the moment it is read: `killed` is a `running` run whose heartbeat went stale. */
export type RegistryRunStatus = 'running' | 'finished' | 'stopped' | 'failed' | 'killed';

export interface RegistryRun {
  id: string;
  name: string | null;
  /** What recorded it: train, experiment, … */
  kind: string;
  dir: string;
  /** The run's resolved config (a sweep stores its swept values here). */
  config: Record<string, unknown>;
  backend: string | null;
  status: RegistryRunStatus;
  /** Unix times, ms. */
  startedAt: number;
  endedAt: number | null;
  heartbeatAt: number;
  host: string;
  /** Changes when a run is resumed by another process: its history after the checkpoint is rewritten. */
  pid: number;
  sweepId: string | null;
  stepsTarget: number | null;
  parameters: number | null;
  /** Summaries over the history (null before the first step or validation). */
  lastStep: number | null;
  bestValLoss: number | null;
  /** A captioner's best validation BLEU-4; null for a language model (and in a registry of schema 1, which has none). */
  bestBleu4: number | null;
  lastLoss: number | null;
  tokensPerSecond: number | null;
}

/** One logged step; a value is null when the step's was not finite (a skipped step). */
export interface RegistryStep {
  step: number;
  time: number;
  loss: number | null;
  bitsPerToken: number | null;
  /** Global gradient norm before and after clipping. */
  gradNorm: number | null;
  gradNormClipped: number | null;
  learningRate: number | null;
  tokensPerSecond: number | null;
  workers: number | null;
}

export interface RegistryValidation {
  step: number;
  time: number;
  loss: number;
  bitsPerToken: number;
  /** A captioner's corpus BLEU-4 and share of correct captions (accuracy: shapes only); null otherwise. */
  bleu4: number | null;
  accuracy: number | null;
}

export interface RegistrySample {
  step: number;
  time: number;
  text: string;
}

export interface RegistryCheckpoint {
  step: number;
  time: number;
  path: string;
  seconds: number | null;
}

export interface RegistryFailure {
  step: number;
  shard: number;
  time: number;
  reason: string;
  message: string;
}

export interface RegistryFailures {
  total: number;
  byReason: Record<string, number>;
  /** The latest ones, oldest first. */
  latest: RegistryFailure[];
}

/**
 * Reads of one registry. Every method reads the registry as it is now (running runs write
 * to it in batches, once a second). A method throws an error with `kind: 'input'` for a
 * request the caller can fix (an ambiguous id prefix), any other error when the registry
 * cannot be read.
 */
export interface RegistryView {
  /** Every run, newest first. */
  runs(): RegistryRun[];
  /** A run by id or unique id prefix; null when none matches. */
  run(idOrPrefix: string): RegistryRun | null;
  /** Steps after `afterStep` (exclusive), oldest first, thinned evenly to at most `maxPoints` (≥ 2; the last one always kept). */
  steps(runId: string, afterStep: number, maxPoints: number): RegistryStep[];
  /** Validations after `afterStep`, oldest first, thinned the same way. */
  validations(runId: string, afterStep: number, maxPoints: number): RegistryValidation[];
  /** The latest `limit` samples, oldest first. */
  samples(runId: string, limit: number): RegistrySample[];
  /** Every checkpoint written, oldest first. */
  checkpoints(runId: string): RegistryCheckpoint[];
  failures(runId: string, limit: number): RegistryFailures;
}
