// `gradpool train --init FILE`: a new run (step 0, fresh optimizer state) from a model
// file's weights, whether gradpool or PyTorch wrote it. The file decides the model and the
// vocabulary: model options default to the file's, one given that disagrees is an error
// naming both values, and the data is encoded with the file's vocabulary. A resumed
// --init run takes weights and vocabulary from its checkpoint: the file is not read again.

import { ConfigError } from '../model/config.js';
import { type ModelFile, loadModelFile } from '../model/modelfile.js';
import { DataError, encode, isTokenKind, type Vocab } from '../model/tokenizer.js';
import type { CheckpointMsg } from '../proto/codec.js';
import { type TrainConfig, modelConfigOf, resolveTrainConfig } from './config.js';
import { type Corpus, loadBrownCorpus, readTextFile, splitTrainVal } from './data.js';

/** Options the model file decides: its model config, tokenization and vocabulary size. */
const FROM_FILE = ['cell', 'layers', 'hidden', 'embed', 'layerNorm', 'normStabilizer', 'tokens', 'vocabCap'] as const;
/** Options that only initialize weights, which an --init run takes from the file instead. */
const WEIGHT_INIT = ['forgetBias', 'updateBias', 'chronoInit'] as const;

type FileOptions = Pick<TrainConfig, (typeof FROM_FILE)[number]>;

/** The options a model file fixes, as a run's config spells them. */
export function fileOptions(model: ModelFile): FileOptions {
  const { cell, layers, hidden, embed, layerNorm, normStabilizer } = model.config;
  return { cell, layers, hidden, embed, layerNorm, normStabilizer, tokens: model.tokens, vocabCap: model.vocab.length };
}

/**
 * The config of a run started from `model` (read from `requested.init`): the file's model
 * options over the requested ones. `given` holds the keys set on the command line or in
 * --config; one of them that disagrees with the file, or sets initial weights, is an error.
 */
export function initConfig(requested: TrainConfig, given: ReadonlySet<string>, model: ModelFile): TrainConfig {
  const path = requested.init!;
  const fromFile = fileOptions(model) as Record<string, unknown>;
  const merged: Record<string, unknown> = { ...requested };
  for (const key of FROM_FILE) {
    const a = fromFile[key];
    const b = (requested as Record<string, unknown>)[key];
    if (given.has(key) && a !== b) {
      const what = key === 'vocabCap' ? `a vocabulary of ${a} tokens` : JSON.stringify(a);
      throw new ConfigError(
        `--init ${path}: "${key}" is ${JSON.stringify(b)} but the model file has ${what}; ` +
          `a run started from a model file keeps its model and vocabulary (leave "${key}" out to take the file's)`,
      );
    }
    merged[key] = a;
  }
  for (const key of WEIGHT_INIT) {
    if (given.has(key)) throw new ConfigError(`--init ${path}: "${key}" sets initial weights, but they come from the model file; leave it out`);
  }
  const config = resolveTrainConfig(merged, {}, `--init ${path}`);
  // Every key of a language model's config is one of FROM_FILE: a difference is a bug here.
  if (JSON.stringify(modelConfigOf(config)) !== JSON.stringify(model.config)) {
    throw new Error(`--init ${path}: the run's model ${JSON.stringify(modelConfigOf(config))} differs from the file's ${JSON.stringify(model.config)}`);
  }
  return config;
}

/** `requested.init` read and merged into the config; nothing is created, so a bad file leaves nothing behind. */
export async function startFromFile(requested: TrainConfig, given: ReadonlySet<string>): Promise<{ config: TrainConfig; model: ModelFile }> {
  if (requested.resume !== null) {
    throw new ConfigError(`--init ${requested.init} and --resume ${requested.resume} exclude each other: a resumed run takes its weights from its checkpoint`);
  }
  const model = await loadModelFile(requested.init!);
  return { config: initConfig(requested, given, model), model };
}

/**
 * The vocabulary an --init run encodes its data with, and what to name it in errors: the
 * model file's when the run starts, its checkpoint's when resumed. Null for other runs,
 * whose vocabulary is built from the data.
 */
export function initVocab(config: TrainConfig, model: ModelFile | null, checkpoint: CheckpointMsg | null): { vocab: Vocab; source: string } | null {
  if (config.init === null) return null;
  if (model) return { vocab: { kind: model.tokens, tokens: model.vocab }, source: `--init ${config.init}` };
  if (!checkpoint) throw new Error('an --init run needs its model file or, resumed, its checkpoint');
  if (!isTokenKind(checkpoint.tokenKind)) throw new ConfigError(`--resume ${config.resume}: the checkpoint's token kind ${JSON.stringify(checkpoint.tokenKind)} is unknown`);
  return { vocab: { kind: checkpoint.tokenKind, tokens: checkpoint.vocab }, source: `the checkpoint in ${config.resume} (from --init ${config.init})` };
}

/**
 * The corpus of an --init run: the data encoded with a fixed vocabulary. A token outside it
 * becomes <unk> where the vocabulary has one (every word vocabulary, capped char ones);
 * otherwise the first such character is an error naming it, the data and the vocabulary's file.
 */
export function corpusWithVocab(config: Pick<TrainConfig, 'data'>, { vocab, source }: { vocab: Vocab; source: string }): Corpus {
  const text = config.data === null ? loadBrownCorpus() : readTextFile(config.data);
  const data = config.data ?? 'the Brown corpus';
  let ids: Int32Array;
  try {
    ids = encode(vocab, text);
  } catch (e) {
    if (e instanceof DataError) throw new DataError(`${data} does not fit the vocabulary of ${source}: ${e.message}`);
    throw e;
  }
  return { text, source: config.data ?? 'brown', vocab, ids, ...splitTrainVal(ids) };
}
