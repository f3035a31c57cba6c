// Test helper: a run registry written through the real recorder and store
// (coordinator/registry/), as runs write it: a finished run; a running one whose recorder
// stays open (it flushes and sends heartbeats while the test lives, and `live.step()` adds
// steps); a killed one (a run that never ended, its heartbeat five minutes old); and a sweep
// of three runs whose configs differ in lr and hidden (and, as every run's, in out and name).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { StepPoint } from '../../dashboard/view.js';
import { type HistoryLine, RunRecorder, writeBatch } from '../../coordinator/registry/recorder.js';
import { type NewRun, openRegistry, upsertRun } from '../../coordinator/registry/store.js';

export const FIXTURE_IDS = { finished: 'f1n15hed0001', running: 'ru9n1ng00002', killed: 'k1lled000003', sweep: ['sw0000000a01', 'sw0000000b02', 'sw0000000c03'] } as const;
export const SWEEP_ID = 'sweep-lr-hidden';
const MS_PER_STEP = 50;

/** A loss curve that falls like a real one, with a deterministic wiggle; `floor` is where it settles. */
export const lossAt = (step: number, floor: number) => floor + 2.8 * Math.exp(-step / 60) + 0.05 * Math.sin(step * 1.7);

function stepPoint(step: number, time: number, floor: number, opts: { tokensPerSecond?: number; workers?: number; lr?: number } = {}): StepPoint {
  const loss = lossAt(step, floor);
  const gradNorm = 0.3 + 4 * Math.exp(-step / 40) + 0.1 * Math.cos(step);
  return {
    step, time, loss, bitsPerToken: loss / Math.LN2, gradNorm, gradNormClipped: Math.min(gradNorm, 1), clipped: gradNorm > 1, clipThreshold: 1,
    learningRate: opts.lr ?? 0.002, tokensPerSecond: (opts.tokensPerSecond ?? 20_000) + 500 * Math.sin(step), tokens: 128, workers: opts.workers ?? 2, skipped: false,
    stepMs: MS_PER_STEP, phases: { compute: 1, decode: 0, reduce: 0, apply: 0, publish: 0 }, workerMs: {}, payloadBytes: [], tasks: [1, 1], imbalance: 1, hiddenNorms: [],
  };
}

/** The history lines of `steps` steps from `startedAt`: a validation every 25, a sample and a checkpoint every 100. */
function history(dir: string, startedAt: number, steps: number, floor: number, opts: { from?: number; failureAt?: number; lr?: number; tokensPerSecond?: number } = {}): Exclude<HistoryLine, { type: 'run' } | { type: 'end' }>[] {
  const lines: Exclude<HistoryLine, { type: 'run' } | { type: 'end' }>[] = [];
  for (let s = (opts.from ?? 0) + 1; s <= steps; s++) {
    const time = startedAt + s * MS_PER_STEP;
    lines.push({ type: 'step', data: stepPoint(s, time, floor, opts) });
    if (s === opts.failureAt) lines.push({ type: 'failure', data: { step: s, shard: 1, time, reason: 'crash', message: 'worker exited with code 1' } });
    if (s % 25 === 0) {
      const loss = lossAt(s, floor + 0.1) - 0.05 * Math.sin(s * 1.7);
      lines.push({ type: 'validation', data: { step: s, time: time + 5, loss, bitsPerToken: loss / Math.LN2 } });
    }
    if (s % 100 === 0) {
      lines.push({ type: 'sample', data: { step: s, time: time + 8, text: `the sample of step ${s}` } });
      lines.push({ type: 'checkpoint', data: { step: s, path: join(dir, 'checkpoint.pb'), seconds: 0.05 } });
    }
  }
  return lines;
}

const failOnWarning = (message: string) => {
  throw new Error(`the fixture's recorder warned: ${message}`);
};

const config = (over: Record<string, unknown>) => ({ cell: 'lstm', layers: 1, hidden: 32, embed: 16, seqLen: 16, batch: 8, optimizer: 'adam', lr: 0.002, clip: 1, steps: 300, seed: 1, ...over });

