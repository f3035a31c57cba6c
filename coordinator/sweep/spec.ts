// A sweep's definition (sweep.json): which `gradpool train` options vary and how. It is
// checked strictly — an unknown key, a wrong type, a bad value or an empty grid is a
// ConfigError naming the key and the value; plan.ts turns a valid one into trials.
//
//   { "name": "lr-search", "method": "grid" | "random", "trials": 8, "seed": 1,
//     "base": { ...fixed options... },
//     "parameters": { "lr": [0.001, 0.003], "hidden": {"min": 64, "max": 256, "log": true, "int": true} } }

import { resolve } from 'node:path';
import { ConfigError } from '../../model/config.js';
import { resolveTrainConfig, TRAIN_OPTION_KEYS } from '../config.js';

export const METHODS = ['grid', 'random'] as const;
export type Method = (typeof METHODS)[number];

/** The most trials one sweep plans: a grid's combinations, or a random search's "trials". */
export const MAX_TRIALS = 10_000;
const SPEC_KEYS = ['name', 'method', 'trials', 'seed', 'base', 'parameters'];
const RANGE_KEYS = ['min', 'max', 'log', 'int'];

/** Options the sweep sets for every trial itself, and why a sweep.json may not. */
export const SWEEP_CONTROLLED: Readonly<Record<string, string>> = {
  out: 'each trial runs in its own directory inside the sweep directory (gradpool sweep --out)',
  resume: 'gradpool sweep --resume continues the trials',
  name: 'each trial is named <sweep name>#<trial>',
  sweep: 'gradpool sweep gives each trial its own sweep id',
  registry: 'give gradpool sweep --registry FILE',
  workers: 'gradpool sweep --threads and --parallel decide each trial\'s worker threads',
  port: 'each trial\'s dashboard takes a free port',
  json: 'the sweep reads each trial\'s --json output',
  quiet: 'the sweep reads each trial\'s --json output',
};
/** The `gradpool train` options a sweep may fix in "base" or vary in "parameters". */
export const SWEEPABLE_KEYS = TRAIN_OPTION_KEYS.filter((k) => !(k in SWEEP_CONTROLLED));

export type Scalar = string | number | boolean | null;
/** Sampled by random search: uniform (or log-uniform) in [min, max], integers only with "int". */
export interface RangeSpec { min: number; max: number; log: boolean; int: boolean }
/** A list of values (grid: each is tried; random: one is drawn per trial) or a range (random only). */
export type ParameterSpec = Scalar[] | RangeSpec;

export interface SweepSpec {
  name: string;
  method: Method;
  /** Random search only: how many trials, and the seed of their draws. */
  trials?: number;
  seed?: number;
  base: Record<string, unknown>;
  parameters: Record<string, ParameterSpec>;
}

const show = (v: unknown) => (typeof v === 'number' ? String(v) : JSON.stringify(v) ?? String(v));
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A sweep's name: letters, digits, ".", "_", "-" (it names its trials' runs). */
const NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** A default name from the sweep file's name: "configs/lr search.json" → "lr-search". */
export function nameFromPath(path: string): string {
  const base = path.split(/[\\/]/).pop()!.replace(/\.json$/i, '').replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 64);
  return NAME.test(base) ? base : 'sweep';
}

/**
 * The sweep in `raw` (a parsed sweep.json), checked, with defaults filled in and the data
 * and model file paths made absolute (a resumed sweep may run from another directory).
 * `where` starts every message (the file's path).
 */
export function parseSweepSpec(raw: Record<string, unknown>, where: string, defaultName: string): SweepSpec {
  const fail = (message: string): never => {
    throw new ConfigError(`${where}: ${message}`);
  };
  for (const key of Object.keys(raw)) if (!SPEC_KEYS.includes(key)) fail(`unknown key "${key}"; allowed: ${SPEC_KEYS.join(', ')}`);
  const name = raw.name ?? defaultName;
  if (typeof name !== 'string' || !NAME.test(name)) fail(`"name" is ${show(name)}; allowed: 1 to 64 letters, digits, ".", "_" or "-"`);
  const method = raw.method;
  if (method === undefined) fail(`"method" is missing; allowed: ${METHODS.join(', ')}`);
  if (!(METHODS as readonly unknown[]).includes(method)) fail(`"method" is ${show(method)}; allowed: ${METHODS.join(', ')}`);
  const spec: SweepSpec = { name: name as string, method: method as Method, base: {}, parameters: {} };
  const whole = (key: string, v: unknown, min: number, max: number): number =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? v : fail(`"${key}" is ${show(v)}; allowed: an integer from ${min} to ${max}`);
  if (method === 'grid') {
    if (raw.trials !== undefined) fail('"trials" is for method random; a grid runs every combination of its lists');
    if (raw.seed !== undefined) fail('"seed" is for method random; a grid draws nothing at random');
  } else {
    if (raw.trials === undefined) fail(`"trials" is missing; method random needs it: an integer from 1 to ${MAX_TRIALS}`);
    spec.trials = whole('trials', raw.trials, 1, MAX_TRIALS);
    spec.seed = raw.seed === undefined ? 1 : whole('seed', raw.seed, 0, 2 ** 32 - 1);
  }

  const base = raw.base ?? {};
  if (!isObject(base)) fail(`"base" is ${show(base)}; allowed: an object of gradpool train options`);
  for (const key of Object.keys(base as object)) checkKey(key, 'base', fail);
  spec.base = absolutePaths(base as Record<string, unknown>);
  if (spec.base.evalEvery === 0) fail('base: "evalEvery" is 0; a sweep ranks its trials by validation loss: allowed: an integer from 1');
  checkOptions(spec.base, `${where}: base`);

  const parameters = raw.parameters;
  if (parameters === undefined) fail('"parameters" is missing; allowed: an object of the options to vary, e.g. {"lr": [0.001, 0.003]}');
  if (!isObject(parameters)) fail(`"parameters" is ${show(parameters)}; allowed: an object of the options to vary, e.g. {"lr": [0.001, 0.003]}`);
  const keys = Object.keys(parameters as object);
  if (keys.length === 0) fail('"parameters" is empty; a sweep varies at least one option');
  for (const key of keys) {
    checkKey(key, 'parameters', fail);
    if (key in spec.base) fail(`"${key}" is in both "base" and "parameters"; give it in one of them`);
    spec.parameters[key] = parameter(spec, key, (parameters as Record<string, unknown>)[key], where, fail);
  }
  if (spec.method === 'grid') {
    const size = Object.values(spec.parameters).reduce((n, p) => n * (p as Scalar[]).length, 1);
    if (size > MAX_TRIALS) fail(`the grid has ${size} combinations; allowed: at most ${MAX_TRIALS}`);
  }
  return spec;
}

