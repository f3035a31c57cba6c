// gradpool model files: a safetensors file whose tensors are PyTorch's state dict of
// { embedding: nn.Embedding, rnn: nn.RNN/LSTM/GRU, decoder: nn.Linear }, plus gradpool
// metadata (config, vocabulary, tokenization). The conversion rules are in docs/MODEL.md
// ("Model files"); loading validates everything, since model files come from outside.
// A captioner's file adds its CNN encoder (`encoder.conv{i}.weight` [out, in, 3, 3], …,
// `encoder.proj.*`, `encoder.norm.*` as nn.LayerNorm) and says `gradpool.task: caption`
// (docs/CAPTIONING.md). A captioner over precomputed features has no conv tensors, its
// `encoder.proj.weight` is [E, D], and its config says `featureSize: D`.

import { show } from './show.js';
import { randomBytes } from 'node:crypto';
import { open, readFile, readdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CAPTION_KEYS, ConfigError, type ModelConfig, gateCount, resolveModelConfig } from './config.js';
import { captionVocabProblem } from './caption.js';
import { type ParamLayout, type ParamSpec, buildLayout, view } from './params.js';
import { type Tensor, encodeSafetensors, parseSafetensors } from './safetensors.js';
import { isTokenKind, TOKEN_KINDS, type TokenKind } from './tokenizer.js';

export interface ModelFile {
  readonly config: ModelConfig;
  /** Index = token id. */
  readonly vocab: string[];
  readonly tokens: TokenKind;
  readonly layout: ParamLayout;
  readonly params: Float32Array;
  /** Every metadata entry of the file, gradpool's own and any extra ones. */
  readonly metadata: Record<string, string>;
}

export type StateDict = Map<string, { shape: number[]; data: Float32Array }>;

export class ModelFileError extends Error {
  override name = 'ModelFileError';
  /** Read by coordinator/exit.ts: 'input' exits with code 2. */
  readonly kind = 'input';
}

const META_CONFIG = 'gradpool.config';
const META_VOCAB = 'gradpool.vocab';
const META_TOKENS = 'gradpool.tokens';
/** Written by captioners only ("caption"); a file without it holds a language model. */
const META_TASK = 'gradpool.task';

/** Every tensor name and shape of a model file for this layout, in file-independent order. */
export function stateDictShapes(layout: ParamLayout): Map<string, number[]> {
  const { hidden: H, embed: E, cell } = layout.config;
  const V = layout.vocabSize;
  const GH = gateCount(cell) * H;
  const shapes = new Map<string, number[]>();
  // The encoder's tensors hold our flat data as is: conv (out, in·9) is PyTorch's [out, in, 3, 3].
  layout.encoder?.convs.forEach((c, i) => {
    shapes.set(`encoder.conv${i}.weight`, [c.W.shape[0], c.W.shape[1] / 9, 3, 3]);
    shapes.set(`encoder.conv${i}.bias`, [...c.b.shape]);
  });
  if (layout.encoder) {
    shapes.set('encoder.proj.weight', [...layout.encoder.projW.shape]);
    shapes.set('encoder.proj.bias', [...layout.encoder.projB.shape]);
    shapes.set('encoder.norm.weight', [...layout.encoder.norm.gamma.shape]);
    shapes.set('encoder.norm.bias', [...layout.encoder.norm.beta.shape]);
  }
  shapes.set('embedding.weight', [V, E]);
  layout.layers.forEach((layer, k) => {
    shapes.set(`rnn.weight_ih_l${k}`, [GH, layer.inputSize]);
    shapes.set(`rnn.weight_hh_l${k}`, [GH, H]);
    shapes.set(`rnn.bias_ih_l${k}`, [GH]);
    shapes.set(`rnn.bias_hh_l${k}`, [GH]);
    if (layer.peep) shapes.set(`rnn.peephole_l${k}`, [3, H]);
    for (const [ours, theirs] of lnPairs(layer, k)) shapes.set(theirs, [ours.size]);
  });
  shapes.set('decoder.weight', [V, H]);
  shapes.set('decoder.bias', [V]);
  return shapes;
}

