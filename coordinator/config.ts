// The run's one config object: defaults → optional JSON file (--config) → CLI flags
// → validation → frozen. The same object goes to workers, into checkpoints and
// model files, and to the dashboard. Every option carries its own description.

import { readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { CELLS, ConfigError, describeRange, inRange, MODEL_DEFAULTS, MODEL_RANGES, type ModelConfig, type NumberRange, resolveModelConfig } from '../model/config.js';
import { DEFAULT_GATE_INIT, type GateInit } from '../model/params.js';
import { BACKENDS, type BackendName, backendUnavailable, DEFAULT_BACKEND, isBackendName } from '../model/backend.js';
import { DEFAULT_WORD_VOCAB_CAP, TOKEN_KINDS, type TokenKind } from '../model/tokenizer.js';
import { LR_SCHEDULES, OPTIMIZERS } from './optim.js';
import { MAX_THREADS, numberFlag } from '../proto/flags.js';
import { NATS_HELP } from '../proto/nats.js';
import { CAPTION_DEFAULTS, checkTaskKeys, cnnChannels } from './caption/config.js';
import { featureSizeOf } from './caption/features.js';

export { CAPTION_DEFAULTS, cnnChannels } from './caption/config.js';

type Kind = 'string' | 'int' | 'number' | 'bool' | 'enum';

interface OptionDef {
  key: string;
  kind: Kind;
  default: unknown;
  help: string;
  values?: readonly string[];
  min?: number;
  max?: number;
  /** A null default means "unset" (allowed to stay null). */
  nullable?: boolean;
}

/** A model key's option: its kind and range are the model's own (model/config.ts MODEL_RANGES). */
function modelOption(key: keyof typeof MODEL_RANGES, help: string): OptionDef {
  const r = MODEL_RANGES[key];
  return { key, kind: r.integer ? 'int' : 'number', default: MODEL_DEFAULTS[key], min: r.min, max: r.max, help };
}

/** A local worker count: `train --workers`, `gradpool scale --workers` and a run's control.scale. */
export const WORKER_COUNT: NumberRange = Object.freeze({ integer: true, min: 0, max: MAX_THREADS });

/** Where runs are recorded unless --registry says otherwise: beside the default run directories. */
export const DEFAULT_REGISTRY = 'runs/gradpool.db';
/** A sweep id as `gradpool sweep` makes them (8 hex digits), or any such short token. */
const SWEEP_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Streams per block when --blocks is not given: B=32 (the default) makes 2 blocks. */
export const STREAMS_PER_SHARD = 16;

/** What `gradpool train` trains: a language model, or an image captioner (docs/CAPTIONING.md). */
export const TRAIN_TASKS = ['lm', 'caption'] as const;

const defs: OptionDef[] = [
  { key: 'data', kind: 'string', default: null, nullable: true, help: 'UTF-8 text file to train on (default: the Brown corpus)' },
  { key: 'tokens', kind: 'enum', values: TOKEN_KINDS, default: 'char', help: 'tokenizer: characters or words' },
  { key: 'vocabCap', kind: 'int', default: DEFAULT_WORD_VOCAB_CAP, min: 2, max: 1_000_000, help: 'word vocabulary size, <unk> included' },
  { key: 'cell', kind: 'enum', values: CELLS, default: MODEL_DEFAULTS.cell, help: 'recurrent cell' },
  modelOption('layers', 'stacked recurrent layers'),
  modelOption('hidden', 'hidden size H'),
  modelOption('embed', 'embedding size E'),
  { key: 'layerNorm', kind: 'bool', default: MODEL_DEFAULTS.layerNorm, help: 'layer normalization in every cell' },
  modelOption('normStabilizer', 'norm-stabilizer β (0 = off)'),
  { key: 'forgetBias', kind: 'number', default: DEFAULT_GATE_INIT.forgetBias, min: -100, max: 100, help: 'initial LSTM forget-gate bias' },
  { key: 'updateBias', kind: 'number', default: DEFAULT_GATE_INIT.updateBias, nullable: true, min: -100, max: 100, help: 'initial GRU update-gate bias; negative keeps memory (default: uniform like every bias)' },
  { key: 'chronoInit', kind: 'number', default: DEFAULT_GATE_INIT.chronoTmax, min: 0, max: 1e6, help: 'chrono initialization of the gate biases for dependencies up to TMAX steps (0 = off)' },
  { key: 'seqLen', kind: 'int', default: 64, min: 1, max: 100_000, help: 'truncated BPTT length T' },
  { key: 'batch', kind: 'int', default: 32, min: 1, max: 100_000, help: 'streams per global batch B' },
  { key: 'blocks', kind: 'int', default: null, nullable: true, min: 1, max: 100_000, help: `blocks per step K, the unit of the run's math like B (default ⌈B/${STREAMS_PER_SHARD}⌉, never dependent on the workers; at most B); each step the blocks are grouped into tasks for the workers, and at most K workers share a step (this was --shards until 2026-12-02)` },
  { key: 'workers', kind: 'int', default: null, nullable: true, min: WORKER_COUNT.min, max: WORKER_COUNT.max, help: 'local worker threads W (default: available parallelism; 0 = remote workers only, with --nats)' },
  { key: 'stepTimeout', kind: 'number', default: 600, min: 0.001, max: 86400, help: 'seconds a shard may take (or, with --nats, wait for a worker) before it is re-run elsewhere' },
  { key: 'maxNonfinite', kind: 'int', default: 5, min: 1, max: 1e6, help: 'consecutive non-finite steps (skipped) before the run stops' },
  { key: 'optimizer', kind: 'enum', values: OPTIMIZERS, default: 'adam', help: 'update rule' },
  { key: 'lr', kind: 'number', default: 2e-3, min: 0, max: 1e3, help: 'learning rate' },
  { key: 'warmup', kind: 'int', default: 0, min: 0, max: 1e9, help: 'linear warm-up steps' },
  { key: 'lrSchedule', kind: 'enum', values: LR_SCHEDULES, default: 'constant', help: 'learning-rate schedule after warm-up' },
  { key: 'clip', kind: 'number', default: 5, min: 0, max: 1e9, help: 'global gradient-norm threshold (0 = off)' },
  { key: 'steps', kind: 'int', default: 2000, min: 1, max: 1e9, help: 'total steps of the run' },
  { key: 'seed', kind: 'int', default: 1, min: 0, max: 2 ** 32 - 1, help: 'random seed (weights, sampling)' },
  { key: 'out', kind: 'string', default: null, nullable: true, help: 'run directory (default runs/<timestamp>)' },
  { key: 'name', kind: 'string', default: null, nullable: true, help: 'a name for the run in the registry (gradpool runs)' },
  { key: 'sweep', kind: 'string', default: null, nullable: true, help: "set by gradpool sweep: the id of the sweep this run is a trial of, recorded with the run (its directory's history.jsonl and the registry)" },
  { key: 'registry', kind: 'string', default: DEFAULT_REGISTRY, help: 'SQLite file every run and its history are recorded in; none = off' },
  { key: 'resume', kind: 'string', default: null, nullable: true, help: 'continue the run in this directory' },
  { key: 'init', kind: 'string', default: null, nullable: true, help: "start a new run from this model file's weights and vocabulary (model options default to the file's)" },
  { key: 'checkpointEvery', kind: 'int', default: 200, min: 0, max: 1e9, help: 'steps between checkpoints (0 = only at the end)' },
  { key: 'evalEvery', kind: 'int', default: 200, min: 0, max: 1e9, help: 'steps between validation losses (0 = off)' },
  { key: 'sampleEvery', kind: 'int', default: 200, min: 0, max: 1e9, help: 'steps between generated samples (0 = off)' },
  { key: 'backend', kind: 'enum', values: BACKENDS, default: DEFAULT_BACKEND, help: 'tfjs backend' },
  { key: 'host', kind: 'string', default: '127.0.0.1', help: 'address the dashboard binds to' },
  { key: 'port', kind: 'int', default: 8080, min: 0, max: 65535, help: 'dashboard port (0 = any free port)' },
  { key: 'json', kind: 'bool', default: false, help: 'print one JSON line per logged step' },
  { key: 'quiet', kind: 'bool', default: false, help: 'print nothing but errors' },
  { key: 'task', kind: 'enum', values: TRAIN_TASKS, default: 'lm', help: 'a language model, or an image captioner (CNN encoder + recurrent decoder), with its own defaults for --steps, --lr, --warmup, --lr-schedule, --seq-len, --eval-every and --checkpoint-every (docs/CAPTIONING.md)' },
  { key: 'dataset', kind: 'string', default: null, nullable: true, help: 'caption: shapes (generated), or a directory with a Flickr8k-style captions file and its images (caption default: shapes)' },
  { key: 'cnn', kind: 'string', default: null, nullable: true, help: 'caption: output channels of each CNN block, comma-separated, or none with --features (caption default: 16,32,64)' },
  { key: 'imageSize', kind: 'int', default: null, nullable: true, min: 1, max: 1024, help: "caption: the side in pixels of the encoder's images (caption default: 64, the side of shapes)" },
  { key: 'shapesCount', kind: 'int', default: null, nullable: true, min: 10, max: 10_000_000, help: 'caption on shapes: images in the dataset, split 80/10/10 into train, validation and test as gradpool shapes splits them (caption default: 50000)' },
  { key: 'shapesSeed', kind: 'int', default: null, nullable: true, min: 0, max: 2 ** 32 - 1, help: 'caption on shapes: the seed of its images (caption default: 1)' },
  { key: 'holdout', kind: 'string', default: null, nullable: true, help: 'caption on shapes: colour–shape pairs kept out of train, validation and test, e.g. red:square,blue:circle' },
  { key: 'features', kind: 'string', default: null, nullable: true, help: 'caption on a directory: precomputed image features (a safetensors file, float32 tensor "features" [N, D], metadata "images" naming each row) read by a linear encoder instead of a CNN over the images' },
];

export type TrainConfig = Readonly<{
  task: (typeof TRAIN_TASKS)[number];
  data: string | null;
  dataset: string | null;
  cnn: string | null;
  imageSize: number | null;
  shapesCount: number | null;
  shapesSeed: number | null;
  holdout: string | null;
  features: string | null;
  tokens: TokenKind;
  vocabCap: number;
  cell: ModelConfig['cell'];
  layers: number;
  hidden: number;
  embed: number;
  layerNorm: boolean;
  normStabilizer: number;
  forgetBias: number;
  updateBias: number | null;
  chronoInit: number;
  seqLen: number;
  batch: number;
  blocks: number | null;
  workers: number | null;
  stepTimeout: number;
  maxNonfinite: number;
  optimizer: (typeof OPTIMIZERS)[number];
  lr: number;
  warmup: number;
  lrSchedule: (typeof LR_SCHEDULES)[number];
  clip: number;
  steps: number;
  seed: number;
  out: string | null;
  name: string | null;
  sweep: string | null;
  registry: string;
  resume: string | null;
  init: string | null;
  checkpointEvery: number;
  evalEvery: number;
  sampleEvery: number;
  backend: BackendName;
  host: string;
  port: number;
  json: boolean;
  quiet: boolean;
}>;

export const TRAIN_DEFAULTS = Object.freeze(Object.fromEntries(defs.map((d) => [d.key, d.default]))) as TrainConfig;

/** camelCase key → --kebab-case flag. */
export function flagOf(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

function describe(d: OptionDef): string {
  if (d.kind === 'enum') return `one of ${d.values!.join(', ')}`;
  if (d.kind === 'bool') return 'true or false';
  if (d.kind === 'string') return d.nullable ? 'a non-empty string or null' : 'a non-empty string';
  return describeRange({ integer: d.kind === 'int', min: d.min!, max: d.max! });
}

/**
 * A bad value as the message shows it: numbers as written (JSON would print Infinity as
 * null), anything long cut short, and a value too deeply nested for JSON.stringify named.
 */
function show(value: unknown): string {
  if (typeof value === 'number') return String(value);
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = Array.isArray(value) ? 'a deeply nested array' : 'a deeply nested object';
  }
  return text.length > 80 ? `${text.slice(0, 80)}… (${text.length} characters)` : text;
}

function check(d: OptionDef, value: unknown, where: string): unknown {
  const bad = () => new ConfigError(`${where}: "${d.key}" is ${show(value)}; allowed: ${describe(d)}`);
  if (value === null && d.nullable) return null;
  switch (d.kind) {
    case 'string':
      if (typeof value !== 'string' || value.length === 0) throw bad();
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw bad();
      return value;
    case 'enum':
      if (typeof value !== 'string' || !d.values!.includes(value)) throw bad();
      return value;
    default:
      if (typeof value !== 'number' || !Number.isFinite(value)) throw bad();
      if (d.kind === 'int' && !Number.isInteger(value)) throw bad();
      if (value < d.min! || value > d.max!) throw bad();
      return value;
  }
}

/** Parse a flag's text into the option's type (the value is validated afterwards). */
function parseFlag(d: OptionDef, text: string | boolean): unknown {
  if (d.kind === 'bool') {
    if (typeof text === 'boolean') return text;
    if (text === 'true') return true;
    if (text === 'false') return false;
    return text;
  }
  if (d.kind === 'int' || d.kind === 'number') {
    const n = typeof text === 'string' && text.trim() !== '' ? Number(text) : NaN;
    return Number.isNaN(n) ? text : n;
  }
  return text;
}

export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    // Only a regular file: a FIFO blocks and a device such as /dev/zero never ends.
    const stats = statSync(path);
    if (stats.isDirectory()) throw new ConfigError(`--config ${path}: is a directory; allowed: a JSON file`);
    if (!stats.isFile()) throw new ConfigError(`--config ${path}: is not a regular file (a device, FIFO or socket); allowed: a JSON file`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`--config ${path}: cannot read it (${(e as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`--config ${path}: not valid JSON (${(e as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    const got = parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : `a ${typeof parsed}`;
    throw new ConfigError(`--config ${path}: holds ${got}; allowed: a JSON object of options`);
  }
  return parsed as Record<string, unknown>;
}

/**
 * A config written before 2026-12-02 (a checkpoint's, a saved run's config.json) calls K
 * "shards"; it means the same blocks, so it is read as "blocks". On the command line
 * `--shards` is retired with a message (retiredFlag).
 */
function legacyKeys(file: Record<string, unknown>, filePath: string): Record<string, unknown> {
  if (!Object.hasOwn(file, 'shards')) return file;
  if (Object.hasOwn(file, 'blocks')) throw new ConfigError(`${filePath}: "shards" (the old name of "blocks") and "blocks" are both given; keep "blocks"`);
  const { shards, ...rest } = file;
  return { ...rest, blocks: shards };
}

/** The message for a flag that no longer exists, or null. */
export function retiredFlag(flag: string): string | null {
  if (flag === '--shards' || flag.startsWith('--shards=')) {
    return `--shards was retired: a step's unit of math is the block, set with --blocks K (default ⌈B/${STREAMS_PER_SHARD}⌉; the same number --shards took); how many tasks a step is cut into follows the workers and never changes the result`;
  }
  return null;
}

/**
 * defaults → file → flags → validation → frozen. `flags` maps camelCase keys to the raw
 * text (or boolean) given on the command line.
 */
export function resolveTrainConfig(
  file: Record<string, unknown> | null,
  flags: Record<string, string | boolean>,
  filePath = 'config file',
): TrainConfig {
  const byKey = new Map(defs.map((d) => [d.key, d]));
  const merged: Record<string, unknown> = { ...TRAIN_DEFAULTS };
  if (file) {
    for (const [key, value] of Object.entries(legacyKeys(file, filePath))) {
      const d = byKey.get(key);
      if (!d) throw new ConfigError(`${filePath}: unknown key "${key}"; allowed: ${defs.map((x) => x.key).join(', ')}`);
      merged[key] = check(d, value, filePath);
    }
  }
  for (const [key, text] of Object.entries(flags)) {
    const d = byKey.get(key);
    if (!d) throw new ConfigError(`unknown option ${flagOf(key)}; see --help`);
    merged[key] = check(d, parseFlag(d, text), flagOf(key));
  }
  if (merged.task === 'caption') {
    // A captioner's own defaults, for every key neither the file nor a flag set.
    const given = (key: string) => (file && Object.hasOwn(file, key)) || Object.hasOwn(flags, key);
    // Over precomputed features there is no CNN and no image side.
    const noCnn = merged.features !== null ? { cnn: 'none', imageSize: null } : {};
    for (const [key, value] of Object.entries({ ...CAPTION_DEFAULTS, ...noCnn })) if (!given(key)) merged[key] = value;
    // The warm-up default fits a short run: at most a tenth of its steps.
    if (!given('warmup')) merged.warmup = Math.min(CAPTION_DEFAULTS.warmup, Math.floor((merged.steps as number) / 10));
  }
  const cfg = merged as TrainConfig;
  checkTaskKeys(cfg);
  if (cfg.blocks !== null && cfg.blocks > cfg.batch) {
    throw new ConfigError(`"blocks" is ${cfg.blocks}; allowed: at most the batch size (${cfg.batch}), one stream or more per block`);
  }
  checkGateInit(cfg);
  if (cfg.warmup > cfg.steps) throw new ConfigError(`"warmup" is ${cfg.warmup}; allowed: at most "steps" (${cfg.steps})`);
  if (cfg.json && cfg.quiet) throw new ConfigError('--json and --quiet exclude each other');
  if (cfg.sweep !== null && !SWEEP_ID.test(cfg.sweep)) throw new ConfigError(`"sweep" is ${JSON.stringify(cfg.sweep)}; allowed: 1 to 64 letters, digits, ".", "_" or "-"`);
  modelConfigOf(cfg);
  return Object.freeze({ ...cfg });
}

/** Gate-bias options fit the cell they initialize (docs/MODEL.md). */
function checkGateInit(cfg: TrainConfig): void {
  const forget = cfg.cell === 'lstm' || cfg.cell === 'lstm-peephole';
  const gru = cfg.cell.startsWith('gru');
  if (cfg.chronoInit > 0 && cfg.chronoInit <= 2) throw new ConfigError(`"chronoInit" is ${cfg.chronoInit}; allowed: 0 (off) or a number of steps above 2`);
  if (cfg.chronoInit > 0 && !forget && !gru) {
    throw new ConfigError(`"chronoInit" needs a cell with a forget or update gate (lstm, lstm-peephole, gru, gru-reset-after); the cell is ${cfg.cell}`);
  }
  if (cfg.forgetBias !== DEFAULT_GATE_INIT.forgetBias && !forget) throw new ConfigError(`"forgetBias" needs an LSTM with a forget gate (lstm, lstm-peephole); the cell is ${cfg.cell}`);
  if (cfg.updateBias !== null && !gru) throw new ConfigError(`"updateBias" needs a GRU (gru, gru-reset-after); the cell is ${cfg.cell}`);
  if (cfg.chronoInit > 0 && (cfg.forgetBias !== DEFAULT_GATE_INIT.forgetBias || cfg.updateBias !== null)) {
    throw new ConfigError('"chronoInit" sets the gate biases itself: give it without "forgetBias" or "updateBias"');
  }
}

/** The gate-bias initialization of a run's config. */
export function gateInitOf(cfg: TrainConfig): GateInit {
  return { forgetBias: cfg.forgetBias, updateBias: cfg.updateBias, chronoTmax: cfg.chronoInit };
}

export function modelConfigOf(cfg: TrainConfig): ModelConfig {
  const { cell, layers, hidden, embed, layerNorm, normStabilizer } = cfg;
  if (cfg.task === 'caption') {
    // Over precomputed features, D comes from the file's header: the model is as wide as its rows.
    const encoder = cfg.features !== null ? { featureSize: featureSizeOf(cfg.features) } : { imageSize: cfg.imageSize, cnn: cnnChannels(cfg.cnn!) };
    return resolveModelConfig({ cell, layers, hidden, embed, layerNorm, normStabilizer, task: 'caption', ...encoder });
  }
  return resolveModelConfig({ cell, layers, hidden, embed, layerNorm, normStabilizer });
}

/**
 * The one check of a worker count, as a flag's text (`gradpool scale --workers 4`) or a number
 * (a run's control.scale): `FLAG is VALUE; allowed: an integer from 0 to 1024` when it is none.
 */
export function checkWorkerCount(value: string | number, flag: string): number {
  const n = typeof value === 'string' ? numberFlag(value, flag, WORKER_COUNT)! : value;
  if (!inRange(n, WORKER_COUNT)) throw new ConfigError(`${flag} is ${show(n)}; allowed: ${describeRange(WORKER_COUNT)}`);
  return n;
}

/** --backend of eval, sample and experiment: the tfjs backend, wasm when absent. */
export function backendFlag(value: string | boolean | undefined): BackendName {
  if (value === undefined) return DEFAULT_BACKEND;
  if (!isBackendName(value)) throw new ConfigError(`--backend is ${JSON.stringify(value)}; allowed: ${BACKENDS.join(', ')}`);
  const unavailable = backendUnavailable(value);
  if (unavailable) throw new ConfigError(unavailable);
  return value;
}

/** Worker threads: --workers, or the machine's available parallelism. */
export function effectiveWorkers(cfg: TrainConfig): number {
  return cfg.workers ?? Math.max(1, availableParallelism());
}

/**
 * Blocks per step, K: the unit of the run's math (docs/PARALLEL.md). It comes from the
 * config alone — `--blocks`, else blocks of at most STREAMS_PER_SHARD streams — never
 * from the workers a run happens to have. More blocks let more workers share a step;
 * larger blocks make each worker's recurrent product (one row per stream) more efficient.
 */
export function effectiveShards(cfg: Pick<TrainConfig, 'blocks' | 'batch'>): number {
  return cfg.blocks ?? Math.ceil(cfg.batch / STREAMS_PER_SHARD);
}

/** `gradpool train --help`: every option with its description and default. */
export function trainHelp(): string {
  const rows = defs.map((d) => {
    const metavar: Record<string, string> = { dataset: 'shapes|DIR', cnn: 'C1,C2,…|none', features: 'FILE', imageSize: 'PIXELS', shapesCount: 'N', shapesSeed: 'S', holdout: 'COLOUR:SHAPE,…', data: 'FILE', out: 'DIR', resume: 'DIR', init: 'FILE', host: 'ADDRESS', normStabilizer: 'BETA', seqLen: 'T', batch: 'B', blocks: 'K', workers: 'W', steps: 'N', stepTimeout: 'SECONDS', name: 'NAME', sweep: 'ID', registry: 'FILE', chronoInit: 'TMAX', forgetBias: 'B_F', updateBias: 'B_Z' };
    const flag = flagOf(d.key) + (d.kind === 'bool' ? '' : ' ' + (d.kind === 'enum' ? d.values!.join('|') : metavar[d.key] ?? d.kind.toUpperCase()));
    const def = d.default === null ? '' : ` (default: ${d.default})`;
    return `  ${flag.padEnd(38)} ${d.help}${def}`;
  });
  return [
    'Usage: gradpool train [options]', '', 'Options:', '  --config FILE.json'.padEnd(40) + ' read options from a JSON file (flags win)', ...rows,
    '  --help'.padEnd(40) + ' show this help', '', 'Remote workers (docs/SCALING.md; these are never saved with the run):', NATS_HELP,
  ].join('\n');
}

export const TRAIN_OPTION_KEYS = defs.map((d) => d.key);
export const BOOL_KEYS = new Set(defs.filter((d) => d.kind === 'bool').map((d) => d.key));
