// The model's own configuration: what a model file's `gradpool.config` holds.
// Training settings (optimizer, batch, …) live in the coordinator's config.

import { show } from './show.js';

export const CELLS = ['rnn', 'lstm', 'lstm-1997', 'lstm-peephole', 'gru', 'gru-reset-after'] as const;
export type CellName = (typeof CELLS)[number];

/**
 * What the network predicts: `lm`, the next token at every step (token inputs through
 * the embedding); `classify`, one of `outputs` classes after the last step; `regress`,
 * `outputs` real values after the last step (squared error). The last two read vector
 * inputs of `inputSize` values per step instead of tokens.
 */
export const TASKS = ['lm', 'classify', 'regress'] as const;
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
});

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
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const MAX_WIDTH = 16384;

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
  const int = (key: string, lo: number, hi: number): number => {
    const v = merged[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
      throw new ConfigError(`${where}: "${key}" is ${show(v)}; allowed: an integer from ${lo} to ${hi}`);
    }
    return v;
  };
  const layers = int('layers', 1, 64);
  const hidden = int('hidden', 1, MAX_WIDTH);
  const embed = int('embed', 1, MAX_WIDTH);
  if (typeof merged.layerNorm !== 'boolean') {
    throw new ConfigError(`${where}: "layerNorm" is ${show(merged.layerNorm)}; allowed: true or false`);
  }
  const beta = merged.normStabilizer;
  if (typeof beta !== 'number' || !Number.isFinite(beta) || beta < 0 || beta > 1e6) {
    throw new ConfigError(`${where}: "normStabilizer" is ${show(beta)}; allowed: a number from 0 to 1e6`);
  }
  const task = merged.task;
  if (typeof task !== 'string' || !(TASKS as readonly string[]).includes(task)) {
    throw new ConfigError(`${where}: "task" is ${show(task)}; allowed: ${TASKS.join(', ')}`);
  }
  const inputSize = int('inputSize', 0, MAX_WIDTH);
  const outputs = int('outputs', 0, 1_000_000);
  if (task === 'lm' && (inputSize !== 0 || outputs !== 0)) {
    throw new ConfigError(`${where}: a language model (task "lm") reads tokens and predicts the vocabulary: "inputSize" and "outputs" must be 0, got ${inputSize} and ${outputs}`);
  }
  if (task !== 'lm' && (inputSize < 1 || outputs < (task === 'classify' ? 2 : 1))) {
    throw new ConfigError(`${where}: task "${task}" needs "inputSize" ≥ 1 and "outputs" ≥ ${task === 'classify' ? 2 : 1}, got ${inputSize} and ${outputs}`);
  }
  return Object.freeze({
    cell: cell as CellName, layers, hidden, embed, layerNorm: merged.layerNorm, normStabilizer: beta,
    task: task as TaskName, inputSize, outputs,
  });
}