/** Layer-norm parameters, stored unconverted: (our spec, file name) pairs. */
function lnPairs(layer: ParamLayout['layers'][number], k: number) {
  const pairs: [ParamLayout['specs'][number], string][] = [];
  const groups = [['ih', layer.lnX], ['hh', layer.lnH], ['cell', layer.lnC]] as const;
  for (const [name, ln] of groups) {
    if (!ln) continue;
    pairs.push([ln.gamma, `rnn.ln_${name}_weight_l${k}`], [ln.beta, `rnn.ln_${name}_bias_l${k}`]);
  }
  return pairs;
}

/** PyTorch's GRU update gate is z' = 1 − z = σ(−a_z): its z rows (H..2H) are ours negated. */
function zSign(layout: ParamLayout, gateRow: number): number {
  const { cell, hidden: H } = layout.config;
  return (cell === 'gru' || cell === 'gru-reset-after') && gateRow >= H && gateRow < 2 * H ? -1 : 1;
}

/** Model files (and the PyTorch layout) are for language models and captioners, which have an embedding. */
function lmEmbedding(layout: ParamLayout): ParamSpec {
  if (!layout.embedding || (layout.config.task !== 'lm' && layout.config.task !== 'caption')) {
    throw new ModelFileError(`model files hold language models and captioners (task "lm" or "caption"); this model's task is "${layout.config.task}"`);
  }
  return layout.embedding;
}

/** The encoder's (file name, our spec) pairs: the same values in the same order. */
function encoderPairs(layout: ParamLayout): [string, ParamSpec][] {
  const enc = layout.encoder;
  if (!enc) return [];
  return [
    ...enc.convs.flatMap((c, i): [string, ParamSpec][] => [[`encoder.conv${i}.weight`, c.W], [`encoder.conv${i}.bias`, c.b]]),
    ['encoder.proj.weight', enc.projW],
    ['encoder.proj.bias', enc.projB],
    ['encoder.norm.weight', enc.norm.gamma],
    ['encoder.norm.bias', enc.norm.beta],
  ];
}

/** Our flat parameters (or gradients: the map is linear) as a PyTorch state dict. */
export function toPyTorchStateDict(layout: ParamLayout, params: Float32Array): StateDict {
  if (params.length !== layout.size) throw new ModelFileError(`parameters have ${params.length} values, the layout needs ${layout.size}`);
  const sd: StateDict = new Map();
  const shapes = stateDictShapes(layout);
  const put = (name: string, data: Float32Array) => sd.set(name, { shape: shapes.get(name)!, data });
  const H = layout.config.hidden;
  const V = layout.vocabSize;
  for (const [name, spec] of encoderPairs(layout)) put(name, view(params, spec).slice());
  put('embedding.weight', view(params, lmEmbedding(layout)).slice());
  layout.layers.forEach((layer, k) => {
    const In = layer.inputSize;
    const GH = layer.b.size;
    const W = view(params, layer.W); // (In+H, GH): weight_ih is W[0:In]ᵀ, weight_hh is W[In:]ᵀ
    const wIh = new Float32Array(GH * In);
    const wHh = new Float32Array(GH * H);
    const bIh = new Float32Array(GH);
    const bHh = new Float32Array(GH); // zero where our single b already holds the sum
    const b = view(params, layer.b);
    for (let c = 0; c < GH; c++) {
      const s = zSign(layout, c);
      for (let r = 0; r < In; r++) wIh[c * In + r] = s * W[r * GH + c];
      for (let j = 0; j < H; j++) wHh[c * H + j] = s * W[(In + j) * GH + c];
      bIh[c] = s * b[c];
    }
    if (layer.b_hn) bHh.set(view(params, layer.b_hn), 2 * H); // n block, never negated
    put(`rnn.weight_ih_l${k}`, wIh);
    put(`rnn.weight_hh_l${k}`, wHh);
    put(`rnn.bias_ih_l${k}`, bIh);
    put(`rnn.bias_hh_l${k}`, bHh);
    if (layer.peep) put(`rnn.peephole_l${k}`, view(params, layer.peep).slice());
    for (const [spec, name] of lnPairs(layer, k)) put(name, view(params, spec).slice());
  });
  const dW = view(params, layout.decoderW); // (H, V); decoder.weight is its transpose
  const decoderWeight = new Float32Array(V * H);
  for (let v = 0; v < V; v++) for (let h = 0; h < H; h++) decoderWeight[v * H + h] = dW[h * V + v];
  put('decoder.weight', decoderWeight);
  put('decoder.bias', view(params, layout.decoderB).slice());
  return sd;
}

