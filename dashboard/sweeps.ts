// A sweep as the all-runs dashboard shows it: its runs ranked by best validation loss, with
// the swept values as columns. The swept keys are read from the runs themselves: the config
// keys whose values differ between the sweep's runs (`gradpool sweep` stores each run's
// values in its config), less the bookkeeping keys that differ between any two runs.

import type { RegistryRun } from './registry-view.js';

/** Config keys that differ between any two runs without being swept: where and how a run is kept and shown. */
export const NOT_SWEPT: ReadonlySet<string> = new Set(['out', 'name', 'registry', 'resume', 'host', 'port', 'json', 'quiet']);

export interface SweepRun {
  rank: number;
  run: RegistryRun;
  /** The run's value of each swept key (null where its config lacks the key). */
  values: Record<string, unknown>;
}

export interface SweepTable {
  sweepId: string;
  /** Swept keys, in config order of the first run that has them; a nested key reads "parent.child". */
  keys: string[];
  runs: SweepRun[];
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A config with its object values spread one level ("sweep": {"lr": 1} → "sweep.lr": 1). */
function flatConfig(config: Record<string, unknown>): Map<string, unknown> {
  const flat = new Map<string, unknown>();
  for (const [key, value] of Object.entries(config)) {
    if (NOT_SWEPT.has(key)) continue;
    if (isPlainObject(value)) for (const [sub, v] of Object.entries(value)) flat.set(`${key}.${sub}`, v);
    else flat.set(key, value);
  }
  return flat;
}

/** The keys whose values (compared as JSON; a missing key counts as null) differ between the configs. */
export function sweptKeys(configs: readonly Record<string, unknown>[]): string[] {
  const flats = configs.map(flatConfig);
  const keys = [...new Set(flats.flatMap((f) => [...f.keys()]))];
  return keys.filter((k) => new Set(flats.map((f) => JSON.stringify(f.get(k) ?? null))).size > 1);
}

/**
 * The runs of sweep `sweepId` ranked by best validation loss, lowest first; runs without a
 * validation yet come last, in the order they started. Null when no run carries the id.
 */
export function rankSweep(runs: readonly RegistryRun[], sweepId: string): SweepTable | null {
  const members = runs.filter((r) => r.sweepId === sweepId);
  if (members.length === 0) return null;
  const keys = sweptKeys(members.map((r) => r.config));
  const loss = (r: RegistryRun) => (r.bestValLoss !== null && Number.isFinite(r.bestValLoss) ? r.bestValLoss : Infinity);
  const ranked = members.slice().sort((a, b) => loss(a) - loss(b) || a.startedAt - b.startedAt || a.id.localeCompare(b.id));
  return {
    sweepId,
    keys,
    runs: ranked.map((run, i) => {
      const flat = flatConfig(run.config);
      return { rank: i + 1, run, values: Object.fromEntries(keys.map((k) => [k, flat.get(k) ?? null])) };
    }),
  };
}
