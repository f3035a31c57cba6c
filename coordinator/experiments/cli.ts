// `gradpool experiment <name>`: the classic long-range-dependency experiments,
// trained through the real coordinator and worker pool; reports go to docs/experiments/.

import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../../model/backend.js';
import { ConfigError } from '../../model/config.js';
import { numberFlag, parseFlags } from '../../proto/flags.js';
import { backendFlag } from '../config.js';
import { EXIT_INPUT } from '../exit.js';
import { addingExperiment } from './adding.js';
import { bitMemoryExperiment } from './bitmemory.js';
import { captioningExperiment } from './captioning.js';
import { layerNormExperiment, stabilizerExperiment } from './lm.js';
import { type Report, writeReport } from './report.js';

const EXPERIMENTS = ['bit-memory', 'adding', 'stabilizer', 'layer-norm', 'captioning'] as const;

const EXPERIMENT_HELP = `Usage: gradpool experiment <name> [options]

Experiments:
  bit-memory   P(success | T) for rnn, lstm, gru, and lstm, gru with chrono initialization:
               remember the sign of the first input over T noisy steps
  adding       the adding problem at T = 50 and 100: steps to MSE < 0.01 per cell
  stabilizer   vanilla RNN: hidden-state norm over time with and without the norm-stabilizer;
               training loss with and without gradient clipping
  layer-norm   LSTM against LN-LSTM on the Brown corpus: validation bits per character
  captioning   a captioner on shapes with red squares and blue circles held out: learning curves,
               greedy against beam 3, the compositional split, a gallery picture

Options:
  --quick          a small version that finishes in under 2 minutes (captioning: 3);
                   captioning writes its quick report as captioning-quick.*
  --out DIR        where the report goes (default: docs/experiments)
  --workers N      worker threads (default: available parallelism)
  --seeds N        seeds per configuration (bit-memory, adding)
  --rows A,B       bit-memory: train only these rows (rnn, lstm, gru, lstm+chrono, gru+chrono;
                   none: only rebuild the report) and keep the other rows' runs from the
                   bit-memory.json already in --out (same protocol, lengths and seeds, else an error)
  --steps N        captioning: a trial run of N training steps with small evaluations
  --backend NAME   wasm, cpu or native (default: native when its kernels load, else wasm)`;

export async function experimentCommand(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === '--help' || name === '-h') {
    console.log(EXPERIMENT_HELP);
    return name === undefined ? EXIT_INPUT : 0;
  }
  if (!(EXPERIMENTS as readonly string[]).includes(name)) {
    throw new ConfigError(`unknown experiment "${name}"; allowed: ${EXPERIMENTS.join(', ')}`);
  }
  const values = parseFlags(rest, { quick: { type: 'boolean' }, out: { type: 'string' }, workers: { type: 'string' }, seeds: { type: 'string' }, rows: { type: 'string' }, steps: { type: 'string' }, backend: { type: 'string' } }, 'experiment');
  if (values.help) {
    console.log(EXPERIMENT_HELP);
    return 0;
  }
  const workers = numberFlag(values.workers, '--workers', { integer: true, min: 1, max: 64 }) ?? Math.max(1, availableParallelism());
  const seeds = numberFlag(values.seeds, '--seeds', { integer: true, min: 1, max: 1000 });
  const steps = numberFlag(values.steps, '--steps', { integer: true, min: 1, max: 1_000_000 });
  if (steps !== undefined && name !== 'captioning') throw new ConfigError('--steps is for the captioning experiment');
  const backend = backendFlag(values.backend);
  const out = typeof values.out === 'string' ? values.out : 'docs/experiments';
  if (values.rows !== undefined && name !== 'bit-memory') throw new ConfigError(`--rows is for bit-memory; the experiment is ${name}`);
  const rows = typeof values.rows === 'string' ? values.rows.split(',').map((r) => r.trim()) : undefined;
  await initBackend(backend);
  const log = (line: string) => console.log(line);
  const budget = { workers, backend, quick: !!values.quick, seeds, log };
  const started = performance.now();
  let report: Report;
  switch (name) {
    case 'bit-memory':
      report = await bitMemoryExperiment({ ...budget, rows, previousFile: join(out, 'bit-memory.json'), progress: (r) => writeReport(out, r) });
      break;
    case 'adding':
      report = await addingExperiment(budget);
      break;
    case 'captioning':
      report = await captioningExperiment({ ...budget, steps });
      break;
    case 'stabilizer':
      report = await stabilizerExperiment(budget);
      break;
    default:
      report = await layerNormExperiment(budget);
  }
  const files = writeReport(out, report);
  console.log(`${name}: done in ${((performance.now() - started) / 1000).toFixed(0)} s; wrote ${files.join(', ')}`);
  return 0;
}