/**
 * A PyTorch state dict as our flat parameters: checks that the tensor set and every
 * shape match the layout exactly and that every value is finite (`what` names the source).
 */
export function fromPyTorchStateDict(layout: ParamLayout, sd: ReadonlyMap<string, Tensor>, what = 'state dict'): Float32Array {
  const fail = (problem: string): never => {
    throw new ModelFileError(`${what}: ${problem}`);
  };
  const { cell, layers, hidden: H, layerNorm } = layout.config;
  const model = `a ${layers}-layer ${cell} model${layerNorm ? ' with layerNorm' : ''}`;
  const shapes = stateDictShapes(layout);
  for (const [name, shape] of shapes) {
    const t = sd.get(name);
    if (!t) fail(`missing tensor "${name}" (shape [${shape}]) for ${model}`);
    else if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      fail(`tensor "${name}" has the wrong shape: expected [${shape}], got [${t.shape}]`);
    }
  }
  for (const [name, t] of sd) {
    if (!shapes.has(name)) fail(`unexpected tensor "${name}" for ${model}`);
    const bad = t.data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) fail(`tensor "${name}" holds a non-finite weight (${t.data[bad]}) at index ${bad}`);
  }
  const get = (name: string) => sd.get(name)!.data;
  const params = new Float32Array(layout.size);
  const V = layout.vocabSize;
  for (const [name, spec] of encoderPairs(layout)) view(params, spec).set(get(name));
  view(params, lmEmbedding(layout)).set(get('embedding.weight'));
  layout.layers.forEach((layer, k) => {
    const In = layer.inputSize;
    const GH = layer.b.size;
    const W = view(params, layer.W);
    const b = view(params, layer.b);
    const [wIh, wHh] = [get(`rnn.weight_ih_l${k}`), get(`rnn.weight_hh_l${k}`)];
    const [bIh, bHh] = [get(`rnn.bias_ih_l${k}`), get(`rnn.bias_hh_l${k}`)];
    for (let c = 0; c < GH; c++) {
      const s = zSign(layout, c);
      for (let r = 0; r < In; r++) W[r * GH + c] = s * wIh[c * In + r];
      for (let j = 0; j < H; j++) W[(In + j) * GH + c] = s * wHh[c * H + j];
      // Reset-after keeps b_hn apart (it sits inside r ⊙ (…)); every other bias pair just sums.
      const inN = layer.b_hn !== undefined && c >= 2 * H;
      b[c] = s * (inN ? bIh[c] : bIh[c] + bHh[c]);
    }
    if (layer.b_hn) view(params, layer.b_hn).set(bHh.subarray(2 * H, 3 * H));
    if (layer.peep) view(params, layer.peep).set(get(`rnn.peephole_l${k}`));
    for (const [spec, name] of lnPairs(layer, k)) view(params, spec).set(get(name));
  });
  const decoderWeight = get('decoder.weight'); // (V, H)
  const dW = view(params, layout.decoderW); // (H, V)
  for (let v = 0; v < V; v++) for (let h = 0; h < H; h++) dW[h * V + v] = decoderWeight[v * H + h];
  view(params, layout.decoderB).set(get('decoder.bias'));
  return params;
}

