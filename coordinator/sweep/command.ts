// `gradpool sweep`: start a sweep from its sweep.json, resume one, or show one's trials
// ranked. Everything is checked before the sweep directory or any trial exists.

import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../../model/config.js';
import { MAX_THREADS, numberFlag, parseFlags } from '../../proto/flags.js';
import { DEFAULT_REGISTRY, readConfigFile } from '../config.js';
import { EXIT_INPUT } from '../exit.js';
import { openRegistry, RegistryError } from '../registry/store.js';
import { sweepRuns } from '../registry/sweep-queries.js';
import { checkTrials, planTrials } from './plan.js';
import { rankingTable, rankTrials } from './report.js';
import { runSweep } from './runner.js';
import { nameFromPath, parseSweepSpec } from './spec.js';
import { createSweepDir, DEFAULT_SWEEPS_DIR, findSweepDir, loadSweep, lockHolder, saveState } from './state.js';

export const SWEEP_HELP = `Usage: gradpool sweep --config SWEEP.json [--parallel N] [--threads T] [--registry FILE] [--out DIR]
       gradpool sweep --resume ID|DIR [--parallel N] [--threads T] [--registry FILE] [--out DIR]
       gradpool sweep show ID|DIR [--json] [--out DIR] [--registry FILE]

A grid or random search over gradpool train options. Each trial is a normal run (its own
run directory, inside the sweep's, and registry entry, tagged with the sweep's id); at the
end the trials are listed best first by validation loss, the swept values as columns.
  --config FILE     the sweep: {"name", "method": "grid"|"random", "trials" and "seed" (random),
                    "base": {fixed options}, "parameters": {"lr": [0.001, 0.003],
                    "hidden": {"min": 64, "max": 256, "log": true, "int": true}, …}}
  --parallel N      trials running at once (default: 1)
  --threads T       worker threads shared by the running trials: each gets ⌊T / running⌋, at
                    least 1 (default: available parallelism, ${availableParallelism()} here)
  --resume ID|DIR   continue a sweep: finished trials are skipped, a stopped one resumes from
                    its checkpoint (or starts over without one)
  --registry FILE   the run registry of the trials (default: ${DEFAULT_REGISTRY}; none = off;
                    a resumed sweep keeps its own unless given)
  --out DIR         where sweep directories are (default: ${DEFAULT_SWEEPS_DIR}; a sweep is DIR/<id>)
  --json            show: one JSON object

Ctrl-C (or SIGTERM) stops the running trials after their current step, each saving its
checkpoint, and prints the command that continues the sweep. See README.md, "Sweeps".`;

