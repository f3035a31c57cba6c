// A trainer's state to and from a Checkpoint message, and the rule for what a
// resumed run may change: operational settings yes, anything that changes the math no.

import { ConfigError } from '../model/config.js';
import { Rng } from '../model/rng.js';
import { backendLabel } from '../model/backend.js';
import { CHECKPOINT_FORMAT, type CheckpointMsg } from '../proto/codec.js';
import type { TrainConfig } from './config.js';
import type { Reduction } from './shards.js';
import type { Trainer } from './trainer.js';

/** Keys a resumed run may set differently: they do not change the computed weights. */
const OPERATIONAL = new Set([
  'steps', 'out', 'resume', 'workers', 'host', 'port', 'json', 'quiet',
  'checkpointEvery', 'evalEvery', 'sampleEvery', 'stepTimeout', 'maxNonfinite', 'name', 'sweep', 'registry',
]);

export function checkpointOf(trainer: Trainer, runId: string): CheckpointMsg {
  const { state, config } = trainer;
  // Informational: a language model's place in its token streams (task models draw each batch from the step).
  const epochLength = trainer.batcher?.chunksPerEpoch ?? Number.POSITIVE_INFINITY;
  return {
    format: CHECKPOINT_FORMAT,
    runId,
    configJson: JSON.stringify(config),
    vocab: trainer.vocab.tokens,
    tokenKind: trainer.vocab.kind,
    step: state.step,
    params: state.params,
    optimizer: { t: state.optimizer.t, m: state.optimizer.m, v: state.optimizer.v },
    streamStates: state.states,
    rngState: state.sampleRng.state(),
    tokensSeen: state.tokensSeen,
    dataEpoch: Math.floor(state.step / epochLength),
    dataChunk: state.step % epochLength,
    shards: trainer.shards.length,
    backend: backendLabel(config.backend),
    reduction: trainer.reduction,
  };
}

/** The config a resumed run uses: the saved one, with only operational keys taken from `now`. */
export function resumedConfig(saved: TrainConfig, now: TrainConfig, given: ReadonlySet<string>, dir: string): TrainConfig {
  const merged: Record<string, unknown> = { ...saved };
  for (const key of Object.keys(now)) {
    const a = (saved as Record<string, unknown>)[key];
    const b = (now as Record<string, unknown>)[key];
    if (OPERATIONAL.has(key)) {
      merged[key] = b;
    } else if (given.has(key) && JSON.stringify(a) !== JSON.stringify(b)) {
      throw new ConfigError(
        `--resume ${dir}: "${key}" is ${JSON.stringify(b)} but the run was started with ${JSON.stringify(a)}; ` +
          `a resumed run keeps everything that changes the math (only ${[...OPERATIONAL].join(', ')} may change)`,
      );
    }
  }
  return Object.freeze(merged) as TrainConfig;
}

/** Put a checkpoint's state into a freshly built trainer, checking every size. */
export function restoreInto(trainer: Trainer, msg: CheckpointMsg, dir: string): void {
  const fail = (what: string): never => {
    throw new ConfigError(`--resume ${dir}: ${what}`);
  };
  const vocab = trainer.vocab;
  if (msg.tokenKind !== vocab.kind || msg.vocab.length !== vocab.tokens.length || msg.vocab.some((t, i) => t !== vocab.tokens[i])) {
    fail(`the data's vocabulary (${vocab.kind}, ${vocab.tokens.length} tokens) differs from the checkpoint's (${msg.tokenKind}, ${msg.vocab.length} tokens): resume with the same data and tokenizer`);
  }
  const { state } = trainer;
  if (msg.params.length !== state.params.length) fail(`checkpoint has ${msg.params.length} weights, the model needs ${state.params.length}`);
  if (msg.streamStates.length !== state.states.length) fail(`checkpoint has ${msg.streamStates.length} state values, expected ${state.states.length}`);
  if (msg.optimizer.m.length !== state.optimizer.m.length || msg.optimizer.v.length !== state.optimizer.v.length) {
    fail(`checkpoint's optimizer state does not fit the ${trainer.config.optimizer} optimizer`);
  }
  if (msg.shards !== trainer.shards.length) fail(`checkpoint used ${msg.shards} shards, this run ${trainer.shards.length}`);
  // A run from before the block tree keeps its math: one block per task, summed in block order.
  if (msg.reduction !== 'tree' && msg.reduction !== 'sequential') fail(`checkpoint's reduction "${msg.reduction}" is unknown to this version`);
  trainer.reduction = msg.reduction as Reduction;
  state.step = msg.step;
  state.params.set(msg.params);
  state.optimizer.t = msg.optimizer.t;
  state.optimizer.m.set(msg.optimizer.m);
  state.optimizer.v.set(msg.optimizer.v);
  state.states.set(msg.streamStates);
  state.tokensSeen = msg.tokensSeen;
  state.sampleRng = new Rng(msg.rngState as [number, number, number, number]);
}