/** A model file's bytes; deterministic for the same inputs. */
export function encodeModelFile(
  layout: ParamLayout,
  params: Float32Array,
  vocab: readonly string[],
  tokens: TokenKind,
  extraMeta: Record<string, string> = {},
): Uint8Array {
  if (params.length !== layout.size) throw new ModelFileError(`parameters have ${params.length} values, the layout needs ${layout.size}`);
  for (const spec of layout.specs) {
    const bad = view(params, spec).findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new ModelFileError(`parameter "${spec.name}" holds a non-finite weight (${params[spec.offset + bad]}) at index ${bad}; refusing to save`);
  }
  checkVocab(vocab, 'vocabulary');
  if (vocab.length !== layout.vocabSize) throw new ModelFileError(`vocabulary has ${vocab.length} tokens, the layout has ${layout.vocabSize}`);
  if (!isTokenKind(tokens)) throw new ModelFileError(`tokens is ${show(tokens)}; allowed: ${TOKEN_KINDS.join(', ')}`);
  for (const key of [META_CONFIG, META_VOCAB, META_TOKENS, META_TASK]) {
    if (key in extraMeta) throw new ModelFileError(`extra metadata may not set "${key}": gradpool writes it`);
  }
  const caption = layout.config.task === 'caption';
  if (caption) {
    const problem = captionVocabProblem(vocab);
    if (problem) throw new ModelFileError(`vocabulary: ${problem}`);
  }
  // A language model's file leaves out the keys of other tasks (their defaults); a captioner's keeps
  // its own, but featureSize only over features (so files of image captioners read as before).
  const { task: _task, inputSize: _inputSize, outputs: _outputs, featureSize, ...rest } = layout.config;
  const config = caption
    ? { ...rest, ...(featureSize > 0 ? { featureSize } : {}), task: 'caption' }
    : Object.fromEntries(Object.entries(rest).filter(([k]) => !(CAPTION_KEYS as readonly string[]).includes(k)));
  const metadata = {
    [META_CONFIG]: JSON.stringify(config), [META_VOCAB]: JSON.stringify(vocab), [META_TOKENS]: tokens, ...(caption ? { [META_TASK]: 'caption' } : {}), ...extraMeta,
  };
  return encodeSafetensors(toPyTorchStateDict(layout, params), metadata);
}

/** Parse and validate a model file; `what` (usually the path) names it in every error. */
export function decodeModelFile(bytes: Uint8Array, what = 'model file'): ModelFile {
  const { tensors, metadata } = parseSafetensors(bytes, what);
  const fail = (problem: string): never => {
    throw new ModelFileError(`${what}: ${problem}`);
  };
  const json = (key: string): unknown => {
    if (!Object.hasOwn(metadata, key)) fail(`missing metadata "${key}" (not a gradpool model file?)`);
    try {
      return JSON.parse(metadata[key]);
    } catch (e) {
      return fail(`metadata "${key}" is not valid JSON (${(e as Error).message})`);
    }
  };
  let config: ModelConfig;
  try {
    config = resolveModelConfig(json(META_CONFIG) as Record<string, unknown>, `${what}: ${META_CONFIG}`);
  } catch (e) {
    throw e instanceof ConfigError ? new ModelFileError(e.message) : e;
  }
  const vocab = json(META_VOCAB);
  checkVocab(vocab, `${what}: ${META_VOCAB}`);
  const tokens = metadata[META_TOKENS];
  if (!Object.hasOwn(metadata, META_TOKENS)) fail(`missing metadata "${META_TOKENS}" (not a gradpool model file?)`);
  if (!isTokenKind(tokens)) {
    fail(`metadata "${META_TOKENS}" is ${show(tokens)}; allowed: ${TOKEN_KINDS.join(', ')}`);
  }
  const task = Object.hasOwn(metadata, META_TASK) ? metadata[META_TASK] : 'lm';
  if (task !== config.task) fail(`metadata "${META_TASK}" is ${show(task)} but ${META_CONFIG} says task ${show(config.task)}`);
  if (task === 'caption') {
    if (tokens !== 'word') fail(`metadata "${META_TOKENS}" is ${show(tokens)}; a captioner's vocabulary is of words`);
    const problem = captionVocabProblem(vocab);
    if (problem) fail(`${META_VOCAB}: ${problem}`);
  }
  const embedding = tensors.get('embedding.weight');
  if (embedding && embedding.shape.length === 2 && embedding.shape[0] !== vocab.length) {
    fail(`${META_VOCAB} has ${vocab.length} tokens but embedding.weight has ${embedding.shape[0]} rows (vocabulary size mismatch)`);
  }
  const layout = buildLayout(config, vocab.length);
  const params = fromPyTorchStateDict(layout, tensors, what);
  return { config, vocab, tokens: tokens as TokenKind, layout, params, metadata };
}