function newRun(base: string, id: string, name: string, over: Record<string, unknown>, extra: Partial<NewRun> = {}): NewRun {
  const dir = join(base, id);
  mkdirSync(dir, { recursive: true });
  return { id, name, kind: 'train', dir, config: config({ out: dir, name, ...over }), backend: 'wasm', stepsTarget: (over.steps as number | undefined) ?? 300, parameters: 9950, ...extra };
}

/**
 * A run that never said how it ended (as after SIGKILL), its heartbeat five minutes old: 80
 * steps and 3 validations, its entry and history written as a recorder writes them.
 */
export function recordKilledRun(path: string, base: string, now = Date.now()): string {
  const killedAt = now - 300_000;
  const killed = newRun(base, FIXTURE_IDS.killed, 'cut-short', { lr: 0.004 }, { startedAt: killedAt - 80 * MS_PER_STEP });
  const db = openRegistry(path);
  try {
    upsertRun(db, killed, killedAt);
    writeBatch(db, killed.id, history(killed.dir, killed.startedAt!, 80, 1.7, { lr: 0.004 }));
  } finally {
    db.close();
  }
  return killed.id;
}

export interface LiveRun {
  id: string;
  /** Records `count` more steps and flushes them, as a real run's recorder does once a second; returns the last step. */
  step(count: number): number;
  readonly lastStep: number;
  /** Ends the recorder (until then it keeps the run's heartbeat fresh). */
  close(): void;
}

/** A running run: its recorder stays open, so it sends heartbeats while the test lives. */
export function recordLiveRun(path: string, base: string, now = Date.now()): LiveRun {
  const startedAt = now - 121 * MS_PER_STEP;
  const running = newRun(base, FIXTURE_IDS.running, 'live', { lr: 0.005, steps: 1000 }, { startedAt, stepsTarget: 1000 });
  const recorder = new RunRecorder(running, path, failOnWarning);
  let lastStep = 0;
  return {
    id: running.id,
    step(count: number) {
      for (const line of history(running.dir, startedAt, lastStep + count, 1.2, { from: lastStep, lr: 0.005, tokensPerSecond: 24_000 })) recorder.record(line);
      lastStep += count;
      recorder.flush();
      return lastStep;
    },
    get lastStep() {
      return lastStep;
    },
    close: () => recorder.close('stopped'),
  };
}

export interface RegistryFixture {
  path: string;
  /** The running run (120 steps so far). */
  live: LiveRun;
  /** Ends the running run's recorder (it would otherwise keep its heartbeat fresh). */
  close(): void;
}

export function writeRegistryFixture(base: string): RegistryFixture {
  const path = join(base, 'gradpool.db');
  const now = Date.now();

  // Finished: 300 steps ten minutes ago, one worker crash at step 120.
  const finished = newRun(base, FIXTURE_IDS.finished, 'baseline', {}, { startedAt: now - 600_000 });
  const rec = new RunRecorder(finished, path, failOnWarning);
  for (const line of history(finished.dir, now - 600_000, 300, 1.6, { failureAt: 120 })) rec.record(line);
  rec.close('finished');

  // Sweep: three runs, each with its own lr and hidden size; the third failed before its first validation.
  const sweep = [
    { lr: 0.01, hidden: 32, floor: 1.45 },
    { lr: 0.003, hidden: 64, floor: 1.3 },
    { lr: 0.001, hidden: 64, floor: 1.9, steps: 20 },
  ];
  sweep.forEach((s, i) => {
    const startedAt = now - 500_000 + i * 30_000;
    const run = newRun(base, FIXTURE_IDS.sweep[i], `sweep-${i}`, { lr: s.lr, hidden: s.hidden }, { startedAt, sweepId: SWEEP_ID });
    const r = new RunRecorder(run, path, failOnWarning);
    for (const line of history(run.dir, startedAt, s.steps ?? 150, s.floor, { lr: s.lr })) r.record(line);
    r.close(s.steps ? 'failed' : 'finished');
  });

  recordKilledRun(path, base, now);

  const live = recordLiveRun(path, base, now);
  live.step(120);
  return { path, live, close: live.close };
}
