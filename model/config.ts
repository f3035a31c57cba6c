// The model's own configuration: what a model file's `gradpool.config` holds.
// Training settings (optimizer, batch, …) live in the coordinator's config.

import { show } from './show.js';

export const CELLS = ['rnn', 'lstm', 'lstm-1997', 'lstm-peephole', 'gru', 'gru-reset-after'] as const;
export type CellName = (typeof CELLS)[number];

/**
 * What the network predicts: `lm`, the next token at every step (token inputs through
 * the embedding); `classify`, one of `outputs` classes after the last step; `regress`,
 * `outputs` real values after the last step (squared error). The last two read vector
 * inputs of `inputSize` values per step instead of tokens. `caption`: the next word of a
 * caption at every step, conditioned on an image whose CNN vector is the first input
 * (docs/CAPTIONING.md).
 */
export const TASKS = ['lm', 'classify', 'regress', 'caption'] as const;
export type TaskName = (typeof TASKS)[number];

export interface ModelConfig {
  readonly cell: CellName;
  readonly layers: number;
  readonly hidden: number;
  readonly embed: number;
  /** Layer normalization of every matrix product (and of c for LSTMs), see docs/MODEL.md. */
  readonly layerNorm: boolean;
  /** β of the norm-stabilizer penalty (Krueger & Memisevic 2016); 0 = off. */
  readonly normStabilizer: number;
  readonly task: TaskName;
  /** Values per step of a vector input (classify, regress); 0 for token input (lm). */
  readonly inputSize: number;
  /** Classes (classify) or values (regress) predicted; 0 for lm (the vocabulary decides). */
  readonly outputs: number;
  /** caption: the side in pixels of the square RGB images the encoder reads; 0 otherwise. */
  readonly imageSize: number;
  /** caption: output channels of each CNN block (3×3 conv, ReLU, 2×2 max-pool); empty otherwise. */
  readonly cnn: readonly number[];
  /**
   * caption over precomputed image features: the D values per image its linear encoder
   * reads (no CNN: imageSize 0, cnn empty); 0 for a captioner of images and other tasks.
   */
  readonly featureSize: number;
}

export const MODEL_DEFAULTS: ModelConfig = Object.freeze({
  cell: 'lstm',
  layers: 1,
  hidden: 256,
  embed: 64,
  layerNorm: false,
  normStabilizer: 0,
  task: 'lm',
  inputSize: 0,
  outputs: 0,
  imageSize: 0,
  cnn: Object.freeze([]) as readonly number[],
  featureSize: 0,
});

/** Keys only a captioner sets; language-model files and messages leave them out. */
export const CAPTION_KEYS = ['imageSize', 'cnn', 'featureSize'] as const;

/** Number of gate blocks of H columns each cell's fused matrix has. */
export function gateCount(cell: CellName): number {
  switch (cell) {
    case 'rnn':
      return 1;
    case 'lstm-1997': // i, g, o: no forget gate
    case 'gru':
    case 'gru-reset-after':
      return 3;
    default:
      return 4;
  }
}

export function isLstm(cell: CellName): boolean {
  return cell === 'lstm' || cell === 'lstm-1997' || cell === 'lstm-peephole';
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  /** Read by coordinator/exit.ts: 'input' exits with code 2. */
  readonly kind = 'input';
}

const MAX_WIDTH = 16384;
const MAX_CHANNELS = 4096;
const MAX_CNN_BLOCKS = 8;
/** A captioner's image side in pixels (0: not a captioner, or one over features). */
const IMAGE_SIZE_RANGE: NumberRange = Object.freeze({ integer: true, min: 0, max: 1024 });
/** A captioner's precomputed features per image (0: it reads images). */
export const FEATURE_SIZE_RANGE: NumberRange = Object.freeze({ integer: true, min: 0, max: 1_000_000 });

export interface NumberRange {
  readonly integer: boolean;
  readonly min: number;
  readonly max: number;
}

/**
 * The allowed range of every numeric key, defined once: resolveModelConfig checks these,
 * and the coordinator's options (--layers, --hidden, ...) reuse them.
 */
export const MODEL_RANGES = Object.freeze({
  layers: { integer: true, min: 1, max: 64 },
  hidden: { integer: true, min: 1, max: MAX_WIDTH },
  embed: { integer: true, min: 1, max: MAX_WIDTH },
  normStabilizer: { integer: false, min: 0, max: 1e6 },
  inputSize: { integer: true, min: 0, max: MAX_WIDTH },
  outputs: { integer: true, min: 0, max: 1_000_000 },
} satisfies Record<string, NumberRange>);

/** "an integer from 1 to 64", "a number from 0 to 1000000": what a message says is allowed. */
export function describeRange(r: NumberRange): string {
  return `${r.integer ? 'an integer' : 'a number'} from ${r.min} to ${r.max}`;
}

export function inRange(value: unknown, r: NumberRange): value is number {
  return typeof value === 'number' && Number.isFinite(value) && (!r.integer || Number.isInteger(value)) && value >= r.min && value <= r.max;
}

/**
 * Complete a partial model config with defaults and validate every key.
 * Unknown keys and wrong types are errors naming the key, the value and what is allowed.
 */