function checkVocab(vocab: unknown, where: string): asserts vocab is string[] {
  if (!Array.isArray(vocab)) throw new ModelFileError(`${where} must be an array of strings, got ${typeof vocab === 'object' ? show(vocab) : typeof vocab}`);
  if (vocab.length === 0) throw new ModelFileError(`${where} is empty`);
  const seen = new Map<string, number>();
  vocab.forEach((token: unknown, id) => {
    if (typeof token !== 'string') throw new ModelFileError(`${where} must be an array of strings; entry ${id} is ${show(token)}`);
    const first = seen.get(token);
    if (first !== undefined) throw new ModelFileError(`${where} lists token ${show(token)} twice, at ${first} and ${id}`);
    seen.set(token, id);
  });
}

export async function saveModelFile(
  path: string,
  layout: ParamLayout,
  params: Float32Array,
  vocab: readonly string[],
  tokens: TokenKind,
  extraMeta?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, encodeModelFile(layout, params, vocab, tokens, extraMeta));
}

export async function loadModelFile(path: string): Promise<ModelFile> {
  let bytes: Uint8Array;
  try {
    // Only regular files: reading a FIFO or /dev/zero would never end.
    const info = await stat(path);
    if (info.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    if (!info.isFile()) throw new ModelFileError(`model file is not a regular file: ${path}`);
    bytes = await readFile(path);
  } catch (e) {
    if (e instanceof ModelFileError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'not found' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${(e as Error).message})`;
    throw new ModelFileError(`model file ${why}: ${path}`);
  }
  return decodeModelFile(bytes, path);
}

/** A failed atomic write: names the file and the reason (with its errno code); the previous file, if any, was not touched. */
export class FileWriteError extends Error {
  override name = 'FileWriteError';
  /** Read by coordinator/exit.ts: a 'failure' exits with code 1, its message without a stack. */
  readonly kind = 'failure';
  constructor(
    readonly path: string,
    /** e.g. "no space left on device (ENOSPC)" */
    readonly reason: string,
    readonly code: string | undefined,
    readonly previousIntact: boolean,
    options?: ErrorOptions,
  ) {
    super(`cannot write ${path}: ${reason}; ${previousIntact ? `the previous ${basename(path)} is intact` : `no ${basename(path)} was written`}`, options);
  }
}

/** "no space left on device (ENOSPC)" from Node's "ENOSPC: no space left on device, write". */
export function ioReason(e: unknown): string {
  const { code, message } = (e ?? {}) as NodeJS.ErrnoException;
  const described = code ? new RegExp(`^${code}: ([^,]+)`).exec(message ?? '')?.[1] : undefined;
  if (described) return `${described} (${code})`;
  return code ? `${message} (${code})` : String(message ?? e);
}

/**
 * Temp file + fsync + rename: a crash leaves either the old file or the new one, never half
 * of one. A failed write removes its temp file and throws FileWriteError. The temp file is
 * `.<name>.<pid>.<hex>.tmp`; one left by a killed writer is never read, and the next write of
 * the same file removes it (so repeated kills cannot fill the disk with them).
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await removeStaleTempFiles(path);
    const file = await open(tmp, 'wx');
    try {
      await file.writeFile(bytes);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    const previousIntact = await stat(path).then((s) => s.isFile(), () => false);
    throw new FileWriteError(path, ioReason(e), (e as NodeJS.ErrnoException).code, previousIntact, { cause: e });
  }
  // Make the rename itself durable; some platforms cannot fsync a directory, which is fine.
  try {
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    /* best effort */
  }
}

/** Temp files of interrupted writes of `path` whose writing process is gone (a live one may be mid-write). */
async function removeStaleTempFiles(path: string): Promise<void> {
  const prefix = `.${basename(path)}.`;
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return; // a missing or unreadable directory fails at open(), with its own reason
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = /^(\d+)\.[0-9a-f]+\.tmp$/.exec(name.slice(prefix.length))?.[1];
    if (pid !== undefined && !processAlive(Number(pid))) await unlink(join(dirname(path), name)).catch(() => undefined);
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0); // signal 0: existence check only
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}