function checkKey(key: string, section: string, fail: (m: string) => never): void {
  if (key in SWEEP_CONTROLLED) fail(`${section}: "${key}" is set by the sweep itself: ${SWEEP_CONTROLLED[key]}`);
  if (!SWEEPABLE_KEYS.includes(key)) fail(`${section}: unknown option "${key}"; allowed: ${SWEEPABLE_KEYS.join(', ')}`);
}

/** Files named relative to the current directory, as `gradpool train` reads them, made absolute. */
function absolutePaths<T extends Record<string, unknown>>(options: T): T {
  const out: Record<string, unknown> = { ...options };
  for (const key of ['data', 'init']) if (typeof out[key] === 'string' && out[key] !== '') out[key] = resolve(out[key] as string);
  return out as T;
}

/**
 * The options checked by `gradpool train`'s own code path (defaults → these → validation).
 * A message that does not name its place (a rule between two keys) gets `where` in front.
 */
export function checkOptions(options: Record<string, unknown>, where: string): void {
  try {
    resolveTrainConfig(options, {}, where);
  } catch (e) {
    if (e instanceof ConfigError && !e.message.startsWith(where)) throw new ConfigError(`${where}: ${e.message}`);
    throw e;
  }
}

function parameter(spec: SweepSpec, key: string, value: unknown, file: string, fail: (m: string) => never): ParameterSpec {
  const at = `parameters.${key}`;
  const allowed = 'allowed: a non-empty list of values or a range {"min", "max", "log", "int"}';
  if (Array.isArray(value)) {
    if (value.length === 0) fail(`${at} is []; ${allowed}`);
    const seen = new Set<string>();
    const list = value.map((v: unknown, i) => {
      if (v !== null && !['string', 'number', 'boolean'].includes(typeof v)) fail(`${at}[${i}] is ${show(v)}; allowed: a number, string, boolean or null`);
      if (seen.has(JSON.stringify(v))) fail(`${at} lists ${show(v)} twice`);
      seen.add(JSON.stringify(v));
      const option = absolutePaths({ [key]: v as Scalar });
      if (key === 'evalEvery' && v === 0) fail(`${at}[${i}] is 0; a sweep ranks its trials by validation loss: allowed: an integer from 1`);
      checkOptions({ ...spec.base, ...option }, `${file}: ${at}[${i}]`);
      return option[key] as Scalar;
    });
    return list;
  }
  if (!isObject(value)) fail(`${at} is ${show(value)}; ${allowed}`);
  if (spec.method === 'grid') fail(`${at} is a range; method grid takes a list of values (a range needs method random)`);
  const r = value as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!RANGE_KEYS.includes(k)) fail(`${at}: unknown key "${k}"; allowed: ${RANGE_KEYS.join(', ')}`);
  for (const k of ['min', 'max']) if (typeof r[k] !== 'number' || !Number.isFinite(r[k])) fail(`${at}.${k} is ${show(r[k])}; allowed: a finite number`);
  for (const k of ['log', 'int']) if (r[k] !== undefined && typeof r[k] !== 'boolean') fail(`${at}.${k} is ${show(r[k])}; allowed: true or false`);
  const range: RangeSpec = { min: r.min as number, max: r.max as number, log: r.log === true, int: r.int === true };
  if (range.min >= range.max) fail(`${at}: "min" (${range.min}) must be below "max" (${range.max})`);
  if (range.log && range.min <= 0) fail(`${at}: a log range needs "min" > 0; it is ${range.min}`);
  if (range.int && !(Number.isInteger(range.min) && Number.isInteger(range.max))) fail(`${at}: an "int" range needs integer "min" and "max"; they are ${range.min} and ${range.max}`);
  for (const end of ['min', 'max'] as const) checkOptions({ ...spec.base, [key]: range[end] }, `${file}: ${at}.${end}`);
  if (!range.int) {
    // A value between the ends with a fraction: an integer option needs "int": true.
    const inside = range.min + (range.max - range.min) * 0.3819660112501051;
    try {
      checkOptions({ ...spec.base, [key]: inside }, `${file}: ${at}`);
    } catch (e) {
      throw new ConfigError(`${(e as Error).message} (a range draws fractions unless it has "int": true)`);
    }
  }
  return range;
}
