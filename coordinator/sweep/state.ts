// A sweep's directory: its definition, which trials finished, and the trials' own run
// directories — everything `gradpool sweep --resume` and `gradpool sweep show` need.
//
//   runs/sweeps/<id>/sweep.json      the sweep as checked (paths absolute, defaults filled in)
//                    state.json      id, registry, every trial: values, status, run id
//                    sweep.lock      the pid of the gradpool sweep running it
//                    trial-001/      trial 1's run directory (gradpool train --out)
//                    trial-001.json  the options trial 1 was last started with (--config)
//                    trial-001.log   its output

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../model/config.js';
import { ioReason } from '../../model/modelfile.js';
import { readConfigFile } from '../config.js';
import { planTrials, type TrialValues } from './plan.js';
import { parseSweepSpec, type SweepSpec } from './spec.js';

export const SPEC_FILE = 'sweep.json';
export const STATE_FILE = 'state.json';
const LOCK_FILE = 'sweep.lock';
/** Where sweep directories go unless --out says otherwise. */
export const DEFAULT_SWEEPS_DIR = 'runs/sweeps';

export const TRIAL_STATUSES = ['pending', 'running', 'finished', 'stopped', 'failed'] as const;
export type TrialStatus = (typeof TRIAL_STATUSES)[number];

export interface TrialState {
  /** 1-based, in plan order. */
  index: number;
  values: TrialValues;
  status: TrialStatus;
  /** The run's id (registry, checkpoint) once it has started. */
  runId: string | null;
  attempts: number;
  /** Why it failed, when it did. */
  error: string | null;
}

export interface SweepState {
  id: string;
  created: string;
  /** The registry the trials record in (an absolute path), or "none". */
  registry: string;
  trials: TrialState[];
}

/** trial-001 … : zero-padded so the directory lists in trial order. */
export function trialName(index: number, count: number): string {
  return `trial-${String(index).padStart(Math.max(3, String(count).length), '0')}`;
}

function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  renameSync(tmp, path);
}

/** A new sweep directory under `root` with a fresh id; nothing is written before the sweep is checked. */
export function createSweepDir(root: string, spec: SweepSpec, trials: TrialValues[], registry: string): { dir: string; state: SweepState } {
  let id: string;
  do id = randomBytes(4).toString('hex');
  while (existsSync(join(root, id)));
  const dir = join(root, id);
  const state: SweepState = {
    id, created: new Date().toISOString(), registry,
    trials: trials.map((values, i) => ({ index: i + 1, values, status: 'pending', runId: null, attempts: 0, error: null })),
  };
  try {
    mkdirSync(dir, { recursive: true });
    writeJsonAtomic(join(dir, SPEC_FILE), spec);
    writeJsonAtomic(join(dir, STATE_FILE), state);
  } catch (e) {
    throw new ConfigError(`--out ${root}: cannot create the sweep directory ${dir}: ${ioReason(e)}`);
  }
  return { dir, state };
}

export function saveState(dir: string, state: SweepState): void {
  writeJsonAtomic(join(dir, STATE_FILE), state);
}

/** A sweep directory's definition and state, checked against each other. */
export function loadSweep(dir: string): { spec: SweepSpec; state: SweepState } {
  const specPath = join(dir, SPEC_FILE);
  if (!existsSync(specPath)) throw new ConfigError(`${dir}: not a sweep directory (no ${SPEC_FILE})`);
  const spec = parseSweepSpec(readConfigFile(specPath), specPath, 'sweep');
  const statePath = join(dir, STATE_FILE);
  let state: SweepState;
  try {
    state = JSON.parse(readFileSync(statePath, 'utf8')) as SweepState;
  } catch (e) {
    throw new ConfigError(`${statePath}: cannot read it (${(e as Error).message})`);
  }
  const planned = planTrials(spec);
  const fits = Array.isArray(state.trials) && state.trials.length === planned.length && typeof state.id === 'string' && typeof state.registry === 'string'
    && state.trials.every((t, i) => t.index === i + 1 && JSON.stringify(t.values) === JSON.stringify(planned[i]) && TRIAL_STATUSES.includes(t.status));
  if (!fits) throw new ConfigError(`${statePath}: does not match the trials of ${specPath} (was either file edited?)`);
  return { spec, state };
}

/**
 * The directory of a sweep given by its directory or its id (under `root`); null when
 * neither names one.
 */
export function findSweepDir(idOrDir: string, root: string): string | null {
  for (const dir of [idOrDir, join(root, idOrDir)]) if (existsSync(join(dir, SPEC_FILE))) return dir;
  return null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of the live `gradpool sweep` running this sweep, if any. */
export function lockHolder(dir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dir, LOCK_FILE), 'utf8'));
    return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : null;
  } catch {
    return null;
  }
}

/** Takes the sweep for this process (one `gradpool sweep` per sweep at a time); returns its release. */
export function lockSweep(dir: string): () => void {
  const path = join(dir, LOCK_FILE);
  const holder = lockHolder(dir);
  if (holder !== null && holder !== process.pid) throw new ConfigError(`sweep ${dir} is being run by process ${holder}; stop it first (or wait for it)`);
  try {
    writeJsonAtomic(path, process.pid);
  } catch (e) {
    throw new ConfigError(`sweep ${dir}: cannot write ${LOCK_FILE}: ${ioReason(e)}`);
  }
  return () => rmSync(path, { force: true });
}