export async function sweepCommand(args: string[]): Promise<number> {
  if (args.length === 0) {
    console.log(SWEEP_HELP);
    return EXIT_INPUT;
  }
  if (args[0] === 'show') return show(args.slice(1));
  const values = parseFlags(args, {
    config: { type: 'string' }, resume: { type: 'string' }, parallel: { type: 'string' }, threads: { type: 'string' },
    registry: { type: 'string' }, out: { type: 'string' },
  }, 'sweep');
  if (values.help) {
    console.log(SWEEP_HELP);
    return 0;
  }
  const parallel = numberFlag(values.parallel, '--parallel', { integer: true, min: 1, max: MAX_THREADS }) ?? 1;
  const threads = numberFlag(values.threads, '--threads', { integer: true, min: 1, max: MAX_THREADS }) ?? Math.max(1, availableParallelism());
  const registryFlag = typeof values.registry === 'string' ? checkRegistryFlag(values.registry) : undefined;
  const root = typeof values.out === 'string' ? values.out : DEFAULT_SWEEPS_DIR;
  const configPath = typeof values.config === 'string' ? values.config : undefined;
  const resumeFrom = typeof values.resume === 'string' ? values.resume : undefined;
  if (configPath !== undefined && resumeFrom !== undefined) throw new ConfigError('--config and --resume exclude each other: a sweep directory holds its sweep.json');
  if (configPath === undefined && resumeFrom === undefined) throw new ConfigError('--config SWEEP.json (a new sweep) or --resume ID|DIR is required; see gradpool sweep --help');
  const print = (line: string) => console.log(line);

  if (resumeFrom !== undefined) {
    const dir = findSweepDir(resumeFrom, root);
    if (!dir) throw new ConfigError(`--resume ${resumeFrom}: no sweep directory there, nor a sweep with that id in ${root}`);
    const { spec, state } = loadSweep(dir);
    const configs = checkTrials(spec, state.trials.map((t) => t.values), `${dir}/sweep.json`);
    if (registryFlag !== undefined) state.registry = registryFlag;
    if (state.trials.every((t) => t.status === 'finished')) {
      console.log(`sweep ${state.id}: all ${state.trials.length} trials have finished\n`);
      console.log(rankingTable(spec, rankTrials(dir, state)));
      return 0;
    }
    saveState(dir, state);
    return runSweep(dir, spec, state, configs, { parallel, threads, print });
  }
  const spec = parseSweepSpec(readConfigFile(configPath!), configPath!, nameFromPath(configPath!));
  const trials = planTrials(spec);
  const configs = checkTrials(spec, trials, configPath!);
  const { dir, state } = createSweepDir(root, spec, trials, registryFlag ?? resolve(DEFAULT_REGISTRY));
  return runSweep(dir, spec, state, configs, { parallel, threads, print });
}

/** --registry: a file (made absolute: trials and a later --resume may run elsewhere) or none. */
function checkRegistryFlag(value: string): string {
  if (value === '') throw new ConfigError('--registry is ""; allowed: a file name or none');
  return value === 'none' ? value : resolve(value);
}

/** `gradpool sweep show ID|DIR`: the trials ranked; the sweep found by directory, id, or its runs in the registry. */
async function show(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { json: { type: 'boolean' }, out: { type: 'string' }, registry: { type: 'string' }, help: { type: 'boolean' } }, strict: true, allowPositionals: true });
  } catch (e) {
    throw new ConfigError(`${(e as Error).message.split('\n')[0]}; see gradpool sweep --help`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(SWEEP_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new ConfigError('gradpool sweep show takes one sweep id or directory');
  const [id] = positionals;
  const dir = findSweepDir(id, values.out ?? DEFAULT_SWEEPS_DIR) ?? fromRegistry(id, values.registry ?? DEFAULT_REGISTRY);
  if (!dir) throw new ConfigError(`no sweep "${id}": not a sweep directory, not in ${values.out ?? DEFAULT_SWEEPS_DIR}, and no run of it in ${values.registry ?? DEFAULT_REGISTRY}`);
  const { spec, state } = loadSweep(dir);
  // A trial still marked running while no sweep process holds it was cut short.
  const interrupted = lockHolder(dir) === null;
  const ranked = rankTrials(dir, state).map((t) => (interrupted && t.status === 'running' ? { ...t, status: 'stopped' as const } : t));
  if (values.json) {
    console.log(JSON.stringify({ id: state.id, name: spec.name, dir, method: spec.method, parameters: Object.keys(spec.parameters), registry: state.registry, trials: ranked }));
    return 0;
  }
  console.log(`sweep ${state.id} (${spec.name}): ${spec.method} search, ${state.trials.length} trials; ${dir}`);
  console.log(rankingTable(spec, ranked));
  return 0;
}

/** The sweep directory of a sweep's runs: their trial directories' parent. */
function fromRegistry(sweepId: string, registry: string): string | null {
  if (!existsSync(registry)) return null;
  try {
    const db = openRegistry(registry, { readonly: true });
    try {
      const dirs = sweepRuns(db, sweepId).map((r) => dirname(r.dir));
      return dirs.find((d) => existsSync(d)) ?? null;
    } finally {
      db.close();
    }
  } catch (e) {
    if (e instanceof RegistryError) throw new ConfigError(e.message);
    throw e;
  }
}