export function resolveModelConfig(partial: Record<string, unknown>, where = 'model config'): ModelConfig {
  if (partial === null || typeof partial !== 'object' || Array.isArray(partial)) {
    throw new ConfigError(`${where} must be a JSON object, got ${show(partial)}`);
  }
  for (const key of Object.keys(partial)) {
    if (!(key in MODEL_DEFAULTS)) {
      throw new ConfigError(`${where}: unknown key "${key}"; allowed: ${Object.keys(MODEL_DEFAULTS).join(', ')}`);
    }
  }
  const merged = { ...MODEL_DEFAULTS, ...partial } as Record<string, unknown>;
  const cell = merged.cell;
  if (typeof cell !== 'string' || !(CELLS as readonly string[]).includes(cell)) {
    throw new ConfigError(`${where}: "cell" is ${show(cell)}; allowed: ${CELLS.join(', ')}`);
  }
  const num = (key: keyof typeof MODEL_RANGES): number => {
    const v = merged[key];
    if (!inRange(v, MODEL_RANGES[key])) throw new ConfigError(`${where}: "${key}" is ${show(v)}; allowed: ${describeRange(MODEL_RANGES[key])}`);
    return v;
  };
  const layers = num('layers');
  const hidden = num('hidden');
  const embed = num('embed');
  if (typeof merged.layerNorm !== 'boolean') {
    throw new ConfigError(`${where}: "layerNorm" is ${show(merged.layerNorm)}; allowed: true or false`);
  }
  const beta = num('normStabilizer');
  const task = merged.task;
  if (typeof task !== 'string' || !(TASKS as readonly string[]).includes(task)) {
    throw new ConfigError(`${where}: "task" is ${show(task)}; allowed: ${TASKS.join(', ')}`);
  }
  const inputSize = num('inputSize');
  const outputs = num('outputs');
  if (task === 'lm' && (inputSize !== 0 || outputs !== 0)) {
    throw new ConfigError(`${where}: a language model (task "lm") reads tokens and predicts the vocabulary: "inputSize" and "outputs" must be 0, got ${inputSize} and ${outputs}`);
  }
  if ((task === 'classify' || task === 'regress') && (inputSize < 1 || outputs < (task === 'classify' ? 2 : 1))) {
    throw new ConfigError(`${where}: task "${task}" needs "inputSize" ≥ 1 and "outputs" ≥ ${task === 'classify' ? 2 : 1}, got ${inputSize} and ${outputs}`);
  }
  const imageSize = merged.imageSize;
  if (!inRange(imageSize, IMAGE_SIZE_RANGE)) throw new ConfigError(`${where}: "imageSize" is ${show(imageSize)}; allowed: ${describeRange(IMAGE_SIZE_RANGE)}`);
  const cnn = merged.cnn;
  if (!Array.isArray(cnn) || cnn.some((c) => !(Number.isInteger(c) && c >= 1 && c <= MAX_CHANNELS))) {
    throw new ConfigError(`${where}: "cnn" is ${show(cnn)}; allowed: an array of channel counts, each an integer from 1 to ${MAX_CHANNELS}`);
  }
  const featureSize = merged.featureSize;
  if (!inRange(featureSize, FEATURE_SIZE_RANGE)) throw new ConfigError(`${where}: "featureSize" is ${show(featureSize)}; allowed: ${describeRange(FEATURE_SIZE_RANGE)}`);
  if (task === 'caption') {
    checkCaptioner(where, inputSize, outputs, imageSize, cnn as number[], featureSize, beta);
  } else if (imageSize !== 0 || cnn.length > 0 || featureSize !== 0) {
    throw new ConfigError(`${where}: "imageSize", "cnn" and "featureSize" are for task "caption"; task "${task}" needs 0, [] and 0, got ${imageSize}, ${show(cnn)} and ${featureSize}`);
  }
  return Object.freeze({
    cell: cell as CellName, layers, hidden, embed, layerNorm: merged.layerNorm, normStabilizer: beta,
    task: task as TaskName, inputSize, outputs, imageSize, cnn: Object.freeze([...(cnn as number[])]), featureSize,
  });
}

/**
 * A captioner reads words (no vector inputs, the vocabulary sizes the output) and either
 * images its CNN can pool or `featureSize` precomputed values per image (no CNN).
 */
function checkCaptioner(where: string, inputSize: number, outputs: number, imageSize: number, cnn: readonly number[], featureSize: number, beta: number): void {
  if (inputSize !== 0 || outputs !== 0) {
    throw new ConfigError(`${where}: a captioner (task "caption") reads words and predicts the vocabulary: "inputSize" and "outputs" must be 0, got ${inputSize} and ${outputs}`);
  }
  if (beta !== 0) throw new ConfigError(`${where}: "normStabilizer" is ${beta}; a captioner has none (its captions are whole sequences of different lengths)`);
  if (featureSize > 0) {
    if (imageSize !== 0 || cnn.length > 0) {
      throw new ConfigError(`${where}: a captioner over ${featureSize} precomputed features has a linear encoder, no CNN: "imageSize" and "cnn" must be 0 and [], got ${imageSize} and ${show(cnn)}`);
    }
    return;
  }
  if (cnn.length < 1 || cnn.length > MAX_CNN_BLOCKS) throw new ConfigError(`${where}: "cnn" has ${cnn.length} blocks; allowed: 1 to ${MAX_CNN_BLOCKS}`);
  const pool = 2 ** cnn.length;
  if (imageSize < pool || imageSize % pool !== 0) {
    throw new ConfigError(`${where}: "imageSize" is ${imageSize}; ${cnn.length} pooling blocks need a positive multiple of ${pool}`);
  }
}
