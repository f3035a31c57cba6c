// `npm run bench` (part 2): training throughput through the real coordinator and
// worker pool at W = 1 and W = 2 for CFG-S with B = 64, the coordinator's own share
// of each step, and where the time goes when the scaling target is missed.

import { TRAIN_DEFAULTS, type TrainConfig, modelConfigOf } from '../coordinator/config.js';
import type { Corpus } from '../coordinator/data.js';
import { PoolExecutor } from '../coordinator/pool.js';
import { type StepReport, Trainer } from '../coordinator/trainer.js';
import { STEP_PHASES } from '../dashboard/view.js';
import { buildLayout } from '../model/params.js';
import type { BackendName } from '../model/backend.js';
import { median } from './stats.js';

const V = 65;

export function syntheticCorpus(n: number): Corpus {
  const tokens = Array.from({ length: V }, (_, i) => String.fromCharCode(32 + i));
  const ids = new Int32Array(n);
  let s = 7;
  for (let i = 0; i < n; i++) ids[i] = (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % V;
  return { text: '', source: 'synthetic', vocab: { kind: 'char', tokens }, ids, train: ids, val: ids.subarray(0, 4096) };
}

export interface PoolRun {
  workers: number;
  tokensPerSecond: number;
  /** Share of step wall time the coordinator spends in decode + reduce + apply + publish. */
  coordinatorShare: number;
  /** Mean per-shard compute time (ms) inside the workers. */
  shardComputeMs: number;
  /** Compute per block (a task covers one or more blocks: W=1 runs all of a step's blocks in one task). */
  blockComputeMs: number;
  /** Mean step wall time (ms). */
  stepMs: number;
  phases: Record<string, number>;
}

export interface PoolOptions {
  workers: number; batch: number; blocks: number; steps: number; E: number; H: number; backend?: BackendName; warmup?: number; windows?: number;
}

/** A trainer on its own pool, and the windows measured on it. */
interface Bench {
  opts: PoolOptions;
  trainer: Trainer;
  measured: { reports: StepReport[]; wall: number }[];
}

function benchOf(opts: PoolOptions): Bench {
  const config: TrainConfig = {
    ...TRAIN_DEFAULTS, cell: 'lstm', embed: opts.E, hidden: opts.H, seqLen: 64, batch: opts.batch, blocks: opts.blocks,
    optimizer: 'adam', backend: opts.backend ?? 'wasm',
  };
  const warmup = opts.warmup ?? 2;
  const windows = opts.windows ?? 1;
  const corpus = syntheticCorpus(opts.batch * (64 * (warmup + windows * opts.steps + 2) + 1));
  const layout = buildLayout(modelConfigOf(config), V);
  const executor = new PoolExecutor({ runId: 'bench', layout, backend: config.backend, workers: opts.workers, stepTimeoutMs: 600_000, maxAttempts: 1 });
  return { opts, trainer: new Trainer(config, { corpus, executor }), measured: [] };
}

async function window(b: Bench): Promise<void> {
  const reports: StepReport[] = [];
  const started = performance.now();
  for (let i = 0; i < b.opts.steps; i++) reports.push(await b.trainer.step());
  b.measured.push({ reports, wall: performance.now() - started });
}

/** The summary of a bench's window of median throughput. */
function summary(b: Bench): PoolRun {
  const { reports, wall } = [...b.measured].sort((x, y) => x.wall - y.wall)[(b.measured.length - 1) >> 1];
  const sum = (f: (r: StepReport) => number) => reports.reduce((a, r) => a + f(r), 0);
  const coordinatorMs = sum((r) => r.phases.decode + r.phases.reduce + r.phases.apply + r.phases.publish);
  const phases: Record<string, number> = {};
  for (const k of STEP_PHASES) phases[k] = sum((r) => r.phases[k]) / reports.length;
  return {
    workers: b.opts.workers,
    tokensPerSecond: (sum((r) => r.tokens) / wall) * 1000,
    coordinatorShare: coordinatorMs / wall,
    shardComputeMs: sum((r) => r.shards.reduce((a, s) => a + s.computeMs, 0)) / sum((r) => r.shards.length),
    blockComputeMs: sum((r) => r.shards.reduce((a, s) => a + s.computeMs, 0)) / sum((r) => r.partition.reduce((a, b) => a + b, 0)),
    stepMs: wall / reports.length,
    phases,
  };
}

/**
 * Several pools measured side by side. Each is built and trained `warmup` steps (V8 keeps
 * compiling and collecting for the first ~300 steps, on background threads that compete
 * with the replicas for the cores); then their windows of `steps` steps
 * alternate (A, B, A, B, …), so that a slow spell of a shared machine falls on all of
 * them alike; each pool reports its window of median throughput. `ratios[k]` is pool
 * k's tokens/s over pool 0's: the median over the rounds of the two windows measured
 * next to each other (`rounds[k]` has each round's). `medianRatios[k]` (`medianRounds[k]`)
 * is the same by each window's median step instead of its wall time: a step slowed by
 * the machine (a VM's other tenants, for a few steps at a time) weighs nothing there, so
 * it is the code's steady speed; the wall time is what a run got. The other pools'
 * threads wait in Atomics.wait meanwhile: they cost nothing.
 */
export async function poolRuns(
  all: PoolOptions[],
  /** Runs after each round's windows (something to measure next to them). */
  between?: (round: number) => Promise<void>,
): Promise<{ runs: PoolRun[]; ratios: number[]; rounds: number[][]; medianRatios: number[]; medianRounds: number[][] }> {
  const benches = all.map(benchOf);
  try {
    for (const b of benches) for (let i = 0; i < (b.opts.warmup ?? 2); i++) await b.trainer.step();
    const rounds = Math.max(...all.map((o) => o.windows ?? 1));
    for (let w = 0; w < rounds; w++) {
      for (const b of benches) if (b.measured.length < (b.opts.windows ?? 1)) await window(b);
      await between?.(w);
    }
  } finally {
    for (const b of benches) await b.trainer.close();
  }
  // Per bench, per round: its speed over pool 0's in the same round.
  const pairs = (by: 'wall' | 'median') =>
    benches.map((b) => b.measured.map((m, w) => windowSpeed(m, by) / windowSpeed(benches[0].measured[Math.min(w, benches[0].measured.length - 1)], by)));
  const [paired, pairedMedian] = [pairs('wall'), pairs('median')];
  return { runs: benches.map(summary), ratios: paired.map(median), rounds: paired, medianRatios: pairedMedian.map(median), medianRounds: pairedMedian };
}

/** A window's tokens per ms: its tokens over its wall time, or its median step's tokens over that step's time. */
export function windowSpeed(w: { reports: readonly { tokens: number; stepMs: number }[]; wall: number }, by: 'wall' | 'median'): number {
  if (by === 'wall') return w.reports.reduce((a, r) => a + r.tokens, 0) / w.wall;
  const mid = [...w.reports].sort((a, b) => a.stepMs - b.stepMs)[(w.reports.length - 1) >> 1];
  return mid.tokens / mid.stepMs;
}
