// A sweep's trials: the grid's combinations or the random search's seeded draws, each
// trial's `gradpool train` options, their check (the train command's own), and the rule
// that shares the machine's worker threads between trials running at once.

import { backendUnavailable } from '../../model/backend.js';
import { ConfigError } from '../../model/config.js';
import { Rng } from '../../model/rng.js';
import { resolveTrainConfig, type TrainConfig } from '../config.js';
import { checkOptions, type RangeSpec, type Scalar, type SweepSpec } from './spec.js';

/** The swept options' values of one trial, in the order of the spec's "parameters". */
export type TrialValues = Record<string, Scalar>;

/**
 * Every trial of the sweep, in order. A grid is nested loops over its lists in the order
 * written: the first parameter varies slowest, the last fastest. A random search draws
 * "trials" times, each parameter in turn, from one generator seeded with "seed": the same
 * sweep.json gives the same trials on every machine.
 */
export function planTrials(spec: SweepSpec): TrialValues[] {
  const keys = Object.keys(spec.parameters);
  if (spec.method === 'grid') {
    let trials: TrialValues[] = [{}];
    for (const key of keys) {
      const list = spec.parameters[key] as Scalar[];
      trials = trials.flatMap((t) => list.map((v) => ({ ...t, [key]: v })));
    }
    return trials;
  }
  const rng = new Rng(spec.seed!);
  return Array.from({ length: spec.trials! }, () => {
    const values: TrialValues = {};
    for (const key of keys) {
      const p = spec.parameters[key];
      values[key] = Array.isArray(p) ? p[rng.int(p.length)] : draw(p, rng);
    }
    return values;
  });
}

/**
 * One value of a range: uniform in [min, max], or log-uniform with "log"; with "int" an
 * integer, each of min…max as likely (log: as likely as its share of log [min, max + 1)).
 * Fractions keep 6 significant digits (lr 0.00123457, not 0.0012345678901).
 */
export function draw(r: RangeSpec, rng: Rng): number {
  const u = rng.uniform();
  const top = r.int ? r.max + 1 : r.max;
  const x = r.log ? Math.exp(Math.log(r.min) + (Math.log(top) - Math.log(r.min)) * u) : r.min + (top - r.min) * u;
  const v = r.int ? Math.floor(x) : Number(x.toPrecision(6));
  return Math.min(r.max, Math.max(r.min, v));
}

/** A trial's `gradpool train` options: the fixed ones and its swept values. */
export function trialOptions(spec: SweepSpec, values: TrialValues): Record<string, unknown> {
  return { ...spec.base, ...values };
}

/** "lr=0.001 cell=gru": a trial's swept values, as its lines show them. */
export function describeValues(values: TrialValues): string {
  return Object.entries(values).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
}

/**
 * Every trial's options through `gradpool train`'s checks, before anything starts: a
 * combination the train command would refuse (e.g. "blocks" above a swept "batch") is an
 * error naming the trial. Returns each trial's resolved config.
 */
export function checkTrials(spec: SweepSpec, trials: TrialValues[], where: string): TrainConfig[] {
  return trials.map((values, i) => {
    const options = trialOptions(spec, values);
    const at = `${where}: trial ${i + 1} (${describeValues(values)})`;
    checkOptions(options, at);
    const config = resolveTrainConfig(options, {});
    const unavailable = backendUnavailable(config.backend);
    if (unavailable) throw new ConfigError(`${at}: ${unavailable}`);
    return config;
  });
}

/**
 * The threads rule: `parallel` trials run at once (never more than there are left to run)
 * and share `threads` worker threads: each gets ⌊threads / running⌋, at least 1.
 */
export function threadShare(threads: number, parallel: number, trialsToRun: number): { running: number; workersPerTrial: number } {
  const running = Math.max(1, Math.min(parallel, trialsToRun));
  return { running, workersPerTrial: Math.max(1, Math.floor(threads / running)) };
}
